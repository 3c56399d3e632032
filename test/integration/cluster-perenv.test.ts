/**
 * Ownership in the layout the seed recommends (issue #11), live on GlusterFS: each env's data,
 * system and fstab dirs are sub-directory mounts made by the example hooks only while the env
 * is in use (test/integration/cluster-twonode.ts perEnvNodes); only the ownership directory and
 * jails-rcconf are mounted whole on both nodes. A node that has nothing of an env mounted must
 * still see it, see its owner, refuse to take it from a live owner, and take it over from a
 * dead one.
 * - cluster ls lists the env from both nodes, equal, also right after jmigrate and right after
 *   a takeover;
 * - a stopped env's owner is alive while its agent heartbeats: --force is refused;
 * - the owner's agent killed with -9 while its container runs → `jregister --force` on node2,
 *   with no descriptor of its own (the copy in the record) → node1's restarted agent stops its
 *   copy, which never writes to the data again.
 */
import { strict as assert } from 'node:assert';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readLease } from '../../src/ownership/record.js';
import { isRoot } from '../helpers/cli.js';
import { glusterVolume } from '../helpers/gluster.js';
import { fencedAndStopped, hookMounts, perEnvNodes, sleep, view, waitFor, type TwoNodes } from './cluster-twonode.js';

const LEASE_TTL = 3;
let fx: TwoNodes;

before(async () => {
  assert.ok(isRoot, 'integration tests run as root (runc, FUSE mounts, glusterd)');
  fx = await perEnvNodes([`lease_ttl=${LEASE_TTL}`]);
  await fx.n1.startAgent();
  await fx.n2.startAgent();
  fx.n1.ok(['node', 'add', 'name=node2', `url=${fx.n2.url}`, `token=${fx.n2.token}`]);
  fx.n2.ok(['node', 'add', 'name=node1', `url=${fx.n1.url}`, `token=${fx.n1.token}`]);
});
after(async () => { await fx?.cleanup(); });

