/**
 * Takeover from a dead owner on CephFS (issue #16 item 5), in the per-env hook layout of
 * cluster-ceph.ts (two nodes, two ceph-fuse client ids with path caps, each env's dirs mounted by
 * the example cephfs hooks only while in use, jails-rcconf and jails-lease shared whole):
 * - a stopped env whose owner's agent heartbeats: `jregister --force` on the other node is
 *   refused (exit 4) and mounts nothing;
 * - the owner's agent killed with -9 while its container runs and writes: `jregister --force
 *   --start` on the other node takes over from the ownership record (no descriptor of its own),
 *   with its own client's mounts; the old owner's restarted agent fences its copy: stops it,
 *   runs mnt_stop (its ceph-fuse mounts go), refuses start/unregister/set; once the new owner
 *   stops too, nothing writes the data (read through a separate admin client).
 * Same steps as the GlusterFS test in cluster-perenv.test.ts, whose helpers it uses.
 */
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readLease } from '../../src/ownership/record.js';
import { isRoot } from '../helpers/cli.js';
import { cephNodes, envMounts, type CephNodes } from './cluster-ceph.js';
import { fencedAndStopped, sleep, view, waitFor } from './cluster-twonode.js';

const LEASE_TTL = 3;
let fx: CephNodes;

before(async () => {
  assert.ok(isRoot, 'integration tests run as root (runc, FUSE mounts, the Ceph cluster)');
  fx = await cephNodes([`lease_ttl=${LEASE_TTL}`]);
});
after(async () => { await fx?.cleanup(); });

describe('takeover from a dead owner with the CephFS hooks', () => {
  test('a live owner with its env stopped: --force from the other node is refused and mounts nothing', () => {
    const { n1, n2 } = fx;
    n1.ok(['jcreate', 'jname=tk', 'base=bb']);
    n1.ok(['jset', 'jname=tk', 'exec_start=while :; do echo x >> /root/beat; sleep 0.2; done']);
    const r = n2.run(['jregister', 'jname=tk', '--force', '--json'], 60_000);
    assert.equal(r.code, 4, r.stderr);
    assert.equal(r.json.error.code, 'E_LEASE_HELD');
    assert.match(r.json.error.hint, /alive/);
    assert.deepEqual(envMounts(n2, 'tk'), [], 'node2 mounted nothing that stayed');
    assert.equal(n2.envs().tk, undefined);
  });

  test('owner\'s agent killed -9 while its container runs: --force --start on node2 takes over from the record, node1\'s restarted agent fences its copy', async () => {
    const { n1, n2, tree } = fx;
    n1.ok(['jstart', 'jname=tk']);
    const src = (kind: string) => `ceph:${tree.fsName}:${tree.root}/${kind}/tk`;
    const mounted = [`${src('data')} /jails-data/tk-data`, `${src('fstab')} /jails-fstab/tk`, `${src('system')} /jails-system/tk`];
    assert.deepEqual(envMounts(n1, 'tk'), mounted);
    const beat1 = join(n1.wd, 'jails-data', 'tk-data', 'root', 'beat');
    await waitFor('the env to write', () => existsSync(beat1) && statSync(beat1).size > 10);
    const gen = n1.envs().tk.generation;
    assert.equal(await n1.stopAgent('SIGKILL'), 128);
    assert.ok(!existsSync(join(n2.wd, 'jails-rcconf', 'rc.conf_tk')), 'no unregistered descriptor: the owner never let it go');

    const t0 = performance.now();
    const take = n2.ok(['jregister', 'jname=tk', '--force', '--start', '--json'], 120_000).json.results[0];
    const takeMs = performance.now() - t0;
    console.log(`# takeover on CephFS (per-env ceph-fuse mounts): jregister --force --start took ${Math.round(takeMs)} ms = ${(takeMs / 1000 / LEASE_TTL).toFixed(2)} x lease_ttl`);
    assert.equal(take.tookOver, true);
    assert.equal(take.previousOwner, 'node1');
    assert.equal(take.generation, gen + 1);
    assert.match(take.rcfile, /jails-lease\/envs\/tk\/rc\.conf_tk$/, 'the descriptor came from the ownership record');
    assert.equal(take.started.status, 'On');
    assert.equal((await readLease(join(n2.wd, 'jails-lease', 'envs', 'tk')))!.node, 'node2');
    assert.deepEqual(envMounts(n2, 'tk'), mounted, 'node2 mounted the env with its own client');
    const v2 = view(n2);
    assert.deepEqual([(v2 as any).tk.owner, (v2 as any).tk.generation], ['node2', gen + 1]);
    const v1 = (view(n1) as any).tk;
    assert.deepEqual([v1.owner, v1.generation], ['node2', gen + 1], 'node1 (agent down) reads the same record');

    // both copies write now (node1's agent is dead): fencing must end node1's
    const beat2 = join(n2.wd, 'jails-data', 'tk-data', 'root', 'beat');
    const s0 = statSync(beat2).size;
    await waitFor('node2\'s copy to write', () => statSync(beat2).size > s0);
    assert.deepEqual(envMounts(n1, 'tk'), mounted, 'node1\'s stale copy still has its mounts');

    const tAgent = performance.now();
    await n1.startAgent();
    await waitFor('node1 to fence its copy', () => n1.envs().tk?.status === 'Off' && fencedAndStopped(n1, 'tk'));
    console.log(`# fencing on CephFS: node1's restarted agent stopped its copy ${Math.round(performance.now() - tAgent)} ms after it was spawned`);
    const marker = JSON.parse(readFileSync(join(n1.wd, 'var', 'run', 'fenced', 'tk.json'), 'utf8'));
    assert.equal(marker.owner, 'node2');
    assert.equal(marker.stopped, true);
    assert.deepEqual(envMounts(n1, 'tk'), [], 'node1 unmounted its storage (mnt_stop, BERTH_FENCED=1)');
    assert.equal(n1.run(['jexec', 'jname=tk', 'true']).code, 1, 'no process of tk left on node1');
    for (const args of [['jstart', 'jname=tk'], ['junregister', 'jname=tk'], ['jset', 'jname=tk', 'host_hostname=evil']]) {
      const x = n1.run([...args, '--json']);
      assert.equal(x.code, 4, `${args.join(' ')} on node1: ${x.stderr}`);
    }
    assert.deepEqual(envMounts(n1, 'tk'), [], 'refused operations leave nothing mounted on node1');
    assert.equal(statSync(beat2).size > s0, true);

    // with node2's copy stopped too, nothing writes the data any more (read by a separate admin client)
    n2.ok(['jstop', 'jname=tk']);
    assert.deepEqual(envMounts(n2, 'tk'), []);
    const size = async () => tree.withAdminMount((m) => statSync(join(m, 'data', 'tk', 'root', 'beat')).size);
    await sleep(1000);
    const s1 = await size();
    await sleep(2 * LEASE_TTL * 1000);
    assert.equal(await size(), s1, 'nothing writes /root/beat any more');

    await waitFor('node1\'s agent', async () => { try { await n1.client().list(); return true; } catch { return false; } });
    assert.deepEqual(view(n1), view(n2));
    n2.ok(['jremove', 'jname=tk']);
    assert.deepEqual(envMounts(n2, 'tk'), []);
  });
});
