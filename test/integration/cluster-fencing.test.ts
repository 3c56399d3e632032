/**
 * Ownership between two nodes on one GlusterFS volume (two FUSE mounts, real runc, real
 * agents), issue #4 item 7:
 * - two nodes run `jregister` of one env at the same moment, 50 times: exactly one wins;
 * - node1's agent is killed (-9) while its env runs; `jregister --force` on node2 waits
 *   lease_ttl and takes over; node1's agent, restarted, kills its stale copy (fencing) and the
 *   env's data is no longer written by node1; node1 refuses jstart/junregister/jremove of it
 *   (exit 4) and they change nothing; node2 runs it; jmigrate brings it back to node1 (whose
 *   stale row is replaced).
 * Needs root, runc, busybox-static and a running glusterd (scripts/gluster-up).
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Inventory, type EnvRow } from '../../src/inventory.js';
import { readLease, readLeaseState } from '../../src/ownership/record.js';
import { BIN, isRoot } from '../helpers/cli.js';
import { brickSnapshot, fencedAndStopped, sleep, twoNodes, type TestNode, type TwoNodes } from './cluster-twonode.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

const LEASE_TTL = 3;
const ROUNDS = 50;
let fx: TwoNodes;

before(async () => {
  fx = await twoNodes([`lease_ttl=${LEASE_TTL}`]);
});
after(async () => {
  await fx?.cleanup();
});

/** Runs `berth ...` on a node as a child process, without waiting. */
function spawnBerth(node: TestNode, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, BERTH_WORKDIR: node.wd }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => { stdout += d; });
    p.stderr.on('data', (d: Buffer) => { stderr += d; });
    p.on('exit', (code, signal) => resolve({ code: code ?? 128, stdout, stderr: signal ? `killed by ${signal}: ${stderr}` : stderr }));
  });
}

/** The node's inventory row of `jname`, read directly (cheaper than a jls process per round). */
function row(node: TestNode, jname: string): EnvRow | undefined {
  const inv = Inventory.open(join(node.wd, 'var', 'db', 'local.sqlite'), { readonly: true });
  try { return inv.get(jname); } finally { inv.close(); }
}

