/**
 * Bases: read-only root file system trees under `<workdir>/bases/<name>` that envs are made
 * from (design/product.md "Words", "Workdir layout"). Import from a directory or a tar
 * archive, build a minimal one from the host's busybox-static, list, remove.
 *
 * Rules:
 * - a base name follows {@link checkBaseName} (dots allowed, e.g. `14.1-RELEASE`);
 * - an import is built in a hidden temp dir `bases/.import-<name>-<random>` and renamed
 *   into place at the end, so a failed or refused import leaves nothing behind; `base list`
 *   ignores dot entries;
 * - every base gets the mount-point dirs berth needs ({@link BASE_MOUNT_DIRS}): runc (or
 *   jail(8)) mounts proc, sys, dev there, and with baserw=0 the lifecycle bind-mounts the
 *   env's data sub-dirs over etc, root, tmp, home, var and usr/local of the READ-ONLY base,
 *   so they must exist in the base itself. Missing ones are created (tmp 1777, root 0700,
 *   others 0755). An absolute symlink (or one with `..`) at any of these paths is refused
 *   (E_BAD_BASE): berth mounts over these paths on the host, and such a link would point
 *   the mount outside the env's root. Relative links that stay inside the base (FreeBSD's
 *   `sys -> usr/src/sys`) are kept;
 * - `base remove` is refused while an env of this node uses the base
 *   ({@link Inventory.envsUsingBase}; E_BASE_IN_USE, exit 1) or while anything is mounted
 *   under it (E_BASE_MOUNTED, exit 1); an unknown base is E_NO_SUCH_BASE (exit 3).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readlinkSync, realpathSync, statSync, type Stats } from 'node:fs';
import { chmod, copyFile, mkdir, open, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { basename, join, posix } from 'node:path';
import { BerthError, EXIT, notFound, usageError } from './errors.js';
import type { Inventory } from './inventory.js';
import { checkBaseName } from './names.js';
import type { MountPrimitive } from './mounts/types.js';
import type { Workdir } from './paths.js';
import { run } from './proc.js';
import { treeSize, watchTree, type ProgressFn } from './progress.js';
import { mountsUnder } from './mounts/types.js';

/**
 * Dirs every base must contain, relative to its root: mount points for proc/sys/dev (engine)
 * and for the data sub-dirs bind-mounted over a read-only base (etc root tmp home var usr/local).
 */
export const BASE_MOUNT_DIRS: readonly string[] = ['etc', 'root', 'tmp', 'home', 'var', 'usr/local', 'proc', 'sys', 'dev'];

/** What the base functions need of a node: its paths, its inventory, and (optional) its mount table. */
export interface BaseCtx { wd: Workdir; inv: Inventory; mounts?: () => Promise<MountPrimitive> }

/** One base as {@link listBases} and the import functions report it. `size` in bytes. */
export interface BaseInfo {
  name: string;
  path: string;
  /** apparent size in bytes (files and symlinks, hard links counted once, one file system) */
  size: number;
  /** envs of this node whose `base` is this one */
  envs: string[];
}

/** Result of an import or busybox build. */
export interface BaseImportResult extends BaseInfo {
  /** 'dir', 'tar', 'busybox' or 'debootstrap' */
  kind: 'dir' | 'tar' | 'busybox' | 'debootstrap';
  source: string;
  /** mount-point dirs created in the base because the source lacked them (relative paths) */
  addedDirs: string[];
}

/** Options of {@link importBase} and {@link busyboxBase}. */
export interface ImportOptions {
  /** called with a short line before long steps (the CLI shows it on a terminal) */
  onProgress?: (line: string) => void;
  /**
   * progress of the copy or extraction: the bytes in the new base so far (every 0.5 s), of the
   * source tree's size for a directory, with no total for an archive
   */
  onProgressEvent?: ProgressFn;
}

/** Archive names {@link importBase} accepts (GNU/bsd tar detects the compression itself). */
export const ARCHIVE_SUFFIXES: readonly string[] = ['.tar', '.tar.gz', '.tgz', '.tar.xz', '.txz', '.tar.bz2', '.tbz', '.tbz2'];

