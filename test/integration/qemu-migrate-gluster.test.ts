/**
 * Cold migration of a qemu VM between two nodes sharing one GlusterFS volume (two FUSE mounts,
 * two agents on loopback ports): `jmigrate` of a stopped VM and of a running one (stopped by
 * ACPI on the source, booted again on the destination); its disk (jails-data/<vm>-data/
 * dsk1.vhd on the volume) is not copied; the lease moves; a file written inside the VM on one
 * node is read back on the other; the old owner refuses to start it (exit 4). Live (live=1):
 * the guest's counter goes on at the destination, by the CLI and by the web console's migrate
 * form (its live choice, checked for a running VM).
 * Needs root, glusterd (scripts/gluster-up), qemu-system-x86, cpio, busybox-static, apt access.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { GUEST_READY_LINE } from '../../src/engines/qemu/guest.js';
import { makeKernelBase } from '../../src/engines/qemu/kernel.js';
import { readLease } from '../../src/ownership/record.js';
import { Workdir } from '../../src/paths.js';
import { BIN, berth, isRoot } from '../helpers/cli.js';
import { qemuRunPaths } from '../../src/engines/qemu/argv.js';
import { qemuPid } from '../../src/engines/qemu/process.js';
import { brickBytes, freePort, sleep, twoNodes, type TestNode, type TwoNodes } from './cluster-twonode.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

/** Used bytes may move by the lease records and the descriptor rewritten on the way. */
const TOLERANCE = 64 * 1024;
let fx: TwoNodes;
let consolePort = 0;

before(async () => {
  fx = await twoNodes(['lease_ttl=5']);
  for (const n of [fx.n1, fx.n2]) await makeKernelBase(new Workdir(n.wd), 'k1');
  // node2's agent serves the web console too (the live migrate by its form)
  consolePort = await freePort();
  appendFileSync(join(fx.n2.wd, 'etc', 'berth.conf'), `console_port="${consolePort}"\n`);
  await fx.n1.startAgent();
  await fx.n2.startAgent();
  fx.n1.ok(['node', 'add', 'name=node2', `url=${fx.n2.url}`, `token_file=${fx.n2.wd}/etc/api.token`]);
  fx.n2.ok(['node', 'add', 'name=node1', `url=${fx.n1.url}`, `token_file=${fx.n1.wd}/etc/api.token`]);
});
after(async () => {
  for (const n of [fx?.n1, fx?.n2]) n?.run(['bstop', 'jname=*'], 90_000);
  await fx?.cleanup();
});

const vm = (n: TestNode, jname: string) => (n.ok(['bls', '--json']).json.envs as any[]).find((e) => e.jname === jname);
const lease = async (jname: string) => (await readLease(join(fx.n1.wd, 'jails-lease', 'envs', jname)))!;

/** Types `cmd` on the VM's serial console once its shell prompt is there; @returns what the console printed up to `until` */
function typeOn(n: TestNode, jname: string, cmd: string, until: string): string {
  const p = spawnInput(n, ['bconsole', `jname=${jname}`, 'log=0', 'until=# ', 'timeout=60'], '\n');
  assert.equal(p.code, 0, p.stderr);
  const r = spawnInput(n, ['bconsole', `jname=${jname}`, 'log=0', `until=${until}`, 'timeout=60'], `${cmd}\n`);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  return r.stdout;
}

function spawnInput(n: TestNode, args: string[], input: string) {
  return berth(args, { workdir: n.wd, input, timeoutMs: 90_000 });
}

