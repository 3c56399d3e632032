/**
 * VM disks: a sparse raw image (no block allocated), qcow2 through qemu-img, never an
 * overwrite; an ext4 image made from a tree, sized to it, with guest files added in a staging
 * copy so that the tree itself is not written; too small a size refused; nothing left behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BerthError } from '../../src/errors.js';
import { createDiskImage, ext4FromTree, ext4SizeFor, EXT4_HEADROOM, treeUsage } from '../../src/engines/qemu/disk.js';
import { busyboxGuestFiles, isBusyboxTree } from '../../src/engines/qemu/guest.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'berth-disk-'));
const MiB = 1024 * 1024;
const isErr = (code: string, exit: number) => (e: unknown) => e instanceof BerthError && e.code === code && e.exitCode === exit;

/** `debugfs -R <cmd>` on an image (read-only). */
function debugfs(img: string, cmd: string): string {
  return spawnSync('debugfs', ['-R', cmd, img], { encoding: 'utf8' }).stdout;
}

test('an empty raw disk is a sparse file of imgsize, mode 0600; qcow2 is made by qemu-img; an existing disk is never overwritten', async () => {
  const d = tmp();
  try {
    const raw = join(d, 'dsk1.vhd');
    await createDiskImage(raw, 10 * 1024 ** 3, 'raw');
    const st = statSync(raw);
    assert.equal(st.size, 10 * 1024 ** 3);
    assert.equal(st.blocks, 0, 'sparse: no block allocated');
    assert.equal(st.mode & 0o777, 0o600);
    writeFileSync(raw, 'guest data');
    await assert.rejects(createDiskImage(raw, MiB, 'raw'), isErr('E_DISK_EXISTS', 1));
    assert.equal(readFileSync(raw, 'utf8'), 'guest data', 'the existing disk is untouched');
    const q = join(d, 'dsk2.qcow2');
    await createDiskImage(q, 2 * 1024 ** 3, 'qcow2');
    const info = JSON.parse(spawnSync('qemu-img', ['info', '--output=json', q], { encoding: 'utf8' }).stdout);
    assert.equal(info.format, 'qcow2');
    assert.equal(info['virtual-size'], 2 * 1024 ** 3);
    await assert.rejects(createDiskImage(join(d, 'x'), 1000, 'raw'), isErr('E_BAD_VALUE', 2));
    assert.deepEqual(readdirSync(d).sort(), ['dsk1.vhd', 'dsk2.qcow2'], 'no temp file left');
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('an ext4 disk from a tree holds the tree and the guest files; the tree is not written; the size follows the tree', async () => {
  const d = tmp();
  try {
    const tree = join(d, 'base');
    mkdirSync(join(tree, 'etc'), { recursive: true });
    mkdirSync(join(tree, 'bin'));
    writeFileSync(join(tree, 'etc', 'inittab'), 'the base\'s own inittab\n');
    writeFileSync(join(tree, 'bin', 'busybox'), Buffer.alloc(300 * 1024, 1));
    symlinkSync('/bin/busybox', join(tree, 'bin', 'sh'));
    mkdirSync(join(tree, 'sbin'));
    symlinkSync('/bin/busybox', join(tree, 'sbin', 'init'));
    assert.ok(isBusyboxTree(tree));
    const img = join(d, 'dsk1.vhd');
    const files = busyboxGuestFiles({ hostname: 'vm1' });
    const r = await ext4FromTree(tree, img, { files });
    assert.equal(r.sizeBytes, statSync(img).size);
    assert.equal(r.sizeBytes % MiB, 0);
    assert.ok(r.sizeBytes >= EXT4_HEADROOM && r.sizeBytes < EXT4_HEADROOM + 4 * MiB, `sized to the tree plus headroom: ${r.sizeBytes}`);
    assert.equal(statSync(img).mode & 0o777, 0o600);
    assert.match(debugfs(img, 'cat /etc/inittab'), /::sysinit:\/etc\/init\.d\/rcS/);
    assert.match(debugfs(img, 'cat /etc/hostname'), /^vm1$/m);
    assert.match(debugfs(img, 'stat /etc/acpi/PWRF/00000080'), /Mode:\s+0755/);
    assert.match(debugfs(img, 'stat /bin/sh'), /Type: symlink/);
    assert.equal(debugfs(img, 'cat /bin/busybox').length, 300 * 1024);
    assert.equal(readFileSync(join(tree, 'etc', 'inittab'), 'utf8'), 'the base\'s own inittab\n', 'the tree keeps its file (the disk got its own)');
    assert.deepEqual(readdirSync(d).sort(), ['base', 'dsk1.vhd'], 'no staging dir or temp file left');
    const fsck = spawnSync('e2fsck', ['-fn', img], { encoding: 'utf8' });
    assert.equal(fsck.status, 0, fsck.stdout + fsck.stderr);

    await assert.rejects(ext4FromTree(tree, img), isErr('E_DISK_EXISTS', 1));
    await assert.rejects(ext4FromTree(tree, join(d, 'small.vhd'), { sizeBytes: 4 * MiB }), isErr('E_IMGSIZE_TOO_SMALL', 2));
    const big = await ext4FromTree(tree, join(d, 'big.vhd'), { sizeBytes: 512 * MiB });
    assert.equal(big.sizeBytes, 512 * MiB);
    await assert.rejects(ext4FromTree(tree, join(d, 'bad.vhd'), { files: [{ path: '../escape', content: 'x', mode: 0o644 }] }), isErr('E_BAD_VALUE', 2));
    writeFileSync(join(tree, 'etcfile'), 'x');
    await assert.rejects(ext4FromTree(tree, join(d, 'bad2.vhd'), { files: [{ path: 'etcfile/x', content: 'x', mode: 0o644 }] }), isErr('E_BAD_BASE', 2));
    assert.deepEqual(readdirSync(d).sort(), ['base', 'big.vhd', 'dsk1.vhd'], 'failed builds left nothing');
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('tree usage and the ext4 size rule', () => {
  const d = tmp();
  try {
    writeFileSync(join(d, 'a'), Buffer.alloc(5000));
    mkdirSync(join(d, 's'));
    writeFileSync(join(d, 's', 'b'), 'x');
    assert.deepEqual(treeUsage(d), { bytes: 8192 + 4096 + 4096, entries: 3 });
    linkSync(join(d, 'a'), join(d, 's', 'a-again'));
    assert.deepEqual(treeUsage(d), { bytes: 8192 + 4096 + 4096, entries: 4 }, 'a hard link counts once');
    assert.equal(ext4SizeFor({ bytes: 0, entries: 0 }, MiB), MiB);
    assert.equal(ext4SizeFor({ bytes: 100 * MiB, entries: 4096 }, 64 * MiB), Math.ceil((110 * MiB + 4096 * 256 + 64 * MiB) / MiB) * MiB);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
