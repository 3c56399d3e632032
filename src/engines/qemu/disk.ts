/**
 * VM disk images: an empty disk (a sparse raw file, CBSD's `imgtype=md`, or a qcow2 image
 * made by `qemu-img create`), and an ext4 root disk made from a base tree with
 * `mkfs.ext4 -d <tree>` sized to the tree plus headroom.
 *
 * Rules:
 * - an existing file is never overwritten: the image is made under a temp name beside the
 *   target and linked into place with link(2), which fails when the target exists
 *   (E_DISK_EXISTS); a failed build leaves no file;
 * - images are mode 0600 (a disk holds the guest's secrets);
 * - files added to a disk made from a tree (`files`, e.g. busybox init's inittab from
 *   src/engines/qemu/guest.ts) go into a staging copy made of hard links (`cp -al`) where
 *   each added file replaces its link: the base tree is never written.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync, readdirSync, type Stats } from 'node:fs';
import { chmod, link, mkdir, open, rm, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, posix } from 'node:path';
import { BerthError, EXIT, usageError } from '../../errors.js';
import { run } from '../../proc.js';
import { formatSize } from '../vm/size.js';
import type { GuestFile } from './guest.js';

const MiB = 1024 * 1024;

/** Free space added to an ext4 disk made from a tree when no size is given: 64 MiB. */
export const EXT4_HEADROOM = 64 * MiB;

function tempBeside(file: string): string {
  return join(dirname(file), `.${basename(file)}.tmp-${randomBytes(4).toString('hex')}`);
}

async function linkIntoPlace(tmp: string, file: string): Promise<void> {
  try {
    await link(tmp, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new BerthError('E_DISK_EXISTS', `${file} already exists; berth never overwrites a disk`, EXIT.FAILURE, { hint: 'remove it first if it is really not needed' });
    }
    throw e;
  } finally {
    await rm(tmp, { force: true });
  }
}

function refuseExisting(file: string): void {
  let st: Stats | undefined;
  try { st = lstatSync(file); } catch { st = undefined; }
  if (st) throw new BerthError('E_DISK_EXISTS', `${file} already exists; berth never overwrites a disk`, EXIT.FAILURE, { hint: 'remove it first if it is really not needed' });
}

/**
 * Makes an empty disk image of `sizeBytes`: raw = a sparse file (no block allocated), qcow2 =
 * `qemu-img create -f qcow2` (qemu only).
 * @throws BerthError E_BAD_VALUE (2: size 0 or not a multiple of 512), E_DISK_EXISTS (1),
 *   E_DISK_CREATE (5: qemu-img failed)
 */
export async function createDiskImage(file: string, sizeBytes: number, format: 'raw' | 'qcow2' = 'raw'): Promise<void> {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % 512 !== 0) {
    throw usageError('E_BAD_VALUE', `bad disk size ${sizeBytes} bytes for ${file}: expected a positive multiple of 512`);
  }
  refuseExisting(file);
  const tmp = tempBeside(file);
  try {
    if (format === 'raw') {
      const fh = await open(tmp, 'wx', 0o600);
      try { await fh.truncate(sizeBytes); } finally { await fh.close(); }
    } else {
      await run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-o', 'preallocation=off', tmp, String(sizeBytes)], { errorCode: 'E_DISK_CREATE' });
      await chmod(tmp, 0o600);
    }
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  await linkIntoPlace(tmp, file);
}

/** Bytes and entries of a tree (lstat sizes rounded up to 4 KiB blocks, hard links once, one file system). */
export function treeUsage(root: string): { bytes: number; entries: number } {
  const rootDev = lstatSync(root).dev;
  const seen = new Set<number>();
  let bytes = 0;
  let entries = 0;
  const stack = [root];
  while (stack.length) {
    const d = stack.pop()!;
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      const st = lstatSync(p);
      if (st.dev !== rootDev) continue;
      entries++;
      if (st.isDirectory()) { stack.push(p); bytes += 4096; continue; }
      if (st.nlink > 1) { if (seen.has(st.ino)) continue; seen.add(st.ino); }
      bytes += Math.ceil(st.size / 4096) * 4096;
    }
  }
  return { bytes, entries };
}

/**
 * The size of an ext4 image for a tree: its blocks, 10% for ext4's metadata, 256 bytes of
 * inode per entry, plus `headroom` free, rounded up to 1 MiB.
 */
export function ext4SizeFor(usage: { bytes: number; entries: number }, headroom = EXT4_HEADROOM): number {
  const need = usage.bytes * 1.1 + usage.entries * 256 + headroom;
  return Math.ceil(need / MiB) * MiB;
}

