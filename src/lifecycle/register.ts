/**
 * jregister / junregister: a node adopting, or letting go of, an env whose data already
 * exists (CBSD §6; design/product.md "Ownership"). Unlike CBSD, both are guarded by the
 * lease on the shared storage: two nodes registering one env get one winner, and a node that
 * does not own an env can neither unregister nor remove it.
 *
 * Unregister: check stopped → (storage mounted) write jails-rcconf/rc.conf_<jname> (CBSDROOT
 * form) → release the lease → delete the row → mnt_stop.
 * Register: the descriptor from rcfile=, else jails-rcconf/rc.conf_<jname>, else the copy in the
 * env's ownership record (so a node that has nothing of the env mounted can adopt it, e.g. from
 * a dead owner) → mnt_start (hook from mnt_start=, else the descriptor, else the node default)
 * → identity check → acquire the lease (or, with force, take it over: the owner node's
 * heartbeat is watched while mnt_start runs) → insert the row → mnt_stop (or jstart with
 * `start`). Descriptors written by CBSD itself are accepted (parsed, never sourced); one
 * without a uuid gets one.
 * Adopt (jmigrate's destination): the source handed the lease over (record.ts handoverLease);
 * the destination checks that claim, takes the descriptor from the record, and registers the
 * env at that generation, its storage mounted beforehand by {@link prepareAdopt}.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { access, lstat, mkdir, rm, rmdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError, EXIT, notFound, ownedError, usageError } from '../errors.js';
import { parseDescriptor, readDescriptor, readDescriptorAsync, readSharedDescriptorAsync, writeDescriptor, writeDescriptorIfChanged, type EnvConf } from '../descriptor.js';
import { STATUS } from '../inventory.js';
import { checkJname, checkJnamePattern, checkUuid, isGlob, jnameMatcher } from '../names.js';
import type { NodeCtx } from '../node.js';
import { forgetFencedEnv } from '../ownership/fence.js';
import {
  acquireEnvLease, completeTakeover, importLegacyLease, journal, releaseEnvLease, takeoverEnvLease, watchOwner,
} from '../ownership/leases.js';
import { readLease, readLeaseState, type WatchResult } from '../ownership/record.js';
import { readSharedBytesAsync } from '../sharedfs.js';
import { getEnv, stopCommand } from './envs.js';
import { settingDefsFor, validateSettings } from './settings.js';
import { startEnv } from './start.js';
import { verifyIdentity, withStorage } from './storage.js';
import { recoverStaleClaim } from './teardown.js';
import type { EnvInfo, OpOptions, StepTiming } from './types.js';

/** Whether `path` exists (access(2), asynchronous: one round trip on shared storage that holds no other work up). */
const exists = (path: string): Promise<boolean> => access(path).then(() => true, () => false);

/** Options of {@link registerEnv}. */
export interface RegisterOptions extends OpOptions {
  /** descriptor file (default jails-rcconf/rc.conf_<jname>) */
  rcfile?: string;
  /** storage hooks overriding the descriptor's */
  mntStart?: string;
  mntStop?: string;
  /** take the lease over from a silent owner (waits lease_ttl seconds watching its heartbeat) */
  force?: boolean;
  /** called once while waiting for a takeover, with the seconds it will wait */
  onWait?: (sec: number) => void;
  /** start the env once registered (its storage stays mounted in between) */
  start?: boolean;
}

/** Result of one registration. */
export interface RegisterResult {
  jname: string;
  uuid: string;
  generation: number;
  /** true when the lease was taken over from a silent owner */
  tookOver: boolean;
  previousOwner?: string;
  /** where the descriptor came from */
  rcfile?: string;
  /** with `start`: the env as started */
  started?: EnvInfo;
  /** adopt: how long each step took (ms) */
  timings?: StepTiming[];
  /** the env's data dir (its own data= dir when the descriptor names one that exists) */
  data?: string;
  /** the descriptor's paths that were replaced by this node's (another workdir's layout; path=, mount_fstab=, rcconf=) */
  mapped?: { key: string; from: string; to: string }[];
}

