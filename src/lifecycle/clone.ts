/**
 * `jclone old= new= [host_hostname=] [ip4_addr=]`: a new env made from a stopped one
 * (design/product.md "Storage hook contract", clone offload; CBSD jclone,
 * cbsd-behaviour.md §8.1).
 *
 * Order:
 * 1. checks that change nothing: both names valid, `old` registered here, stopped (CBSD
 *    `checkstate=1`: a running env is refused, exit 1);
 *    `new` neither registered nor waiting in jails-rcconf/ (exit 1); the new settings valid;
 * 2. `old` is claimed in the inventory (status Maintenance) so nothing starts it meanwhile,
 *    and its storage is mounted around the whole clone (mnt_start/mnt_stop, action `clone`),
 *    then its identity and its lease are checked (this node must own it, exit 4: only now,
 *    because the sysdir holding the lease may be on that storage), and nothing may be mounted
 *    inside its data dir;
 * 3. `new` inherits `old`'s mnt_start/mnt_stop: its dirs are created, its mnt_start runs
 *    (action `clone`) and its data dir, sysdir and fstab dir must then be empty (else the
 *    clone is refused and nothing is deleted); this node takes `new`'s lease;
 * 4. data, by the first that applies:
 *    - a clone hook: the executables in `jails-system/<old>/clone-local.d/` (name order),
 *      then `clone_script=` of old. The storage makes the copy (a NAS, `rbd clone`, a CephFS
 *      snapshot, a server-side copy), so berth copies nothing; the hooks must fill
 *      `$newdata`, which is checked to be non-empty after. Unlike CBSD this also works with
 *      mnt_start set (the new env's storage is mounted before the hook runs);
 *    - `zfsfeat=1` and no mnt_start (CBSD turns zfsfeat off when mnt_start is set):
 *      `zfs snapshot <ds>@berth-clone-<new>` + `zfs clone -o mountpoint=<newdata>`;
 *    - else a local copy of old's data dir (modes, owners, symlinks, hard links, device
 *      nodes, FIFOs and timestamps kept; sockets skipped; no ACLs or extended attributes),
 *      reporting bytes copied to `onProgress`;
 * 5. fstab and fstab.local copied with paths rewritten old → new
 *    ({@link rewriteFstabForClone}); every entry of old's sysdir except its lease,
 *    descriptor and logs (the hook dirs) copied; the new descriptor (new uuid, host_hostname
 *    given or `<new>`, ip4_addr given or old's, paths of new) and inventory row written;
 *    new's mnt_stop runs.
 * A failure at any step leaves no trace of `new`: inventory row, lease, ZFS dataset, files
 * in its dirs and the dirs berth created are removed, and new's mnt_stop runs. `old` is left
 * as it was (status Off). All hook output of a clone goes to old's log (var/log/<old>.log),
 * so a failed clone leaves no log of `new` either.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { constants as FS, existsSync, type Stats } from 'node:fs';
import { chmod, copyFile, lchown, link, lstat, lutimes, mkdir, readdir, readFile, readlink, rm, rmdir, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { engineEnv } from '../engines/types.js';
import { BerthError, EXIT, engineError, ownedError, toBerthError, usageError } from '../errors.js';
import { writeDescriptor, type EnvConf } from '../descriptor.js';
import { rewriteFstabForClone } from '../fstab.js';
import { checkHookSafe, cbsdHookVars, listHookDir, runHookDir, runStorageHook, type HookEnv } from '../hooks.js';
import { STATUS } from '../inventory.js';
import { acquireEnvLease, journal, publishDescriptor, releaseEnvLease } from '../ownership/leases.js';
import { effectiveHooks, hookEnv, withStorage } from './storage.js';
import { emptyDir, isEmptyDir } from './files.js';
import { getEnv, stopCommand } from './envs.js';
import { recoverStaleClaim } from './teardown.js';
import { validateSettings } from './settings.js';
import { type EnvInfo, type OpOptions } from './types.js';
import { warn } from '../log.js';
import { mountsUnder } from '../mounts/types.js';
import { checkJname } from '../names.js';
import type { NodeCtx } from '../node.js';
import { run } from '../proc.js';

/** What {@link cloneEnv} is asked to do. */
export interface CloneInput {
  /** the source env (registered here, stopped, owned by this node) */
  old: string;
  /** the new env's name */
  new: string;
  /** host name of the clone (default: its jname) */
  host_hostname?: string;
  /** address of the clone (default: old's; with vnet=1 both then cannot run at once) */
  ip4_addr?: string;
}

