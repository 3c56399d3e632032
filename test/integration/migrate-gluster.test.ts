/**
 * Zero-copy migration between two nodes sharing one GlusterFS volume (two FUSE mounts, real
 * runc, two agents on loopback ports), issue #4 items 4, 5 and 7:
 * - `node add` checks the node's agent with the token before saving; `node list` never shows
 *   tokens; `node remove` of an unknown node is exit 3; API calls without the token get 401;
 * - `jmigrate` of a running env: stop → unregister → register there → start there, each step
 *   timed, downtime reported; the file written inside the env on node1 is read back on node2;
 *   the volume's used bytes do not change (nothing is copied);
 * - node1 refuses to start it afterwards (exit 4: node2 owns it);
 * - `cluster ls` from both nodes shows owner, generation, state and heartbeat;
 * - a failed start at the destination rolls back to the source (registered and running there);
 * - a stopped env migrates without start (no downtime reported).
 * Needs root, runc, busybox-static and a running glusterd (scripts/gluster-up).
 */
import { strict as assert } from 'node:assert';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readLease } from '../../src/ownership/record.js';
import { textDigest } from '../../src/sharedfs.js';
import { berthOk, isRoot, mountTable } from '../helpers/cli.js';
import { brickBytes, sleep, TestNode, twoNodes, type TwoNodes } from './cluster-twonode.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

/** Used bytes may move by the lease records and the descriptor rewritten on the way. */
const TOLERANCE = 64 * 1024;
const BLOB_MIB = 16;
let fx: TwoNodes;

before(async () => {
  fx = await twoNodes(['lease_ttl=5']);
  await fx.n1.startAgent();
  await fx.n2.startAgent();
});
after(async () => {
  await fx?.cleanup();
});

/** A raw HTTP request (no client library), to check what the agent does without a token. */
function raw(opts: { socketPath?: string; port?: number; method: string; path: string; token?: string }): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = opts.token ? { Authorization: `Bearer ${opts.token}` } : {};
    const r = request({ socketPath: opts.socketPath, host: opts.socketPath ? undefined : '127.0.0.1', port: opts.port, method: opts.method, path: opts.path, headers }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    r.on('error', reject);
    r.end();
  });
}

/** The mount points at or below `dir`. */
const mountsUnder = (dir: string) => mountTable(dir).filter((t) => t === dir || t.startsWith(dir + '/'));