/**
 * Classifies an import source.
 * @returns 'dir' for a directory, 'tar' for a regular file with an {@link ARCHIVE_SUFFIXES} name
 * @throws BerthError E_BAD_SOURCE (exit 2): missing, not a dir or regular file, unknown archive type
 */
export function sourceKind(source: string): 'dir' | 'tar' {
  let st: Stats;
  try { st = statSync(source); } catch {
    throw usageError('E_BAD_SOURCE', `source=${JSON.stringify(source)} does not exist`);
  }
  if (st.isDirectory()) return 'dir';
  if (!st.isFile()) throw usageError('E_BAD_SOURCE', `source=${JSON.stringify(source)} is neither a directory nor a regular file`);
  const n = basename(source).toLowerCase();
  if (ARCHIVE_SUFFIXES.some((s) => n.endsWith(s))) return 'tar';
  throw usageError('E_BAD_SOURCE', `source=${JSON.stringify(source)}: unknown archive type`, {
    hint: `give a directory or an archive named *${ARCHIVE_SUFFIXES.join(', *')}`,
  });
}

function requireBasesDir(wd: Workdir): void {
  if (!existsSync(wd.bases)) {
    throw new BerthError('E_NOT_INITIALISED', `${wd.bases} does not exist`, EXIT.FAILURE, { hint: `run: berth initenv workdir=${wd.root}` });
  }
}

/**
 * Checks that base `name` may be made: a good name, an initialised workdir, no base of that name.
 * @returns the base's path
 * @throws BerthError E_BAD_BASE_NAME (2), E_NOT_INITIALISED (1), E_BASE_EXISTS (1)
 */
export function checkNewBase(wd: Workdir, name: string): string {
  checkBaseName(name);
  requireBasesDir(wd);
  const dst = wd.base(name);
  if (existsSync(dst) || isSymlink(dst)) {
    throw new BerthError('E_BASE_EXISTS', `base ${JSON.stringify(name)} already exists (${dst})`, EXIT.FAILURE, { hint: `choose another name= or run: berth base remove name=${name}` });
  }
  return dst;
}

function isSymlink(p: string): boolean {
  try { return lstatSync(p).isSymbolicLink(); } catch { return false; }
}

/** A hidden temp dir name under bases/ (`.<kind>-<name>-<random>`), ignored by `base list`. */
export const tempName = (kind: string, name: string): string => `.${kind}-${name}-${randomBytes(4).toString('hex')}`;

/**
 * Makes sure `root` has every {@link BASE_MOUNT_DIRS} entry as a directory.
 * @returns the dirs created (relative), in order
 * @throws BerthError E_BAD_BASE (exit 2) when one of them (or a parent such as `usr`) is a
 *   file, or a symlink that is absolute or contains `..`
 */
export async function ensureMountDirs(root: string): Promise<string[]> {
  const added: string[] = [];
  for (const rel of BASE_MOUNT_DIRS) {
    const parts = rel.split('/');
    let cur = root;
    for (let i = 0; i < parts.length; i++) {
      const sub = parts.slice(0, i + 1).join('/');
      cur = join(cur, parts[i]!);
      let st: Stats | undefined;
      try { st = lstatSync(cur); } catch { st = undefined; }
      if (!st) {
        const mode = sub === 'tmp' ? 0o1777 : sub === 'root' ? 0o700 : 0o755;
        await mkdir(cur, { mode });
        await chmod(cur, mode);
        added.push(sub);
        continue;
      }
      if (st.isSymbolicLink()) {
        const target = readlinkSync(cur);
        if (target.startsWith('/') || target.split('/').includes('..')) {
          throw usageError('E_BAD_BASE', `the base has ${sub} -> ${target}: berth mounts over /${rel} and this link points outside the env's root`, {
            hint: `replace the link by a directory in the source`,
          });
        }
        // a relative link inside the base: resolved inside the assembled root at mount time
        break;
      }
      if (!st.isDirectory()) {
        throw usageError('E_BAD_BASE', `the base has /${sub} as a ${st.isFile() ? 'file' : 'non-directory'}; berth needs a directory there (a mount point)`);
      }
    }
  }
  return added;
}