test('a stopped VM moves to node2: lease handed over, disk not copied, node1 refuses to start it', async () => {
  const { n1, n2, vol } = fx;
  n1.ok(['bcreate', 'jname=mv', 'base=bb', 'vm_kernel=k1', 'vm_ram=256m', 'vm_vnc_port=1']);
  const gen1 = vm(n1, 'mv').generation;
  await sleep(1500);
  const before = brickBytes(vol);
  const r = n1.ok(['jmigrate', 'jname=mv', 'dst=node2', '--json'], 120_000);
  assert.equal(r.json.migration.wasRunning, false);
  assert.equal(r.json.migration.generation, gen1 + 1);
  assert.equal(vm(n2, 'mv').status, 'Off');
  assert.equal(vm(n1, 'mv'), undefined);
  assert.equal((await lease('mv')).node, 'node2');
  await sleep(1500);
  const after = brickBytes(vol);
  assert.ok(Math.abs(after - before) < TOLERANCE, `no disk copied: ${before} -> ${after}`);
  assert.notEqual(n1.run(['bregister', 'jname=mv']).code, 0, 'node1 cannot adopt it while node2 owns it');
});

test('a running VM moves back to node1: stopped by ACPI, booted there, a file written on node2 is read on node1', async () => {
  const { n1, n2, vol } = fx;
  n2.ok(['bstart', 'jname=mv']);
  assert.equal(n2.run(['bconsole', 'jname=mv', `until=${GUEST_READY_LINE}`, 'timeout=120'], 150_000).code, 0);
  const value = `written-on-node2-${process.pid}`;
  typeOn(n2, 'mv', `echo ${value} > /root/note; sync; echo done-$((1+1))`, 'done-2');
  const gen = vm(n2, 'mv').generation;
  await sleep(1500);
  const before = brickBytes(vol);
  const r = n2.ok(['jmigrate', 'jname=mv', 'dst=node1', '--json'], 240_000);
  const m = r.json.migration;
  assert.equal(m.wasRunning, true);
  assert.equal(m.generation, gen + 1, 'the generation raised once');
  assert.deepEqual(m.steps.map((s: any) => [s.step, s.node, s.ok]), [['prepare', 'node1', true], ['stop', 'node2', true], ['handover', 'node2', true], ['adopt', 'node1', true], ['unmount', 'node2', true]]);
  console.log(`# jmigrate (cold, running qemu VM): downtime ${m.downtimeMs} ms, total ${m.totalMs} ms; steps ${m.steps.map((s: any) => `${s.step}@${s.node} ${s.ms} ms`).join(', ')}`);
  assert.equal(vm(n1, 'mv').status, 'On');
  assert.equal(vm(n2, 'mv'), undefined);
  assert.equal((await lease('mv')).node, 'node1');
  assert.equal(n1.run(['bconsole', 'jname=mv', `until=${GUEST_READY_LINE}`, 'timeout=120'], 150_000).code, 0);
  const out = typeOn(n1, 'mv', 'cat /root/note; echo done-$((2+1))', 'done-3');
  assert.ok(out.includes(value), `the file written on node2 reads back on node1: ${out}`);
  await sleep(1500);
  const after = brickBytes(vol);
  assert.ok(Math.abs(after - before) < TOLERANCE, `no disk copied: ${before} -> ${after}`);
  const again = n2.run(['bstart', 'jname=mv']);
  assert.notEqual(again.code, 0, 'node2 no longer has it');
  n1.ok(['bstop', 'jname=mv'], 90_000);
});