/** POST of a JSON body to a node's agent, through its socket and with its token. */
function post(n: TestNode, path: string, body: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const r = request({ socketPath: join(n.wd, 'var', 'run', 'agent.sock'), method: 'POST', path,
      headers: { Authorization: `Bearer ${n.token}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
    });
    r.on('error', reject);
    r.end(data);
  });
}

describe('nodes and the API token', () => {
  test('API calls without the token, or with a wrong one, get 401 and do nothing', async () => {
    const { n1 } = fx;
    n1.ok(['jcreate', 'jname=tok', 'base=bb']);
    const sock = join(n1.wd, 'var', 'run', 'agent.sock');
    for (const where of [{ socketPath: sock }, { port: n1.port }]) {
      for (const token of [undefined, 'wrong', n1.token.slice(0, -1)]) {
        for (const [method, path] of [['GET', '/v1/envs'], ['GET', '/v1/envs/tok'], ['POST', '/v1/envs/tok/start'], ['POST', '/v1/envs/tok/unregister']]) {
          const r = await raw({ ...where, method: method!, path: path!, token });
          assert.equal(r.status, 401, `${method} ${path} via ${JSON.stringify(where)} token ${token}`);
          assert.equal(r.body.error.code, 'E_UNAUTHORIZED');
        }
      }
    }
    assert.equal(n1.envs().tok.status, 'Off', 'the start without a token did nothing');
    const ok = await raw({ socketPath: sock, method: 'GET', path: '/v1/envs/tok', token: n1.token });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.env.jname, 'tok');
    n1.ok(['jremove', 'jname=tok']);
  });

  test('node add checks the agent with the token; nothing is saved on failure', () => {
    const { n1, n2 } = fx;
    const emptyTokenFile = join(fx.base, 'empty.token');
    writeFileSync(emptyTokenFile, '\n');
    const fails: Array<[string[], number, string]> = [
      [['name=node2', `url=${n2.url}`, 'token=wrong'], 1, 'E_UNAUTHORIZED'],
      [['name=node2', 'url=http://127.0.0.1:1', `token=${n2.token}`], 1, 'E_NODE_UNREACHABLE'],
      [['name=node3', `url=${n2.url}`, `token=${n2.token}`], 2, 'E_NODE_MISMATCH'],
      [['name=node2', 'url=ftp://127.0.0.1:1', `token=${n2.token}`], 2, 'E_BAD_URL'],
      [['name=node2', `url=${n2.url}`], 2, 'E_BAD_TOKEN'],
      [['name=bad/name', `url=${n2.url}`, `token=${n2.token}`], 2, 'E_BAD_NODENAME'],
      [['name=node1', `url=${n1.url}`, `token=${n1.token}`], 2, 'E_SELF'],
      [['name=node2', `url=${n2.url}`, `token_file=${n2.wd}/etc/no-such-token`], 2, 'E_BAD_TOKEN_FILE'],
      [['name=node2', `url=${n2.url}`, `token=${n2.token}`, `token_file=${n2.wd}/etc/api.token`], 2, 'E_USAGE'],
      [['name=node2', `url=${n2.url}`, `token_file=${emptyTokenFile}`], 2, 'E_BAD_TOKEN_FILE'],
    ];
    for (const [args, code, err] of fails) {
      const r = n1.run(['node', 'add', ...args, '--json']);
      assert.equal(r.code, code, `node add ${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.json.error.code, err);
      assert.ok(!r.stdout.includes(n2.token) && !r.stderr.includes(n2.token), 'the token is never printed');
    }
    assert.deepEqual(n1.ok(['node', 'list', '--json']).json.nodes, []);
    const add = n1.ok(['node', 'add', 'name=node2', `url=${n2.url}`, `token=${n2.token}`]);
    assert.match(add.stdout, /added: node node2/);
    // the token from a file (not visible in ps): here node1's own etc/api.token
    n2.ok(['node', 'add', 'name=node1', `url=${n1.socketUrl}`, `token_file=${n1.wd}/etc/api.token`]);
    for (const args of [['node', 'list'], ['node', 'list', '--json']]) {
      const l = n1.ok(args);
      assert.ok(!l.stdout.includes(n2.token), 'node list never prints tokens');
      assert.match(l.stdout, /node2/);
    }
    assert.deepEqual(n1.ok(['node', 'list', '--json']).json.nodes.map((n: any) => [n.name, n.url]), [['node2', n2.url]]);
    const rm = n1.run(['node', 'remove', 'name=node9']);
    assert.equal(rm.code, 3);
  });

  test('doctor: the ownership dir is read back by the other node; a node with a lease_dir of its own is named', async () => {
    const { n1, base } = fx;
    const ok = n1.ok(['doctor', '--json']).json.checks.find((c: any) => c.check === 'ownership shared');
    assert.equal(ok.status, 'ok', ok.detail);
    assert.match(ok.detail, /read back by node2/);
    assert.equal(ok.data.fsType, 'fuse.glusterfs');
    // a third node whose ownership dir is local to it
    const n3 = new TestNode('node3', join(base, 'n3', 'wd'));
    berthOk(['initenv', `workdir=${n3.wd}`, 'nodename=node3']);
    await n3.startAgent();
    try {
      n1.ok(['node', 'add', 'name=node3', `url=${n3.url}`, `token=${n3.token}`]);
      const r = n1.run(['doctor', '--json']);
      assert.equal(r.code, 1, 'doctor fails');
      const bad = r.json.checks.find((c: any) => c.check === 'ownership shared');
      assert.equal(bad.status, 'fail');
      assert.match(bad.detail, /read back by node2/);
      assert.match(bad.detail, /NOT seen by node3/);
    } finally {
      n1.run(['node', 'remove', 'name=node3']);
      await n3.stopAgent();
    }
  });
});

