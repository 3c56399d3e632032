/**
 * Zero-copy migration between two nodes on CephFS in the per-env hook layout (issue #16 item 5):
 * two berth nodes on this machine, each with its own cephx client (path caps on one test tree)
 * and its own copy of the example cephfs hooks (`default_mnt_start` / `default_mnt_stop`), the
 * tree's `rcconf` and `lease` mounted whole on each node's jails-rcconf and jails-lease (the
 * ownership directory) by that node's client (as CBSD's HOWTO shares jails-rcconf), two agents
 * on loopback ports. A running env created on node1 is
 * written to, moved by `jmigrate dst=node2` (prepare: node2 mounts the storage ahead; stop; handover; adopt; unmount on node1), read back on
 * node2; node1 has nothing of it mounted afterwards and may not start it (exit 4). Then the
 * same back, with the env stopped. Needs root, runc, busybox-static and the cluster
 * (scripts/ceph-up).
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import { isRoot } from '../helpers/cli.js';
import { cephNodes, envMounts, type CephNodes } from './cluster-ceph.js';
import type { TestNode } from './cluster-twonode.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

let fx: CephNodes;
let tree: CephNodes['tree'];
let n1: TestNode;
let n2: TestNode;

before(async () => {
  fx = await cephNodes(['lease_ttl=5']);
  ({ tree, n1, n2 } = fx);
});

after(async () => { await fx?.cleanup(); });

describe('jmigrate between two nodes with two ceph-fuse client ids', () => {
  test('a running env moves to node2 without copying; node1 keeps nothing mounted and refuses to start it', async () => {
    n1.ok(['jcreate', 'jname=web', 'base=bb', 'host_hostname=web.test']);
    n1.ok(['jstart', 'jname=web']);
    const src = (kind: string) => `ceph:${tree.fsName}:${tree.root}/${kind}/web`;
    assert.deepEqual(envMounts(n1, 'web'), [`${src('data')} /jails-data/web-data`, `${src('fstab')} /jails-fstab/web`, `${src('system')} /jails-system/web`]);
    n1.ok(['jexec', 'jname=web', 'sh', '-c', 'echo hello-from-node1 > /root/note && dd if=/dev/urandom of=/root/blob bs=65536 count=16 2>/dev/null && sync']);
    const sum1 = n1.ok(['jexec', 'jname=web', 'md5sum', '/root/blob']).stdout.split(' ')[0];

    const r = n1.ok(['jmigrate', 'jname=web', 'dst=node2', '--json'], 120_000);
    const m = r.json.migration;
    assert.deepEqual(m.steps.map((s: any) => [s.step, s.node, s.ok]), [['prepare', 'node2', true], ['stop', 'node1', true], ['handover', 'node1', true], ['adopt', 'node2', true], ['unmount', 'node1', true]]);
    console.log(`# jmigrate on CephFS (per-env ceph-fuse mounts): downtime ${m.downtimeMs} ms, total ${m.totalMs} ms; steps ${m.steps.map((s: any) => `${s.step}@${s.node} ${s.ms} ms`).join(', ')}`);

    assert.equal(n2.envs().web.status, 'On');
    assert.equal(n2.ok(['jexec', 'jname=web', 'cat', '/root/note']).stdout, 'hello-from-node1\n');
    assert.equal(n2.ok(['jexec', 'jname=web', 'md5sum', '/root/blob']).stdout.split(' ')[0], sum1);
    assert.deepEqual(envMounts(n2, 'web'), [`${src('data')} /jails-data/web-data`, `${src('fstab')} /jails-fstab/web`, `${src('system')} /jails-system/web`]);
    assert.deepEqual(envMounts(n1, 'web'), [], 'node1 let the env go: nothing of it mounted there');
    assert.equal(n1.envs().web, undefined, 'node1 has no row any more');
    const again = n1.run(['jstart', 'jname=web', '--json']);
    assert.notEqual(again.code, 0, 'node1 may not start it');
    assert.deepEqual(envMounts(n1, 'web'), [], 'a refused start leaves nothing mounted');
  });

  test('the stopped env moves back to node1 and starts there with the data node2 wrote', () => {
    n2.ok(['jexec', 'jname=web', 'sh', '-c', 'echo hello-from-node2 >> /root/note && sync']);
    n2.ok(['jstop', 'jname=web']);
    const r = n2.ok(['jmigrate', 'jname=web', 'dst=node1', '--json'], 120_000);
    assert.equal(r.json.migration.wasRunning, false);
    assert.deepEqual(envMounts(n2, 'web'), []);
    n1.ok(['jstart', 'jname=web']);
    assert.equal(n1.ok(['jexec', 'jname=web', 'cat', '/root/note']).stdout, 'hello-from-node1\nhello-from-node2\n');
    n1.ok(['jstop', 'jname=web']);
    n1.ok(['jremove', 'jname=web']);
    assert.deepEqual(envMounts(n1, 'web'), []);
  });
});
