/**
 * RBD disks for VMs against the one-node cluster of scripts/ceph-up (issue #16 item 3, the
 * primitives of src/storage/rbd.ts, without the qemu engine): a cephx client with `profile rbd`
 * caps on the `rbd` pool; the tiny guest of test/helpers/vmguest.ts (Debian cloud kernel,
 * busybox initramfs, ext4 root made from a busybox base) imported into an RBD image and booted
 * under TCG from a qemu argv of src/engines/qemu/argv.ts whose disk is QEMU's rbd driver (that
 * client's id and keyring, mon_host, no ceph.conf); a file written through the console is read
 * back after a new boot; the running VM's image cannot be removed; an instant clone
 * (snap create + protect + clone) boots with the source's file and takes writes the source does
 * not see (a clone into an existing image is refused, its snapshot undone); the source cannot
 * be removed while the clone depends on it; removing the clone
 * removes its snapshot; a running VM's image has its qemu as watcher (rbd status), none once
 * it is off; an image made or cloned for an env carries that env's uuid (image-meta
 * berth.uuid), a clone its own, not its source's; only the images this test made are removed.
 * Needs root, qemu-system-x86, qemu-block-extra (block-rbd), ceph-common, apt access.
 */
import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import { startQemu } from '../../src/engines/qemu/process.js';
import { stopQemu } from '../../src/engines/qemu/stop.js';
import { qemuRbdFile, rbdClone, rbdCreate, rbdImport, rbdInfo, rbdMeta, rbdRemove, rbdWatchers, type RbdAccess, type RbdImage } from '../../src/storage/rbd.js';
import { isRoot } from '../helpers/cli.js';
import { ceph } from '../helpers/ceph.js';
import { guestShell, isErr, rbdGuestSetup, rbdImg, type RbdGuestSetup } from '../helpers/rbd.js';
import { guestVm, type Console, type GuestVm } from '../helpers/vmguest.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

const prefix = `bt${process.pid}`;
const img = (name: string): RbdImage => rbdImg(`${prefix}-${name}`);
let fx: RbdGuestSetup;
let access: RbdAccess;
let made: RbdImage[];

before(async () => {
  fx = await rbdGuestSetup(`${prefix}-rbd`, 'berth-rbd-');
  ({ access, images: made } = fx);
});

// only what this test made: clones first (their removal unprotects their snapshots)
after(async () => { await fx?.cleanup(['rb1', 'rb2']); });

async function shell(vm: GuestVm): Promise<Console> {
  return guestShell(vm.run.consoleSocket);
}

/** Boots `vm` with disk 1 on `image` (QEMU's rbd driver), runs fn with its console, powers it off. */
async function withBoot<T>(vm: GuestVm, image: RbdImage, fn: (c: Console) => Promise<T>): Promise<T> {
  const argv = vm.argv({ diskFiles: { 1: qemuRbdFile(access, image) } });
  const drive = argv[argv.findIndex((a) => a.startsWith('file=rbd:'))]!;
  assert.match(drive, new RegExp(`^file=rbd:rbd/${image.image}:id=${prefix}-rbd:conf=/dev/null:keyring=.+:mon_host=127\\.0\\.0\\.1\\\\:\\d+,format=raw,if=none,id=dsk1,cache=none`));
  await startQemu(argv, vm.run);
  const c = await shell(vm);
  try {
    return await fn(c);
  } finally {
    c.close();
    const st = await stopQemu(vm.run, { timeoutSec: 60 });
    assert.equal(st.how, 'acpi', 'the guest powered itself off');
  }
}