describe('jmigrate', () => {
  test('a running env moves to node2 without copying; node1 refuses it afterwards', async () => {
    const { n1, n2, vol } = fx;
    n1.ok(['jcreate', 'jname=web', 'base=bb', 'host_hostname=web.test']);
    n1.ok(['jstart', 'jname=web']);
    n1.ok(['jexec', 'jname=web', 'sh', '-c', `echo hello-from-node1 > /root/note && dd if=/dev/urandom of=/root/blob bs=1048576 count=${BLOB_MIB} 2>/dev/null && sync`]);
    const sum1 = n1.ok(['jexec', 'jname=web', 'md5sum', '/root/blob']).stdout.split(' ')[0];
    const gen1 = n1.envs().web.generation;
    await sleep(1500); // let GlusterFS settle the blob's size on the brick
    const before = brickBytes(vol);

    const r = n1.ok(['jmigrate', 'jname=web', 'dst=node2', '--json'], 120_000);
    const m = r.json.migration;
    assert.deepEqual(m.steps.map((s: any) => [s.step, s.node, s.ok]), [['prepare', 'node2', true], ['stop', 'node1', true], ['handover', 'node1', true], ['adopt', 'node2', true], ['unmount', 'node1', true]]);
    for (const s of m.steps) assert.ok(Number.isInteger(s.ms) && s.ms >= 0);
    assert.equal(m.wasRunning, true);
    assert.ok(m.downtimeMs > 0);
    assert.equal(m.generation, gen1 + 1, 'the handover raises the generation once');
    console.log(`# jmigrate (running env, ${BLOB_MIB} MiB of data): downtime ${m.downtimeMs} ms, total ${m.totalMs} ms; steps ${m.steps.map((s: any) => `${s.step}@${s.node} ${s.ms} ms`).join(', ')}`);

    // the text form prints each step with its time and the downtime
    assert.equal(n2.envs().web.status, 'On');
    assert.equal(n2.ok(['jexec', 'jname=web', 'cat', '/root/note']).stdout, 'hello-from-node1\n');
    assert.equal(n2.ok(['jexec', 'jname=web', 'md5sum', '/root/blob']).stdout.split(' ')[0], sum1);
    assert.equal(n2.ok(['jexec', 'jname=web', 'hostname']).stdout.trim(), 'web.test');
    await sleep(1500);
    const afterBytes = brickBytes(vol);
    console.log(`# brick bytes before ${before}, after ${afterBytes} (difference ${afterBytes - before}; a copy would add ${BLOB_MIB} MiB)`);
    assert.ok(Math.abs(afterBytes - before) < TOLERANCE, `no data copied: ${before} -> ${afterBytes}`);
    assert.equal((await readLease(join(n1.wd, 'jails-lease', 'envs', 'web')))!.node, 'node2');
    assert.equal(n1.envs().web, undefined, 'node1 has no row any more');
    const again = n1.run(['jregister', 'jname=web', '--json']);
    assert.notEqual(again.code, 0, 'node1 cannot adopt it while node2 owns it');
    assert.equal(n2.envs().web.status, 'On');
  });

  test('jstart on node1 after the move is refused with exit 4 (node2 owns it)', () => {
    const r = fx.n1.run(['jstart', 'jname=web', '--json']);
    assert.equal(r.code, 4, `exit 4 expected: ${r.stderr}`);
    assert.match(r.stderr, /node2/);
    assert.equal(fx.n2.envs().web.status, 'On');
  });

  test('cluster ls from both nodes: owner node2, state On, heartbeat', async () => {
    const { n1, n2 } = fx;
    await sleep(2500); // both agents observe at least one heartbeat change
    for (const n of [n1, n2]) {
      const envs = n.ok(['cluster', 'ls', '--json']).json.envs;
      const web = envs.find((e: any) => e.jname === 'web');
      assert.ok(web, `cluster ls on ${n.name} lists web`);
      assert.equal(web.owner, 'node2');
      assert.equal(web.registered, true);
      assert.equal(web.state, 'On', `${n.name}: ${JSON.stringify(web)}`);
      assert.equal(web.stateFrom, n === n2 ? 'local' : 'agent');
      assert.equal(web.running, n === n2 ? true : null);
      assert.ok(web.heartbeat.counter > 1);
      assert.ok(web.heartbeat.ageSec < 5 * 2, `${n.name}: heartbeat age ${web.heartbeat.ageSec}`);
      const text = n.ok(['cluster', 'ls']).stdout;
      assert.match(text, /^JNAME\s+EMULATOR\s+REGISTERED\s+OWNER\s+GEN\s+STATE\s+HEARTBEAT$/m);
      assert.match(text, /^web\s+runc\s+yes\s+node2\s+\d+\s+On\s+\S+/m);
    }
  });

  test('a start that fails at the destination rolls back: the env runs on the source again', () => {
    const { n1, n2 } = fx;
    // web is on node2 now; a prestart hook that vetoes on node1 only (hooks live in the shared sysdir)
    const dir = join(n2.wd, 'jails-system', 'web', 'master_prestart.d');
    mkdirSync(dir, { recursive: true });
    const hook = join(dir, '10-not-on-node1');
    writeFileSync(hook, '#!/bin/sh\n[ "$BERTH_NODE" = node1 ] && { echo "web may not run on node1" >&2; exit 3; }\nexit 0\n');
    chmodSync(hook, 0o755);
    try {
      const r = n2.run(['jmigrate', 'jname=web', 'dst=node1', '--json'], 120_000);
      assert.notEqual(r.code, 0);
      assert.equal(r.json.error.code, 'E_MIGRATE_FAILED');
      assert.deepEqual(r.json.error.details.steps.map((s: any) => [s.step, s.node, s.ok]), [
        ['prepare', 'node1', true], ['stop', 'node2', true], ['handover', 'node2', true], ['adopt', 'node1', false], ['rollback-adopt', 'node2', true]]);
      assert.match(r.json.error.message, /back on node2 and running/);
      assert.equal(n2.envs().web.status, 'On');
      assert.equal(n1.envs().web, undefined);
      assert.deepEqual(mountsUnder(join(n1.wd, 'jails', 'web')), [], 'the root prepared on node1 is unmounted again');
      // the lease went there and back: handover (+1), handed back (+1)
      assert.equal(n2.envs().web.generation, (r.json.error.details.cause.details.handedBack.generation));
    } finally {
      rmSync(hook, { force: true });
    }
  });

  test('a destination that cannot mount the storage refuses before anything stops: nothing changes', () => {
    const { n1, n2, base } = fx;
    // web runs on node2; its mnt_start hook refuses node1 (one path on this host, so both nodes have it)
    const hook = join(base, 'mnt-start-not-node1.sh');
    writeFileSync(hook, '#!/bin/sh\n[ "$BERTH_NODE" = node1 ] && { echo "storage not reachable from node1" >&2; exit 7; }\nexit 0\n');
    chmodSync(hook, 0o755);
    n2.ok(['jstop', 'jname=web']);
    n2.ok(['jset', 'jname=web', `mnt_start=${hook}`]);
    n2.ok(['jstart', 'jname=web']);
    const before = n2.envs().web;
    const r = n2.run(['jmigrate', 'jname=web', 'dst=node1', '--json'], 120_000);
    assert.equal(r.code, 1, `the hook's exit 7 is not berth's exit code: ${r.stderr}`);
    assert.equal(r.json.error.code, 'E_MIGRATE_REFUSED');
    assert.match(r.json.error.message, /storage not reachable from node1/);
    assert.match(r.json.error.message, /nothing was changed/);
    assert.deepEqual(r.json.error.details.steps.map((s: any) => [s.step, s.node, s.ok]), [['prepare', 'node1', false]]);
    const after = n2.envs().web;
    assert.equal(after.status, 'On');
    assert.equal(after.jid, before.jid, 'the env never stopped');
    assert.equal(after.generation, before.generation, 'the lease never moved');
    assert.equal(n1.envs().web, undefined);
    n2.ok(['jstop', 'jname=web']);
    n2.ok(['jset', 'jname=web', 'mnt_start=0']);
    n2.ok(['jstart', 'jname=web']);
  });

  test("a running env's prepare assembles its root on the destination ahead; a cancel unmounts it", async () => {
    const { n1, n2 } = fx;
    const before = n2.envs().web;
    assert.equal(before.status, 'On');
    const root = join(n1.wd, 'jails', 'web');
    let c: { status: number; body: any } | undefined;
    try {
      // the digest of the record's descriptor as the source holds it, as jmigrate sends it (the
      // test before changed mnt_start; node1's FUSE mount may still serve the old copy)
      const digest = textDigest(readFileSync(join(n2.wd, 'jails-lease', 'envs', 'web', 'rc.conf_web'), 'utf8'));
      const prep = await post(n1, '/v1/envs/web/prepare', { uuid: before.uuid, mount: true, digest });
      assert.equal(prep.status, 200, JSON.stringify(prep.body));
      assert.equal(prep.body.plan.rootReady, true, JSON.stringify(prep.body));
      assert.ok(mountsUnder(root).includes(root), `node1 bound the base at ${root}: ${mountsUnder(root).join(' ')}`);
      assert.ok(mountsUnder(root).includes(join(root, 'etc')), "and the env's data dirs into it");
    } finally {
      c = await post(n1, '/v1/envs/web/cancel', {});
    }
    assert.equal(c.status, 200, JSON.stringify(c.body));
    assert.deepEqual(mountsUnder(root), [], 'nothing stays mounted on node1');
    assert.equal(n1.envs().web, undefined);
    const after = n2.envs().web;
    assert.equal(after.jid, before.jid, 'the env never stopped on node2');
  });

  test('a destination without the base, or with an unsafe hook, refuses before anything stops', () => {
    const { n1, n2, base } = fx;
    const before = n2.envs().web;
    n1.ok(['base', 'remove', 'name=bb']);
    try {
      const r = n2.run(['jmigrate', 'jname=web', 'dst=node1', '--json'], 60_000);
      assert.equal(r.code, 3, r.stderr);
      assert.equal(r.json.error.code, 'E_MIGRATE_REFUSED');
      assert.equal(r.json.error.details.cause.code, 'E_NO_SUCH_BASE');
      assert.match(r.json.error.message, /base "bb" of web is not on node node1/);
    } finally {
      n1.ok(['base', 'busybox', 'name=bb']);
    }
    // a node default hook there that is group-writable is refused by the destination too
    const hook = join(base, 'mnt-start-unsafe.sh');
    writeFileSync(hook, '#!/bin/sh\nexit 0\n');
    chmodSync(hook, 0o775);
    n1.ok(['initenv', `default_mnt_stop=${hook}`]); // (web's own mnt_start is 0: its mnt_stop is the node default)
    try {
      const r = n2.run(['jmigrate', 'jname=web', 'dst=node1', '--json'], 60_000);
      assert.equal(r.json.error.code, 'E_MIGRATE_REFUSED', r.stderr);
      assert.equal(r.json.error.details.cause.code, 'E_HOOK_UNSAFE');
      assert.equal(n2.envs().web.status, 'On');
    } finally {
      n1.ok(['initenv', 'default_mnt_stop=0']);
    }
    assert.equal(n2.envs().web.generation, before.generation);
  });

  test('a stopped env migrates without a start; text output lists the steps', () => {
    const { n1, n2 } = fx;
    n2.ok(['jstop', 'jname=web']);
    const r = n2.ok(['jmigrate', 'jname=web', 'dst=node1']);
    assert.match(r.stdout, /^STEP\s+NODE\s+MS$/m);
    assert.match(r.stdout, /^prepare\s+node1\s+\d+$/m);
    assert.match(r.stdout, /^handover\s+node2\s+\d+$/m);
    assert.match(r.stdout, /^adopt\s+node1\s+\d+$/m);
    assert.doesNotMatch(r.stdout, /^start/m);
    assert.match(r.stdout, /downtime: none/);
    assert.equal(n1.envs().web.status, 'Off');
    assert.equal(n2.envs().web, undefined);
    // refusals that change nothing
    assert.equal(n2.run(['jmigrate', 'jname=nosuch', 'dst=node1']).code, 3, 'no such env');
    assert.equal(n1.run(['jmigrate', 'jname=web', 'dst=node7']).code, 3, 'unknown node');
    assert.equal(n1.run(['jmigrate', 'jname=web', 'dst=node1']).code, 2, 'to itself');
    assert.equal(n1.envs().web.status, 'Off');
    n1.ok(['jremove', 'jname=web']);
  });
});