/** Options of {@link cloneEnv}. */
export interface CloneOptions extends OpOptions {
  /**
   * Called while berth copies data itself (local copy only): bytes copied so far and the total
   * bytes of regular files to copy, both in bytes. First call (0, total), last (total, total).
   */
  onProgress?: (copiedBytes: number, totalBytes: number) => void;
}

/** How the data was cloned. */
export type CloneMethod = 'hook' | 'zfs' | 'copy';

/** Result of {@link cloneEnv}. */
export interface CloneResult {
  old: string;
  /** the new env, as jls reports it */
  env: EnvInfo;
  method: CloneMethod;
  /** clone hooks run (full paths, in order); [] unless method is 'hook' */
  hooks: string[];
  /** local copy: bytes of regular file data copied, and entries created */
  bytes?: number;
  entries?: number;
  /** zfs: the snapshot and the dataset made */
  zfs?: { snapshot: string; dataset: string };
  /** disks the engine cloned outside the data dir (Engine.cloneDisks), e.g. `rbd:rbd/vm2-dsk1` */
  disks?: string[];
  /** wall time of the data step, milliseconds */
  dataMs: number;
  /** wall time of the whole clone, milliseconds */
  totalMs: number;
  /** things the administrator should know (e.g. an inherited address that will clash) */
  warnings: string[];
}

/** The argv a ZFS clone runs, and how to undo it. */
export interface ZfsClonePlan {
  snapshot: string;
  dataset: string;
  /** run in order */
  argv: string[][];
  /** run in order to undo a finished or half-done clone (errors ignored) */
  undo: string[][];
}

/**
 * The ZFS commands of a clone of dataset `oldDataset` (mounted on old's data dir) for env
 * `newJname` whose data dir is `newData`: snapshot `<ds>@berth-clone-<new>` (CBSD:
 * `@cbsd-original-<new>`), then `zfs clone -o mountpoint=<newData>` into a sibling dataset
 * named `<new>-data` (CBSD's jails-data/<jname>-data naming). Pure; nothing runs.
 */
export function zfsClonePlan(oldDataset: string, newJname: string, newData: string): ZfsClonePlan {
  const parent = oldDataset.includes('/') ? oldDataset.slice(0, oldDataset.lastIndexOf('/')) : oldDataset;
  const snapshot = `${oldDataset}@berth-clone-${newJname}`;
  const dataset = `${parent}/${newJname}-data`;
  return {
    snapshot,
    dataset,
    argv: [['zfs', 'snapshot', snapshot], ['zfs', 'clone', '-o', `mountpoint=${newData}`, snapshot, dataset]],
    undo: [['zfs', 'destroy', dataset], ['zfs', 'destroy', snapshot]],
  };
}

/**
 * The ZFS dataset mounted exactly on `dir`, or undefined when `dir` is not the mount point of a
 * dataset of its own (then a clone falls back to a local copy).
 */
async function zfsDatasetOf(dir: string): Promise<string | undefined> {
  const r = await run(['zfs', 'list', '-H', '-o', 'name,mountpoint', dir], { check: false });
  if (r.exitCode !== 0) return undefined;
  const [name, mp] = r.stdout.trim().split('\t');
  return name && mp === dir ? name : undefined;
}

// ---------------------------------------------------------------------------------------------
// Local copy

