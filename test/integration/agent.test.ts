/**
 * `berth agent` on one node (local disk, real runc): heartbeats, one agent per workdir, SIGTERM
 * leaves envs running, the API (start/stop/register/unregister/status/storage with the token),
 * reconcile of an env whose process and monitor both died, autostart only with the lease, and
 * fencing when another node takes the lease over (simulated with the lease library, as another
 * node would write it). The two-node versions on GlusterFS are in cluster-fencing.test.ts and
 * migrate-gluster.test.ts. Needs root, runc and busybox-static.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { STATUS } from '../../src/inventory.js';
import { readLease, takeoverLease } from '../../src/ownership/record.js';
import { BIN, isRoot, mountTable } from '../helpers/cli.js';
import { sleep, TestNode } from './cluster-twonode.js';
import { tempDir, berthOk } from '../helpers/cli.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

const LEASE_TTL = 3;
let n: TestNode;

before(async () => {
  const wd = join(tempDir('berth-agent-'), 'wd');
  berthOk(['initenv', `workdir=${wd}`, 'nodename=solo', `lease_ttl=${LEASE_TTL}`]);
  n = new TestNode('solo', wd);
  n.ok(['base', 'busybox', 'name=bb']);
});
after(async () => {
  await n.stopAgent('SIGKILL').catch(() => undefined);
  for (const e of Object.values(n.envs())) if (e.status !== 'Off') n.run(['jstop', `jname=${e.jname}`]);
  const runcRoot = join(n.wd, 'var', 'run', 'runc');
  for (const id of existsSync(runcRoot) ? readdirSync(runcRoot) : []) {
    spawnSync('runc', ['--root', runcRoot, 'kill', '--all', id, 'KILL']);
    spawnSync('runc', ['--root', runcRoot, 'delete', '--force', id]);
  }
  if (mountTable(n.wd).every((m) => !m.startsWith(n.wd + '/'))) rmSync(dirname(n.wd), { recursive: true, force: true });
});

async function waitFor(what: string, f: () => boolean | Promise<boolean>, ms = 30_000): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (await f()) return performance.now() - t0;
    if (performance.now() - t0 > ms) assert.fail(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const lease = (jname: string) => join(n.wd, 'jails-lease', 'envs', jname);
/** this node's heartbeat in the ownership dir */
const nodeBeat = () => { try { return readFileSync(join(n.wd, 'jails-lease', 'nodes', 'solo', 'hb'), 'utf8'); } catch { return ''; } };
/** a takeover by another node that watches nobody (the test plays a node that proved silence) */
const NOW = { force: true, beat: async () => '', watchSec: async () => 0 };

/** pids of processes whose command line contains every one of `parts` */
function pidsWith(...parts: string[]): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    let cmd = '';
    try { cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' '); } catch { continue; }
    if (parts.every((x) => cmd.includes(x))) out.push(Number(p));
  }
  return out;
}

