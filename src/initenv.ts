/**
 * `berth initenv`: initialise (or re-initialise) a node's workdir, non-interactively.
 * CBSD's initenv (cbsd-behaviour.md §2) reduced to what berth needs and made safe to re-run:
 *
 * - every input is validated BEFORE anything is written; bad input changes nothing (the
 *   workdir is not even created);
 * - creates the layout of design/product.md "Workdir layout" ({@link Workdir.layoutDirs});
 * - `nodename`: on first init the `nodename=` argument, else the hostname (CBSD
 *   `nodename=auto`); on a re-run the existing name is kept unless `nodename=` is given.
 *   Renaming a node whose inventory holds envs is refused (E_NODENAME_IN_USE, exit 1): the
 *   leases on shared storage name the node, so a rename would orphan them;
 * - `etc/berth.conf`: existing settings are kept on a re-run, the keys given override them,
 *   unknown keys are kept (CBSD's re-run resets zfsfeat to the detected value, §2.5;
 *   berth does not);
 * - `zfsfeat=1` needs the workdir on ZFS (`zfs get -Ho value name <workdir>` succeeds, as
 *   CBSD's init_zfs_feat); `hammerfeat=1` needs DragonFly and `hammer2 info <workdir>`.
 *   Otherwise refused with E_NO_ZFS / E_NO_HAMMER (exit 2);
 * - `var/db` on a network or cluster file system (NFS, GlusterFS, CephFS, SMB, any FUSE ...)
 *   is refused with E_VARDB_NETWORK_FS (exit 2): SQLite's WAL needs shared memory and POSIX
 *   locks that these do not provide (https://www.sqlite.org/wal.html "WAL does not work over
 *   a network filesystem");
 * - creates or migrates the inventory `var/db/local.sqlite` (src/inventory.ts);
 * - writes the agent API token `etc/api.token` (32 random bytes, hex, one line, mode 0600)
 *   when missing;
 * - copies the repository's `share/examples/` into `<workdir>/share/examples/`, only files
 *   missing in the destination (CBSD stage 2 copies share/examples the same way, §2.3).
 *
 * Writes happen in an order that keeps a half-failed run invisible: dirs, inventory, token,
 * examples, berth.conf, and `nodename` last (openNode needs `nodename` and the inventory).
 * When a write fails, what this run created is removed again and berth.conf is restored.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, realpathSync, statSync, lstatSync } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, readFile, readdir, readlink, rmdir, symlink, unlink } from 'node:fs/promises';
import { hostname, type as osType } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { BerthError, EXIT, usageError } from './errors.js';
import { Inventory } from './inventory.js';
import { readKV, type KV } from './kvfile.js';
import { checkNodename } from './names.js';
import { mountPrimitive } from './node.js';
import { detectPlatform } from './platform.js';
import { Ownership } from './ownership/store.js';
import { Workdir, resolveWorkdir } from './paths.js';
import { SETTING_DEFAULTS, toSettings, writeSettings } from './settings.js';
import { succeeds } from './proc.js';
import { packageRoot } from './pkg.js';

/** The setting keys initenv takes (etc/berth.conf keys), in the order berth.conf lists them. */
export const INITENV_SETTING_KEYS = ['zfsfeat', 'hammerfeat', 'lease_ttl', 'mnt_timeout', 'default_mnt_start', 'default_mnt_stop', 'api_port', 'lease_dir',
  'console_port', 'console_bind', 'tls_cert', 'tls_key', 'console_stats_sec'] as const;
export type InitenvSettingKey = (typeof INITENV_SETTING_KEYS)[number];

/** Arguments of {@link initenv}. Values are strings as given on the command line. */
export interface InitenvOptions {
  /** workdir (default: BERTH_WORKDIR, else the platform default) */
  workdir?: string;
  /** this node's name (default: kept on a re-run, the hostname on first init) */
  nodename?: string;
  /** settings to set; missing keys keep their current (or default) value */
  settings?: Partial<Record<InitenvSettingKey, string>>;
}