/**
 * The descriptor's paths on this node (CBSD cbsd-behaviour.md §4.3: `CBSDROOT` and relative
 * paths were already made this workdir's by parseDescriptor; absolute ones are used as written):
 * - `data=` missing, `0` or this node's jails-data/<jname>-data: that dir;
 * - `data=` an existing directory: honoured as written (the env runs on that data), unless it is
 *   another env's jails-data dir of this workdir;
 * - `data=` that does not exist but names a workdir's layout (`<workdir>/jails-data/<jname>-data`
 *   of another node, e.g. a CBSD node's /usr/jails): mapped to this node's, and reported;
 * - anything else is refused, naming it.
 * `path=`, `mount_fstab=` and `rcconf=` are where berth puts the env's root, fstab and
 * descriptor on this node: set to this node's, and reported when they named something else.
 * Changes `conf`. @returns what was mapped
 * @throws BerthError E_BAD_DATA_PATH (exit 2) naming the value
 */
export function resolveDescriptorPaths(ctx: NodeCtx, jname: string, conf: EnvConf, rcfile: string): { key: string; from: string; to: string }[] {
  const p = ctx.wd.env(jname);
  const mapped: { key: string; from: string; to: string }[] = [];
  const given = conf.data && conf.data !== '0' ? conf.data.replace(/\/+$/, '') : '';
  if (given && given !== p.data) {
    if (!given.startsWith('/')) {
      throw usageError('E_BAD_DATA_PATH', `data=${JSON.stringify(conf.data)} in ${rcfile} is a relative path, and the descriptor says relative_path="0"`, { hint: `write it absolute, or remove data= (berth then uses ${p.data})` });
    }
    let isDir = false;
    try { isDir = statSync(given).isDirectory(); } catch { isDir = false; }
    const layout = new RegExp(`/jails-data/${jname.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-data$`);
    if (isDir) {
      if (given.startsWith(ctx.wd.jailsData + '/')) {
        throw usageError('E_BAD_DATA_PATH', `data=${given} in ${rcfile} is another env's data dir on this node, not ${jname}'s (${p.data})`, { hint: `fix data= in ${rcfile}, or remove it (berth then uses ${p.data})` });
      }
      conf.data = given;
    } else if (layout.test(given)) {
      mapped.push({ key: 'data', from: given, to: p.data });
      conf.data = p.data;
    } else {
      throw usageError('E_BAD_DATA_PATH', `data=${given} in ${rcfile} does not exist on node ${ctx.nodename}, and it is not a workdir's jails-data/${jname}-data either; refusing to register ${jname} on other data than its descriptor names`, {
        hint: `mount or copy the env's data there, or remove data= from ${rcfile} (berth then uses ${p.data})`,
      });
    }
  } else {
    conf.data = p.data;
  }
  for (const [key, to] of [['path', p.path], ['mount_fstab', p.fstab], ['rcconf', p.rcconfFile]] as const) {
    const from = conf[key];
    if (from && from !== '0' && from !== to) mapped.push({ key, from, to });
    conf[key] = to;
  }
  conf.jname = jname;
  return mapped;
}

/**
 * The jnames `jregister jname=<glob>` would adopt: files `rc.conf_<name>` in jails-rcconf/
 * (CBSD globs files there, §6.1), in name order.
 */
export function unregisteredNames(ctx: NodeCtx, pattern: string): string[] {
  checkJnamePattern(pattern);
  const m = jnameMatcher(pattern);
  return ctx.wd.waitingDescriptors().map((d) => d.jname).filter((n) => m(n));
}

/**
 * jregister of one env.
 * @throws BerthError E_NO_RCCONF (3), E_ENV_EXISTS (1), hook errors, E_IDENTITY (5),
 *   E_LEASE_HELD (4: another node owns it; use force when that node is dead), E_BAD_UUID (2),
 *   E_DESCRIPTOR_UNSAFE (1: an engine refused the adopted file, e.g. src/engines/jail/engine.ts checkAdopted)
 */
