/**
 * Live migration of a qemu VM whose disk is a Ceph RBD image (issue #16 item 3), between two
 * nodes in the CephFS per-env layout of cluster-ceph.ts (each node's own ceph-fuse client for
 * the VM's data and system dirs; its own cephx key with `profile rbd` for the disk, named in
 * its berth.conf). bcreate dsk_type1=rbd on node1, boot, a counter started in the guest;
 * `jmigrate live=1 dst=node2`: the guest goes on counting on node2 without a reboot, the lease
 * moved once, the image is the same (nothing copied: its id and size unchanged), node1 refuses
 * to start it; bremove on node2 removes the image.
 * Needs root, runc, qemu-system-x86, qemu-block-extra, cpio, busybox-static, apt access and the
 * cluster (scripts/ceph-up).
 */
import { strict as assert } from 'node:assert';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { GUEST_READY_LINE } from '../../src/engines/qemu/guest.js';
import { makeKernelBase } from '../../src/engines/qemu/kernel.js';
import { readLease } from '../../src/ownership/record.js';
import { Workdir } from '../../src/paths.js';
import { run } from '../../src/proc.js';
import { rbdInfo, rbdRemove } from '../../src/storage/rbd.js';
import { berth, isRoot } from '../helpers/cli.js';
import { ceph, CEPH_CONF } from '../helpers/ceph.js';
import { cephNodes, type CephNodes } from './cluster-ceph.js';
import { sleep, type TestNode } from './cluster-twonode.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

const image = { pool: 'rbd', image: `bt${process.pid}-mig` };
const clients = [1, 2].map((n) => `client.bt${process.pid}-rbd${n}`);
let fx: CephNodes;

before(async () => {
  fx = await cephNodes(['lease_ttl=5']);
  for (const [i, n] of [fx.n1, fx.n2].entries()) {
    await makeKernelBase(new Workdir(n.wd), 'k1');
    const r = await ceph(['auth', 'get-or-create', clients[i]!, 'mon', 'profile rbd', 'osd', 'profile rbd pool=rbd']);
    const key = join(fx.tree.tempRoot, `rbd${i + 1}.keyring`);
    writeFileSync(key, r.stdout, { mode: 0o600 });
    appendFileSync(join(n.wd, 'etc', 'berth.conf'), `rbd_id="${clients[i]!.slice('client.'.length)}"\nrbd_keyring="${key}"\nrbd_mon_host="${fx.tree.monitors}"\nrbd_conf="/dev/null"\n`);
  }
});
after(async () => {
  for (const n of [fx?.n1, fx?.n2]) n?.run(['bstop', 'jname=*'], 90_000);
  await rbdRemove({ conf: CEPH_CONF }, image).catch(() => undefined);
  for (const c of clients) await ceph(['auth', 'del', c], false);
  await fx?.cleanup();
});

const vm = (n: TestNode, jname: string) => (n.ok(['bls', '--json']).json.envs as any[]).find((e) => e.jname === jname);

/** Types `cmd` on the VM's serial console once its shell prompt is there; @returns what the console printed up to `until` */
function typeOn(n: TestNode, jname: string, cmd: string, until: string): string {
  const p = berth(['bconsole', `jname=${jname}`, 'log=0', 'until=# ', 'timeout=60'], { workdir: n.wd, input: '\n', timeoutMs: 90_000 });
  assert.equal(p.code, 0, p.stderr);
  const r = berth(['bconsole', `jname=${jname}`, 'log=0', `until=${until}`, 'timeout=60'], { workdir: n.wd, input: `${cmd}\n`, timeoutMs: 90_000 });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  return r.stdout;
}

test('jmigrate live=1 of a running VM on RBD: it goes on at node2, the lease moves once, the image is the same one', async () => {
  const { n1, n2 } = fx;
  n1.ok(['bcreate', 'jname=rm1', 'base=bb', 'vm_kernel=k1', 'vm_ram=256m', 'vm_vnc_port=1', 'dsk_type1=rbd', `dsk_path1=rbd/${image.image}`]);
  const id0 = (await run(['rbd', '-c', CEPH_CONF, 'info', '--format', 'json', `rbd/${image.image}`])).stdout;
  const info0 = await rbdInfo({ conf: CEPH_CONF }, image);
  assert.ok(info0, 'bcreate made the image');
  n1.ok(['bstart', 'jname=rm1']);
  assert.equal(n1.run(['bconsole', 'jname=rm1', `until=${GUEST_READY_LINE}`, 'timeout=120'], 150_000).code, 0);
  typeOn(n1, 'rm1', '(i=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.2; done) &', 'tick-3\r?\n');
  const gen = vm(n1, 'rm1').generation;
  await sleep(1000);
  const r = n1.ok(['jmigrate', 'jname=rm1', 'dst=node2', 'live=1', '--json'], 240_000);
  const m = r.json.migration;
  assert.deepEqual(m.steps.map((s: any) => [s.step, s.node, s.ok]), [['prepare', 'node2', true], ['incoming', 'node2', true], ['channel', 'node1', true], ['send', 'node1', true], ['handover', 'node1', true], ['adopt', 'node2', true], ['resume', 'node2', true], ['unmount', 'node1', true]]);
  assert.equal(m.generation, gen + 1, 'the generation raised once');
  console.log(`# jmigrate live=1 (qemu on RBD, CephFS per-env mounts, 256 MiB guest, TCG): downtime ${m.downtimeMs} ms (berth), ${m.live.downtimeMs} ms (QEMU); total ${m.totalMs} ms; ${Math.round(m.live.transferredBytes / 1048576)} MiB of memory sent`);
  assert.equal(vm(n1, 'rm1'), undefined, 'node1 has no row');
  assert.equal(vm(n2, 'rm1').status, 'On');
  assert.equal((await readLease(join(n1.wd, 'jails-lease', 'envs', 'rm1')))!.node, 'node2');
  const out = berth(['bconsole', 'jname=rm1', 'log=0', 'until=tick-[0-9]+\r?\n', 'timeout=60'], { workdir: n2.wd, timeoutMs: 90_000 });
  assert.equal(out.code, 0, `the counter goes on on node2: ${out.stderr}${out.stdout}`);
  const id1 = (await run(['rbd', '-c', CEPH_CONF, 'info', '--format', 'json', `rbd/${image.image}`])).stdout;
  assert.equal(JSON.parse(id1).id, JSON.parse(id0).id, 'the same image: nothing copied');
  assert.notEqual(n1.run(['bstart', 'jname=rm1']).code, 0, 'node1 cannot start it');
  n2.ok(['bstop', 'jname=rm1'], 90_000);
  n2.ok(['bremove', 'jname=rm1']);
  assert.equal(await rbdInfo({ conf: CEPH_CONF }, image), undefined, 'bremove removed the image');
});