/** Re-exported: {@link treeSize} lives in src/progress.ts, which watches trees grow. */
export { treeSize };

/**
 * Ends a base build: adds the mount-point dirs, makes the tree 0755 and renames the temp dir
 * `tmp` into place as `dst`.
 * @throws BerthError E_BAD_BASE (2, see {@link ensureMountDirs}), E_BASE_EXISTS (1)
 */
export async function finishBase(ctx: BaseCtx, tmp: string, dst: string, name: string, kind: BaseImportResult['kind'], source: string): Promise<BaseImportResult> {
  const addedDirs = await ensureMountDirs(tmp);
  await chmod(tmp, 0o755);
  try {
    await rename(tmp, dst);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') {
      throw new BerthError('E_BASE_EXISTS', `base ${JSON.stringify(name)} already exists (${dst}); it appeared during the import`, EXIT.FAILURE);
    }
    throw e;
  }
  return { name, path: dst, size: treeSize(dst), envs: ctx.inv.envsUsingBase(name), kind, source, addedDirs };
}

/**
 * Imports a base from a directory (copied with `cp -a -x`: owners, modes, links, times kept;
 * one file system only) or a tar archive (`tar -xf --numeric-owner`; compression detected
 * by tar) into `bases/<name>`, then adds the mount-point dirs.
 * @throws BerthError, with nothing left behind: E_BAD_BASE_NAME (2), E_BASE_EXISTS (1),
 *   E_BAD_SOURCE (2: missing, unknown type, or a dir containing the workdir's bases/),
 *   E_BAD_BASE (2: see {@link ensureMountDirs}), E_IMPORT_FAILED (1: cp or tar failed),
 *   E_NOT_INITIALISED (1)
 */
