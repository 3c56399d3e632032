/**
 * The env lifecycle, written once for every engine and platform (design/product.md
 * "Lifecycle"): create, start, stop, restart, remove, exec, set/get, list. It talks to
 * engines (src/engines/types.ts), mount primitives (src/mounts/types.ts), storage hooks
 * (src/hooks.ts), leases (src/lease.ts) and the inventory, never to a platform directly.
 *
 * Storage rule: an operation on a stopped env brackets its work with mnt_start ... mnt_stop
 * (create, register, remove, jset, clone); a started env keeps its storage mounted from
 * jstart's mnt_start until the teardown's mnt_stop. A second jstart of a running env
 * never calls mnt_start again.
 *
 * Teardown rule: every way a run ends (jstop, the main process exiting by itself, kill -9,
 * a failed start, the agent noticing) goes through {@link teardownRun}, which first claims
 * the run's `run_id` in the inventory (an atomic UPDATE): exactly one caller wins and tears
 * down: engine gone, mounts under jails/<jname> gone deepest first, master_poststop.d, then
 * mnt_stop.
 */
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, lstatSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { chmod, cp, mkdir, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BerthError, EXIT, engineError, notFound, ownedError, usageError } from './errors.js';
import { readDescriptor, writeDescriptor, type EnvConf } from './descriptor.js';
import { formatFstab, mergeFstab, parseFstab, type FstabEntry } from './fstab.js';
import { STATUS, statusWord, summaryOf, type EnvRow } from './inventory.js';
import { checkJname, checkJnamePattern, checkBaseName, isGlob, jnameMatcher } from './names.js';
import type { NodeCtx } from './node.js';
import type { EnvPaths } from './paths.js';
import type { EngineEnv } from './engines/types.js';
import { mountsUnder, unmountAllUnder } from './mounts/types.js';
import { cbsdHookVars, runHookDir, runStorageHook, type HookAction, type HookEnv } from './hooks.js';
import { acquireEnvLease, journal, publishDescriptor, releaseEnvLease, requireLease } from './ownership/leases.js';
import { warn } from './log.js';

/** Per-call options of lifecycle operations. */
export interface OpOptions {
  /** copy hook output to stderr */
  verbose?: boolean;
  /**
   * Leave the env's storage mounted at the end (skip the final mnt_stop), because the next
   * step (jmigrate: stop → unregister; register → start) mounts it again at once. The hook's
   * next mnt_start then finds it mounted. Whoever passes it owns running mnt_stop later.
   */
  keepStorage?: boolean;
  /**
   * The env's storage is already mounted by this process (jregister start=1, jmigrate's
   * destination after its prepare): jstart skips mnt_start; its teardown runs mnt_stop as always.
   */
  mounted?: boolean;
  /** when given, each step of a start or teardown appends its duration here (jmigrate, benches) */
  timings?: StepTiming[];
  /**
   * jstop only: called during the teardown once the env's processes are gone, its root is
   * unmounted and master_poststop.d ran, before the engine's own state (runc's container
   * record, a jail.conf) is cleaned up. jmigrate hands the lease over and starts the env at the
   * destination here, so that the downtime does not wait for that cleanup. A failure of it is
   * thrown after the teardown finished.
   */
  whileDown?: () => Promise<void>;
}

/** One timed step of a start or teardown: its name and its duration in milliseconds. */
export interface StepTiming {
  step: string;
  ms: number;
}

/** Runs `f` as step `name`, timing it into `timings` when given. */
export async function timed<T>(timings: StepTiming[] | undefined, name: string, f: () => Promise<T> | T): Promise<T> {
  if (!timings) return f();
  const t0 = performance.now();
  try {
    return await f();
  } finally {
    timings.push({ step: name, ms: Math.round((performance.now() - t0) * 10) / 10 });
  }
}

/** What list/start/stop report about one env. */
export interface EnvInfo {
  jname: string;
  uuid: string;
  emulator: string;
  /** 'On' | 'Off' | 'Maintenance' | 'Unregister' (CBSD status words) */
  status: string;
  /** jail id or init pid; 0 when stopped */
  jid: number;
  generation: number;
  conf: EnvConf;
}

/** Data sub-dirs mounted read-write over a read-only base (baserw=0), CBSD §4.4 plus var. */
export const BASERW0_DIRS = ['etc', 'root', 'tmp', 'home', 'var', 'usr/local'];

/** Host hook dirs created in every sysdir (CBSD §4.2). */
export const HOOK_DIRS = ['master_create.d', 'master_prestart.d', 'master_poststart.d', 'master_prestop.d', 'master_poststop.d', 'remove.d', 'clone-local.d'];

/** Keys jcreate/jset accept (CBSD names), and those jset may not change. */
export const SETTABLE_KEYS = ['base', 'baserw', 'host_hostname', 'ip4_addr', 'ip6_addr', 'interface', 'vnet', 'exec_start', 'exec_stop',
  'stop_timeout', 'astart', 'mnt_start', 'mnt_stop', 'mnt_timeout', 'clone_script', 'protected', 'devfs_ruleset', 'enforce_statfs',
  'allow_raw_sockets', 'allow_mount', 'allow_sysvipc', 'persist', 'childrenmax', 'exec_timeout', 'exec_consolelog', 'exec_prestart',
  'exec_poststart', 'exec_prestop', 'exec_poststop', 'devfs'];

