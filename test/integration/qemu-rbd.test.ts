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
 *   clone removes its image and the snapshot made for it; then the source goes too;
 * - a VM with two disks, the second on RBD (dsk_type2=rbd dsk_path2=rbd/<image> dsk_size2=8m):
 *   bcreate refuses it without a size and, all or nothing, removes the row 1 image it made when
 *   row 2 names an existing image; made, the guest writes its /dev/vdb, the bytes are in the
 *   image; bclone makes `<new>-dsk2` by rbd clone, the clone reads the data, its write stays
 *   its own; bremove removes each image (the source's only after the clone's).
 * - every image bcreate and bclone make carries the env's uuid (image-meta berth.uuid): a VM
 *   whose row bset points at another VM's image (or at an image made by hand) leaves it at
 *   bremove, with a note, and the other VM still boots from it; bremove of the owner removes
 *   its own images;
 * - bstart of a VM pointed at the image of a running VM is refused (E_RBD_IN_USE naming the
 *   image and the watcher) and leaves no qemu, no mount, the env Off.
 * The cephx client and the guest node: test/helpers/rbd.ts.
 * Needs root, qemu-system-x86, qemu-block-extra, ceph-common, apt access.
 */
import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { qemuRunPaths } from '../../src/engines/qemu/argv.js';
import { qemuPid } from '../../src/engines/qemu/process.js';
import { STATUS } from '../../src/inventory.js';
import { cloneEnv } from '../../src/lifecycle/clone.js';
import { createEnv } from '../../src/lifecycle/create.js';
import { removeEnv } from '../../src/lifecycle/remove.js';
import { setEnv } from '../../src/lifecycle/set.js';
import { startEnv } from '../../src/lifecycle/start.js';
import { stopEnv } from '../../src/lifecycle/stop.js';
import { openNode, type NodeCtx } from '../../src/node.js';
import { run } from '../../src/proc.js';
import { rbdCreate, rbdInfo, rbdMeta, rbdRemove, rbdWatchers, type RbdAccess } from '../../src/storage/rbd.js';
import { isRoot } from '../helpers/cli.js';
import { CEPH_CONF } from '../helpers/ceph.js';
import { guestShell, isErr, rbdGuestSetup, rbdImg as img, type RbdGuestSetup } from '../helpers/rbd.js';
import type { Console } from '../helpers/vmguest.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

const pid = process.pid;
const A = `qa${pid}`;
const B = `qb${pid}`;
const C = `qc${pid}`;
const D = `qd${pid}`;
const E = `qe${pid}`;
const F = `qf${pid}`;
const G = `qg${pid}`;
let admin: RbdAccess;
const images = [img(`bt${pid}-${A}`), img(`${B}-dsk1`), img(`bt${pid}-taken`), img(`bt${pid}-${C}-2`), img(`${D}-dsk2`), img(`bt${pid}-${C}-1`), img(`bt${pid}-${E}`), img(`bt${pid}-${E}-d2`), img(`bt${pid}-hand`)];
let fx: RbdGuestSetup;
let ctx: NodeCtx;

before(async () => {
  fx = await rbdGuestSetup(`bt${pid}-qrbd`, 'berth-qrbd-', { nodeSettings: true });
  fx.images.push(...images);
  admin = fx.admin;
  ctx = openNode(fx.node.wd.root, { runMonitor: false });
});

after(async () => { await fx?.cleanup([A, B, C, D, E, F, G]); });