export async function importBase(ctx: BaseCtx, name: string, source: string, opts: ImportOptions = {}): Promise<BaseImportResult> {
  const dst = checkNewBase(ctx.wd, name);
  if (!source) throw usageError('E_BAD_SOURCE', 'source= is required: a directory or a .tar, .tar.gz, .tar.xz or .txz archive');
  const kind = sourceKind(source);
  const src = realpathSync(source);
  const bases = realpathSync(ctx.wd.bases);
  if (kind === 'dir' && (bases === src || bases.startsWith(src === '/' ? '/' : src + '/'))) {
    throw usageError('E_BAD_SOURCE', `source=${JSON.stringify(source)} contains this node's bases dir ${bases}; the copy would include itself`, {
      hint: 'copy from a directory that holds only the root tree',
    });
  }
  const tmp = join(ctx.wd.bases, tempName('import', name));
  await mkdir(tmp, { mode: 0o700 });
  try {
    if (kind === 'dir') {
      opts.onProgress?.(`copying ${src} into ${dst} ...`);
      const w = watchTree(tmp, opts.onProgressEvent, { phase: 'copying', total: opts.onProgressEvent ? treeSize(src) : undefined });
      try {
        await run(['cp', '-a', '-x', `${src}/.`, `${tmp}/`], { errorCode: 'E_IMPORT_FAILED', errorExit: EXIT.FAILURE });
      } finally { w.stop(); }
    } else {
      opts.onProgress?.(`extracting ${src} into ${dst} ...`);
      const w = watchTree(tmp, opts.onProgressEvent, { phase: 'extracting' });
      try {
        await run(['tar', '-x', '--numeric-owner', '-f', src, '-C', tmp], { errorCode: 'E_IMPORT_FAILED', errorExit: EXIT.FAILURE });
      } finally { w.stop(); }
    }
    return await finishBase(ctx, tmp, dst, name, kind, src);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** True when the ELF image in `head` (its first bytes) has no PT_INTERP segment (static). undefined: not ELF. */
export function elfIsStatic(buf: Buffer): boolean | undefined {
  if (buf.length < 52 || buf.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const is64 = buf[4] === 2;
  const le = buf[5] === 1;
  const u16 = (o: number): number => (le ? buf.readUInt16LE(o) : buf.readUInt16BE(o));
  const u32 = (o: number): number => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const phoff = is64 ? Number(le ? buf.readBigUInt64LE(0x20) : buf.readBigUInt64BE(0x20)) : u32(0x1c);
  const phentsize = u16(is64 ? 0x36 : 0x2a);
  const phnum = u16(is64 ? 0x38 : 0x2c);
  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    if (o + 4 > buf.length) return undefined;
    if (u32(o) === 3 /* PT_INTERP */) return false;
  }
  return true;
}

/** Minimal account files of a busybox base. */
export const BUSYBOX_PASSWD = 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n';
export const BUSYBOX_GROUP = 'root:x:0:\nnogroup:x:65534:\n';

/**
 * Parses `busybox --list-full` output into applet paths relative to the root
 * (`bin/sh`, `usr/bin/env` ...); entries without a directory (`linuxrc`), absolute or `..`
 * paths and `bin/busybox` itself are dropped.
 */
export function parseAppletList(text: string): string[] {
  const out: string[] = [];
  for (const l of text.split('\n')) {
    const p = l.trim();
    if (!p || !p.includes('/') || p.startsWith('/') || p.split('/').includes('..') || p === 'bin/busybox') continue;
    out.push(posix.normalize(p));
  }
  return [...new Set(out)];
}

/**
 * Builds a minimal base from the host's static busybox (Debian `busybox-static`): dirs
 * bin sbin usr/bin usr/sbin plus {@link BASE_MOUNT_DIRS}, `bin/busybox` with a symlink to
 * `/bin/busybox` for every applet at the place `busybox --list-full` gives, and a minimal
 * `etc/passwd` and `etc/group` (root, nobody). The hostname is set by the engine, so there
 * is no etc/hostname.
 * @param opts.busybox the busybox binary (default /bin/busybox)
 * @throws BerthError E_BAD_BASE_NAME (2), E_BASE_EXISTS (1), E_NO_BUSYBOX (1: missing,
 *   not ELF, or dynamically linked, with a hint to install busybox-static)
 */
export async function busyboxBase(ctx: BaseCtx, name: string, opts: ImportOptions & { busybox?: string } = {}): Promise<BaseImportResult> {
  const dst = checkNewBase(ctx.wd, name);
  const bb = opts.busybox ?? '/bin/busybox';
  const hint = 'install it: apt-get install busybox-static (the dynamically linked busybox package does not work inside an env)';
  if (!existsSync(bb)) throw new BerthError('E_NO_BUSYBOX', `${bb} not found`, EXIT.FAILURE, { hint });
  const fh = await open(bb, 'r');
  const head = Buffer.alloc(4096);
  try { await fh.read(head, 0, head.length, 0); } finally { await fh.close(); }
  const st = elfIsStatic(head);
  if (st === undefined) throw new BerthError('E_NO_BUSYBOX', `${bb} is not an ELF executable`, EXIT.FAILURE, { hint });
  if (!st) throw new BerthError('E_NO_BUSYBOX', `${bb} is dynamically linked`, EXIT.FAILURE, { hint });
  const list = await run([bb, '--list-full'], { errorCode: 'E_NO_BUSYBOX', errorExit: EXIT.FAILURE });
  const applets = parseAppletList(list.stdout);
  const tmp = join(ctx.wd.bases, tempName('busybox', name));
  await mkdir(tmp, { mode: 0o700 });
  try {
    for (const d of ['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin']) await mkdir(join(tmp, d), { mode: 0o755 });
    await ensureMountDirs(tmp);
    await copyFile(bb, join(tmp, 'bin', 'busybox'));
    await chmod(join(tmp, 'bin', 'busybox'), 0o755);
    for (const a of applets) {
      const p = join(tmp, a);
      await mkdir(join(p, '..'), { recursive: true, mode: 0o755 });
      if (isSymlink(p) || existsSync(p)) continue;
      await symlink('/bin/busybox', p);
    }
    await writeFile(join(tmp, 'etc', 'passwd'), BUSYBOX_PASSWD, { mode: 0o644 });
    await writeFile(join(tmp, 'etc', 'group'), BUSYBOX_GROUP, { mode: 0o644 });
    return await finishBase(ctx, tmp, dst, name, 'busybox', bb);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Every base of the node (dirs under bases/ not starting with a dot), ordered by name. */
export function listBases(ctx: BaseCtx): BaseInfo[] {
  requireBasesDir(ctx.wd);
  const out: BaseInfo[] = [];
  for (const n of readdirSync(ctx.wd.bases).sort()) {
    if (n.startsWith('.')) continue;
    const p = join(ctx.wd.bases, n);
    try { if (!lstatSync(p).isDirectory()) continue; } catch { continue; }
    out.push({ name: n, path: p, size: treeSize(p), envs: ctx.inv.envsUsingBase(n) });
  }
  return out;
}

/**
 * Looks up one base. @throws BerthError E_BAD_BASE_NAME (2), E_NO_SUCH_BASE (3)
 */
export function getBase(wd: Workdir, inv: Inventory, name: string): BaseInfo {
  checkBaseName(name);
  const p = wd.base(name);
  let ok = false;
  try { ok = lstatSync(p).isDirectory(); } catch { ok = false; }
  if (!ok) throw notFound('E_NO_SUCH_BASE', `no base ${JSON.stringify(name)} in ${wd.bases}`, { hint: 'see: berth base list' });
  return { name, path: p, size: treeSize(p), envs: inv.envsUsingBase(name) };
}

/**
 * Removes `bases/<name>`: first renamed to a hidden temp name (so it disappears at once and
 * no new env can be created from it), then deleted.
 * @returns the removed base (size before removal)
 * @throws BerthError E_BAD_BASE_NAME (2), E_NO_SUCH_BASE (3), E_BASE_IN_USE (1: names the
 *   envs), E_BASE_MOUNTED (1: something is mounted under it), E_REMOVE_FAILED (1)
 */
export async function removeBase(ctx: BaseCtx, name: string): Promise<BaseInfo> {
  const info = getBase(ctx.wd, ctx.inv, name);
  const inUse = (envs: string[]): BerthError => new BerthError('E_BASE_IN_USE',
    `base ${JSON.stringify(name)} is used by ${envs.length} env(s): ${envs.join(', ')}`, EXIT.FAILURE,
    { hint: 'remove those envs first (berth jremove)', details: { envs } });
  if (info.envs.length) throw inUse(info.envs);
  if (ctx.mounts) {
    const mounted = mountsUnder(await (await ctx.mounts()).list(), realpathSync(info.path));
    if (mounted.length) {
      throw new BerthError('E_BASE_MOUNTED', `base ${JSON.stringify(name)} has mounts under it: ${mounted.map((m) => m.target).join(', ')}`, EXIT.FAILURE, {
        hint: 'stop the envs using it (or unmount them) first',
      });
    }
  }
  const tmp = join(ctx.wd.bases, tempName('remove', name));
  await rename(info.path, tmp);
  const again = ctx.inv.envsUsingBase(name);
  if (again.length) {
    await rename(tmp, info.path);
    throw inUse(again);
  }
  try {
    if (process.platform === 'freebsd') await run(['chflags', '-R', 'noschg,nosunlnk', tmp], { check: false });
    await rm(tmp, { recursive: true, force: true });
  } catch (e) {
    throw new BerthError('E_REMOVE_FAILED', `could not delete ${tmp} (base ${name}): ${(e as Error).message}`, EXIT.FAILURE, {
      hint: `the base is gone from the list; delete ${tmp} by hand`, cause: e,
    });
  }
  return info;
}