async function waitFor(what: string, f: () => boolean | Promise<boolean>, ms = 30_000): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (await f()) return performance.now() - t0;
    if (performance.now() - t0 > ms) assert.fail(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe('jregister race: two nodes, one env, same moment', () => {
  test(`${ROUNDS} rounds: exactly one node wins each time, the other is refused and keeps nothing`, async () => {
    const { n1, n2 } = fx;
    n1.ok(['jcreate', 'jname=race', 'base=bb']);
    n1.ok(['junregister', 'jname=race']);
    const lease = join(n1.wd, 'jails-lease', 'envs', 'race');
    const wins = { node1: 0, node2: 0 };
    const loserCodes: Record<string, number> = {};
    const t0 = performance.now();
    for (let i = 0; i < ROUNDS; i++) {
      const [r1, r2] = await Promise.all([spawnBerth(n1, ['jregister', 'jname=race', '--json']), spawnBerth(n2, ['jregister', 'jname=race', '--json'])]);
      const winners = [r1, r2].filter((r) => r.code === 0);
      assert.equal(winners.length, 1, `round ${i}: exactly one winner (codes ${r1.code}, ${r2.code}; ${r1.stderr} ${r2.stderr})`);
      const [winner, wr, loser, lr] = r1.code === 0 ? [n1, r1, n2, r2] : [n2, r2, n1, r1];
      wins[winner.name as 'node1' | 'node2']++;
      // the loser lost the lease (4: held by the winner), or came after the winner had consumed
      // the descriptor in jails-rcconf/ (3): either way it registered nothing
      assert.ok(lr.code === 4 || lr.code === 3, `round ${i}: loser exit ${lr.code}: ${lr.stderr}`);
      loserCodes[JSON.parse(lr.stdout).error.code] = (loserCodes[JSON.parse(lr.stdout).error.code] ?? 0) + 1;
      assert.equal(JSON.parse(wr.stdout).results[0].generation, (await readLeaseState(lease)).generation);
      assert.equal((await readLease(lease))?.node, winner.name, `round ${i}: the lease names the winner`);
      assert.ok(row(winner, 'race'), `round ${i}: the winner has the row`);
      assert.equal(row(loser, 'race'), undefined, `round ${i}: the loser has no row`);
      winner.ok(['junregister', 'jname=race']);
    }
    const sec = (performance.now() - t0) / 1000;
    console.log(`# jregister race: ${ROUNDS} rounds in ${sec.toFixed(1)} s; wins node1=${wins.node1} node2=${wins.node2}; loser errors ${JSON.stringify(loserCodes)}`);
    assert.equal(wins.node1 + wins.node2, ROUNDS);
    n1.ok(['jregister', 'jname=race']);
    n1.ok(['jremove', 'jname=race']);
  });
});

describe('owner killed: forced takeover, then fencing of the stale copy', () => {
  test('kill -9 of node1\'s agent, jregister --force on node2, node1\'s agent restarted fences', async () => {
    const { n1, n2, base } = fx;
    // the env appends to /root/beat every 0.2 s (its data dir is on the volume)
    n1.ok(['jcreate', 'jname=fx', 'base=bb', 'exec_start=while :; do echo x >> /root/beat; sleep 0.2; done']);
    const beat1 = join(n1.wd, 'jails-data', 'fx-data', 'root', 'beat');
    const beat2 = join(n2.wd, 'jails-data', 'fx-data', 'root', 'beat');
    const lease = join(n1.wd, 'jails-lease', 'envs', 'fx');
    const nodeBeat = () => { try { return readFileSync(join(n1.wd, 'jails-lease', 'nodes', 'node1', 'hb'), 'utf8'); } catch { return ''; } };
    await n1.startAgent();
    n1.ok(['jstart', 'jname=fx']);
    const gen1 = n1.envs().fx.generation;
    await waitFor('beat to grow', () => existsSync(beat1) && statSync(beat1).size > 20);
    const hb0 = nodeBeat();
    await waitFor('node1\'s agent to heartbeat', () => nodeBeat() !== hb0 && nodeBeat() !== '');

    // node2 takes over with the descriptor copy in the sysdir (the owner never unregistered;
    // a copy elsewhere, since jregister deletes an rcfile named rc.conf_<jname> once adopted)
    const rc = join(base, 'fx.rcconf');
    copyFileSync(join(n2.wd, 'jails-system', 'fx', 'rc.conf_fx'), rc);
    // while node1's agent heartbeats, even --force is refused: the owner is alive
    const alive = n2.run(['jregister', 'jname=fx', `rcfile=${rc}`, '--force', '--json']);
    assert.equal(alive.code, 4, `the owner renewed while node2 watched: ${alive.stderr}`);
    assert.equal(alive.json.error.code, 'E_LEASE_HELD');
    assert.equal((await readLease(lease))!.node, 'node1');
    assert.equal(n2.run(['jls', '--json']).json.envs.find((e: any) => e.jname === 'fx'), undefined);

    // node1's agent dies; its container goes on running
    assert.equal(await n1.stopAgent('SIGKILL'), 128);
    const plain = n2.run(['jregister', 'jname=fx', `rcfile=${rc}`]);
    assert.equal(plain.code, 4, `without --force the held lease is refused: ${plain.stderr}`);
    assert.match(plain.stderr, /--force/);
    const t0 = performance.now();
    const take = n2.ok(['jregister', 'jname=fx', `rcfile=${rc}`, '--force', '--json']);
    const takeoverMs = performance.now() - t0;
    const res = take.json.results[0];
    assert.equal(res.tookOver, true);
    assert.equal(res.previousOwner, 'node1');
    assert.equal(res.generation, gen1 + 1);
    assert.equal((await readLease(lease))!.node, 'node2');
    console.log(`# takeover: jregister --force took ${Math.round(takeoverMs)} ms (lease_ttl ${LEASE_TTL} s)`);
    // the stale copy on node1 still writes (its agent is down): that is what fencing ends
    const s0 = statSync(beat2).size;
    await waitFor('the stale copy to keep writing', () => statSync(beat2).size > s0);
    assert.equal(n1.envs().fx.status, 'On');

    // node1's agent comes back and fences
    const tAgent = performance.now();
    await n1.startAgent();
    await waitFor('node1 to stop its stale copy', () => row(n1, 'fx')?.status === 0 && fencedAndStopped(n1, 'fx'));
    const fenceMs = performance.now() - tAgent;
    console.log(`# fencing: node1's restarted agent stopped the stale copy ${Math.round(fenceMs)} ms after it was spawned (lease_ttl ${LEASE_TTL} s)`);
    const r = n1.run(['jls', '--json']);
    assert.equal(r.json.envs.find((e: any) => e.jname === 'fx').generation, gen1, 'the row is kept with its stale generation');
    const marker = JSON.parse(readFileSync(join(n1.wd, 'var', 'run', 'fenced', 'fx.json'), 'utf8'));
    assert.equal(marker.generation, gen1);
    assert.equal(marker.owner, 'node2');
    assert.equal(marker.stopped, true);
    assert.match(n1.logTail(50), /fenced/);
    assert.equal(n1.run(['jexec', 'jname=fx', 'true']).code, 1, 'no process left on node1');

    // node1 no longer writes the data: the file stops growing (read through node2's mount after
    // its attribute cache, ~1 s, has expired), and node1 writes nothing into the env's record
    await sleep(1500);
    const size = statSync(beat2).size;
    const record0 = readdirSync(lease).sort().map((f) => `${f}:${readFileSync(join(lease, f), 'utf8')}`);
    await sleep(Math.max(2000, LEASE_TTL * 1000));
    assert.equal(statSync(beat2).size, size, 'nothing writes /root/beat after fencing');
    assert.deepEqual(readdirSync(lease).sort().map((f) => `${f}:${readFileSync(join(lease, f), 'utf8')}`), record0, 'node1 does not touch the record');
    assert.equal((await readLease(lease))!.node, 'node2');

    // node1 refuses every operation on it (exit 4) and changes nothing
    // the nodes' heartbeats go on (both agents run): everything else must stay as it is
    const ignore = (rel: string) => /^lease\/nodes\/[^/]+\/(hb$|\.hb\.)/.test(rel);
    const brick0 = brickSnapshot(fx.vol, ignore);
    const inv0 = JSON.stringify(n1.ok(['jls', '--json']).json);
    for (const args of [['jstart', 'jname=fx'], ['junregister', 'jname=fx'], ['jremove', 'jname=fx'], ['jset', 'jname=fx', 'host_hostname=evil']]) {
      const x = n1.run([...args, '--json']);
      assert.equal(x.code, 4, `${args.join(' ')} on node1: ${x.stderr}`);
      assert.match(x.json.error.code, /^E_LEASE_/);
    }
    assert.deepEqual(brickSnapshot(fx.vol, ignore), brick0, 'the volume is unchanged');
    assert.equal(JSON.stringify(n1.ok(['jls', '--json']).json), inv0, 'node1\'s inventory is unchanged');
    assert.ok(!existsSync(join(n1.wd, 'jails-rcconf', 'rc.conf_fx')));

    // cluster ls from node1 shows node2 as the owner and node1's stale row
    const cl = n1.ok(['cluster', 'ls', '--json']).json.envs.find((e: any) => e.jname === 'fx');
    assert.equal(cl.owner, 'node2');
    assert.equal(cl.generation, gen1 + 1);
    assert.equal(cl.state, 'fenced');
    assert.equal(cl.local.fenced, true);

    // node2 runs it; the file grows again, written by node2's copy only
    n2.ok(['jstart', 'jname=fx']);
    const s2 = statSync(beat2).size;
    await waitFor('node2\'s copy to write', () => statSync(beat2).size > s2);
    n2.ok(['jstop', 'jname=fx']);

    // and it can come back to node1 through node1's agent: the stale row is replaced
    n2.ok(['node', 'add', 'name=node1', `url=${n1.socketUrl}`, `token=${n1.token}`]);
    const m = n2.ok(['jmigrate', 'jname=fx', 'dst=node1', '--json']).json.migration;
    assert.deepEqual(m.steps.map((s: any) => s.step), ['prepare', 'handover', 'adopt']);
    assert.equal(m.downtimeMs, null);
    const back = n1.envs().fx;
    assert.equal(back.status, 'Off');
    assert.ok(back.generation > gen1 + 1);
    assert.ok(!existsSync(join(n1.wd, 'var', 'run', 'fenced', 'fx.json')), 'the fence marker is gone');
    n1.ok(['jstart', 'jname=fx']);
    const s3 = statSync(beat1).size;
    await waitFor('node1\'s new copy to write', () => statSync(beat1).size > s3);
    n1.ok(['jstop', 'jname=fx']);
    assert.equal(await n1.stopAgent('SIGTERM'), 0);
  });
});