test('live: jmigrate live=1 moves a running VM to node2 without a reboot; lease handed over once; the disk not copied', async () => {
  const { n1, n2, vol } = fx;
  n1.ok(['bstart', 'jname=mv']);
  assert.equal(n1.run(['bconsole', 'jname=mv', `until=${GUEST_READY_LINE}`, 'timeout=120'], 150_000).code, 0);
  // a counter in the guest: a new boot would not have it, a moved guest goes on counting
  typeOn(n1, 'mv', '(i=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.2; done) &', 'tick-3\r?\n');
  const gen = vm(n1, 'mv').generation;
  await sleep(1500);
  const before = brickBytes(vol);
  const r = n1.ok(['jmigrate', 'jname=mv', 'dst=node2', 'live=1', '--json'], 240_000);
  const m = r.json.migration;
  assert.deepEqual(m.steps.map((s: any) => [s.step, s.node, s.ok]), [['prepare', 'node2', true], ['incoming', 'node2', true], ['channel', 'node1', true], ['send', 'node1', true], ['handover', 'node1', true], ['adopt', 'node2', true], ['resume', 'node2', true], ['unmount', 'node1', true]]);
  assert.equal(m.generation, gen + 1, 'the generation raised once');
  assert.ok(m.live.transferredBytes > 0 && m.downtimeMs > 0, JSON.stringify(m));
  console.log(`# jmigrate live=1 (qemu, 256 MiB guest, TCG): downtime ${m.downtimeMs} ms (berth), ${m.live.downtimeMs} ms (QEMU); total ${m.totalMs} ms; ${Math.round(m.live.transferredBytes / 1048576)} MiB sent; steps ${m.steps.map((s: any) => `${s.step}@${s.node} ${s.ms} ms`).join(', ')}`);
  // the state went through node2's agent (its authenticated migration channel), all of it
  const relayed = readFileSync(n2.agentLog, 'utf8').split('\n').filter((l) => l.includes('"migration channel"')).map((l) => JSON.parse(l)).filter((l) => l.jname === 'mv');
  assert.equal(relayed.at(-1)?.status, 101, `node2's agent relayed the stream: ${JSON.stringify(relayed)}`);
  assert.ok(relayed.at(-1).bytesIn >= m.live.transferredBytes, `all the state through the channel: ${relayed.at(-1).bytesIn} of ${m.live.transferredBytes} bytes`);
  assert.equal(vm(n1, 'mv'), undefined, 'node1 has no row');
  const there = vm(n2, 'mv');
  assert.equal(there.status, 'On');
  assert.equal((await lease('mv')).node, 'node2');
  const out = spawnInput(n2, ['bconsole', 'jname=mv', 'log=0', 'until=tick-[0-9]+\r?\n', 'timeout=60'], '');
  assert.equal(out.code, 0, `the counter goes on on node2: ${out.stderr}${out.stdout}`);
  await sleep(1500);
  const after = brickBytes(vol);
  assert.ok(Math.abs(after - before) < TOLERANCE, `no disk copied: ${before} -> ${after}`);
  assert.equal(n1.run(['bstart', 'jname=mv']).code === 0, false, 'node1 cannot start it');
  n2.ok(['bstop', 'jname=mv'], 90_000);
  assert.equal(vm(n2, 'mv').status, 'Off');
});

