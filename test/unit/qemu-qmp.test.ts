/**
 * The QMP client against a real qemu (`-machine none`: no guest, starts in milliseconds):
 * greeting and capabilities negotiation, replies matched to commands by id (also when several
 * are in flight), QEMU's errors as E_QMP, events and waiters (also an event that raced the
 * call), timeouts, qemu exiting under a pending command; and peers that are not QMP servers.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BerthError } from '../../src/errors.js';
import { QmpClient } from '../../src/engines/qemu/qmp.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-qmp-'));
const children: ChildProcess[] = [];
after(() => { for (const c of children) c.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }); });

function qemu(name: string): { sock: string; child: ChildProcess } {
  const sock = join(dir, `${name}.qmp`);
  const child = spawn('qemu-system-x86_64', ['-machine', 'none', '-nodefaults', '-display', 'none', '-qmp', `unix:${sock},server=on,wait=off`], { stdio: 'ignore' });
  children.push(child);
  return { sock, child };
}

const isErr = (code: string, re?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof BerthError, String(e));
  assert.equal(e.code, code, e.message);
  assert.equal(e.exitCode, 5);
  if (re) assert.match(e.message, re);
  return true;
};

test('connects (retrying until qemu listens), negotiates, matches replies to commands', async () => {
  const { sock } = qemu('a');
  const q = await QmpClient.connect(sock, { retry: true, timeoutMs: 10_000 });
  assert.match(q.version, /^\d+\.\d+\.\d+$/);
  const [st, name, cmds] = await Promise.all([q.execute('query-status'), q.execute('query-name'), q.execute('query-commands')]);
  assert.equal(typeof st.running, 'boolean');
  assert.deepEqual(name, {});
  assert.ok(cmds.some((c: { name: string }) => c.name === 'migrate'));
  await assert.rejects(q.execute('no-such-command'), isErr('E_QMP', /no-such-command.*CommandNotFound/));
  await assert.rejects(q.execute('query-status', { bogus: 1 }), (e: unknown) => e instanceof BerthError && e.code === 'E_QMP' && (e.details as any).class === 'GenericError');
  q.close();
  assert.ok(q.closed);
  await assert.rejects(q.execute('query-status'), isErr('E_QMP_CLOSED'));
});

test('events reach listeners and waiters, an event that came before waitEvent counts with since, a missing one times out', async () => {
  const { sock } = qemu('b');
  const q = await QmpClient.connect(sock, { retry: true, timeoutMs: 10_000 });
  const seen: string[] = [];
  q.on('event', (e) => seen.push(e.event));
  const since = performance.now();
  await q.execute('stop');
  await new Promise((r) => setTimeout(r, 100));
  const stop = await q.waitEvent('STOP', { since, timeoutMs: 1000 });
  assert.equal(stop.event, 'STOP');
  assert.ok(stop.time > 1e12, 'QEMU timestamp in ms since the epoch');
  const resumed = q.waitEvent('RESUME', { timeoutMs: 5000 });
  await q.execute('cont');
  assert.equal((await resumed).event, 'RESUME');
  assert.deepEqual(seen, ['STOP', 'RESUME']);
  await assert.rejects(q.waitEvent('SHUTDOWN', { timeoutMs: 100 }), isErr('E_QMP_TIMEOUT', /SHUTDOWN/));
  q.close();
});

test('qemu exiting rejects what is pending with E_QMP_CLOSED and ends waiters', async () => {
  const { sock, child } = qemu('c');
  const q = await QmpClient.connect(sock, { retry: true, timeoutMs: 10_000 });
  const waiting = q.waitEvent('NEVER', { timeoutMs: 10_000 });
  const closed = q.waitClosed(10_000);
  child.kill('SIGKILL');
  await assert.rejects(waiting, isErr('E_QMP_CLOSED'));
  assert.equal(await closed, true);
  await assert.rejects(q.execute('query-status'), isErr('E_QMP_CLOSED'));
});

test('no socket, a socket that is not QMP, and a server that never greets are clear errors', async () => {
  await assert.rejects(QmpClient.connect(join(dir, 'missing.qmp'), { timeoutMs: 200 }), isErr('E_QMP_CONNECT', /missing\.qmp/));
  await assert.rejects(QmpClient.connect(join(dir, 'missing.qmp'), { timeoutMs: 200, retry: true }), isErr('E_QMP_CONNECT'));
  const bad = join(dir, 'bad.sock');
  const srv = createServer((s) => s.end('SSH-2.0-OpenSSH\r\n{"not": "qmp"}\n')).listen(bad);
  await assert.rejects(QmpClient.connect(bad, { timeoutMs: 1000 }), isErr('E_QMP', /not a QMP socket/));
  srv.close();
  const mute = join(dir, 'mute.sock');
  const held: import('node:net').Socket[] = [];
  const srv2 = createServer((s) => { held.push(s); }).listen(mute);
  await assert.rejects(QmpClient.connect(mute, { timeoutMs: 300 }), isErr('E_QMP_TIMEOUT', /greeting/));
  for (const s of held) s.destroy();
  srv2.close();
});

test('a command qemu does not answer in time is E_QMP_TIMEOUT (a greeting server that ignores commands)', async () => {
  const sock = join(dir, 'slow.sock');
  const held: import('node:net').Socket[] = [];
  const srv = createServer((s) => {
    held.push(s);
    s.write('{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": []}}\r\n');
    s.on('data', (d) => { const m = JSON.parse(d.toString().split('\n')[0]!); if (m.execute === 'qmp_capabilities') s.write(`{"return": {}, "id": ${JSON.stringify(m.id)}}\r\n`); });
  }).listen(sock);
  const q = await QmpClient.connect(sock, { timeoutMs: 1000 });
  assert.equal(q.version, '7.2.0');
  await assert.rejects(q.execute('query-status', undefined, { timeoutMs: 100 }), isErr('E_QMP_TIMEOUT', /query-status/));
  q.close();
  for (const s of held) s.destroy();
  srv.close();
});