describe('per-env mounts: ownership every node can see', () => {
  test('an env started on node1 is seen by node2, which has nothing of it mounted; the views are equal', () => {
    const { n1, n2 } = fx;
    n1.ok(['jcreate', 'jname=pe1', 'base=bb']);
    n1.ok(['jstart', 'jname=pe1']);
    assert.deepEqual(hookMounts(n1), ['data/pe1 jails-data/pe1-data', 'fstab/pe1 jails-fstab/pe1', 'system/pe1 jails-system/pe1']);
    assert.deepEqual(hookMounts(n2), [], 'node2 mounts nothing of pe1');
    const v1 = view(n1);
    assert.deepEqual((v1 as any).pe1, { uuid: n1.envs().pe1.uuid, emulator: 'runc', registered: true, owner: 'node1', generation: 1, state: 'On' });
    assert.deepEqual(view(n2), v1);
  });

  test('jmigrate of the running env: the views are equal right after, from both nodes', () => {
    const { n1, n2 } = fx;
    n1.ok(['jexec', 'jname=pe1', 'sh', '-c', 'echo moved > /root/note']);
    const m = n1.ok(['jmigrate', 'jname=pe1', 'dst=node2', '--json'], 120_000).json.migration;
    // at once, with no pause: a DFS client's cached listing must not make it look unregistered
    const v2 = view(n2);
    const v1 = view(n1);
    assert.deepEqual(v1, v2);
    assert.deepEqual((v1 as any).pe1.owner, 'node2');
    assert.equal((v1 as any).pe1.state, 'On');
    assert.equal(n2.ok(['jexec', 'jname=pe1', 'cat', '/root/note']).stdout, 'moved\n');
    assert.deepEqual(hookMounts(n1), [], 'node1 let the storage go');
    console.log(`# jmigrate with per-env GlusterFS mounts: downtime ${m.downtimeMs} ms, total ${m.totalMs} ms; ${m.steps.map((s: any) => `${s.step}@${s.node} ${s.ms} ms`).join(', ')}`);
    console.log(`#   stop: ${m.timings.stop.map((s: any) => `${s.step} ${s.ms}`).join(', ')}; adopt: ${m.timings.adopt.map((s: any) => `${s.step} ${s.ms}`).join(', ')}`);
    n2.ok(['jstop', 'jname=pe1']);
    assert.deepEqual(hookMounts(n2), []);
  });

  test('the owner is alive with its env stopped and unmounted: --force from node1 is refused and changes nothing', () => {
    const { n1, n2 } = fx;
    const before = n2.envs().pe1;
    const r = n1.run(['jregister', 'jname=pe1', '--force', '--json'], 60_000);
    assert.equal(r.code, 4, r.stderr);
    assert.equal(r.json.error.code, 'E_LEASE_HELD');
    assert.match(r.json.error.hint, /alive/);
    assert.deepEqual(hookMounts(n1), [], 'node1 mounted nothing that stayed');
    assert.equal(n1.envs().pe1, undefined);
    assert.deepEqual(n2.envs().pe1.generation, before.generation);
  });

  test('owner\'s agent killed -9 while its container runs: --force on the other node takes over from the record, the restarted agent fences its copy', async () => {
    const { n1, n2 } = fx;
    n2.ok(['jset', 'jname=pe1', 'exec_start=while :; do echo x >> /root/beat; sleep 0.2; done']);
    n2.ok(['jstart', 'jname=pe1']);
    const beat2 = join(n2.wd, 'jails-data', 'pe1-data', 'root', 'beat');
    await waitFor('the env to write', () => existsSync(beat2) && statSync(beat2).size > 10);
    const gen = n2.envs().pe1.generation;
    assert.equal(await n2.stopAgent('SIGKILL'), 128);
    assert.ok(!existsSync(join(n1.wd, 'jails-rcconf', 'rc.conf_pe1')), 'no unregistered descriptor: the owner never let it go');
    const t0 = performance.now();
    const take = n1.ok(['jregister', 'jname=pe1', '--force', '--start', '--json'], 120_000).json.results[0];
    const takeMs = performance.now() - t0;
    console.log(`# takeover with per-env mounts: jregister --force --start took ${Math.round(takeMs)} ms = ${(takeMs / 1000 / LEASE_TTL).toFixed(2)} x lease_ttl`);
    assert.equal(take.tookOver, true);
    assert.equal(take.previousOwner, 'node2');
    assert.equal(take.generation, gen + 1);
    assert.match(take.rcfile, /jails-lease\/envs\/pe1\/rc\.conf_pe1$/, 'the descriptor came from the ownership record');
    assert.equal(take.started.status, 'On');
    assert.equal((await readLease(join(n1.wd, 'jails-lease', 'envs', 'pe1')))!.node, 'node1');
    // right after the takeover the views are equal (node2's agent is down: both read the records)
    const v1 = view(n1);
    assert.deepEqual((v1 as any).pe1.owner, 'node1');
    assert.deepEqual((v1 as any).pe1.generation, gen + 1);
    // node2's own view comes from its own inventory for its stale row: same owner and generation
    const v2 = (view(n2) as any).pe1;
    assert.deepEqual([v2.owner, v2.generation], ['node1', gen + 1]);
    // both copies write now (node2's agent is dead): fencing must end node2's
    const beat1 = join(n1.wd, 'jails-data', 'pe1-data', 'root', 'beat');
    const s0 = statSync(beat1).size;
    await waitFor('node1\'s copy to write', () => statSync(beat1).size > s0);

    const tAgent = performance.now();
    await n2.startAgent();
    await waitFor('node2 to fence its copy', () => n2.envs().pe1?.status === 'Off' && fencedAndStopped(n2, 'pe1'));
    console.log(`# fencing with per-env mounts: node2's restarted agent stopped its copy ${Math.round(performance.now() - tAgent)} ms after it was spawned`);
    const marker = JSON.parse(readFileSync(join(n2.wd, 'var', 'run', 'fenced', 'pe1.json'), 'utf8'));
    assert.equal(marker.owner, 'node1');
    assert.equal(marker.stopped, true);
    assert.deepEqual(hookMounts(n2), [], 'node2 unmounted its storage (mnt_stop, BERTH_FENCED=1)');
    assert.equal(n2.run(['jexec', 'jname=pe1', 'true']).code, 1, 'no process of pe1 left on node2');
    for (const args of [['jstart', 'jname=pe1'], ['junregister', 'jname=pe1'], ['jset', 'jname=pe1', 'host_hostname=evil']]) {
      const x = n2.run([...args, '--json']);
      assert.equal(x.code, 4, `${args.join(' ')} on node2: ${x.stderr}`);
    }
    assert.deepEqual(hookMounts(n2), [], 'refused operations leave nothing mounted on node2');
    // with node1's copy stopped too, nothing writes the data any more (read through a mount of its own)
    n1.ok(['jstop', 'jname=pe1']);
    const probe = join(fx.base, 'probe');
    await fx.vol.mount(probe, 'data/pe1');
    try {
      await sleep(1500);
      const size = statSync(join(probe, 'root', 'beat')).size;
      await sleep(2 * LEASE_TTL * 1000);
      assert.equal(statSync(join(probe, 'root', 'beat')).size, size, 'nothing writes /root/beat any more');
    } finally {
      await fx.vol.unmountAll().catch(() => undefined);
      for (const n of [n1, n2]) {
        await fx.vol.mount(join(n.wd, 'jails-rcconf'), 'rcconf');
        await fx.vol.mount(join(n.wd, 'jails-lease'), 'lease');
      }
    }
    // the views agree again once both agents answer
    await waitFor('node2\'s agent', async () => { try { await n2.client().list(); return true; } catch { return false; } });
    assert.deepEqual(view(n1), view(n2));
  });
});