test('live: a destination qemu killed while the state is sent rolls back: the VM runs on at the source with its lease, nothing is left at the destination', async () => {
  const { n1, n2 } = fx;
  // the VM is on node2 now (previous test): move it live back to node1 and kill node1's paused qemu
  n2.ok(['bstart', 'jname=mv']);
  assert.equal(n2.run(['bconsole', 'jname=mv', `until=${GUEST_READY_LINE}`, 'timeout=120'], 150_000).code, 0);
  typeOn(n2, 'mv', '(i=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.2; done) &', 'tick-3\r?\n');
  const gen = vm(n2, 'mv').generation;
  const destRun = qemuRunPaths(new Workdir(n1.wd), 'mv');
  const child = spawn(process.execPath, [BIN, 'jmigrate', 'jname=mv', 'dst=node1', 'live=1', '--json'], { env: { ...process.env, BERTH_WORKDIR: n2.wd }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  child.stdout.on('data', (d) => { stdout += d; });
  const exited = new Promise<number>((r) => child.once('exit', (c) => r(c ?? 128)));
  let killed = false;
  for (let i = 0; i < 600 && !killed; i++) {
    const pid = qemuPid(destRun);
    // once it runs, give the source time to start sending (the incoming step ends ~0.3 s after,
    // sending 256 MiB under TCG takes over a second): the kill lands mid-transfer
    if (pid) { await sleep(500); process.kill(pid, 'SIGKILL'); killed = true; } else await sleep(20);
  }
  assert.ok(killed, 'the destination qemu appeared and was killed');
  const code = await exited;
  assert.notEqual(code, 0, stdout);
  const err = JSON.parse(stdout).error;
  // mid-transfer (E_MIGRATE_FAILED at send); should the kill land in the incoming step, the refusal
  assert.ok(['E_MIGRATE_FAILED', 'E_MIGRATE_REFUSED'].includes(err.code), JSON.stringify(err));
  assert.match(err.message, /runs on node2 again|stays running on node2/);
  console.log(`# live migration rollback: ${err.code} after steps ${err.details.steps.map((x: any) => `${x.step}@${x.node}:${x.ok ? 'ok' : 'failed'}`).join(', ')}`);
  const here = vm(n2, 'mv');
  assert.equal(here.status, 'On');
  assert.equal(here.generation, gen, 'the lease never moved');
  assert.equal((await lease('mv')).node, 'node2');
  assert.equal(vm(n1, 'mv'), undefined, 'node1 has no row');
  assert.equal(qemuPid(destRun), undefined, 'no qemu at the destination');
  const out = spawnInput(n2, ['bconsole', 'jname=mv', 'log=0', 'until=tick-[0-9]+\r?\n', 'timeout=60'], '');
  assert.equal(out.code, 0, 'the guest goes on counting at the source');
  n2.ok(['bstop', 'jname=mv'], 90_000);
});

test('live by the web console: the migrate form of the running VM has live checked; posted, the guest moves to node1 without a reboot and the outcome shows the live downtime', async () => {
  const { n1, n2 } = fx;
  n2.ok(['bstart', 'jname=mv']);
  assert.equal(n2.run(['bconsole', 'jname=mv', `until=${GUEST_READY_LINE}`, 'timeout=120'], 150_000).code, 0);
  typeOn(n2, 'mv', '(i=0; while :; do echo tock-$i; i=$((i+1)); sleep 0.2; done) &', 'tock-3\r?\n');
  const url = `http://127.0.0.1:${consolePort}`;
  const token = n2.ok(['token', 'add', 'role=admin', '--json']).json.token.token as string;
  const login = await fetch(url + '/login', { method: 'POST', redirect: 'manual', headers: { Origin: url }, body: new URLSearchParams({ token }) });
  assert.equal(login.status, 303, await login.text());
  const cookie = login.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  const form = await (await fetch(url + '/env/mv/confirm/migrate', { headers: { Cookie: cookie } })).text();
  assert.match(form, /<input type="checkbox" name="live" value="1" checked>/, form);
  assert.match(form, /<option value="node1">node1<\/option>/);
  const csrf = /name="_csrf" value="([^"]+)"/.exec(form)![1]!;
  const res = await fetch(url + '/env/mv/migrate', { method: 'POST', headers: { Cookie: cookie, Origin: url }, body: new URLSearchParams({ _csrf: csrf, dst: 'node1', live: '1' }) });
  const out = await res.text();
  assert.match(out, /data-exit="0"/, out);
  assert.match(out, /<pre class="stdout">downtime: \d+ ms as berth measures it \(paused on node2 -&#62; resumed on node1\); \d+ ms as the engine measures it; \d+ bytes of memory sent\nmigrated: mv node2 -&#62; node1 \(generation \d+/, out);
  assert.equal(vm(n2, 'mv'), undefined, 'node2 has no row');
  assert.equal(vm(n1, 'mv').status, 'On');
  // the same guest: its counter goes on at node1 (a guest booted again would not have it)
  const tick = spawnInput(n1, ['bconsole', 'jname=mv', 'log=0', 'until=tock-[0-9]+\r?\n', 'timeout=60'], '');
  assert.equal(tick.code, 0, `the counter goes on on node1: ${tick.stderr}${tick.stdout}`);
  const audit = readFileSync(join(n2.wd, 'var', 'log', 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.ok(audit.some((l) => l.what === 'migrate' && l.result === 'ok' && l.detail?.dst === 'node1' && l.detail?.live === true), 'the audit log has the live migration');
  n1.ok(['bstop', 'jname=mv'], 90_000);
});