export async function registerEnv(ctx: NodeCtx, jname: string | undefined, opts: RegisterOptions = {}): Promise<RegisterResult> {
  if (jname !== undefined) checkJname(jname);
  let rcfile = opts.rcfile ?? (jname ? ctx.wd.env(jname).rcconfFile : undefined);
  if (!rcfile) throw usageError('E_NO_JNAME', 'jregister needs jname= or rcfile=');
  // Not in jails-rcconf/ (a dead owner never wrote it, or jails-rcconf is not shared): the copy
  // in the ownership record is current (rewritten on every change) and visible on every node.
  if (!(await exists(rcfile))) {
    if (!opts.rcfile && jname && (await exists(ctx.wd.env(jname).recordDescriptor))) rcfile = ctx.wd.env(jname).recordDescriptor;
    else {
      throw notFound('E_NO_RCCONF', `no descriptor ${rcfile}${jname ? ` for ${jname}` : ''}${jname ? ` and no ownership record of it in ${ctx.wd.leaseDir}` : ''}`, {
        hint: `junregister writes it on the node that lets the env go; an env made by any node has its descriptor in ${ctx.wd.leaseDir}/envs/<jname>/ (is lease_dir the shared directory? see berth doctor)`,
      });
    }
  }
  let conf: EnvConf;
  try {
    conf = rcfile === (jname && ctx.wd.env(jname).recordDescriptor) ? await readSharedDescriptorAsync(rcfile, ctx.wd.root) : await readDescriptorAsync(rcfile, ctx.wd.root);
  } catch (e) {
    // another node adopted it (and deleted the descriptor) between the check and the read
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw notFound('E_NO_RCCONF', `no descriptor ${rcfile}${jname ? ` for ${jname}` : ''} (adopted by another node just now?)`);
    throw e;
  }
  const name = checkJname(conf.jname || jname || '');
  if (jname && conf.jname && conf.jname !== jname) throw usageError('E_BAD_RCCONF', `${rcfile} is the descriptor of ${conf.jname}, not ${jname}`);
  // CBSD writes uuid="0" for an env it never gave one (its default column value): no uuid yet
  if (conf.uuid === '0') delete conf.uuid;
  if (conf.uuid) checkUuid(conf.uuid, rcfile);
  // A row left by fencing (another node took the env over) is dropped when the env comes back.
  if (ctx.inv.get(name) && !(await forgetFencedEnv(ctx, name))) throw new BerthError('E_ENV_EXISTS', `${name} is already registered on node ${ctx.nodename}`, EXIT.FAILURE);
  if (opts.mntStart !== undefined) conf.mnt_start = opts.mntStart;
  if (opts.mntStop !== undefined) conf.mnt_stop = opts.mntStop;
  const mapped = resolveDescriptorPaths(ctx, name, conf, rcfile);
  const p = ctx.wd.env(name, conf.data);
  conf.emulator ??= 'jail';
  // A descriptor on shared storage is input like any other: validate every setting jset would.
  const engine = await ctx.engine(conf.emulator);
  const settable: Record<string, string> = {};
  for (const d of settingDefsFor(engine.info)) if (conf[d.key] !== undefined) settable[d.key] = conf[d.key]!;
  Object.assign(conf, validateSettings(settable, engine.info));
  engine.checkAdopted?.(rcfile, conf);
  engine.validate(conf);
  // The owner as the record says (the record is visible whatever is mounted): another node's
  // lease is refused here, before anything is mounted, unless force; then its node's heartbeat
  // is watched while mnt_start mounts the storage.
  const before = await readLeaseState(p.lease);
  let current = before.holder;
  const refuseHeld = async () => { if (current && current.node !== ctx.nodename && !opts.force) await acquireEnvLease(ctx, name, conf.uuid ?? current.uuid); }; // throws E_LEASE_HELD naming the owner, hint --force
  // a record that has generations already is never seeded from a berth 0.1 log (importLegacy)
  let legacyChecked = before.generation > 0;
  await refuseHeld();
  const ac = new AbortController();
  let watching: Promise<WatchResult> | undefined;
  const watch = () => {
    if (!current || current.node === ctx.nodename) return;
    watching = watchOwner(ctx, name, { force: true, onWait: opts.onWait, signal: ac.signal });
    watching.catch(() => undefined); // awaited below; a refusal while mnt_start runs is not unhandled
  };
  watch();
  // (an adopted env's dirs exist: one lookup each on the shared storage, not a mkdir and a stat)
  const made: string[] = [];
  for (const d of [p.data, p.sysdir, p.fstabDir]) {
    if (!(await exists(d))) { await mkdir(d, { recursive: true }); made.push(d); }
  }
  let lease: { generation: number } | undefined;
  let wroteSysDescriptor = false;
  const result: RegisterResult = { jname: name, uuid: '', generation: 0, tookOver: false, rcfile, data: p.data, ...(mapped.length ? { mapped } : {}) };
  const hadRecord = before.generation > 0 || (await exists(p.lease));
  let sysBefore: Buffer | undefined | null = null; // null: not read yet
  try {
    // the start that follows (start=1) unmounts when it fails (its teardown)
    await withStorage(ctx, name, conf, { action: 'register', uuid: false, lease: false, keep: opts.start || opts.keepStorage }, opts, async () => {
      let inserted = false;
      try {
        // the sysdir's descriptor as found (CBSD's own, uuid-less; or none): put back on a failure
        // (read once: the identity check and the rewrite below use this text)
        try { await lstat(p.descriptor); sysBefore = await readSharedBytesAsync(p.descriptor); } catch { sysBefore = undefined; }
        const sysText = sysBefore?.toString('utf8');
        if (!conf.uuid) {
          // A descriptor written by CBSD: no uuid yet. The sysdir must not already belong to a berth env.
          const existing = sysText !== undefined ? parseDescriptor(sysText, ctx.wd.root, p.descriptor).uuid || undefined : undefined;
          if (existing) checkUuid(existing, p.descriptor);
          conf.uuid = existing ?? randomUUID();
          if (!existing) {
            await writeDescriptor(p.descriptor, conf, ctx.wd.root);
            wroteSysDescriptor = true;
          }
        }
        result.uuid = conf.uuid;
        // (a descriptor this registration wrote is read back from the storage)
        await verifyIdentity(ctx, name, conf.uuid, conf, wroteSysDescriptor ? undefined : sysText);
        if (!current && !legacyChecked) {
          // no record yet: an env of berth 0.1 keeps its lease in the (now mounted) sysdir
          legacyChecked = true;
          if (await importLegacyLease(ctx, name)) {
            current = await readLease(p.lease);
            await refuseHeld();
            watch();
          }
        }
        if (watching) {
          result.previousOwner = current!.node || undefined;
          const l = await completeTakeover(ctx, name, conf.uuid, await watching, { force: true, onWait: opts.onWait });
          result.tookOver = !!l.takeoverFrom;
          if (!l.takeoverFrom) result.previousOwner = undefined; // released meanwhile: a plain acquire
          lease = l;
        } else if (current && current.node === ctx.nodename && current.uuid === conf.uuid) {
          // This node's own lease survived a lost inventory: take it over at a higher generation.
          lease = await takeoverEnvLease(ctx, name, conf.uuid, { force: true, watchSec: 0 });
        } else {
          lease = await acquireEnvLease(ctx, name, conf.uuid, { legacy: !legacyChecked });
        }
        result.generation = lease.generation;
        // The text read above is still the file's when the lease was free before it was read and
        // nobody claimed or released it until this claim (generation + 1): only a holder writes
        // it. Otherwise (a takeover, a legacy import, a race, a descriptor this registration
        // wrote) it is read again.
        const unchanged = !wroteSysDescriptor && !before.holder && lease.generation === before.generation + 1;
        await writeDescriptorIfChanged(p.descriptor, conf, ctx.wd.root, unchanged ? sysText : undefined);
        await writeDescriptorIfChanged(p.recordDescriptor, conf, ctx.wd.root);
        ctx.inv.insert({ jname: name, uuid: conf.uuid, emulator: conf.emulator!, generation: lease.generation, conf });
        inserted = true;
        // The unregistered descriptor is consumed (CBSD moves it into the sysdir); any other file
        // given as rcfile= (the sysdir copy, a file of the administrator's) is left alone.
        if (rcfile === p.rcconfFile) await unlink(rcfile).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e; });
        await journal(ctx, 'own', { jname: name, uuid: conf.uuid, generation: lease.generation, emulator: conf.emulator! }, result.tookOver ? 'takeover' : 'register');
      } catch (e) {
        // undo everything, whichever step failed: a failed jregister changes nothing
        if (inserted) ctx.inv.delete(name);
        if (lease) await releaseEnvLease(ctx, { jname: name, generation: lease.generation }).catch(() => undefined);
        // a failed adoption leaves the sysdir as it found it (a CBSD descriptor without a uuid included)
        // (only what this registration wrote: on shared storage the descriptor may be the
        // winner's of a concurrent registration, which is never deleted)
        if (sysBefore === undefined && wroteSysDescriptor) await rm(p.descriptor, { force: true }).catch(() => undefined);
        else if (sysBefore && (wroteSysDescriptor || lease)) await writeFile(p.descriptor, sysBefore).catch(() => undefined);
        // and the ownership directory: a record this registration made is deleted whole
        if (!hadRecord && lease) await rm(p.lease, { recursive: true, force: true }).catch(() => undefined);
        throw e;
      }
    });
  } catch (e) {
    ac.abort();
    // the dirs it made, if still empty (rmdir never removes content)
    for (const d of made) await rmdir(d).catch(() => undefined);
    throw e;
  }
  // the storage is still mounted: the start does not mount it again (its teardown unmounts it)
  if (opts.start) result.started = await startEnv(ctx, name, { verbose: opts.verbose, mounted: true });
  return result;
}