/** Entries of one directory handled at once by {@link copyTree} and {@link measureTree}. */
const PARALLEL = 8;

/**
 * Runs `fn` over `items`, at most `n` at a time. After the first failure no new item starts;
 * the in-flight ones are waited for (so nothing is still writing when the caller cleans up),
 * then the first error is thrown.
 */
async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  let first: unknown;
  const worker = async () => {
    while (!failed && next < items.length) {
      const it = items[next++]!;
      try { await fn(it); } catch (e) { if (!failed) { failed = true; first = e; } }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  if (failed) throw first;
}

/** Counts of a tree: bytes of regular files (what progress measures) and entries. */
async function measureTree(dir: string): Promise<{ bytes: number; entries: number }> {
  let bytes = 0;
  let entries = 0;
  const walk = async (d: string): Promise<void> => {
    await pool(await readdir(d), PARALLEL, async (n) => {
      const p = join(d, n);
      const st = await lstat(p);
      entries++;
      if (st.isDirectory()) await walk(p);
      else if (st.isFile()) bytes += st.size;
    });
  };
  await walk(dir);
  return { bytes, entries };
}

/** Linux dev_t → [major, minor] (glibc encoding). */
export function devNumbers(rdev: number): [number, number] {
  // major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfff); minor = (dev & 0xff) | ((dev >> 12) & ~0xff)
  const hi = Math.floor(rdev / 2 ** 32);
  const mid = Math.floor(rdev / 4096) % 2 ** 32;
  return [Math.floor(rdev / 256) % 4096 + (hi - (hi % 4096)), (rdev % 256) + (mid - (mid % 256))];
}

/** Files at least this big get progress while copyFile runs (polled from the target's size). */
const POLL_SIZE = 8 << 20;
const POLL_MS = 200;

/** Result of {@link copyTree}. */
export interface CopyTreeResult {
  /** bytes of regular file data copied */
  bytes: number;
  /** entries created (files, dirs, links, nodes) */
  entries: number;
  /** sockets (not copied; they mean nothing without their process) */
  skipped: string[];
}

/**
 * Copies the contents of directory `src` into the existing, empty directory `dst` as
 * `cp -a src/. dst/` does: regular files (copyFile; a reflink where the file system offers
 * one, e.g. XFS or btrfs), directories, symlinks (verbatim), hard links within the tree (kept
 * as links), FIFOs and device nodes (mkfifo(1)/mknod(1)); owner, group, mode
 * (setuid/setgid/sticky included) and access/modification times of every entry, and those of
 * `dst` itself, are set to the source's. Sockets are skipped (listed in `skipped`). ACLs,
 * extended attributes and file flags are not copied. Mounts inside `src` are not detected
 * here (the caller refuses them). Up to {@link PARALLEL} entries per directory are copied at
 * once; on an error the copy stops, waits for what is in flight, and throws (the partial
 * copy is left for the caller to remove).
 * @param onProgress (copiedBytes, totalBytes) in bytes: at the start (after a first walk
 *   that sums the sizes), after each file, and every 200 ms while a file of 8 MiB or more is
 *   copied. Without it there is no first walk.
 * @throws Node fs errors (ENOSPC, EACCES ...) and BerthError from mkfifo/mknod
 */
export async function copyTree(src: string, dst: string, onProgress?: (copied: number, total: number) => void): Promise<CopyTreeResult> {
  const total = onProgress ? (await measureTree(src)).bytes : 0;
  let copied = 0;
  let entries = 0;
  const skipped: string[] = [];
  /** dev:ino of a multiply-linked source file -> its first copy, once that copy is complete */
  const links = new Map<string, Promise<string>>();
  const report = (extra = 0) => onProgress?.(copied + extra, Math.max(total, copied + extra));
  const uid = process.geteuid?.() ?? 0;
  const gid = process.getegid?.() ?? 0;
  // BSD gives a new file its directory's group, Linux the process's (unless the dir is setgid)
  const bsdGroups = process.platform !== 'linux';
  report();

  /**
   * Owner, mode and times of a created entry. `modeSet`: the mode is already the source's
   * (copyFile sets it); new entries belong to this process, so chown only when the source's
   * owner differs (chown clears setuid/setgid, so chmod follows it).
   */
  const setMeta = async (p: string, st: Stats, kind: 'file' | 'dir' | 'link' | 'node', inSetgidDir: boolean) => {
    const chown = st.uid !== uid || st.gid !== gid || inSetgidDir || bsdGroups;
    if (chown) await lchown(p, st.uid, st.gid);
    if (kind === 'link') { await lutimes(p, st.atimeMs / 1000, st.mtimeMs / 1000); return; }
    if (kind !== 'file' || chown) await chmod(p, st.mode & 0o7777);
    await utimes(p, st.atimeMs / 1000, st.mtimeMs / 1000);
  };

  const copyFileWithProgress = async (s: string, d: string, size: number) => {
    if (!onProgress || size < POLL_SIZE) {
      await copyFile(s, d, FS.COPYFILE_EXCL | FS.COPYFILE_FICLONE);
      return;
    }
    const timer = setInterval(() => {
      stat(d).then((st) => report(Math.min(st.size, size)), () => undefined);
    }, POLL_MS);
    try {
      await copyFile(s, d, FS.COPYFILE_EXCL | FS.COPYFILE_FICLONE);
    } finally {
      clearInterval(timer);
    }
  };

  const copyDir = async (s: string, d: string, setgid: boolean): Promise<void> => {
    await pool((await readdir(s)).sort(), PARALLEL, async (n) => {
      const sp = join(s, n);
      const dp = join(d, n);
      const st = await lstat(sp);
      if (st.isDirectory()) {
        await mkdir(dp, 0o700);
        entries++;
        await copyDir(sp, dp, false); // dp is not setgid until its chmod below
        await setMeta(dp, st, 'dir', setgid);
        return;
      }
      let done: ((v: string) => void) | undefined;
      let failed: ((e: unknown) => void) | undefined;
      if (st.nlink > 1 && !st.isSymbolicLink()) {
        const key = `${st.dev}:${st.ino}`;
        const first = links.get(key);
        if (first) { await link(await first, dp); entries++; return; }
        const p = new Promise<string>((res, rej) => { done = res; failed = rej; });
        p.catch(() => undefined); // awaited by later names only; a failure is reported by this copy
        links.set(key, p);
      }
      try {
        if (st.isFile()) {
          await copyFileWithProgress(sp, dp, st.size);
          copied += st.size;
          await setMeta(dp, st, 'file', setgid);
          report();
        } else if (st.isSymbolicLink()) {
          await symlink(await readlink(sp), dp);
          await setMeta(dp, st, 'link', setgid);
        } else if (st.isFIFO()) {
          await run(['mkfifo', dp]);
          await setMeta(dp, st, 'node', setgid);
        } else if (st.isCharacterDevice() || st.isBlockDevice()) {
          const [major, minor] = devNumbers(st.rdev);
          await run(['mknod', dp, st.isCharacterDevice() ? 'c' : 'b', String(major), String(minor)]);
          await setMeta(dp, st, 'node', setgid);
        } else {
          skipped.push(sp); // a socket
          done?.(dp);
          return;
        }
        entries++;
        done?.(dp);
      } catch (e) {
        failed?.(e);
        throw e;
      }
    });
  };

  await copyDir(src, dst, ((await stat(dst)).mode & 0o2000) !== 0);
  await setMeta(dst, await lstat(src), 'dir', true);
  report();
  return { bytes: copied, entries, skipped };
}

// ---------------------------------------------------------------------------------------------
// Clone hooks

/** The clone hooks of an env: executables in clone-local.d (name order), then clone_script. */
function cloneHooks(sysdir: string, conf: EnvConf): string[] {
  const out = listHookDir(join(sysdir, 'clone-local.d'));
  if (conf.clone_script && conf.clone_script !== '0') out.push(conf.clone_script);
  return out;
}

/**
 * Runs the clone hooks through src/hooks.ts (same rules as every hook: safety check, log,
 * process-group timeout, stdin /dev/null). clone-local.d runs as a hook dir; clone_script
 * runs as a one-entry hook dir (a symlink to it in a private temp dir under var/run), so both
 * get the same environment. Error messages name the real script.
 */
async function runCloneHooks(ctx: NodeCtx, sysdir: string, conf: EnvConf, henv: HookEnv): Promise<string[]> {
  const ran: string[] = [];
  const dir = join(sysdir, 'clone-local.d');
  if (listHookDir(dir).length) ran.push(...(await runHookDir(dir, 'clone', henv, { stopOnError: true })).ran);
  const script = conf.clone_script;
  if (script && script !== '0') {
    const tmp = join(ctx.wd.runDir, `clone-${randomBytes(6).toString('hex')}`);
    const hookDir = join(tmp, 'clone_script');
    const linkPath = join(hookDir, basename(script));
    await mkdir(hookDir, { recursive: true, mode: 0o700 });
    try {
      await symlink(script, linkPath);
      try {
        await runHookDir(hookDir, 'clone', henv, { stopOnError: true });
      } catch (e) {
        const be = toBerthError(e);
        throw new BerthError(be.code, be.message.split(linkPath).join(script).replace(/^clone_script script/, 'clone_script'), be.exitCode,
          { hint: be.hint, details: { ...be.details, hook: script }, cause: e });
      }
      ran.push(script);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
  return ran;
}

// ---------------------------------------------------------------------------------------------
// The clone

/** Entries of old's sysdir that are not copied to new's (old's own identity and history). */
function copySysdirEntry(name: string, oldJname: string): boolean {
  if (name === 'lease' || name === `rc.conf_${oldJname}` || name === 'locked') return false;
  if (/\.log(\.\d+)?$/.test(name) || name === 'logs' || name.startsWith('.tmp')) return false;
  return true;
}


/** What exists of the new env so far (for the undo). */
interface NewState {
  made: string[];
  /** new's mnt_start ran and its mnt_stop has not */
  mounted: boolean;
  /** new's dirs were found empty and this run holds new's lease: their contents are ours */
  owned: boolean;
  leaseGen: number;
  zfs?: ZfsClonePlan;
  /** removes the disks Engine.cloneDisks made (RBD clones) */
  diskUndo?: () => Promise<void>;
  inserted: boolean;
  committed: boolean;
}

/**
 * jclone (see the module notes for the order and rules).
 * @throws BerthError E_BAD_JNAME / E_BAD_VALUE / E_NO_OLD / E_NO_NEW (2), E_NO_SUCH_ENV (3),
 *   E_RUNNING / E_ENV_EXISTS (1), E_BUSY and lease errors (4), E_IDENTITY / E_MOUNTED (5),
 *   E_CLONE_NO_DATA (1: the clone hooks left new's data empty), E_COPY (1: the local copy
 *   failed, e.g. ENOSPC), hook errors (the hook's exit code, 124 on timeout, 1 when refused
 *   as unsafe; clone hooks are bounded by old's mnt_timeout like every hook), zfs/mknod
 *   failures (5)
 */
export async function cloneEnv(ctx: NodeCtx, input: CloneInput, opts: CloneOptions = {}): Promise<CloneResult> {
  const t0 = performance.now();
  if (!input.old) throw usageError('E_NO_OLD', 'jclone needs old=<source env>');
  if (!input.new) throw usageError('E_NO_NEW', 'jclone needs new=<name of the clone>');
  const oldName = checkJname(input.old);
  const newName = checkJname(input.new);
  if (oldName === newName) throw usageError('E_BAD_VALUE', `old and new are both ${JSON.stringify(oldName)}: give the clone another name`);
  const given: Record<string, string> = {};
  if (input.host_hostname !== undefined) given.host_hostname = input.host_hostname;
  if (input.ip4_addr !== undefined) given.ip4_addr = input.ip4_addr;
  validateSettings(given);

  const row = getEnv(ctx, oldName);
  if (row.status === STATUS.ON) {
    throw new BerthError('E_RUNNING', `${oldName} is running; stop it before cloning (a running env's data is not consistent): ${stopCommand(row)}`, EXIT.FAILURE);
  }
  if (row.status !== STATUS.OFF) throw ownedError('E_BUSY', `${oldName} is busy (a start, stop, remove or clone is in progress on this node)`, { hint: 'wait and retry' });
  if (ctx.inv.get(newName)) throw new BerthError('E_ENV_EXISTS', `env ${newName} already exists on node ${ctx.nodename}`, EXIT.FAILURE);
  const np = ctx.wd.env(newName);
  if (existsSync(np.rcconfFile)) {
    throw new BerthError('E_ENV_EXISTS', `an unregistered env ${newName} exists (${np.rcconfFile})`, EXIT.FAILURE, { hint: `adopt it with berth jregister jname=${newName}, or pick another name` });
  }
  const op = ctx.wd.env(oldName, row.conf.data);
  const warnings: string[] = [];
  const newConf: EnvConf = {
    ...row.conf,
    jname: newName,
    uuid: randomUUID(),
    host_hostname: given.host_hostname ?? newName,
    ip4_addr: given.ip4_addr ?? row.conf.ip4_addr ?? '0',
    path: np.path, data: np.data, mount_fstab: np.fstab, rcconf: np.rcconfFile,
    created_by_node: ctx.nodename,
  };
  const engine = await ctx.engine(row.emulator);
  engine.cloneConf?.(newConf);
  engine.validate(newConf);
  const inherited = newConf.ip4_addr ?? '0';
  if (given.ip4_addr === undefined && !['0', '', 'DHCP', 'DHCPv6', 'REALDHCP'].includes(inherited)) {
    warnings.push(`${newName} has the same ip4_addr as ${oldName} (${inherited})${newConf.vnet === '1' ? '; with vnet=1 the two cannot run at the same time' : ''}: give it its own with berth jset jname=${newName} ip4_addr=...`);
  }
  // The lease is checked once old's storage is mounted: the sysdir holding it may be on
  // storage that only mnt_start makes visible.

  const claim = `clone-${randomUUID()}`;
  await recoverStaleClaim(ctx, ctx.inv.get(oldName)!); // a dead command's claim on old is cleaned up first
  if (!ctx.inv.claimStart(oldName, claim)) throw ownedError('E_BUSY', `${oldName} is busy (a start, stop, remove or clone is in progress on this node)`, { hint: 'wait and retry' });

  const st: NewState = { made: [], mounted: false, owned: false, leaseGen: 0, inserted: false, committed: false };
  const newHooks = effectiveHooks(ctx, newConf);
  // every hook output of the clone goes to old's log: a failed clone leaves no log of new
  const newHenv: HookEnv = { ...hookEnv(ctx, newName, newConf, opts), logFile: op.log };
  const mntStartNew = async () => { st.mounted = true; await runStorageHook('mnt_start', newHooks.start, 'clone', newHenv); };
  const mntStopNew = async () => { await runStorageHook('mnt_stop', newHooks.stop, 'clone', newHenv); st.mounted = false; };

  const undo = async (remount: boolean) => {
    const step = async (what: string, f: () => Promise<unknown>) => {
      try { await f(); } catch (e) { await warn({ jname: newName, step: what, err: String(e) }, 'jclone: undo step failed'); }
    };
    if (st.inserted) { ctx.inv.delete(newName); st.inserted = false; }
    let canClean = st.owned;
    if (canClean && remount && !st.mounted) {
      try { await mntStartNew(); } catch (e) {
        canClean = false; // its storage cannot be reached: do not delete through an unmounted dir
        await warn({ jname: newName, err: String(e) }, 'jclone: mnt_start of the clone failed during undo; its files on the storage are left');
      }
    }
    if (canClean) {
      if (st.diskUndo) await step('remove the cloned disks', st.diskUndo);
      if (st.zfs) for (const argv of st.zfs.undo) await step(argv.join(' '), () => run(argv));
      if (st.leaseGen) await step('release lease', () => releaseEnvLease(ctx, { jname: newName, generation: st.leaseGen }));
      if (st.leaseGen === 1) await step('remove the ownership record', () => rm(np.lease, { recursive: true, force: true }));
      else if (st.leaseGen) await step('withdraw the descriptor copy', () => rm(np.recordDescriptor, { force: true }));
      for (const d of [np.data, np.sysdir, np.fstabDir]) await step(`empty ${d}`, () => emptyDir(d));
    }
    if (st.mounted) await step('mnt_stop', mntStopNew);
    const table = await (await ctx.mounts()).list();
    for (const d of [...st.made].reverse()) {
      if (!table.some((m) => m.target === d)) await rmdir(d).catch(() => undefined);
    }
  };

  let method: CloneMethod = 'copy';
  let ran: string[] = [];
  let copyRes: CopyTreeResult | undefined;
  let disks: string[] = [];
  let dataMs = 0;
  try {
    await withStorage(ctx, oldName, row.conf, { action: 'clone', uuid: row.uuid, lease: { generation: row.generation, uuid: row.uuid } }, opts, async () => {
      const inner = mountsUnder(await (await ctx.mounts()).list(), op.data).filter((m) => m.target !== op.data);
      if (inner.length) {
        throw engineError('E_MOUNTED', `${inner[0]!.target} is mounted inside ${op.data}; refusing to clone through a mount`, { hint: `unmount it first: umount ${inner[0]!.target}` });
      }
      const hooks = cloneHooks(op.sysdir, row.conf);
      for (const h of hooks) checkHookSafe(h);
      let zfsDs: string | undefined;
      if (hooks.length) method = 'hook';
      else if (ctx.settings.zfsfeat === 1 && effectiveHooks(ctx, row.conf).start === '0') {
        zfsDs = await zfsDatasetOf(op.data);
        if (zfsDs) method = 'zfs';
        else warnings.push(`zfsfeat=1 but ${op.data} is not a ZFS dataset of its own: copied instead`);
      }

      try {
        for (const d of [np.data, np.sysdir, np.fstabDir]) {
          if (!existsSync(d)) { await mkdir(d, { recursive: true }); st.made.push(d); }
        }
        await mntStartNew();
        for (const d of [np.data, np.sysdir, np.fstabDir]) {
          if (!(await isEmptyDir(d))) {
            throw new BerthError('E_ENV_EXISTS', `${d} already holds files; refusing to clone ${oldName} into ${newName} over them (nothing was deleted)`, EXIT.FAILURE,
              { hint: `if that is an existing env, adopt it with berth jregister jname=${newName}; else pick another name` });
          }
        }
        st.leaseGen = (await acquireEnvLease(ctx, newName, newConf.uuid!)).generation;
        st.owned = true;

        const td = performance.now();
        if (method === 'hook') {
          const extra = {
            ...cbsdHookVars(row.conf), jname: oldName, data: op.data,
            newjname: newName, newdata: np.data,
            BERTH_NEW_JNAME: newName, BERTH_NEW_DATA: np.data, BERTH_NEW_SYSDIR: np.sysdir, BERTH_NEW_FSTAB_DIR: np.fstabDir,
          };
          ran = await runCloneHooks(ctx, op.sysdir, row.conf, { ...hookEnv(ctx, oldName, row.conf, opts, extra) });
          if (await isEmptyDir(np.data)) {
            throw new BerthError('E_CLONE_NO_DATA', `the clone hooks of ${oldName} (${ran.join(', ')}) exited 0 but left ${np.data} empty; a clone hook must create the new env's data`, EXIT.FAILURE,
              { hint: `see var/log/${oldName}.log; the hook gets the new data dir as $newdata` });
          }
        } else if (method === 'zfs') {
          const plan = zfsClonePlan(zfsDs!, newName, np.data);
          st.zfs = plan;
          for (const argv of plan.argv) await run(argv, { errorCode: 'E_ZFS' });
        } else {
          try {
            copyRes = await copyTree(op.data, np.data, opts.onProgress);
          } catch (e) {
            if (e instanceof BerthError) throw e;
            throw new BerthError('E_COPY', `copying ${op.data} to ${np.data} failed: ${(e as Error).message}`, EXIT.FAILURE,
              { hint: 'check free space and the file systems of both dirs (berth doctor); nothing of the clone was kept', cause: e });
          }
          if (copyRes.skipped.length) warnings.push(`${copyRes.skipped.length} socket(s) not copied, e.g. ${copyRes.skipped[0]}`);
        }
        // disks outside the data dir (RBD images): the engine clones them and renames the rows
        if (engine.cloneDisks) {
          const c = await engine.cloneDisks(engineEnv(ctx, oldName, row.conf), engineEnv(ctx, newName, newConf));
          st.diskUndo = c.undo;
          disks = c.made;
        }
        dataMs = Math.round(performance.now() - td);

        for (const [from, to] of [[op.fstab, np.fstab], [op.fstabLocal, np.fstabLocal]] as const) {
          if (existsSync(from)) await writeFile(to, rewriteFstabForClone(await readFile(from, 'utf8'), oldName, newName));
        }
        for (const n of await readdir(op.sysdir)) {
          if (!copySysdirEntry(n, oldName)) continue;
          const dst = join(np.sysdir, n);
          const st0 = await lstat(join(op.sysdir, n));
          if (st0.isDirectory()) {
            await mkdir(dst);
            await copyTree(join(op.sysdir, n), dst);
          } else if (st0.isSymbolicLink()) {
            // copied as a link, never followed: it could point at a host file (/etc/shadow)
            await symlink(await readlink(join(op.sysdir, n)), dst);
          } else if (st0.isFile()) {
            await copyFile(join(op.sysdir, n), dst, FS.COPYFILE_EXCL);
          }
        }
        await writeDescriptor(np.descriptor, newConf, ctx.wd.root);
        await publishDescriptor(ctx, newName, newConf);
        ctx.inv.insert({ jname: newName, uuid: newConf.uuid!, emulator: row.emulator, generation: st.leaseGen, conf: newConf });
        st.inserted = true;
        if (!existsSync(np.path)) { await mkdir(np.path, { recursive: true }); st.made.push(np.path); }
        await mntStopNew();
        st.committed = true;
      } catch (e) {
        await undo(false);
        throw e;
      }
    });
  } catch (e) {
    // new was complete but old's mnt_stop failed: the clone as a whole failed, so undo it too
    if (st.committed) await undo(true);
    throw e;
  } finally {
    ctx.inv.finishTeardown(oldName);
  }

  const r = ctx.inv.get(newName)!;
  await journal(ctx, 'own', r, 'clone');
  const env: EnvInfo = { jname: r.jname, uuid: r.uuid, emulator: r.emulator, status: 'Off', jid: 0, generation: r.generation, conf: r.conf };
  return {
    old: oldName, env, method, hooks: ran,
    ...(copyRes ? { bytes: copyRes.bytes, entries: copyRes.entries } : {}),
    ...(st.zfs ? { zfs: { snapshot: st.zfs.snapshot, dataset: st.zfs.dataset } } : {}),
    ...(disks.length ? { disks } : {}),
    dataMs, totalMs: Math.round(performance.now() - t0), warnings,
  };
}
