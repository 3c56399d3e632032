/**
 * qemu VMs with their disk on Ceph RBD through the engine (issue #16 item 3), against the
 * one-node cluster of scripts/ceph-up: the node's etc/berth.conf names a cephx client with
 * `profile rbd` caps (rbd_id, rbd_keyring, rbd_mon_host); the lifecycle drives the real qemu
 * engine (library calls on the node: this branch's CLI has no b-commands yet).
 * - bcreate with dsk_type1=rbd dsk_path1=rbd/<image> from the busybox base: the image is made
 *   (ext4 of the base imported), nothing is written in the data dir; bcreate over an existing
 *   image is refused and leaves no env;
 * - bstart boots it under TCG by QEMU's rbd driver; a file written through the console;
 * - bclone: an instant rbd clone `rbd/<new>-dsk1` (the clone's row points at it); the clone
 *   boots with the file; its writes stay its own;
 * - bremove of the source is refused while the clone depends on it (nothing removed); of the
 *   clone removes its image and the snapshot made for it; then the source goes too.
 * Needs root, qemu-system-x86, qemu-block-extra, ceph-common, apt access.
 */
import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { qemuRunPaths } from '../../src/engines/qemu/argv.js';
import { qemuPid, waitPidGone } from '../../src/engines/qemu/process.js';
import { BerthError } from '../../src/errors.js';
import { cloneEnv } from '../../src/lifecycle/clone.js';
import { createEnv } from '../../src/lifecycle/create.js';
import { removeEnv } from '../../src/lifecycle/remove.js';
import { startEnv } from '../../src/lifecycle/start.js';
import { stopEnv } from '../../src/lifecycle/stop.js';
import { openNode, type NodeCtx } from '../../src/node.js';
import { readSettings, writeSettings } from '../../src/settings.js';
import { rbdCreate, rbdInfo, rbdRemove, type RbdAccess, type RbdImage } from '../../src/storage/rbd.js';
import { isRoot, tempDir } from '../helpers/cli.js';
import { ceph, CEPH_CONF, cephMonitors, requireCeph } from '../helpers/ceph.js';
import { Console, guestNode, type GuestNode } from '../helpers/vmguest.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

const pid = process.pid;
const client = `client.bt${pid}-qrbd`;
const A = `qa${pid}`;
const B = `qb${pid}`;
const img = (image: string): RbdImage => ({ pool: 'rbd', image });
const admin: RbdAccess = { conf: CEPH_CONF };
const images = [img(`bt${pid}-${A}`), img(`${B}-dsk1`), img(`bt${pid}-taken`)];
let node: GuestNode;
let ctx: NodeCtx;

before(async () => {
  await requireCeph();
  const r = await ceph(['auth', 'get-or-create', client, 'mon', 'profile rbd', 'osd', 'profile rbd pool=rbd']);
  const keyring = join(tempDir('berth-qrbd-key-'), 'qrbd.keyring');
  writeFileSync(keyring, r.stdout, { mode: 0o600 });
  node = await guestNode('berth-qrbd-');
  const s = readSettings(node.wd.conf);
  await writeSettings(node.wd.conf, { ...s.raw, rbd_id: `bt${pid}-qrbd`, rbd_keyring: keyring, rbd_mon_host: cephMonitors(), rbd_conf: '/dev/null' });
  ctx = openNode(node.wd.root, { runMonitor: false });
});

after(async () => {
  for (const j of [A, B]) {
    const p = qemuPid(qemuRunPaths(node.wd, j));
    if (p) { process.kill(p, 'SIGKILL'); await waitPidGone(p, 5000); }
  }
  for (const i of [...images].reverse()) await rbdRemove(admin, i).catch((e) => console.log(`# cleanup of ${i.image}: ${(e as Error).message}`));
  await ceph(['auth', 'del', client], false);
  node?.close();
});

const isErr = (code: string, re?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof BerthError, String(e));
  assert.equal(e.code, code, e.message);
  if (re) assert.match(e.message, re);
  return true;
};