/** Host probes initenv uses; replaceable in tests. */
export interface InitenvProbes {
  /** the host name (default os.hostname()) */
  hostname(): string;
  /** true when `path` is on a ZFS dataset (`zfs get -Ho value name <path>` exits 0) */
  isZfs(path: string): Promise<boolean>;
  /** true on DragonFly when `hammer2 info <path>` exits 0 */
  isHammer(path: string): Promise<boolean>;
  /** the file system type holding `path` (src/mounts MountPrimitive.fsType) */
  fsType(path: string): Promise<string>;
  /** the directory whose contents are copied to <workdir>/share/examples (default: the package's share/examples) */
  examplesDir(): string | undefined;
}

/** What {@link initenv} did. Paths absolute. */
export interface InitenvResult {
  workdir: string;
  nodename: string;
  /** true when the workdir was not initialised before (no nodename file or no inventory) */
  firstInit: boolean;
  /** the nodename before this run when it changed */
  previousNodename?: string;
  /** etc/berth.conf as written (all keys) */
  settings: KV;
  /** setting keys whose value this run changed (all keys on first init) */
  changedSettings: string[];
  /** dirs and files this run created, in creation order */
  created: string[];
  /** file system facts: type holding var/db, whether the workdir is on ZFS / HAMMER2 */
  fs: { varDb: string; zfs: boolean; hammer: boolean };
  inventory: { file: string; schemaVersion: number };
  /** path of the API token file (the token itself is never printed) */
  apiToken: string;
}

/**
 * File system types that may not hold `var/db`: network and cluster file systems, where
 * SQLite WAL (shared-memory index, POSIX locks) is unsafe. FUSE types are refused as a class
 * (`fuse.glusterfs`, `fuse.ceph-fuse` (CephFS through ceph-fuse), `fuse.sshfs` ... on Linux;
 * `fusefs.*` on FreeBSD); the FUSE types of the storages berth ships hooks for are listed by
 * name as well.
 */
export const NETWORK_FS_TYPES: readonly string[] = [
  'nfs', 'nfs4', 'cifs', 'smb', 'smb3', 'smbfs', 'ceph', 'glusterfs', '9p', 'afs', 'lustre', 'gpfs', 'beegfs',
  'ocfs2', 'gfs2', 'davfs', 'ncpfs', 'fuse', 'fusefs', 'moosefs', 'orangefs', 'pvfs2',
  'fuse.glusterfs', 'fuse.ceph-fuse', 'fusefs.glusterfs', 'fusefs.ceph-fuse',
];

/** True when `fstype` is a network, cluster or FUSE file system (see {@link NETWORK_FS_TYPES}). */
export function isNetworkFs(fstype: string): boolean {
  const t = fstype.toLowerCase();
  return NETWORK_FS_TYPES.includes(t) || t.startsWith('fuse.') || t.startsWith('fusefs.');
}

/** The nearest existing ancestor of `path` (itself when it exists), symlinks resolved. */
export function nearestExisting(path: string): string {
  let p = resolve(path);
  for (;;) {
    if (existsSync(p)) return realpathSync(p);
    const up = dirname(p);
    if (up === p) return p;
    p = up;
  }
}

export { packageRoot } from './pkg.js';

/** The real host probes. */
export function defaultProbes(): InitenvProbes {
  return {
    hostname: () => hostname(),
    async isZfs(path) {
      try { return await succeeds(['zfs', 'get', '-Ho', 'value', 'name', path]); } catch { return false; }
    },
    async isHammer(path) {
      if (osType() !== 'DragonFly') return false;
      try { return await succeeds(['hammer2', 'info', path]); } catch { return false; }
    },
    async fsType(path) {
      return (await mountPrimitive(detectPlatform())).fsType(path);
    },
    examplesDir() {
      const d = join(packageRoot(), 'share', 'examples');
      return existsSync(d) ? d : undefined;
    },
  };
}

/**
 * Validates the setting values and merges them over `current`.
 * @throws BerthError E_BAD_SETTING (exit 2) naming the key and value
 */