describe('agent basics', () => {
  test('bad --api_port is a usage error', () => {
    const r = n.run(['agent', '--api_port=70000']);
    assert.equal(r.code, 2);
  });

  test('API: start, status, stop, unregister, register, storage (with the token)', async () => {
    n.ok(['jcreate', 'jname=api1', 'base=bb']);
    await n.startAgent();
    const c = n.client();
    const started = await c.start('api1');
    assert.equal((started.env as any).status, 'On');
    assert.equal((started.env as any).running, true);
    assert.equal(n.envs().api1.status, 'On');
    assert.equal(((await c.status('api1')).env as any).running, true);
    assert.equal(((await c.list()).envs as any[]).find((e) => e.jname === 'api1').status, 'On');
    await assert.rejects(c.start('api1'), (e: any) => e.exitCode === 1 && e.code === 'E_RUNNING');
    await assert.rejects(c.unregister('api1'), (e: any) => e.code === 'E_RUNNING', 'a running env cannot be unregistered');
    assert.equal(((await c.stop('api1')).env as any).status, 'Off');
    const gen = n.envs().api1.generation;
    await c.unregister('api1');
    assert.ok(existsSync(join(n.wd, 'jails-rcconf', 'rc.conf_api1')));
    assert.equal(n.envs().api1.status, 'Unregister', 'jls lists it as unregistered');
    const st = (await c.storage('api1')).storage as any;
    assert.equal(st.registered, false);
    assert.equal(st.rcconf, true);
    assert.equal(st.lease.node, null, 'released');
    const reg = (await c.register('api1')).result as any;
    assert.ok(reg.generation > gen);
    assert.equal(n.envs().api1.generation, reg.generation);
    await assert.rejects(c.status('nope'), (e: any) => e.exitCode === 3);
    n.ok(['jremove', 'jname=api1']);
  });

  test('heartbeats move; a second agent on the workdir is refused; SIGTERM exits 0 and envs keep running', async () => {
    n.ok(['jcreate', 'jname=keep', 'base=bb']);
    n.ok(['jstart', 'jname=keep']);
    if (!n.agent) await n.startAgent();
    const hb0 = nodeBeat();
    await waitFor('the node heartbeat to move', () => nodeBeat() !== hb0 && nodeBeat() !== '');
    const second = spawnSync(process.execPath, [BIN, 'agent', '--json'], { env: { ...process.env, BERTH_WORKDIR: n.wd }, encoding: 'utf8', timeout: 30_000 });
    assert.equal(second.status, 4, second.stderr);
    assert.equal(JSON.parse(second.stdout).error.code, 'E_AGENT_RUNNING');
    assert.equal(await n.stopAgent('SIGTERM'), 0);
    assert.ok(!existsSync(join(n.wd, 'var', 'run', 'agent.sock')), 'the socket is removed');
    assert.equal(n.envs().keep.status, 'On');
    n.ok(['jexec', 'jname=keep', 'true']);
    // without an agent nobody renews: the heartbeat stays
    const hb1 = nodeBeat();
    await sleep(LEASE_TTL * 1000);
    assert.equal(nodeBeat(), hb1);
    n.ok(['jstop', 'jname=keep']);
    n.ok(['jremove', 'jname=keep']);
  });
});

/** An env's status in the node's inventory, read without berth (0 Off, 1 On, 3 Maintenance). */
function inventoryStatus(jname: string): number {
  const db = new Database(join(n.wd, 'var/db/local.sqlite'), { readonly: true });
  try {
    return db.prepare('SELECT status FROM jails WHERE jname = ?').pluck().get(jname) as number;
  } finally {
    db.close();
  }
}