async function withConsole<T>(jname: string, fn: (c: Console) => Promise<T>): Promise<T> {
  const c = await Console.connect(qemuRunPaths(node.wd, jname).consoleSocket);
  try {
    c.write('\n');
    await c.waitFor(/# $|# \S*$/m, 120_000);
    return await fn(c);
  } finally {
    c.close();
  }
}

const vm = (image: string) => ({ base: 'bb', vm_kernel: 'k1', vm_ram: '256m', vm_vnc_port: '1', dsk_type1: 'rbd', dsk_path1: `rbd/${image}` });

describe('qemu VMs on RBD disks', () => {
  test('bcreate over an existing image is refused and leaves no env and the image as it was', async () => {
    await rbdCreate(admin, images[2]!, 4 << 20);
    await assert.rejects(createEnv(ctx, { jname: `qt${pid}`, emulator: 'qemu', settings: vm(images[2]!.image) }), isErr('E_DISK_EXISTS', /rbd\/bt\d+-taken exists/));
    assert.equal(ctx.inv.get(`qt${pid}`), undefined);
    assert.equal((await rbdInfo(admin, images[2]!))!.size, 4 << 20, 'the existing image is untouched');
    assert.equal(await rbdRemove(admin, images[2]!), true);
  });

  test('bcreate makes the image, bstart boots it by QEMU\'s rbd driver, a file written through the console stays', async () => {
    const e = await createEnv(ctx, { jname: A, emulator: 'qemu', settings: vm(images[0]!.image) });
    assert.equal(e.conf.dsk_type1, 'rbd');
    assert.equal(e.conf.dsk_path1, `rbd/${images[0]!.image}`);
    const info = await rbdInfo(admin, images[0]!);
    assert.ok(info && info.size >= 64 << 20, 'the image holds the ext4 made from the base');
    assert.equal(Number(e.conf.dsk_size1), info!.size);
    assert.deepEqual(readdirSync(ctx.wd.env(A).data), ['rbd-disks'], 'nothing of the disk is in the data dir, only the file naming it');
    assert.equal(readFileSync(join(ctx.wd.env(A).data, 'rbd-disks'), 'utf8'), `dsk1 rbd/${images[0]!.image}\n`);
    await startEnv(ctx, A);
    await withConsole(A, async (c) => {
      assert.equal((await c.run('echo vm-on-rbd > /root/rbd-note; sync; cat /root/rbd-note')).trim(), 'vm-on-rbd');
      assert.match(await c.run('cat /proc/cmdline'), /root=\/dev\/vda/);
    });
    await assert.rejects(removeEnv(ctx, A), isErr('E_RUNNING'));
    await stopEnv(ctx, A);
  });

  test('bclone is an instant rbd clone; the clone boots with the data, its writes its own; bremove only as far as nothing depends on it', async () => {
    const t0 = performance.now();
    const r = await cloneEnv(ctx, { old: A, new: B });
    console.log(`# bclone of a VM on RBD: ${Math.round(performance.now() - t0)} ms (disk ${r.dataMs} ms)`);
    assert.deepEqual(r.disks, [`rbd:rbd/${B}-dsk1`]);
    assert.equal(r.env.conf.dsk_path1, `rbd/${B}-dsk1`);
    assert.equal(r.env.conf.dsk_type1, 'rbd');
    assert.equal(readFileSync(join(ctx.wd.env(B).data, 'rbd-disks'), 'utf8'), `dsk1 rbd/${B}-dsk1\n`);
    assert.deepEqual((await rbdInfo(admin, images[1]!))!.parent, { pool: 'rbd', image: images[0]!.image, snapshot: `berth-clone-rbd-${B}-dsk1` });

    await startEnv(ctx, B);
    await withConsole(B, async (c) => {
      assert.equal((await c.run('cat /root/rbd-note')).trim(), 'vm-on-rbd', 'the clone reads the source\'s data');
      await c.run('echo clone-only > /root/clone-note; sync');
    });
    await stopEnv(ctx, B);
    await startEnv(ctx, A);
    await withConsole(A, async (c) => {
      assert.match(await c.run('cat /root/clone-note 2>&1'), /No such file/, 'the source does not see the clone\'s writes');
    });
    await stopEnv(ctx, A);

    await assert.rejects(removeEnv(ctx, A), isErr('E_RBD_IN_USE', /has snapshots \(berth-clone-rbd-/));
    assert.ok(ctx.inv.get(A), 'the refused bremove left the env');
    assert.ok(await rbdInfo(admin, images[0]!), 'and its image');
    const rb = await removeEnv(ctx, B);
    assert.ok(rb.removed.includes(`rbd:rbd/${B}-dsk1`), JSON.stringify(rb.removed));
    assert.equal(await rbdInfo(admin, images[1]!), undefined);
    assert.equal((await rbdInfo(admin, images[0]!))!.snapshotCount, 0, 'the clone\'s snapshot went with it');
    const ra = await removeEnv(ctx, A);
    assert.ok(ra.removed.includes(`rbd:rbd/${images[0]!.image}`));
    assert.equal(await rbdInfo(admin, images[0]!), undefined);
  });
});