export function mergeSettings(current: KV, given: Partial<Record<InitenvSettingKey, string>>): KV {
  const out: KV = { ...SETTING_DEFAULTS, ...current };
  for (const k of INITENV_SETTING_KEYS) {
    const v = given[k];
    if (v === undefined) continue;
    out[k] = v;
  }
  for (const k of ['default_mnt_start', 'default_mnt_stop'] as const) {
    const v = out[k]!;
    if (v !== '0' && !(v.startsWith('/') && !/[\0\n]/.test(v))) {
      throw usageError('E_BAD_SETTING', `bad ${k}=${JSON.stringify(v)}: expected 0 or an absolute path to an executable`);
    }
  }
  const s = toSettings(out);
  if (s.api_port > 65535) throw usageError('E_BAD_SETTING', `bad api_port=${JSON.stringify(out.api_port)}: expected 0..65535`);
  return out;
}

function readNodenameFile(file: string): string | undefined {
  if (!existsSync(file)) return undefined;
  return readFileSync(file, 'utf8').split(/\s+/)[0] || undefined;
}

function countEnvs(dbFile: string): number {
  if (!existsSync(dbFile)) return 0;
  let inv: Inventory | undefined;
  try {
    inv = Inventory.open(dbFile, { readonly: true });
    return (inv.db.prepare('SELECT count(*) AS n FROM jails').get() as { n: number }).n;
  } catch (e) {
    if (/no such table/.test((e as Error).message)) return 0;
    throw new BerthError('E_BAD_INVENTORY', `cannot read the inventory ${dbFile}: ${(e as Error).message}`, EXIT.FAILURE, { cause: e });
  } finally {
    inv?.close();
  }
}

/**
 * Initialises or re-initialises the workdir (see the module comment for every rule).
 * @throws BerthError, before anything is written:
 *   E_BAD_WORKDIR (2) the workdir is `/`, the berth package dir, or not a directory;
 *   E_BAD_NODENAME (2) bad nodename or unusable hostname; E_BAD_SETTING (2) bad setting
 *   value (here or in an existing berth.conf); E_NO_ZFS (2) zfsfeat=1 off ZFS; E_NO_HAMMER
 *   (2) hammerfeat=1 off HAMMER2; E_VARDB_NETWORK_FS (2) var/db on a network file system;
 *   E_NODENAME_IN_USE (1) renaming a node that has envs; E_BAD_INVENTORY (1) unreadable
 *   inventory. E_INITENV_WRITE (1) when a write fails (what this run created is removed).
 */