const FLAG_KEYS = ['baserw', 'vnet', 'astart', 'protected', 'allow_raw_sockets', 'allow_mount', 'allow_sysvipc', 'persist', 'devfs'];
const INT_KEYS = ['stop_timeout', 'mnt_timeout', 'devfs_ruleset', 'enforce_statfs', 'childrenmax', 'exec_timeout'];
const HOOK_KEYS = ['mnt_start', 'mnt_stop', 'clone_script'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Validates user-given settings (values only; no I/O).
 * @throws BerthError E_BAD_VALUE / E_UNKNOWN_KEY (exit 2) naming key and value
 */
export function validateSettings(input: Record<string, string>): void {
  for (const [k, v] of Object.entries(input)) {
    if (!SETTABLE_KEYS.includes(k)) throw usageError('E_UNKNOWN_KEY', `unknown setting ${JSON.stringify(k)}; settable: ${SETTABLE_KEYS.join(' ')}`);
    if (FLAG_KEYS.includes(k) && v !== '0' && v !== '1') throw usageError('E_BAD_VALUE', `bad ${k}=${JSON.stringify(v)}: expected 0 or 1`);
    if (INT_KEYS.includes(k) && !/^\d+$/.test(v)) throw usageError('E_BAD_VALUE', `bad ${k}=${JSON.stringify(v)}: expected a whole number`);
    if (HOOK_KEYS.includes(k) && v !== '0' && v !== '' && !v.startsWith('/')) throw usageError('E_BAD_VALUE', `bad ${k}=${JSON.stringify(v)}: expected an absolute path or 0`);
    if (k === 'base') checkBaseName(v);
    if (k === 'host_hostname' && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/.test(v)) throw usageError('E_BAD_VALUE', `bad host_hostname=${JSON.stringify(v)}: expected a host name`);
    if (/[\n\0]/.test(v)) throw usageError('E_BAD_VALUE', `bad ${k}: values may not contain newlines`);
  }
}

/** The EngineEnv of an env. */
export function engineEnv(ctx: NodeCtx, jname: string, conf: EnvConf): EngineEnv {
  return { jname, nodename: ctx.nodename, wd: ctx.wd, paths: ctx.wd.env(jname), conf };
}

/** Effective storage hooks: the env's, else the node defaults (`''`/missing = default, `0` = none). */
export function effectiveHooks(ctx: NodeCtx, conf: EnvConf): { start: string; stop: string } {
  const pick = (own: string | undefined, def: string) => (own === undefined || own === '' ? def : own);
  return { start: pick(conf.mnt_start, ctx.settings.default_mnt_start), stop: pick(conf.mnt_stop, ctx.settings.default_mnt_stop) };
}

/** The HookEnv for an env's hooks. */
export function hookEnv(ctx: NodeCtx, jname: string, conf: EnvConf, opts: OpOptions, extraEnv?: Record<string, string>): HookEnv {
  const p = ctx.wd.env(jname);
  const t = conf.mnt_timeout !== undefined && conf.mnt_timeout !== '' ? Number(conf.mnt_timeout) : ctx.settings.mnt_timeout;
  return { jname, nodename: ctx.nodename, data: p.data, fstabDir: p.fstabDir, rcconfDir: ctx.wd.jailsRcconf, sysdir: p.sysdir, logFile: p.log, verbose: opts.verbose, timeoutSec: t,
    extraEnv: { ...cbsdHookVars({ ...conf, jname, path: p.path, data: p.data }), ...extraEnv } };
}

async function mntStart(ctx: NodeCtx, jname: string, conf: EnvConf, action: HookAction, opts: OpOptions): Promise<void> {
  await mkdir(ctx.wd.logDir, { recursive: true });
  await runStorageHook('mnt_start', effectiveHooks(ctx, conf).start, action, hookEnv(ctx, jname, conf, opts));
}

async function mntStop(ctx: NodeCtx, jname: string, conf: EnvConf, action: HookAction, opts: OpOptions): Promise<void> {
  await runStorageHook('mnt_stop', effectiveHooks(ctx, conf).stop, action, hookEnv(ctx, jname, conf, opts));
}

/**
 * Runs `fn` with the env's storage mounted: when the env is not running, mnt_start first
 * and mnt_stop after (also when `fn` fails). When it runs, its storage is already mounted.
 */
export async function withStorage<T>(ctx: NodeCtx, row: { jname: string; conf: EnvConf; status: number }, action: HookAction, opts: OpOptions, fn: () => Promise<T>): Promise<T> {
  if (row.status === STATUS.ON) return fn();
  let started = false;
  try {
    started = true;
    await mntStart(ctx, row.jname, row.conf, action, opts);
    return await fn();
  } finally {
    if (started) await mntStop(ctx, row.jname, row.conf, action, opts);
  }
}

/**
 * The identity check after mnt_start (product.md start step 2): the sysdir holds this env's
 * descriptor with the same uuid, and the data dir exists and is not empty.
 * @throws BerthError E_IDENTITY (exit 5): the mount most likely failed
 */
export function verifyIdentity(ctx: NodeCtx, jname: string, uuid: string): void {
  const p = ctx.wd.env(jname);
  let found: string | undefined;
  try {
    found = readDescriptor(p.descriptor, ctx.wd.root).uuid;
  } catch (e) {
    // a descriptor that is there but has a bad line: say which line (it is not a mount problem)
    if (e instanceof BerthError && e.code === 'E_BAD_CONF') {
      throw new BerthError('E_BAD_CONF', `the descriptor of ${jname} in its system dir cannot be read: ${e.message}; refusing to touch ${jname}`, e.exitCode, {
        hint: `fix that line of ${p.descriptor} (berth never sources it), or write it again: berth jset jname=${jname} <key>=<value>`, cause: e,
      });
    }
    found = undefined;
  }
  const hint = 'the storage of this env is probably not mounted: check its mnt_start hook and the log var/log/' + jname + '.log';
  if (found !== uuid) {
    throw engineError('E_IDENTITY', `${p.descriptor} ${found ? `belongs to another env (uuid ${found}, expected ${uuid})` : 'is missing or unreadable'}; refusing to touch ${jname}`, {
      hint: found ? `the storage mounted at ${p.sysdir} holds another env's files (check mnt_start), or a descriptor's uuid was edited by hand` : hint,
    });
  }
  let entries: string[] = [];
  try { entries = readdirSync(p.data); } catch { /* missing */ }
  if (entries.length === 0) throw engineError('E_IDENTITY', `data dir ${p.data} is missing or empty; refusing to use ${jname}`, { hint });
}

export { requireLease };

/** Looks an env up. @throws BerthError E_NO_SUCH_ENV (exit 3) */
export function getEnv(ctx: NodeCtx, jname: string): EnvRow {
  checkJname(jname);
  const row = ctx.inv.get(jname);
  if (!row) {
    const unreg = existsSync(ctx.wd.env(jname).rcconfFile);
    throw notFound('E_NO_SUCH_ENV', `no env ${JSON.stringify(jname)} is registered on node ${ctx.nodename}${unreg ? ' (it is unregistered: jails-rcconf holds its descriptor)' : ''}`,
      { hint: unreg ? `adopt it first: berth jregister jname=${jname}` : 'see: berth jls' });
  }
  return row;
}

/**
 * Resolves names and globs to registered envs, in name order, without duplicates.
 * @throws BerthError E_NO_SUCH_ENV (exit 3) for a plain name that is not registered or a glob matching nothing
 */
export function selectEnvs(ctx: NodeCtx, patterns: string[]): EnvRow[] {
  if (patterns.length === 0) throw usageError('E_NO_JNAME', 'no env named: give jname=<name or glob>');
  const out = new Map<string, EnvRow>();
  for (const p of patterns) {
    checkJnamePattern(p);
    if (!isGlob(p)) { out.set(p, getEnv(ctx, p)); continue; }
    const m = jnameMatcher(p);
    const hits = ctx.inv.list().filter((r) => m(r.jname));
    if (hits.length === 0) throw notFound('E_NO_SUCH_ENV', `no env matches ${JSON.stringify(p)} on node ${ctx.nodename}`);
    for (const r of hits) out.set(r.jname, r);
  }
  return [...out.values()].sort((a, b) => a.jname.localeCompare(b.jname));
}

function info(row: EnvRow, status?: string): EnvInfo {
  return { jname: row.jname, uuid: row.uuid, emulator: row.emulator, status: status ?? statusWord(row.status), jid: row.jid, generation: row.generation, conf: row.conf };
}

async function isEmptyDir(dir: string): Promise<boolean> {
  try { return (await readdir(dir)).length === 0; } catch { return true; }
}

/** Deletes everything inside `dir` (not `dir` itself, which may be a mount point). */
async function emptyDir(dir: string): Promise<void> {
  let st;
  try { st = lstatSync(dir); } catch { return; }
  if (st.isSymbolicLink()) throw engineError('E_SYMLINK', `${dir} is a symlink; refusing to delete what it points to`, { hint: 'remove the symlink by hand if it is yours' });
  let names: string[];
  try { names = await readdir(dir); } catch { return; }
  for (const n of names) await rm(join(dir, n), { recursive: true, force: true });
}

/** The CBSD-style fstab of a baserw=0 env: its data sub-dirs, read-write, over the read-only base. */
export function baseFstab(jname: string): string {
  return formatFstab(BASERW0_DIRS.map((d) => ({ device: `CBSDROOT/jails-data/${jname}-data/${d}`, mountpoint: `/${d}`, fstype: 'nullfs', options: 'rw', dump: '0', pass: '0' })),
    ['Generated by berth jcreate for baserw=0: the env\'s data sub-dirs over its read-only base.', 'Do not edit: put your own mounts in fstab.local (same format; it wins per mount point).']);
}

/** Fills a new env's data dir from its base (baserw=1: the whole root; 0: the writable sub-dirs). */
async function populateData(base: string, data: string, baserw: string): Promise<void> {
  if (baserw === '1') {
    await cp(base, data, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
    return;
  }
  for (const d of BASERW0_DIRS) {
    const src = join(base, d);
    const dst = join(data, d);
    if (existsSync(src) && d !== 'tmp') await cp(src, dst, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
    else await mkdir(dst, { recursive: true });
  }
  await chmod(join(data, 'tmp'), 0o1777);
}

/** Input of {@link createEnv}: jname plus CBSD settings (emulator, base, baserw, ...). */
export interface CreateInput {
  jname: string;
  emulator?: string;
  settings: Record<string, string>;
}

/**
 * jcreate: validates everything first, then (storage mounted by mnt_start) refuses a
 * non-empty data dir or sysdir, takes the lease, fills the data dir from the base, writes
 * the fstab, hook dirs, descriptor and inventory row, runs master_create.d, and mnt_stop.
 * Any failure undoes all of it (nothing deleted that was there before).
 * @throws BerthError E_BAD_* (2), E_NO_SUCH_BASE (3), E_ENV_EXISTS (1), hook/lease errors
 */
export async function createEnv(ctx: NodeCtx, input: CreateInput, opts: OpOptions = {}): Promise<EnvInfo> {
  const jname = checkJname(input.jname);
  validateSettings(input.settings);
  const emulator = input.emulator ?? (ctx.platform === 'linux' ? 'runc' : 'jail');
  const engine = await ctx.engine(emulator);
  const p = ctx.wd.env(jname);
  const conf: EnvConf = {
    baserw: '0', host_hostname: jname, ip4_addr: '0', vnet: '0', astart: '0', ...input.settings,
    jname, emulator, path: p.path, data: p.data, mount_fstab: p.fstab, rcconf: p.rcconfFile,
  };
  if (!conf.base) throw usageError('E_NO_BASE', 'jcreate needs base=<name> (see: berth base list)');
  engine.validate(conf);
  const baseDir = ctx.wd.base(conf.base);
  if (!existsSync(baseDir)) throw notFound('E_NO_SUCH_BASE', `no base ${JSON.stringify(conf.base)} in ${ctx.wd.bases}`, { hint: 'see: berth base list; make one with berth base busybox name=<name>' });
  if (ctx.inv.get(jname)) throw new BerthError('E_ENV_EXISTS', `env ${jname} already exists on node ${ctx.nodename}`, EXIT.FAILURE);
  if (existsSync(p.rcconfFile)) {
    throw new BerthError('E_ENV_EXISTS', `an unregistered env ${jname} exists (${p.rcconfFile})`, EXIT.FAILURE, { hint: `adopt it with: berth jregister jname=${jname}` });
  }
  const made: string[] = [];
  for (const d of [p.data, p.sysdir, p.fstabDir]) {
    if (!existsSync(d)) { await mkdir(d, { recursive: true }); made.push(d); }
  }
  await mkdir(ctx.wd.logDir, { recursive: true });
  let owned = false;
  let inserted = false;
  let leaseGen = 0;
  let hookStarted = false;
  try {
    hookStarted = true;
    await mntStart(ctx, jname, conf, 'create', opts);
    for (const d of [p.data, p.sysdir, p.fstabDir]) {
      if (!(await isEmptyDir(d))) {
        throw new BerthError('E_ENV_EXISTS', `${d} already holds files; refusing to create ${jname} over them (nothing was deleted)`, EXIT.FAILURE,
          { hint: `if this is an existing env, adopt it with berth jregister jname=${jname}` });
      }
    }
    conf.uuid = randomUUID();
    conf.created_by_node = ctx.nodename;
    const lease = await acquireEnvLease(ctx, jname, conf.uuid);
    leaseGen = lease.generation;
    // Only now is what lands in these (empty) dirs ours: a concurrent jcreate of the same
    // name that lost the lease race must not empty the winner's dirs on rollback.
    owned = true;
    await populateData(baseDir, p.data, conf.baserw!);
    if (conf.baserw === '0') await writeFile(p.fstab, baseFstab(jname));
    await writeFile(p.fstabLocal, '', { flag: 'a' });
    for (const d of HOOK_DIRS) await mkdir(join(p.sysdir, d), { recursive: true, mode: 0o755 });
    if (!existsSync(p.path)) { await mkdir(p.path, { recursive: true }); made.push(p.path); }
    await writeDescriptor(p.descriptor, conf, ctx.wd.root);
    await publishDescriptor(ctx, jname, conf);
    ctx.inv.insert({ jname, uuid: conf.uuid, emulator, generation: leaseGen, conf });
    inserted = true;
    await runHookDir(join(p.sysdir, 'master_create.d'), 'create', hookEnv(ctx, jname, conf, opts), { stopOnError: true });
  } catch (e) {
    if (inserted) ctx.inv.delete(jname);
    if (owned) {
      if (leaseGen) await releaseEnvLease(ctx, { jname, generation: leaseGen }).catch(() => undefined);
      // a record this create started (generation 1) goes with it; an older one keeps its history
      if (leaseGen === 1) await rm(p.lease, { recursive: true, force: true }).catch(() => undefined);
      else await rm(p.recordDescriptor, { force: true }).catch(() => undefined);
      for (const d of [p.data, p.sysdir, p.fstabDir]) await emptyDir(d);
    }
    if (hookStarted) await mntStop(ctx, jname, conf, 'create', opts).catch((err) => warn({ err: String(err) }, 'mnt_stop after a failed create'));
    for (const d of made.reverse()) await rmdir(d).catch(() => undefined);
    throw e;
  }
  await journal(ctx, 'own', { jname, uuid: conf.uuid, generation: leaseGen, emulator }, 'create');
  await mntStop(ctx, jname, conf, 'create', opts);
  return info(ctx.inv.get(jname)!);
}

/**
 * Assembles the env's root under jails/<jname>: base read-only (baserw=0) or data (baserw=1),
 * then fstab and fstab.local entries (fstab.local wins per mount point).
 * @throws BerthError E_MOUNT (5), E_BAD_FSTAB (1), E_NO_SUCH_BASE (3)
 */
export async function assembleRoot(ctx: NodeCtx, jname: string, conf: EnvConf): Promise<void> {
  const m = await ctx.mounts();
  const p = ctx.wd.env(jname);
  await mkdir(p.path, { recursive: true });
  if (conf.baserw === '1') {
    await m.bind(p.data, p.path, { readonly: false });
  } else {
    if (conf.base) checkBaseName(conf.base);
    const base = ctx.wd.base(conf.base ?? '');
    if (!conf.base || !existsSync(base)) throw notFound('E_NO_SUCH_BASE', `base ${JSON.stringify(conf.base)} of ${jname} is not on this node (${base})`, { hint: 'import the same base on this node: berth base import' });
    await m.bind(base, p.path, { readonly: true });
    if (!existsSync(p.fstab)) await writeFile(p.fstab, baseFstab(jname));
  }
  const read = async (f: string, name: string) => (existsSync(f) ? parseFstab(await readFile(f, 'utf8'), name, ctx.wd.root) : []);
  const entries = mergeFstab(await read(p.fstab, 'fstab'), await read(p.fstabLocal, 'fstab.local'));
  // Entries whose mount points are not nested in one another (the data sub-dirs of a baserw=0
  // env) are mounted side by side, one mount(8) each; an entry nested in, or under, one of the
  // batch waits for it (fstab order is kept wherever it matters). Every mount of a batch is
  // awaited before a failure is thrown, so the teardown that follows sees all of them.
  const norm = (mp: string) => join('/', mp).replace(/\/+$/, '') || '/';
  const related = (a: string, b: string) => a === b || a.startsWith(b === '/' ? '/' : b + '/') || b.startsWith(a === '/' ? '/' : a + '/');
  const dependsOnRoot = (e: FstabEntry) => e.device === p.path || e.device.startsWith(p.path + '/');
  for (let i = 0; i < entries.length;) {
    const batch: FstabEntry[] = [];
    while (i < entries.length && !(batch.length && (dependsOnRoot(entries[i]!) || batch.some((b) => related(norm(b.mountpoint), norm(entries[i]!.mountpoint)))))) batch.push(entries[i++]!);
    const dsts: string[] = [];
    for (const e of batch) {
      const dst = join(p.path, e.mountpoint);
      // Never follow a symlink inside the env's root (the env's own files, or a base's): it could
      // point the mount at a host path outside jails/<jname>, which teardown would not unmount.
      noSymlinkBelow(p.path, dst, `mount point ${e.mountpoint} (${e.source}:${e.line}) of ${jname}`);
      if ((e.fstype === 'nullfs' || e.fstype === 'bind') && (e.device === p.data || e.device.startsWith(p.data + '/'))) {
        noSymlinkBelow(p.data, e.device, `mount source ${e.device} (${e.source}:${e.line}) of ${jname}`);
      }
      if (!existsSync(dst)) {
        const isFile = (e.fstype === 'nullfs' || e.fstype === 'bind') && existsSync(e.device) && statSync(e.device).isFile();
        try {
          if (isFile) { await mkdir(join(dst, '..'), { recursive: true }); closeSync(openSync(dst, 'a')); }
          else await mkdir(dst, { recursive: true });
        } catch (err) {
          throw engineError('E_MOUNT', `cannot create mount point ${e.mountpoint} of ${e.source}:${e.line} in ${jname}: ${(err as Error).message}`, { hint: 'the base is read-only: create that directory in the base, or mount onto an existing one' });
        }
      }
      dsts.push(dst);
    }
    const res = await Promise.allSettled(batch.map((e, k) => m.mount(e.device, dsts[k]!, e.fstype, e.options)));
    const failed = res.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}

/**
 * Refuses when any component of `path` below `root` is a symlink (checked with lstat, never
 * followed). Components that do not exist yet end the walk: mkdir creates real dirs there.
 * @throws BerthError E_SYMLINK (exit 5) naming `what`
 */
export function noSymlinkBelow(root: string, path: string, what: string): void {
  const rel = path.slice(root.length).split('/').filter(Boolean);
  let cur = root;
  for (const c of rel) {
    cur = join(cur, c);
    let st;
    try { st = lstatSync(cur); } catch { return; }
    if (st.isSymbolicLink()) {
      throw engineError('E_SYMLINK', `${what}: ${cur} is a symlink; refusing to follow it (it could lead outside the env)`, { hint: 'replace the symlink by a directory, or mount somewhere else' });
    }
  }
}

/**
 * The monitor's entry script next to this module: dist/bundle/monitor.cjs (bundled CLI),
 * dist/src/monitor.js (tsc output), or under tsx the .ts source.
 */
function monitorCommand(): string[] {
  for (const name of ['./monitor.cjs', './monitor.js']) {
    const file = fileURLToPath(new URL(name, import.meta.url));
    if (existsSync(file)) return [process.execPath, file];
  }
  return [process.execPath, '--import', 'tsx', fileURLToPath(new URL('./monitor.ts', import.meta.url))];
}

/** The run monitor's pid file: var/run/monitor.pid (its mtime is the monitor's heartbeat). */
export function monitorPidFile(ctx: NodeCtx): string {
  return join(ctx.wd.runDir, 'monitor.pid');
}

/** The monitor touches its pid file every MONITOR_BEAT_MS; older than MONITOR_STALE_MS = dead. */
export const MONITOR_BEAT_MS = 1000;
const MONITOR_STALE_MS = 5000;

/**
 * The pid of this node's live run monitor, or 0. Alive means: the pid file names a process
 * that exists (and, where /proc is, is not a zombie) and the file was touched in the last
 * 5 s, so a pid reused by another process after the monitor died is not mistaken for it.
 */
export function liveMonitorPid(ctx: NodeCtx): number {
  const f = monitorPidFile(ctx);
  try {
    const st = statSync(f);
    if (Date.now() - st.mtimeMs > MONITOR_STALE_MS) return 0;
    const pid = Number(readFileSync(f, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) return 0;
    // (a monitor killed with -9 whose parent never reaps it is a zombie: not alive)
    return pidAlive(pid) ? pid : 0;
  } catch {
    return 0;
  }
}

/**
 * Makes sure this node's run monitor (src/monitor.ts) is alive, starting it detached when it
 * is not. Called after the env's row says On, so a monitor that is just deciding to exit sees
 * the new run (it re-scans after giving up its pid file). One monitor per node, not one per
 * run: N running envs cost one Node process. Its output goes to var/log/monitor.log.
 * @returns true when a monitor was started
 */
function ensureMonitor(ctx: NodeCtx): boolean {
  if (liveMonitorPid(ctx)) return false;
  const fd = openSync(join(ctx.wd.logDir, 'monitor.log'), 'a', 0o640);
  try {
    const [cmd, ...args] = monitorCommand();
    const child = spawn(cmd!, [...args, ctx.wd.root], { detached: true, stdio: ['ignore', fd, fd], env: { ...process.env, BERTH_WORKDIR: ctx.wd.root } });
    child.unref();
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Starts the node's run monitor when envs are On or claimed (Maintenance) and none is alive:
 * after the monitor was killed, the new one tears down what ended meanwhile and recovers
 * claims of dead processes. `jls` calls this (the agent reconciles on its own).
 * @returns true when a monitor had to be started
 */
export function watchIfNeeded(ctx: NodeCtx): boolean {
  if (!ctx.inv.running().length && !ctx.inv.claimed().length) return false;
  return ensureMonitor(ctx);
}

/** Options of {@link teardownRun}. */
export interface TeardownOptions extends OpOptions {
  /** the engine was started (run master_poststop.d) */
  engineStarted: boolean;
  /** why: 'stop' | 'exited' | 'failed-start' | 'fenced' | 'reconcile' (logged) */
  reason: string;
}

/**
 * Tears one run down, exactly once across processes: claims `runId`; returns false when
 * another caller already did. Order: engine stopped and cleaned up, every mount under
 * jails/<jname> unmounted deepest first, master_poststop.d, mnt_stop; then status Off.
 * Every step is attempted even when an earlier one fails; the first error is thrown after.
 */
export async function teardownRun(ctx: NodeCtx, jname: string, runId: string, opts: TeardownOptions): Promise<boolean> {
  if (!ctx.inv.claimTeardown(jname, runId)) return false;
  const row = ctx.inv.get(jname)!;
  await teardownSteps(ctx, row, {
    stopTimeoutSec: Number(row.conf.stop_timeout ?? 10), poststop: opts.engineStarted, mntStop: !opts.keepStorage,
    hookEnv: hookEnv(ctx, jname, row.conf, opts), reason: opts.reason, timings: opts.timings, whileDown: opts.whileDown,
  });
  return true;
}

/** What differs between the ways a run is torn down (see {@link teardownSteps}). */
export interface TeardownPlan {
  /** seconds the engine waits after its stop signal before killing (0: kill at once) */
  stopTimeoutSec: number;
  /** run master_poststop.d */
  poststop: boolean;
  /** run the env's mnt_stop hook */
  mntStop: boolean;
  /** the environment of those hooks */
  hookEnv: HookEnv;
  /** why, for the warning logged when a step failed */
  reason: string;
  /** when given, each step appends its duration */
  timings?: StepTiming[];
  /** see {@link OpOptions.whileDown} */
  whileDown?: () => Promise<void>;
}

/**
 * The one teardown sequence, for an env whose teardown the caller has claimed (teardownRun,
 * recoverStaleClaim, agent/fence.ts fenceRun): engine stopped and cleaned up, every mount
 * under jails/<jname> unmounted deepest first, master_poststop.d, mnt_stop (as `plan` says);
 * then status Off. Every step is attempted even when an earlier one fails; the first error
 * is thrown after, once the failures were logged.
 */
export async function teardownSteps(ctx: NodeCtx, row: EnvRow, plan: TeardownPlan): Promise<void> {
  const { jname, conf } = row;
  const engine = await ctx.engine(row.emulator);
  const eenv = engineEnv(ctx, jname, conf);
  const errors: unknown[] = [];
  const step = async (name: string, f: () => Promise<unknown>) => { try { await timed(plan.timings, name, f); } catch (e) { errors.push(e); } };
  const cleanup = () => step('engine cleanup', () => engine.cleanup(eenv));
  await step(`engine ${engine.name} stop`, () => engine.stop(eenv, plan.stopTimeoutSec));
  if (!plan.whileDown) await cleanup();
  await step('unmount root', async () => unmountAllUnder(await ctx.mounts(), ctx.wd.env(jname).path));
  if (plan.poststop) await step('master_poststop.d', () => runHookDir(join(ctx.wd.env(jname).sysdir, 'master_poststop.d'), 'stop', plan.hookEnv, { stopOnError: false }));
  if (plan.whileDown) {
    // nothing of the env runs or is mounted here any more: what must happen while it is down
    await step('while down', plan.whileDown);
    await cleanup();
  }
  if (plan.mntStop) await step('mnt_stop', () => runStorageHook('mnt_stop', effectiveHooks(ctx, conf).stop, 'stop', plan.hookEnv));
  ctx.inv.finishTeardown(jname);
  if (errors.length) {
    await warn({ jname, reason: plan.reason, errors: errors.map(String) }, 'teardown finished with errors');
    throw errors[0];
  }
}

/** True while process `pid` exists and is not a zombie. */
function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return true; // no /proc (FreeBSD): kill(0) said it exists
  }
}

/**
 * A Maintenance claim left by a berth command that died (kill -9, SIGINT in the middle of a
 * start, stop, remove or clone): takes the claim over and tears down whatever that command
 * left (the engine's processes and state, every mount under jails/<jname>, the storage via
 * mnt_stop), then marks the env Off. @returns true when a stale claim was recovered
 */
export async function recoverStaleClaim(ctx: NodeCtx, row: EnvRow, opts: OpOptions = {}): Promise<boolean> {
  if (row.status !== STATUS.MAINTENANCE || !row.claim_pid || pidAlive(row.claim_pid)) return false;
  if (!ctx.inv.takeStaleClaim(row.jname, row.claim_pid)) return false;
  await warn({ jname: row.jname, deadPid: row.claim_pid }, `recovering ${row.jname}: a berth command (pid ${row.claim_pid}) died while it held the env; tearing down what it left`);
  await teardownSteps(ctx, row, {
    stopTimeoutSec: 0, poststop: false, mntStop: true, hookEnv: hookEnv(ctx, row.jname, row.conf, opts), reason: `claim of dead pid ${row.claim_pid}`,
  });
  return true;
}

/**
 * If the inventory says On but the env's process is gone (its monitor died too), tears
 * that run down now; a Maintenance claim of a dead berth command is recovered.
 * @returns true when a stale run or claim was cleaned up
 */
export async function reconcileEnv(ctx: NodeCtx, row: EnvRow): Promise<boolean> {
  if (row.status === STATUS.MAINTENANCE) return recoverStaleClaim(ctx, row);
  if (row.status !== STATUS.ON || !row.run_id) return false;
  const engine = await ctx.engine(row.emulator);
  if (await engine.isRunning(engineEnv(ctx, row.jname, row.conf), row.jid)) return false;
  return teardownRun(ctx, row.jname, row.run_id, { engineStarted: true, reason: 'reconcile' });
}

/**
 * jstart (product.md start order): mnt_start, identity check, lease check, root assembly,
 * master_prestart.d (non-zero vetoes), engine start, master_poststart.d. A failure at any
 * step tears down what was set up (mount table and inventory as before).
 * @throws BerthError E_RUNNING (1), E_BUSY (4), lease errors (4), hook errors, E_MOUNT/E_ENGINE (5)
 */
export async function startEnv(ctx: NodeCtx, jname: string, opts: OpOptions = {}): Promise<EnvInfo> {
  let row = getEnv(ctx, jname);
  const engine = await ctx.engine(row.emulator);
  if (row.status === STATUS.ON) {
    if (await engine.isRunning(engineEnv(ctx, jname, row.conf), row.jid)) {
      throw new BerthError('E_RUNNING', `${jname} is already running (jid ${row.jid})`, EXIT.FAILURE);
    }
    await reconcileEnv(ctx, row);
    row = getEnv(ctx, jname);
  }
  if (await recoverStaleClaim(ctx, row, opts)) row = getEnv(ctx, jname);
  const runId = randomUUID();
  if (!ctx.inv.claimStart(jname, runId)) {
    throw ownedError('E_BUSY', `${jname} is busy (a start, stop or remove is in progress on this node)`, { hint: 'wait and retry; berth jls shows Maintenance meanwhile' });
  }
  const conf = row.conf;
  const eenv = engineEnv(ctx, jname, conf);
  let engineStarted = false;
  const t = opts.timings;
  try {
    if (!opts.mounted) await timed(t, 'mnt_start', () => mntStart(ctx, jname, conf, 'start', opts));
    await timed(t, 'identity', () => verifyIdentity(ctx, jname, row.uuid));
    await timed(t, 'lease', () => requireLease(ctx, row));
    await timed(t, 'root', () => assembleRoot(ctx, jname, conf));
    const henv = hookEnv(ctx, jname, conf, opts);
    await timed(t, 'master_prestart.d', () => runHookDir(join(eenv.paths.sysdir, 'master_prestart.d'), 'start', henv, { stopOnError: true }));
    engineStarted = true;
    const res = await timed(t, `engine ${engine.name}`, () => engine.start(eenv));
    ctx.inv.setRunning(jname, runId, res.jid);
    await timed(t, 'monitor', () => ensureMonitor(ctx));
    await timed(t, 'master_poststart.d', () => runHookDir(join(eenv.paths.sysdir, 'master_poststart.d'), 'start', henv, { stopOnError: false }));
  } catch (e) {
    await teardownRun(ctx, jname, runId, { ...opts, engineStarted, reason: 'failed-start' }).catch((err) => warn({ err: String(err) }, 'teardown after a failed start'));
    throw e;
  }
  return info(ctx.inv.get(jname)!);
}

/**
 * jstop: master_prestop.d, then the teardown (engine stop with stop_timeout seconds, then
 * SIGKILL; unmount; master_poststop.d; mnt_stop). When another process is already tearing
 * the run down (the env just exited), waits for it to finish.
 * @throws BerthError E_NOT_RUNNING (1), E_LEASE_* (4)
 */
export async function stopEnv(ctx: NodeCtx, jname: string, opts: OpOptions = {}): Promise<EnvInfo> {
  const row = getEnv(ctx, jname);
  if (await recoverStaleClaim(ctx, row, opts)) return info(ctx.inv.get(jname)!);
  if (row.status === STATUS.OFF) throw new BerthError('E_NOT_RUNNING', `${jname} is not running`, EXIT.FAILURE);
  if (row.status === STATUS.ON && row.run_id) {
    await timed(opts.timings, 'lease', () => requireLease(ctx, row));
    await timed(opts.timings, 'master_prestop.d', () => runHookDir(join(ctx.wd.env(jname).sysdir, 'master_prestop.d'), 'stop', hookEnv(ctx, jname, row.conf, opts), { stopOnError: false }));
    if (await teardownRun(ctx, jname, row.run_id, { ...opts, engineStarted: true, reason: 'stop' })) return info(ctx.inv.get(jname)!);
  }
  for (let i = 0; i < 600; i++) {
    const r = ctx.inv.get(jname);
    if (!r || r.status === STATUS.OFF) return info(r ?? row, 'Off');
    await sleep(100);
  }
  throw ownedError('E_BUSY', `${jname} is still being started or stopped by another process`);
}

/**
 * jremove: refuses a running or protected env, or one this node does not own; with the
 * storage mounted, checks identity, runs remove.d, withdraws the descriptor copy from the
 * ownership record (no node can adopt the env from then on), releases the lease, deletes the
 * inventory row, the data, sysdir and fstab dir contents, the ownership record, and the local
 * mount point dirs.
 * @throws BerthError E_RUNNING (1), E_PROTECTED (1), E_LEASE_* (4), E_IDENTITY (5)
 */
export async function removeEnv(ctx: NodeCtx, jname: string, opts: OpOptions = {}): Promise<{ jname: string; removed: string[] }> {
  let row = getEnv(ctx, jname);
  if (await recoverStaleClaim(ctx, row, opts)) row = getEnv(ctx, jname);
  if (row.status !== STATUS.OFF) throw new BerthError('E_RUNNING', `${jname} is ${statusWord(row.status)}; stop it first: berth jstop jname=${jname}`, EXIT.FAILURE);
  if (row.conf.protected === '1') throw new BerthError('E_PROTECTED', `${jname} is protected (protected=1)`, EXIT.FAILURE, { hint: `berth jset jname=${jname} protected=0` });
  const claim = `remove-${randomUUID()}`;
  if (!ctx.inv.claimStart(jname, claim)) throw ownedError('E_BUSY', `${jname} is busy`);
  const p = ctx.wd.env(jname);
  const removed: string[] = [];
  let deleted = false;
  let withdrawn = false;
  try {
    await mntStart(ctx, jname, row.conf, 'remove', opts);
    verifyIdentity(ctx, jname, row.uuid);
    await requireLease(ctx, row);
    const table = await (await ctx.mounts()).list();
    for (const d of [p.data, p.sysdir, p.fstabDir, p.path]) {
      noSymlinkBelow(ctx.wd.root, d, `${jname}'s ${d}`);
      const inner = mountsUnder(table, d).filter((m) => m.target !== d);
      if (inner.length) throw engineError('E_MOUNTED', `${inner[0]!.target} is mounted inside ${d}; refusing to delete through a mount`, { hint: `unmount it first: umount ${inner[0]!.target}` });
    }
    await runHookDir(join(p.sysdir, 'remove.d'), 'remove', hookEnv(ctx, jname, row.conf, opts), { stopOnError: true });
    await rm(p.recordDescriptor, { force: true });
    withdrawn = true;
    await releaseEnvLease(ctx, row);
    ctx.inv.delete(jname);
    deleted = true;
    for (const d of [p.data, p.sysdir, p.fstabDir]) { await emptyDir(d); removed.push(d); }
    await rm(p.lease, { recursive: true, force: true });
    await journal(ctx, 'drop', { jname, uuid: row.uuid, generation: row.generation, emulator: row.emulator }, 'remove');
  } catch (e) {
    if (!deleted) {
      ctx.inv.finishTeardown(jname);
      if (withdrawn) await publishDescriptor(ctx, jname, row.conf).catch(() => undefined);
    }
    await mntStop(ctx, jname, row.conf, 'remove', opts).catch(() => undefined);
    throw e;
  }
  await mntStop(ctx, jname, row.conf, 'remove', opts);
  const table = await (await ctx.mounts()).list();
  for (const d of [p.data, p.sysdir, p.fstabDir, p.path]) {
    if (!table.some((m) => m.target === d)) await rmdir(d).catch(() => undefined);
  }
  await rm(p.log, { force: true });
  return { jname, removed };
}

/**
 * Lists registered envs (and, with `unregistered`, descriptors waiting in jails-rcconf/); an
 * On row whose process is gone shows as Maintenance until its teardown ends. With `summary`,
 * each env's conf holds only SUMMARY_KEYS (src/inventory.ts): what `jls` shows by default.
 */
export async function listEnvs(ctx: NodeCtx, opts: { patterns?: string[]; unregistered?: boolean; summary?: boolean } = {}): Promise<EnvInfo[]> {
  const ok = jnameFilter(opts.patterns);
  const gone = await goneRuns(ctx, ok);
  const out: EnvInfo[] = [];
  for (const row of opts.summary ? ctx.inv.listSummary() : ctx.inv.list()) {
    if (ok(row.jname)) out.push(info(row, gone.has(row.jname) ? 'Maintenance' : undefined));
  }
  if (opts.unregistered) out.push(...waitingDescriptors(ctx, ok, !!opts.summary));
  return out;
}

/** A jname filter from `jls`-style patterns (names or globs); none = everything. @throws E_BAD_JNAME (2) */
function jnameFilter(patterns: string[] | undefined): (jname: string) => boolean {
  const match = patterns?.length ? patterns.map((p) => jnameMatcher(checkJnamePattern(p))) : undefined;
  return (n) => !match || match.some((m) => m(n));
}

/**
 * The On envs (among those `ok` accepts) whose main process is gone while their teardown
 * (monitor or agent) has not finished yet: listings show them as Maintenance.
 */
async function goneRuns(ctx: NodeCtx, ok: (jname: string) => boolean): Promise<Set<string>> {
  const gone = new Set<string>();
  for (const row of ctx.inv.running()) {
    if (!ok(row.jname)) continue;
    const engine = await ctx.engine(row.emulator);
    if (!(await engine.isRunning(engineEnv(ctx, row.jname, row.conf), row.jid))) gone.add(row.jname);
  }
  return gone;
}

/**
 * Descriptors waiting in jails-rcconf/ for a jregister, as EnvInfo (status Unregister); with
 * `summary`, conf holds only the SUMMARY_KEYS, like the registered envs of that listing.
 */
function waitingDescriptors(ctx: NodeCtx, ok: (jname: string) => boolean, summary: boolean): EnvInfo[] {
  const out: EnvInfo[] = [];
  for (const { jname, file } of ctx.wd.waitingDescriptors()) {
    if (!ok(jname) || ctx.inv.get(jname)) continue;
    try {
      const conf = readDescriptor(file, ctx.wd.root);
      const shown = summary ? JSON.parse(summaryOf(conf)) as EnvConf : conf;
      out.push({ jname, uuid: conf.uuid ?? '', emulator: conf.emulator ?? 'jail', status: 'Unregister', jid: 0, generation: 0, conf: shown });
    } catch { /* unreadable descriptor: berth doctor names it (src/doctor.ts checkWaitingDescriptors) */ }
  }
  return out;
}

/**
 * The summary listing, `listEnvs(ctx, { ...opts, summary: true })`, as the text of a JSON array,
 * serialised by SQLite (src/inventory.ts summaryJson): the same document without building an
 * object per env, for `jls --json` of thousands of envs (bench/lifecycle.ts (c)).
 * @returns JSON text of EnvInfo[]
 * @throws BerthError E_BAD_JNAME (2) for a bad pattern
 */
export async function listEnvsJson(ctx: NodeCtx, opts: { patterns?: string[]; unregistered?: boolean } = {}): Promise<string> {
  const ok = jnameFilter(opts.patterns);
  const gone = await goneRuns(ctx, ok);
  const arr = ctx.inv.summaryJson([...gone], opts.patterns?.length ? ok : undefined);
  const extra = opts.unregistered ? waitingDescriptors(ctx, ok, true) : [];
  if (!extra.length) return arr;
  return arr.slice(0, -1) + (arr === '[]' ? '' : ',') + extra.map((e) => JSON.stringify(e)).join(',') + ']';
}

/**
 * jexec: runs argv inside the running env with the caller's stdio.
 * @returns the command's exit code
 * @throws BerthError E_NOT_RUNNING (1)
 */
export async function execInEnv(ctx: NodeCtx, jname: string, argv: string[], opts: { tty?: boolean } = {}): Promise<number> {
  const row = getEnv(ctx, jname);
  const engine = await ctx.engine(row.emulator);
  if (row.status !== STATUS.ON || !(await engine.isRunning(engineEnv(ctx, jname, row.conf), row.jid))) {
    throw new BerthError('E_NOT_RUNNING', `${jname} is not running; start it: berth jstart jname=${jname}`, EXIT.FAILURE);
  }
  if (argv.length === 0) throw usageError('E_NO_COMMAND', 'jexec needs a command, e.g. berth jexec jname=web1 /bin/sh');
  return engine.exec(engineEnv(ctx, jname, row.conf), argv, opts);
}

/**
 * jset: validates, requires the lease, and writes the new settings to the inventory and,
 * atomically, to the descriptor in the sysdir (storage mounted around it when stopped).
 * The storage is mounted with the hooks as they will be: `jset mnt_start=<fixed hook>` (or
 * `mnt_start=0` when the storage is mounted otherwise) repairs an env whose hook fails,
 * instead of failing on that very hook. The identity check still guards the write.
 * @returns the keys changed and whether a restart is needed to apply them
 */
export async function setEnv(ctx: NodeCtx, jname: string, changes: Record<string, string>, opts: OpOptions = {}): Promise<{ jname: string; changed: string[]; restartNeeded: boolean }> {
  const row = getEnv(ctx, jname);
  if (Object.keys(changes).length === 0) throw usageError('E_NOTHING_TO_SET', 'jset needs at least one key=value (see berth jset --help)');
  validateSettings(changes);
  const conf = { ...row.conf, ...changes };
  (await ctx.engine(row.emulator)).validate(conf);
  if (changes.base && !existsSync(ctx.wd.base(changes.base))) throw notFound('E_NO_SUCH_BASE', `no base ${JSON.stringify(changes.base)} on this node`);
  if (changes.baserw && changes.baserw !== row.conf.baserw) throw usageError('E_BAD_VALUE', `baserw cannot change after jcreate (${jname} has baserw=${row.conf.baserw})`);
  const changed = Object.keys(changes).filter((k) => row.conf[k] !== changes[k]);
  await withStorage(ctx, { ...row, conf }, 'set', opts, async () => {
    verifyIdentity(ctx, jname, row.uuid);
    await requireLease(ctx, row);
    await writeDescriptor(ctx.wd.env(jname).descriptor, conf, ctx.wd.root);
    await publishDescriptor(ctx, jname, conf);
    ctx.inv.updateConf(jname, conf);
  });
  return { jname, changed, restartNeeded: row.status === STATUS.ON && changed.length > 0 };
}

/** Paths of an env (for display). */
export function envPaths(ctx: NodeCtx, jname: string): EnvPaths {
  return ctx.wd.env(jname);
}