/** Options of {@link ext4FromTree}. */
export interface Ext4Options {
  /** the image size; default {@link ext4SizeFor} the tree (with the added files) */
  sizeBytes?: number;
  /** free space when the size is computed (default {@link EXT4_HEADROOM}) */
  headroomBytes?: number;
  /** files written into the image on top of the tree (the tree is not changed) */
  files?: GuestFile[];
  /** file system label (default `berth-root`) */
  label?: string;
  onProgress?: (line: string) => void;
}

async function stageTree(tree: string, files: GuestFile[]): Promise<string> {
  // beside the tree so that hard links work (same file system)
  const stage = join(dirname(tree), `.stage-${basename(tree)}-${randomBytes(4).toString('hex')}`);
  await mkdir(stage, { mode: 0o755 });
  try {
    await fillStage(tree, stage, files);
  } catch (e) {
    await rm(stage, { recursive: true, force: true });
    throw e;
  }
  return stage;
}

async function fillStage(tree: string, stage: string, files: GuestFile[]): Promise<void> {
  const r = await run(['cp', '-al', '--', `${tree}/.`, `${stage}/`], { check: false });
  if (r.exitCode !== 0) {
    // another file system or no hard links there: a real copy
    await rm(stage, { recursive: true, force: true });
    await mkdir(stage, { mode: 0o755 });
    await run(['cp', '-a', '-x', '--', `${tree}/.`, `${stage}/`], { errorCode: 'E_DISK_CREATE', errorExit: EXIT.FAILURE });
  }
  for (const f of files) {
    const rel = posix.normalize(f.path);
    if (rel.startsWith('/') || rel.split('/').includes('..')) throw usageError('E_BAD_VALUE', `bad guest file path ${JSON.stringify(f.path)}: expected a relative path inside the guest`);
    const parts = rel.split('/');
    let cur = stage;
    for (const p of parts.slice(0, -1)) {
      cur = join(cur, p);
      let st: Stats | undefined;
      try { st = lstatSync(cur); } catch { st = undefined; }
      if (!st) { await mkdir(cur, { mode: 0o755 }); continue; }
      if (!st.isDirectory()) throw new BerthError('E_BAD_BASE', `cannot add /${rel} to the disk: /${parts.slice(0, parts.indexOf(p) + 1).join('/')} is not a directory in the tree`, EXIT.USAGE);
    }
    const dst = join(stage, rel);
    await unlink(dst).catch(() => {}); // a hard link to the base's file: replace the link, never write through it
    await writeFile(dst, f.content, { mode: f.mode, flag: 'wx' });
    await chmod(dst, f.mode);
  }
}

/**
 * Makes an ext4 disk image from a root tree (`mkfs.ext4 -d`), owners, modes and links kept.
 * @returns the image size in bytes
 * @throws BerthError E_DISK_EXISTS (1), E_IMGSIZE_TOO_SMALL (2: the given size cannot hold the
 *   tree), E_BAD_BASE (2), E_DISK_CREATE (5: mkfs.ext4 failed); no file is left behind
 */
export async function ext4FromTree(tree: string, file: string, opts: Ext4Options = {}): Promise<{ sizeBytes: number }> {
  refuseExisting(file);
  const files = opts.files ?? [];
  const usage = treeUsage(tree);
  const extra = { bytes: files.reduce((n, f) => n + Math.ceil(Buffer.byteLength(f.content) / 4096) * 4096, 0), entries: files.length };
  const total = { bytes: usage.bytes + extra.bytes, entries: usage.entries + extra.entries };
  const minimum = ext4SizeFor(total, 8 * MiB);
  const size = opts.sizeBytes ?? ext4SizeFor(total, opts.headroomBytes ?? EXT4_HEADROOM);
  if (size < minimum) {
    throw usageError('E_IMGSIZE_TOO_SMALL', `imgsize=${formatSize(size)} cannot hold the tree ${tree} (${formatSize(usage.bytes)} in ${usage.entries} entries); it needs at least ${formatSize(minimum)}`, {
      hint: 'give a larger imgsize=, or none to size the disk to the tree',
    });
  }
  const stage = files.length ? await stageTree(tree, files) : tree;
  const tmp = tempBeside(file);
  try {
    opts.onProgress?.(`making a ${formatSize(size)} ext4 disk from ${tree} ...`);
    const fh = await open(tmp, 'wx', 0o600);
    try { await fh.truncate(size); } finally { await fh.close(); }
    await run(['mkfs.ext4', '-q', '-F', '-t', 'ext4', '-m', '1', '-L', opts.label ?? 'berth-root', '-E', 'root_owner=0:0', '-d', stage, tmp], { errorCode: 'E_DISK_CREATE' });
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  } finally {
    if (stage !== tree) await rm(stage, { recursive: true, force: true });
  }
  await linkIntoPlace(tmp, file);
  return { sizeBytes: size };
}