export async function initenv(opts: InitenvOptions = {}, probes: InitenvProbes = defaultProbes()): Promise<InitenvResult> {
  // ---- validate: nothing is written in this part ----
  const wd = new Workdir(resolveWorkdir(opts.workdir));
  if (wd.root === '/') throw usageError('E_BAD_WORKDIR', 'workdir=/ is not allowed: give berth a directory of its own');
  try {
    if (wd.root === packageRoot()) {
      throw usageError('E_BAD_WORKDIR', `workdir=${wd.root} is the berth installation itself; choose another directory`);
    }
  } catch (e) { if ((e as BerthError).code === 'E_BAD_WORKDIR') throw e; /* no package root: nothing to protect */ }
  if (existsSync(wd.root) && !statSync(wd.root).isDirectory()) {
    throw usageError('E_BAD_WORKDIR', `workdir=${wd.root} exists and is not a directory`);
  }
  for (const d of wd.layoutDirs) {
    if (existsSync(d) && !statSync(d).isDirectory()) {
      throw usageError('E_BAD_WORKDIR', `${d} exists and is not a directory; move it away and re-run initenv`);
    }
  }

  const oldName = readNodenameFile(wd.nodenameFile);
  const firstInit = oldName === undefined || !existsSync(wd.dbFile);
  let nodename: string;
  if (opts.nodename !== undefined) {
    nodename = checkNodename(opts.nodename);
  } else if (oldName !== undefined) {
    try { nodename = checkNodename(oldName); } catch (e) {
      throw usageError('E_BAD_NODENAME', `${wd.nodenameFile} holds a bad nodename ${JSON.stringify(oldName)}`, { hint: 'give nodename=<name>', cause: e });
    }
  } else {
    const h = probes.hostname();
    try { nodename = checkNodename(h); } catch (e) {
      throw usageError('E_BAD_NODENAME', `the hostname ${JSON.stringify(h)} is not a valid nodename`, { hint: 'give nodename=<name> (letters, digits, ., _ and -)', cause: e });
    }
  }
  if (oldName !== undefined && oldName !== nodename) {
    const n = countEnvs(wd.dbFile);
    if (n > 0) {
      throw new BerthError('E_NODENAME_IN_USE', `node ${JSON.stringify(oldName)} has ${n} env(s); refusing to rename it to ${JSON.stringify(nodename)}`, EXIT.FAILURE, {
        hint: 'their leases name this node: junregister (or jremove) them first, or keep the nodename',
      });
    }
  }

  let oldConfText: string | undefined;
  let current: KV = {};
  if (existsSync(wd.conf)) {
    oldConfText = readFileSync(wd.conf, 'utf8');
    current = readKV(wd.conf);
  }
  const before = toSettings({ ...SETTING_DEFAULTS, ...current }).raw;
  const settings = mergeSettings(current, opts.settings ?? {});

  const probeDir = nearestExisting(wd.root);
  const zfs = await probes.isZfs(probeDir);
  const hammer = await probes.isHammer(probeDir);
  if (settings.zfsfeat === '1' && !zfs) {
    const given = opts.settings?.zfsfeat === '1';
    throw usageError('E_NO_ZFS', `zfsfeat=1${given ? '' : ' (from ' + wd.conf + ')'} needs the workdir on ZFS, but ${wd.root} is not on a ZFS dataset (zfs get name ${probeDir} failed)`, {
      hint: given ? 'create a dataset first: zfs create -o mountpoint=<workdir> <pool>/berth; or use zfsfeat=0' : 'give zfsfeat=0',
    });
  }
  if (settings.hammerfeat === '1' && !hammer) {
    throw usageError('E_NO_HAMMER', `hammerfeat=1 needs the workdir on HAMMER2 (DragonFly), but ${wd.root} is not (hammer2 info ${probeDir} failed)`, { hint: 'give hammerfeat=0' });
  }
  const varDbProbe = nearestExisting(wd.varDb);
  const varDbFs = await probes.fsType(varDbProbe);
  if (isNetworkFs(varDbFs)) {
    throw usageError('E_VARDB_NETWORK_FS', `${wd.varDb} would be on a ${varDbFs} file system (${varDbProbe}); the inventory must be on a local disk because SQLite WAL is unsafe on network file systems`, {
      hint: 'put the workdir (or at least var/) on local storage; only jails-data, jails-system, jails-rcconf and jails-fstab may be shared',
    });
  }
  const examples = probes.examplesDir();

  // ---- write ----
  const created: string[] = [];
  const dbExisted = existsSync(wd.dbFile);
  let confWritten = false;
  try {
    await mkdirs(wd, created);
    const inv = Inventory.open(wd.dbFile, { create: true });
    let schemaVersion: number;
    try {
      schemaVersion = inv.db.pragma('user_version', { simple: true }) as number;
    } finally {
      inv.close();
    }
    if (!dbExisted) created.push(wd.dbFile);
    if (!existsSync(wd.apiToken)) {
      await writeFileAtomic(wd.apiToken, randomBytes(32).toString('hex') + '\n', { mode: 0o600, fsync: true });
      await chmod(wd.apiToken, 0o600);
      created.push(wd.apiToken);
    } else if ((statSync(wd.apiToken).mode & 0o077) !== 0) {
      await chmod(wd.apiToken, 0o600);
    }
    if (examples) await copyMissing(examples, join(wd.share, 'examples'), created);
    // the ownership directory: <workdir>/jails-lease (a layout dir), or lease_dir= (made when missing)
    const leaseDir = toSettings({ ...SETTING_DEFAULTS, ...settings }).lease_dir;
    if (leaseDir && !existsSync(leaseDir)) {
      const missing: string[] = [];
      for (let p = leaseDir; !existsSync(p); p = dirname(p)) missing.unshift(p);
      for (const p of missing) { await mkdir(p, { mode: 0o755 }); created.push(p); }
    }
    await new Ownership(leaseDir || wd.jailsLease, nodename).ensureNode();
    const ordered: KV = {};
    for (const k of INITENV_SETTING_KEYS) ordered[k] = settings[k]!;
    for (const [k, v] of Object.entries(settings)) if (!(k in ordered)) ordered[k] = v;
    if (oldConfText === undefined || JSON.stringify(current) !== JSON.stringify(ordered)) {
      await writeSettings(wd.conf, ordered);
      confWritten = true;
      if (oldConfText === undefined) created.push(wd.conf);
    }
    if (oldName !== nodename) {
      await writeFileAtomic(wd.nodenameFile, nodename + '\n', { mode: 0o644, fsync: true });
      if (oldName === undefined) created.push(wd.nodenameFile);
    }
    const changedSettings = Object.keys(ordered).filter((k) => oldConfText === undefined || before[k] !== ordered[k]);
    return {
      workdir: wd.root, nodename, firstInit,
      ...(oldName !== undefined && oldName !== nodename ? { previousNodename: oldName } : {}),
      settings: ordered, changedSettings, created,
      fs: { varDb: varDbFs, zfs, hammer },
      inventory: { file: wd.dbFile, schemaVersion },
      apiToken: wd.apiToken,
    };
  } catch (e) {
    await rollback(created);
    if (confWritten && oldConfText !== undefined) {
      try { await writeFileAtomic(wd.conf, oldConfText, { mode: 0o644 }); } catch { /* best effort */ }
    }
    if (e instanceof BerthError) throw e;
    throw new BerthError('E_INITENV_WRITE', `initenv failed while writing ${wd.root}: ${(e as Error).message}`, EXIT.FAILURE, {
      cause: e, hint: 'what this run created was removed again; fix the cause and re-run initenv',
    });
  }
}