async function withConsole<T>(jname: string, fn: (c: Console) => Promise<T>): Promise<T> {
  const c = await guestShell(qemuRunPaths(ctx.wd, jname).consoleSocket);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

const fileVm = { base: 'bb', vm_kernel: 'k1', vm_ram: '256m', vm_vnc_port: '1' };
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

  test('a VM with two disks, the second on RBD: bcreate makes it (dsk_size2), the guest writes it, bclone clones it by rbd clone, bremove removes each', async () => {
    const [img2, cloned, img1] = [images[3]!, images[4]!, images[5]!];
    const two = { base: 'bb', vm_kernel: 'k1', vm_ram: '256m', vm_vnc_port: '1', dsk_type2: 'rbd', dsk_path2: `rbd/${img2.image}` };
    await assert.rejects(createEnv(ctx, { jname: C, emulator: 'qemu', settings: two }), isErr('E_BAD_VALUE', /disk 2 \(dsk_path2=rbd\/\S+, an RBD image\) has no size/));
    assert.equal(ctx.inv.get(C), undefined);
    assert.equal(await rbdInfo(admin, img2), undefined, 'nothing made');
    // all or nothing: row 2 names an existing image, so the image made for row 1 goes again
    await rbdCreate(admin, images[2]!, 4 << 20);
    await assert.rejects(createEnv(ctx, { jname: C, emulator: 'qemu', settings: { ...two, dsk_type1: 'rbd', dsk_path1: `rbd/${img1.image}`, dsk_path2: `rbd/${images[2]!.image}`, dsk_size2: '4m' } }), isErr('E_DISK_EXISTS'));
    assert.equal(await rbdInfo(admin, img1), undefined, 'the row 1 image made before the refusal is removed');
    assert.equal((await rbdInfo(admin, images[2]!))!.size, 4 << 20, 'the existing image is untouched');
    assert.equal(await rbdRemove(admin, images[2]!), true);

    const e = await createEnv(ctx, { jname: C, emulator: 'qemu', settings: { ...two, dsk_size2: '8m' } });
    assert.deepEqual([e.conf.dsk_type1, e.conf.dsk_path1, e.conf.dsk_type2, e.conf.dsk_path2, e.conf.dsk_size2], ['vhd', 'dsk1.vhd', 'rbd', `rbd/${img2.image}`, String(8 << 20)]);
    assert.equal((await rbdInfo(admin, img2))!.size, 8 << 20);
    assert.deepEqual(readdirSync(ctx.wd.env(C).data).sort(), ['dsk1.vhd', 'rbd-disks'], 'the first disk a file, the second only named');
    assert.equal(readFileSync(join(ctx.wd.env(C).data, 'rbd-disks'), 'utf8'), `dsk2 rbd/${img2.image}\n`);
    await startEnv(ctx, C);
    await withConsole(C, async (c) => {
      assert.equal((await c.run('cat /sys/block/vdb/size')).trim(), String((8 << 20) / 512), 'the guest sees the RBD image as its second disk');
      await c.run("printf 'second-disk-on-rbd\\n' > /dev/vdb; sync");
    });
    await stopEnv(ctx, C);
    const head = async (i: typeof img2) => (await run(['rbd', '-c', CEPH_CONF, 'export', '--no-progress', `rbd/${i.image}`, '-'], { timeoutSec: 60 })).stdout.slice(0, 32);
    assert.match(await head(img2), /^second-disk-on-rbd\n/, 'the guest\'s write is in the image');

    const r = await cloneEnv(ctx, { old: C, new: D });
    assert.deepEqual(r.disks, [`rbd:rbd/${cloned.image}`]);
    assert.deepEqual([r.env.conf.dsk_path1, r.env.conf.dsk_path2, r.env.conf.dsk_type2], ['dsk1.vhd', `rbd/${cloned.image}`, 'rbd']);
    assert.equal(readFileSync(join(ctx.wd.env(D).data, 'rbd-disks'), 'utf8'), `dsk2 rbd/${cloned.image}\n`);
    assert.deepEqual((await rbdInfo(admin, cloned))!.parent, { pool: 'rbd', image: img2.image, snapshot: `berth-clone-rbd-${cloned.image}` });
    await startEnv(ctx, D);
    await withConsole(D, async (c) => {
      assert.equal((await c.run('head -c 19 /dev/vdb')).trim(), 'second-disk-on-rbd', 'the clone\'s second disk reads the source\'s data');
      await c.run("printf 'clone-disk-2\\n' > /dev/vdb; sync");
    });
    await stopEnv(ctx, D);
    assert.match(await head(cloned), /^clone-disk-2\n/);
    assert.match(await head(img2), /^second-disk-on-rbd\n/, 'the source\'s image does not see the clone\'s write');

    await assert.rejects(removeEnv(ctx, C), isErr('E_RBD_IN_USE'));
    assert.ok((await removeEnv(ctx, D)).removed.includes(`rbd:rbd/${cloned.image}`));
    assert.equal(await rbdInfo(admin, cloned), undefined);
    assert.ok((await removeEnv(ctx, C)).removed.includes(`rbd:rbd/${img2.image}`));
    assert.equal(await rbdInfo(admin, img2), undefined);
  });
  test('bremove removes only the images made for the VM: a row bset to another VM\'s image is left, with a note', async () => {
    const [own1, own2] = [images[6]!, images[7]!];
    const e = await createEnv(ctx, { jname: E, emulator: 'qemu', settings: { ...vm(own1.image), dsk_type2: 'rbd', dsk_path2: `rbd/${own2.image}`, dsk_size2: '64m' } });
    for (const i of [own1, own2]) assert.deepEqual(await rbdMeta(admin, i), { 'berth.uuid': e.uuid }, `${i.image} is marked as made for ${E}`);
    const f = await createEnv(ctx, { jname: F, emulator: 'qemu', settings: fileVm });
    await setEnv(ctx, F, { dsk_type2: 'rbd', dsk_path2: `rbd/${own2.image}`, dsk_size2: '64m' });
    const r = await removeEnv(ctx, F);
    assert.deepEqual(r.notes, [`rbd/${own2.image} left: not made for ${F}`]);
    assert.ok(!r.removed.some((x) => x.startsWith('rbd:')), JSON.stringify(r.removed));
    assert.equal(ctx.inv.get(F), undefined, 'the env itself is removed');
    assert.equal((await rbdInfo(admin, own2))!.size, 64 << 20, `${E}'s second disk is still there`);
    assert.deepEqual(await rbdMeta(admin, own2), { 'berth.uuid': e.uuid });
    assert.notEqual(f.uuid, e.uuid);
    await startEnv(ctx, E);
    await withConsole(E, async (c) => {
      assert.equal((await c.run('cat /sys/block/vdb/size')).trim(), String((64 << 20) / 512), `${E} boots with its second disk`);
    });
    await stopEnv(ctx, E);
  });

  test('bstart of a VM on the image a running VM has open is refused (E_RBD_IN_USE) and leaves nothing; an unmarked image is left at bremove', async () => {
    const [own1, own2, hand] = [images[6]!, images[7]!, images[8]!];
    await createEnv(ctx, { jname: G, emulator: 'qemu', settings: fileVm });
    await rbdCreate(admin, hand, 4 << 20);
    await setEnv(ctx, G, { dsk_type1: 'rbd', dsk_path1: `rbd/${own1.image}`, dsk_type2: 'rbd', dsk_path2: `rbd/${hand.image}`, dsk_size2: '4m' });
    await startEnv(ctx, E);
    try {
      const w = (await rbdWatchers(admin, own1))!;
      assert.equal(w.length, 1, `${E}'s qemu is the watcher of its image`);
      await assert.rejects(startEnv(ctx, G), isErr('E_RBD_IN_USE', new RegExp(`rbd/${own1.image} \\(dsk_path1 of ${G}\\) is open by client\\.${w[0]!.client} at ${w[0]!.address.replace(/[.]/g, '\\.')}`)));
      assert.equal(ctx.inv.get(G)!.status, STATUS.OFF);
      assert.equal(qemuPid(qemuRunPaths(ctx.wd, G)), undefined, 'no qemu started');
      const table = await (await ctx.mounts()).list();
      assert.deepEqual(table.filter((m) => m.target.includes(`/${G}`)).map((m) => m.target), [], 'no mount left');
      assert.deepEqual(await rbdWatchers(admin, hand), [], 'the other image was not opened either');
      await withConsole(E, async (c) => {
        assert.equal((await c.run('echo still-here')).trim(), 'still-here', `${E} runs on`);
      });
    } finally {
      await stopEnv(ctx, E);
    }
    assert.deepEqual(await rbdWatchers(admin, own1), [], 'closed once stopped');

    const rg = await removeEnv(ctx, G);
    assert.deepEqual(rg.notes, [`rbd/${own1.image} left: not made for ${G}`, `rbd/${hand.image} left: not made for ${G}`]);
    assert.ok(await rbdInfo(admin, own1));
    assert.ok(await rbdInfo(admin, hand), 'an image without berth\'s mark is left');
    assert.equal(await rbdRemove(admin, hand), true);

    const re = await removeEnv(ctx, E);
    assert.deepEqual(re.removed.filter((x) => x.startsWith('rbd:')), [`rbd:rbd/${own1.image}`, `rbd:rbd/${own2.image}`]);
    assert.equal(re.notes, undefined);
    assert.equal(await rbdInfo(admin, own1), undefined);
    assert.equal(await rbdInfo(admin, own2), undefined);
  });
});