describe('reconcile, autostart, fencing', () => {
  test('an env whose process and monitor died is torn down by the agent', async () => {
    const mounts0 = mountTable(n.wd);
    n.ok(['jcreate', 'jname=orphan', 'base=bb']);
    const jid = n.ok(['jstart', 'jname=orphan', '--json']).json.results[0].jid;
    const monitors = pidsWith('monitor.', n.wd);
    assert.equal(monitors.length, 1, 'one run monitor per node');
    process.kill(monitors[0]!, 'SIGKILL');
    process.kill(jid, 'SIGKILL');
    await sleep(500);
    // the status is read from the inventory itself: `jls` would start a new run monitor, which
    // would tear the env down before the agent does
    assert.notEqual(inventoryStatus('orphan'), STATUS.OFF, 'nobody tore it down yet');
    await n.startAgent();
    await waitFor('the agent to reconcile', () => inventoryStatus('orphan') === STATUS.OFF);
    await waitFor('mounts to be gone', () => JSON.stringify(mountTable(n.wd)) === JSON.stringify(mounts0));
    assert.match(n.logTail(50), /reconciled/);
    n.ok(['jremove', 'jname=orphan']);
    await n.stopAgent();
  });

  test('autostart: astart=1 envs start with the agent only when this node holds their lease', async () => {
    n.ok(['jcreate', 'jname=auto1', 'base=bb', 'astart=1']);
    n.ok(['jcreate', 'jname=auto2', 'base=bb', 'astart=1']);
    n.ok(['jcreate', 'jname=manual', 'base=bb']);
    // another node took auto2 over while this one was down
    const gen2 = n.envs().auto2.generation;
    await takeoverLease(lease('auto2'), { node: 'other', uuid: n.envs().auto2.uuid }, NOW);
    await n.startAgent();
    await waitFor('auto1 to be autostarted', () => n.envs().auto1.status === 'On');
    await waitFor('auto2 to be fenced', () => existsSync(join(n.wd, 'var', 'run', 'fenced', 'auto2.json')));
    await sleep(1000);
    assert.equal(n.envs().auto2.status, 'Off', 'not started: another node holds its lease');
    assert.equal(n.envs().auto2.generation, gen2);
    assert.equal(n.envs().manual.status, 'Off');
    assert.equal(n.run(['jstart', 'jname=auto2']).code, 4);
    n.ok(['jstop', 'jname=auto1']);
    await n.stopAgent();
    for (const j of ['auto1', 'manual']) n.ok(['jremove', `jname=${j}`]);
  });

  test('fencing: when another node takes the lease of a running env, the agent kills it at once', async () => {
    const mounts0 = mountTable(n.wd);
    n.ok(['jcreate', 'jname=victim', 'base=bb', 'stop_timeout=30', 'exec_start=while :; do echo x >> /root/beat; sleep 0.2; done']);
    await n.startAgent();
    n.ok(['jstart', 'jname=victim']);
    const beat = join(n.wd, 'jails-data', 'victim-data', 'root', 'beat');
    await waitFor('beat', () => existsSync(beat));
    const gen = n.envs().victim.generation;
    const t0 = performance.now();
    await takeoverLease(lease('victim'), { node: 'other', uuid: n.envs().victim.uuid }, NOW);
    // (a polite stop would wait stop_timeout=30 s: the 20 s limit of this wait fails it)
    await waitFor('the env to be fenced', () => n.envs().victim.status === 'Off', 20_000);
    const ms = performance.now() - t0;
    console.log(`# fencing (local disk): the agent stopped the env ${Math.round(ms)} ms after the takeover (lease_ttl ${LEASE_TTL} s, checks every ${LEASE_TTL * 1000 / 3} ms; stop_timeout=30 not waited for)`);
    await waitFor('mounts to be gone', () => JSON.stringify(mountTable(n.wd)) === JSON.stringify(mounts0));
    const size = readFileSync(beat).length;
    await sleep(1000);
    assert.equal(readFileSync(beat).length, size, 'nothing writes after fencing');
    const marker = JSON.parse(readFileSync(join(n.wd, 'var', 'run', 'fenced', 'victim.json'), 'utf8'));
    assert.equal(marker.generation, gen);
    assert.equal(marker.owner, 'other');
    assert.equal(marker.stopped, true);
    const st = ((await n.client().status('victim')).env as any);
    assert.equal(st.fenced.generation, gen);
    for (const args of [['jstart', 'jname=victim'], ['junregister', 'jname=victim'], ['jremove', 'jname=victim']]) {
      assert.equal(n.run(args).code, 4, args.join(' '));
    }
    assert.equal((await readLease(lease('victim')))!.node, 'other');
    assert.match(n.logTail(50), /fenced/);
    await n.stopAgent();
  });
});