describe('RBD disks booted by QEMU\'s rbd driver', () => {
  test('an image made, imported from the guest disk, booted, written, read back after a new boot; not removable while open', async () => {
    const vm = await guestVm(fx.node, 'rb1');
    const bad = img('made');
    await rbdCreate(access, bad, 8 << 20);
    made.push(bad);
    assert.equal((await rbdInfo(access, bad))!.size, 8 << 20);
    await assert.rejects(rbdCreate(access, bad, 8 << 20), isErr('E_DISK_EXISTS', new RegExp(`rbd/${bad.image} exists`)));
    assert.equal(await rbdRemove(access, bad), true);
    made.pop();
    assert.equal(await rbdInfo(access, bad), undefined);
    assert.equal(await rbdRemove(access, bad), false, 'removing what is gone changes nothing');

    const src = img('src');
    await rbdImport(access, vm.disk, src);
    made.push(src);
    await withBoot(vm, src, async (c) => {
      assert.equal((await c.run('echo on-rbd-$(hostname) > /root/rbd-note; sync; cat /root/rbd-note')).trim(), 'on-rbd-rb1');
      assert.match(await c.run('cat /proc/partitions'), /vda/);
      await assert.rejects(rbdRemove(access, src), isErr('E_RBD_IN_USE', /is open/));
      assert.equal((await rbdWatchers(access, src))!.length, 1, 'the running qemu is the image\'s watcher');
    });
    assert.deepEqual(await rbdWatchers(access, src), [], 'no watcher once qemu is gone');
    assert.equal(await rbdWatchers(access, img('nope')), undefined);
    await withBoot(vm, src, async (c) => {
      assert.equal((await c.run('cat /root/rbd-note')).trim(), 'on-rbd-rb1', 'the file is on the image');
    });
  });

  test('an instant clone boots with the source\'s data, takes its own writes; the source stays while the clone needs it; removal undoes the snapshot', async () => {
    const src = img('src');
    const dst = img('clone');
    const t0 = performance.now();
    await rbdClone(access, src, dst);
    made.push(dst);
    console.log(`# rbd snap create + protect + clone: ${Math.round(performance.now() - t0)} ms`);
    const info = (await rbdInfo(access, dst))!;
    assert.deepEqual(info.parent, { pool: 'rbd', image: src.image, snapshot: `berth-clone-rbd-${dst.image}` });
    await assert.rejects(rbdClone(access, src, dst), isErr('E_DISK_EXISTS'));
    const taken = img('taken');
    await rbdCreate(access, taken, 4 << 20);
    made.push(taken);
    await assert.rejects(rbdClone(access, src, taken), isErr('E_DISK_EXISTS', new RegExp(`rbd/${taken.image} exists`)));
    assert.equal((await rbdInfo(access, src))!.snapshotCount, 1, 'the snapshot made for the refused clone was undone: only the first clone\'s is left');
    assert.equal(await rbdRemove(access, taken), true);
    made.pop();
    await assert.rejects(rbdClone(access, img('nope'), img('nope2')), isErr('E_RBD', /does not exist/));
    assert.equal(await rbdInfo(access, img('nope2')), undefined, 'a failed clone makes nothing');

    const vm = await guestVm(fx.node, 'rb2');
    await withBoot(vm, dst, async (c) => {
      assert.equal((await c.run('cat /root/rbd-note')).trim(), 'on-rbd-rb1', 'the clone reads the source\'s data');
      await c.run('echo clone-only > /root/clone-note; sync');
    });
    await withBoot(vm, src, async (c) => {
      assert.equal((await c.run('cat /root/clone-note 2>&1')).trim(), 'cat: can\'t open \'/root/clone-note\': No such file or directory', 'the source does not see the clone\'s writes');
    });

    await assert.rejects(rbdRemove(access, src), isErr('E_RBD_IN_USE', /has snapshots \(berth-clone-rbd-/));
    assert.ok(await rbdInfo(access, src), 'the refused removal changed nothing');
    assert.equal(await rbdRemove(access, dst), true);
    made.pop();
    assert.equal((await rbdInfo(access, src))!.snapshotCount, 0, 'the clone\'s snapshot went with it');
    assert.equal(await rbdRemove(access, src), true);
    made.pop();
    const ls = await ceph(['osd', 'pool', 'stats', 'rbd']); // the cluster still answers
    assert.match(ls.stdout, /pool rbd/);
  });
  test('an image made or cloned for an env carries its uuid (image-meta berth.uuid); a clone its own, not its source\'s', async () => {
    const a = img('owned');
    const b = img('owned-clone');
    await rbdCreate(access, a, 4 << 20, { owner: 'uuid-a' });
    made.push(a);
    assert.deepEqual(await rbdMeta(access, a), { 'berth.uuid': 'uuid-a' });
    await rbdClone(access, a, b, { owner: 'uuid-b' });
    made.push(b);
    assert.deepEqual(await rbdMeta(access, b), { 'berth.uuid': 'uuid-b' }, 'the mark it inherited from its source is replaced');
    assert.deepEqual(await rbdMeta(access, a), { 'berth.uuid': 'uuid-a' });
    const bare = img('bare');
    await rbdCreate(access, bare, 4 << 20);
    made.push(bare);
    assert.deepEqual(await rbdMeta(access, bare), {}, 'made without an owner: no mark');
    assert.equal(await rbdMeta(access, img('nope')), undefined);
    for (const i of [bare, b, a]) { assert.equal(await rbdRemove(access, i), true); made.pop(); }
  });
});