/**
 * junregister of one env: refuses a running env (exit 1) or one this node does not own
 * (exit 4), changing nothing; else writes the descriptor to jails-rcconf/ (or `rcfile`),
 * releases the lease, deletes the row, and runs mnt_stop.
 * @returns where the descriptor was written
 */
export async function unregisterEnv(ctx: NodeCtx, jname: string, opts: OpOptions & { rcfile?: string } = {}): Promise<{ jname: string; rcfile: string }> {
  let row = getEnv(ctx, jname);
  if (await recoverStaleClaim(ctx, row, opts)) row = getEnv(ctx, jname);
  if (row.status !== STATUS.OFF) throw new BerthError('E_RUNNING', `${jname} is ${row.status === STATUS.ON ? 'running' : 'busy'}; stop it first: ${stopCommand(row)}`, EXIT.FAILURE);
  if (!ctx.inv.claimStart(jname, `unregister-${randomUUID()}`)) throw ownedError('E_BUSY', `${jname} is busy`);
  const p = ctx.wd.env(jname);
  const target = opts.rcfile ?? p.rcconfFile;
  if (opts.rcfile && existsSync(opts.rcfile)) {
    let same = false;
    try { same = readDescriptor(opts.rcfile, ctx.wd.root).uuid === row.uuid; } catch { same = false; }
    if (!same) throw usageError('E_RCFILE_EXISTS', `rcfile=${opts.rcfile} exists and is not a descriptor of ${jname}; refusing to overwrite it`, { hint: 'give a new file name' });
  }
  let released = false;
  let wroteTarget = false;
  try {
    await withStorage(ctx, jname, row.conf, { action: 'unregister', uuid: row.uuid, lease: { generation: row.generation, uuid: row.uuid } }, opts, async () => {
      try {
        await mkdir(join(target, '..'), { recursive: true });
        await writeDescriptor(p.descriptor, row.conf, ctx.wd.root);
        wroteTarget = !(await exists(target));
        await writeDescriptor(target, row.conf, ctx.wd.root);
        await writeDescriptorIfChanged(p.recordDescriptor, row.conf, ctx.wd.root);
        await releaseEnvLease(ctx, row);
        released = true;
        ctx.inv.delete(jname);
        await journal(ctx, 'drop', row, 'release');
      } catch (e) {
        if (!released && wroteTarget) await rm(target, { force: true }).catch(() => undefined);
        throw e;
      }
    });
  } catch (e) {
    if (!released) ctx.inv.finishTeardown(jname);
    throw e;
  }
  return { jname, rcfile: target };
}

/** Expands jregister's targets: rcfile=, a plain jname, or a glob over jails-rcconf/. */
export function registerTargets(ctx: NodeCtx, patterns: string[]): string[] {
  const out: string[] = [];
  for (const p of patterns) {
    if (!isGlob(p)) { out.push(checkJname(p)); continue; }
    const hits = unregisteredNames(ctx, p);
    if (hits.length === 0) throw notFound('E_NO_RCCONF', `no descriptor in ${ctx.wd.jailsRcconf} matches ${JSON.stringify(p)}`);
    out.push(...hits);
  }
  return [...new Set(out)];
}