describe('the CLI hands jstart/jstop to a running agent (src/cli/fast.ts)', () => {
  const local = { BERTH_AGENT: '0' };
  const apiLines = (jname: string) => readFileSync(n.agentLog, 'utf8').split('\n').filter((l) => l.includes(`"path":"/v1/envs/${jname}/`)).length;
  const same = (a: ReturnType<TestNode['run']>, b: ReturnType<TestNode['run']>, what: string) =>
    assert.deepEqual({ code: a.code, stdout: a.stdout, stderr: a.stderr }, { code: b.code, stdout: b.stdout, stderr: b.stderr }, what);

  test('through the agent and in-process, the same outcome prints the same lines and exit code', async () => {
    n.ok(['jcreate', 'jname=fast1', 'base=bb']);
    if (!n.agent) await n.startAgent();
    const before = apiLines('fast1');
    const start = n.run(['jstart', 'fast1']);
    assert.equal(start.code, 0, start.stderr);
    assert.equal(start.stdout, 'started: fast1\n');
    assert.equal(apiLines('fast1'), before + 1, 'the agent ran the start');
    assert.equal(n.envs().fast1.status, 'On');
    n.ok(['jexec', 'jname=fast1', 'true']);
    // already running (exit 1), both ways
    same(n.run(['jstart', 'jname=fast1']), n.run(['jstart', 'jname=fast1'], undefined, local), 'jstart of a running env');
    assert.equal(apiLines('fast1'), before + 2);
    const stop = n.run(['jstop', 'jname=fast1']);
    assert.deepEqual([stop.code, stop.stdout, stop.stderr], [0, 'stopped: fast1\n', '']);
    assert.equal(n.envs().fast1.status, 'Off');
    same(n.run(['jstop', 'fast1']), n.run(['jstop', 'fast1'], undefined, local), 'jstop of a stopped env');
    const missing = n.run(['jstart', 'nosuch']);
    assert.equal(missing.code, 3);
    same(missing, n.run(['jstart', 'nosuch'], undefined, local), 'jstart of an unknown env');
    // forms the fast path leaves to the CLI: a glob, a bad name, more arguments
    const n0 = apiLines('fast1');
    n.ok(['jstart', 'jname=fast*']);
    n.ok(['jstop', 'fast1', '--json']);
    assert.equal(n.run(['jstart', 'jname=fast1.x']).code, 2);
    assert.equal(apiLines('fast1'), n0, 'globs, --json and bad names run in the CLI');
  });

  test('warnings of the operation reach the terminal as the CLI prints its own', async () => {
    const d = join(n.wd, 'jails-system', 'fast1', 'master_poststart.d');
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, '10-fails'), '#!/bin/sh\necho poststart says no >&2\nexit 3\n', { mode: 0o755 });
    if (!n.agent) await n.startAgent();
    const viaAgent = n.run(['jstart', 'fast1']);
    assert.equal(viaAgent.code, 0, viaAgent.stderr);
    assert.match(viaAgent.stderr, /^berth jstart: warning: .*10-fails/m);
    n.ok(['jstop', 'fast1']);
    same(viaAgent, n.run(['jstart', 'fast1'], undefined, local), 'a warning from master_poststart.d');
    n.ok(['jstop', 'fast1']);
    rmSync(d, { recursive: true });
  });

  test('node settings changed while the agent runs apply to the next handed-over command (etc/berth.conf is read per operation)', async () => {
    const hooks = join(dirname(n.wd), 'fast-hooks');
    mkdirSync(hooks, { recursive: true, mode: 0o755 });
    const slow = join(hooks, 'slow-start');
    writeFileSync(slow, `#!/bin/sh\n[ -e ${hooks}/slow ] && exec sleep 30\nexit 0\n`, { mode: 0o755 });
    n.ok(['jcreate', 'jname=fast2', 'base=bb', `mnt_start=${slow}`]);
    if (!n.agent) await n.startAgent();
    writeFileSync(join(hooks, 'slow'), '');
    n.ok(['initenv', `workdir=${n.wd}`, 'nodename=solo', 'mnt_timeout=1']);
    try {
      const before = apiLines('fast2');
      const r = n.run(['jstart', 'fast2']);
      assert.equal(r.code, 124, `the agent used mnt_timeout=1, read after it started: ${r.stderr}`);
      assert.equal(apiLines('fast2'), before + 1);
    } finally {
      n.ok(['initenv', `workdir=${n.wd}`, 'nodename=solo', 'mnt_timeout=300']);
      rmSync(join(hooks, 'slow'));
    }
    n.ok(['jremove', 'fast2']);
  });

  test('a closed stdout ends a handed-over command quietly, with its exit code (`berth jstart x | true`)', async () => {
    if (!n.agent) await n.startAgent();
    const child = spawn(process.execPath, [BIN, 'jstart', 'fast1'], { env: { ...process.env, BERTH_WORKDIR: n.wd }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.destroy();
    let err = '';
    child.stderr!.on('data', (d) => { err += d; });
    const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
    assert.equal(err, '');
    assert.equal(code, 0);
    assert.equal(n.envs().fast1.status, 'On');
    n.ok(['jstop', 'fast1']);
  });

  test('an agent that died (its socket left behind) does not stop the CLI: the command runs in-process', async () => {
    if (!n.agent) await n.startAgent();
    await n.stopAgent('SIGKILL');
    assert.ok(existsSync(join(n.wd, 'var', 'run', 'agent.sock')), 'a killed agent leaves its socket');
    const before = apiLines('fast1');
    assert.equal(n.ok(['jstart', 'fast1']).stdout, 'started: fast1\n');
    assert.equal(n.ok(['jstop', 'fast1']).stdout, 'stopped: fast1\n');
    assert.equal(apiLines('fast1'), before);
    n.ok(['jremove', 'fast1']);
  });
});