/** Creates the layout dirs (and missing parents of the workdir), recording what it creates. */
async function mkdirs(wd: Workdir, created: string[]): Promise<void> {
  const missing: string[] = [];
  for (let p = dirname(wd.root); !existsSync(p); p = dirname(p)) missing.unshift(p);
  for (const p of missing) { await mkdir(p, { mode: 0o755 }); created.push(p); }
  for (const d of wd.layoutDirs) {
    if (existsSync(d)) continue;
    const mode = d === wd.varDb ? 0o700 : 0o755;
    await mkdir(d, { mode });
    await chmod(d, mode);
    created.push(d);
  }
}

/**
 * Copies the tree `src` into `dst`, only entries missing in `dst` (existing files, even
 * changed ones, are kept: the administrator may have edited them). Files keep their mode
 * minus group/other write (hooks must not be writable by others); symlinks are copied as
 * symlinks. @param created receives every path created
 */
export async function copyMissing(src: string, dst: string, created: string[]): Promise<void> {
  if (!existsSync(dst)) {
    await mkdir(dst, { mode: 0o755 });
    created.push(dst);
  }
  for (const ent of await readdir(src, { withFileTypes: true })) {
    const s = join(src, ent.name);
    const d = join(dst, ent.name);
    if (ent.isDirectory()) {
      if (existsSync(d) && !lstatSync(d).isDirectory()) continue;
      await copyMissing(s, d, created);
      continue;
    }
    let exists = true;
    try { await lstat(d); } catch { exists = false; }
    if (exists) continue;
    if (ent.isSymbolicLink()) {
      await symlink(await readlink(s), d);
    } else if (ent.isFile()) {
      await copyFile(s, d);
      await chmod(d, (await lstat(s)).mode & 0o755);
    } else {
      continue;
    }
    created.push(d);
  }
}

/** Removes what a failed run created: files unlinked, dirs removed when empty, newest first. */
async function rollback(created: string[]): Promise<void> {
  for (const p of [...created].reverse()) {
    try {
      const st = await lstat(p);
      if (st.isDirectory()) await rmdir(p);
      else {
        await unlink(p);
        for (const x of ['-wal', '-shm']) await unlink(p + x).catch(() => undefined);
      }
    } catch { /* best effort */ }
  }
}

/** Reads the workdir's API token (trimmed). @throws Node ENOENT when missing */
export async function readApiToken(wd: Workdir): Promise<string> {
  return (await readFile(wd.apiToken, 'utf8')).trim();
}

/** Relative display of a created path. */
export function relToWorkdir(workdir: string, p: string): string {
  const r = relative(workdir, p);
  return r === '' ? '.' : r.startsWith('..') ? p : r;
}