describe('envs on different storages (the seed: jail1 on one DFS server, jail2 on another)', () => {
  test('one ownership directory for both: both envs listed from both nodes, and each moves with its own storage', async () => {
    const { n1, n2 } = fx;
    const vol2 = await glusterVolume();
    try {
      for (const sub of ['data', 'system', 'fstab']) await vol2.mkdirOnVolume(sub);
      // a second copy of the example hooks on each node, configured for the second volume
      // (beside the first, so that ../lib/berth-hook.sh is found as the examples' README says)
      for (const n of [n1, n2]) {
        const src = join(n.wd, 'share', 'examples', 'env_start', 'glusterfs');
        const dst = join(n.wd, 'share', 'examples', 'env_start', 'glusterfs-vol2');
        mkdirSync(dst, { recursive: true });
        for (const f of readdirSync(src)) copyFileSync(join(src, f), join(dst, f));
        writeFileSync(join(dst, 'env_start_gluster.conf'), `GLUSTER_SERVER="${vol2.server}"\nGLUSTER_VOLUME="${vol2.name}"\nMOUNT_FSTAB=1\nGLUSTER_MOUNT_TIMEOUT=60\nGLUSTER_CREATE_DIRS=1\n`);
        chmodSync(join(dst, 'env_start_gluster.conf'), 0o644);
      }
      const h = join(n1.wd, 'share', 'examples', 'env_start', 'glusterfs-vol2');
      n1.ok(['jcreate', 'jname=onvol1', 'base=bb']); // the node default hooks: the first volume
      n1.ok(['jcreate', 'jname=onvol2', 'base=bb', `mnt_start=${join(h, 'env_start_gluster.sh')}`, `mnt_stop=${join(h, 'env_stop_gluster.sh')}`]);
      n1.ok(['jstart', 'jname=onvol2']);
      n1.ok(['jexec', 'jname=onvol2', 'sh', '-c', 'echo on-the-second-volume > /root/where']);
      assert.ok(existsSync(join(vol2.brick, 'data', 'onvol2', 'root', 'where')), 'its data is on the second volume');
      assert.ok(!existsSync(join(fx.vol.brick, 'data', 'onvol2')), 'and not on the first');
      const v1 = view(n1);
      assert.deepEqual(view(n2), v1);
      assert.deepEqual([(v1 as any).onvol1.owner, (v1 as any).onvol2.owner], ['node1', 'node1']);
      // its descriptor names the hooks as CBSDROOT/...: node2 runs its own copy of them
      assert.match(readFileSync(join(n1.wd, 'jails-lease', 'envs', 'onvol2', 'rc.conf_onvol2'), 'utf8'), /mnt_start="CBSDROOT\/share\/examples\/env_start\/glusterfs-vol2\/env_start_gluster\.sh";/);
      n1.ok(['jmigrate', 'jname=onvol2', 'dst=node2'], 120_000);
      assert.equal(n2.ok(['jexec', 'jname=onvol2', 'cat', '/root/where']).stdout, 'on-the-second-volume\n');
      assert.deepEqual(hookMounts(n2).filter((m) => m.includes('onvol2')), ['data/onvol2 jails-data/onvol2-data', 'fstab/onvol2 jails-fstab/onvol2', 'system/onvol2 jails-system/onvol2']);
      assert.deepEqual(view(n1), view(n2));
      n2.ok(['jstop', 'jname=onvol2']);
      n2.ok(['jremove', 'jname=onvol2']);
      n1.ok(['jremove', 'jname=onvol1']);
    } finally {
      for (const n of [n1, n2]) for (const e of Object.values(n.envs())) if ((e as any).jname === 'onvol2' && (e as any).status === 'On') n.run(['jstop', 'jname=onvol2']);
      await vol2.remove();
    }
  });
});
