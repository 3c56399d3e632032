/**
 * jrename old= new= (CBSD jrename, cbsd-behaviour.md §4.2 rename.d): a stopped env owned by this
 * node gets a new jname. What carries the name moves: the data, sysdir and fstab dirs
 * (jails-data/<jname>-data, jails-system/<jname>, jails-fstab/<jname>), the descriptor
 * (jails-system/<jname>/rc.conf_<jname>, its jname/path/data/mount_fstab/rcconf keys), the
 * inventory row, the ownership record (<lease_dir>/envs/<jname>/), the entries of fstab and
 * fstab.local whose device is one of the env's own dirs (Bastille's rename lost them:
 * bastille#748), the node log. With per-env storage hooks, the hooks move the env on the volume:
 * mnt_start runs for the NEW name with `BERTH_ACTION=rename`, `BERTH_OLD_JNAME=<old>`,
 * `BERTH_NEW_JNAME=<new>` and must rename the env's sub-directories from the old name to the new
 * one (idempotently: those already renamed are left as they are) before it mounts them.
 *
 * ## Order, and why a crash leaves one name working
 *
 * Several directories cannot be renamed in one atomic step, so the rename has ONE commit point,
 * the inventory row's UPDATE of its jname (one SQLite transaction), and every step before it can
 * be undone, every step after it redone. Throughout, the row is in Maintenance with
 * `run_id = rename:<old>:<new>` and the pid of the command (claim_pid), so whoever finds that
 * claim with a dead pid (any later command on the env through recoverStaleClaim, the run monitor,
 * the agent) knows what was going on and finishes it ({@link recoverRename}):
 *
 * 1. checks, changing nothing: both names valid and different, `old` registered here, Off and
 *    leased by this node at the generation the row says; `new` nowhere (no row, no ownership
 *    record, no jails-rcconf descriptor, none of its dirs non-empty); then the Maintenance claim.
 * 2. reserve: acquire the lease of `new` (exclusive create of <lease_dir>/envs/<new>/gen.1): of
 *    two nodes renaming to the same name, one wins, and no node can create or adopt `new` now.
 * 3. move: mnt_start(new, rename) (the hook moves the env on its volume and mounts it under the
 *    new name), each of data/sysdir/fstab dir not mounted by the hook renamed locally (rename(2),
 *    skipped when already done), rc.conf_<old> rewritten as rc.conf_<new>, fstab and fstab.local
 *    rewritten, the identity check under the new name, mnt_stop(new, rename). Every piece is
 *    idempotent and has an inverse, the same move the other way.
 * 4. commit: the row renamed (jname, conf, the new lease's generation).
 * 5. publish: the descriptor copy into the new record.
 * 6. release: the old record withdrawn (its descriptor copy first, then the directory), the
 *    journal told.
 * 7. finish: the old name's empty mount point dirs removed, the log renamed, the row Off.
 *
 * Before 4 a failure (or a crash, found later) is rolled back: the move the other way
 * (mnt_start(old, rename) with BERTH_OLD_JNAME=<new>), the reserved record deleted, the row Off:
 * the old name works. From 4 on it is rolled forward (5-7): the new name works. test/unit/
 * rename.test.ts fails and "crashes" the rename at each step and checks that.
 */
import { existsSync, readdirSync } from 'node:fs';
import { readFile, rename, rm, rmdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { readDescriptor, writeDescriptor, type EnvConf } from '../descriptor.js';
import { BerthError, EXIT, ownedError, usageError } from '../errors.js';
import { runStorageHook } from '../hooks.js';
import { STATUS, statusWord, type EnvRow } from '../inventory.js';
import { warn } from '../log.js';
import { isMountpoint } from '../mounts/types.js';
import { checkJname } from '../names.js';
import type { NodeCtx } from '../node.js';
import { acquireEnvLease, journal, publishDescriptor, requireLease } from '../ownership/leases.js';
import { readLease } from '../ownership/record.js';
import { replaceFileAtomic } from '../sharedfs.js';
import { getEnv } from './envs.js';
import { effectiveHooks, hookEnv, verifyIdentity } from './storage.js';
import { recoverStaleClaim } from './teardown.js';
import { envInfo, type EnvInfo, type OpOptions } from './types.js';

/** The steps of a rename, in order (see the module header). */
export const RENAME_STEPS = ['reserve', 'move', 'commit', 'publish', 'release', 'finish'] as const;
export type RenameStep = (typeof RENAME_STEPS)[number];

/** Options of {@link renameEnv}. */
export interface RenameOptions extends OpOptions {
  /**
   * Called before each step (a test seam: a throw there is a failure at that step, a promise
   * that never settles stands for a crash of the command there).
   */
  onStep?: (step: RenameStep) => Promise<void> | void;
}

const CLAIM = 'rename:';
/** The run_id of a rename's Maintenance claim. */
export const renameClaim = (oldName: string, newName: string): string => `${CLAIM}${oldName}:${newName}`;
/** The names of a rename claim, or undefined. */
export function parseRenameClaim(runId: string | null | undefined): { oldName: string; newName: string } | undefined {
  if (!runId?.startsWith(CLAIM)) return undefined;
  const [oldName, newName] = runId.slice(CLAIM.length).split(':');
  return oldName && newName ? { oldName, newName } : undefined;
}

/** True when the env's data= names a dir of its own, not jails-data/<jname>-data (it stays where it is). */
const ownData = (ctx: NodeCtx, jname: string, conf: EnvConf): boolean => ctx.wd.env(jname, conf.data).data !== ctx.wd.env(jname).data;

/** The conf of an env under the name `jname` (the keys that carry its paths follow; a data dir of its own stays). */
function confAs(ctx: NodeCtx, conf: EnvConf, fromName: string, jname: string): EnvConf {
  const p = ctx.wd.env(jname);
  return { ...conf, jname, path: p.path, data: ownData(ctx, fromName, conf) ? conf.data : p.data, mount_fstab: p.fstab, rcconf: p.rcconfFile };
}

/**
 * fstab text with every entry whose device is one of `from`'s dirs (data, sysdir, fstab dir,
 * path; absolute, workdir-relative or CBSDROOT/ form) or below one, pointed at the same place
 * under `to`. Only the device field changes; comments, other entries and spacing stay. Exact to
 * the path segment, so applying it twice changes nothing more.
 */
export function renameFstabText(text: string, root: string, from: EnvPathsPair, to: EnvPathsPair): string {
  const pairs: [string, string][] = [];
  for (const k of ['data', 'sysdir', 'fstabDir', 'path'] as const) {
    const a = from[k]; const b = to[k];
    pairs.push([a, b]);
    const rel = (x: string) => x.slice(root.length + 1);
    if (a.startsWith(root + '/')) { pairs.push([rel(a), rel(b)], [`CBSDROOT/${rel(a)}`, `CBSDROOT/${rel(b)}`]); }
  }
  return text.split('\n').map((line) => {
    const m = /^(\s*)(\S+)(.*)$/.exec(line);
    if (!m || m[2]!.startsWith('#')) return line;
    for (const [a, b] of pairs) {
      if (m[2] === a || m[2]!.startsWith(a + '/')) return m[1] + b + m[2]!.slice(a.length) + m[3];
    }
    return line;
  }).join('\n');
}

/** The dirs of an env {@link renameFstabText} rewrites. */
export interface EnvPathsPair { data: string; sysdir: string; fstabDir: string; path: string }

/** rename(2) of `from` to `to` unless done already (`from` gone, `to` there); `to` may be an empty dir. */
async function moveDir(from: string, to: string): Promise<void> {
  if (!existsSync(from)) {
    if (existsSync(to)) return;
    throw new BerthError('E_RENAME_LOST', `neither ${from} nor ${to} exists`, EXIT.FAILURE);
  }
  if (existsSync(to) && readdirSync(to).length === 0 && readdirSync(from).length === 0) { await rmdir(from); return; }
  await rename(from, to);
}

/**
 * The move of an env's files from name `from` to name `to` (step 3, and its inverse): see the
 * module header. Idempotent. `conf` is the env's conf under `to`.
 */
async function moveFiles(ctx: NodeCtx, from: string, to: string, conf: EnvConf, uuid: string, opts: OpOptions): Promise<void> {
  const own = ownData(ctx, to, conf);
  const fp = ctx.wd.env(from, own ? conf.data : undefined);
  const tp = ctx.wd.env(to, own ? conf.data : undefined);
  const hooks = effectiveHooks(ctx, conf);
  const henv = hookEnv(ctx, to, conf, opts, { BERTH_OLD_JNAME: from, BERTH_NEW_JNAME: to });
  await runStorageHook('mnt_start', hooks.start, 'rename', henv);
  try {
    const table = await (await ctx.mounts()).list();
    for (const k of own ? ['sysdir', 'fstabDir'] as const : ['data', 'sysdir', 'fstabDir'] as const) {
      if (isMountpoint(table, tp[k])) continue; // the hook moved it on its volume and mounted it
      if (isMountpoint(table, fp[k])) throw new BerthError('E_MOUNTED', `${fp[k]} is mounted; refusing to rename ${from} through a mount`, EXIT.FAILURE, { hint: `unmount it first: umount ${fp[k]}` });
      await moveDir(fp[k], tp[k]);
    }
    // the descriptor in the sysdir: rc.conf_<from> becomes rc.conf_<to>
    const oldDesc = join(tp.sysdir, `rc.conf_${from}`);
    if (existsSync(oldDesc) || existsSync(tp.descriptor)) {
      await writeDescriptor(tp.descriptor, conf, ctx.wd.root);
      await unlink(oldDesc).catch((e: NodeJS.ErrnoException) => { if (e.code !== 'ENOENT') throw e; });
    }
    for (const f of [tp.fstab, tp.fstabLocal]) {
      let text: string;
      try { text = await readFile(f, 'utf8'); } catch { continue; }
      const out = renameFstabText(text, ctx.wd.root, fp, tp);
      if (out !== text) await replaceFileAtomic(f, out, { mode: 0o644 });
    }
    verifyIdentity(ctx, to, uuid, conf);
  } catch (e) {
    await runStorageHook('mnt_stop', hooks.stop, 'rename', henv).catch((err) => warn({ jname: to, err: String(err) }, 'mnt_stop after a failed rename'));
    throw e;
  }
  await runStorageHook('mnt_stop', hooks.stop, 'rename', henv);
}

/** Deletes the ownership record of `jname` if it is this node's claim for `uuid` (the reservation of step 2). */
async function dropReservation(ctx: NodeCtx, jname: string, uuid: string): Promise<void> {
  const p = ctx.wd.env(jname);
  const l = await readLease(p.lease).catch(() => undefined);
  if (l && l.node === ctx.nodename && l.uuid === uuid) await rm(p.lease, { recursive: true, force: true });
}

/** Steps 5-7 (after the commit): see the module header. Idempotent. */
async function rollForward(ctx: NodeCtx, row: EnvRow, oldName: string, newName: string, step: (s: RenameStep) => Promise<void>): Promise<void> {
  const op = ctx.wd.env(oldName);
  const np = ctx.wd.env(newName);
  await step('publish');
  await publishDescriptor(ctx, newName, row.conf);
  await step('release');
  const old = await readLease(op.lease).catch(() => undefined);
  if (old && old.node === ctx.nodename && old.uuid === row.uuid) {
    await rm(op.recordDescriptor, { force: true });
    await rm(op.lease, { recursive: true, force: true });
  }
  await journal(ctx, 'drop', { jname: oldName, uuid: row.uuid, generation: old?.generation ?? row.generation, emulator: row.emulator }, 'rename');
  await journal(ctx, 'own', { jname: newName, uuid: row.uuid, generation: row.generation, emulator: row.emulator }, 'rename');
  await step('finish');
  await rmdirUnmounted(ctx, oldName);
  if (existsSync(op.log) && !existsSync(np.log)) await rename(op.log, np.log).catch(() => undefined);
  ctx.inv.finishTeardown(newName);
}

/** Removes the dirs of name `jname` that are empty and not mounted on (mount points left behind). */
async function rmdirUnmounted(ctx: NodeCtx, jname: string): Promise<void> {
  const p = ctx.wd.env(jname);
  const table = await (await ctx.mounts()).list();
  for (const d of [p.data, p.sysdir, p.fstabDir, p.path]) {
    if (!isMountpoint(table, d)) await rmdir(d).catch(() => undefined); // rmdir: an empty dir only
  }
}

/** Steps 3 and 2 undone (before the commit): the old name works again. */
async function rollBack(ctx: NodeCtx, row: EnvRow, newName: string, opts: OpOptions): Promise<void> {
  await moveFiles(ctx, newName, row.jname, row.conf, row.uuid, opts);
  await dropReservation(ctx, newName, row.uuid);
  await rmdirUnmounted(ctx, newName);
  ctx.inv.finishTeardown(row.jname);
}

/**
 * Finishes a rename whose command died (a Maintenance claim `rename:<old>:<new>` with a dead
 * pid, already taken over by the caller: recoverStaleClaim): rolled back when the row still has
 * the old name, forward when it has the new one. @returns the name that works now
 */
export async function recoverRename(ctx: NodeCtx, row: EnvRow, opts: OpOptions = {}): Promise<string> {
  const c = parseRenameClaim(row.run_id)!;
  await warn({ jname: row.jname, ...c }, `finishing the rename of ${c.oldName} to ${c.newName} that a dead berth command left`);
  if (row.jname === c.oldName) { await rollBack(ctx, row, c.newName, opts); return c.oldName; }
  await rollForward(ctx, row, c.oldName, c.newName, async () => undefined);
  return c.newName;
}

/**
 * jrename of one env (see the module header for the order).
 * @throws BerthError E_BAD_JNAME (2) for a bad new name, E_SAME_NAME (2), E_NO_SUCH_ENV (3),
 *   E_RUNNING (1), E_LEASE_* (4: not owned by this node), E_NAME_TAKEN (1: the new name is in
 *   use here or in the ownership directory), hook errors, E_IDENTITY (5); a refusal changes nothing
 */
export async function renameEnv(ctx: NodeCtx, oldName: string, newName: string, opts: RenameOptions = {}): Promise<EnvInfo & { oldJname: string }> {
  checkJname(oldName);
  checkJname(newName);
  if (oldName === newName) throw usageError('E_SAME_NAME', `old and new name are both ${JSON.stringify(oldName)}`);
  let row = getEnv(ctx, oldName);
  if (await recoverStaleClaim(ctx, row, opts)) row = getEnv(ctx, oldName);
  if (row.status !== STATUS.OFF) throw new BerthError('E_RUNNING', `${oldName} is ${statusWord(row.status)}; stop it first: berth jstop jname=${oldName}`, EXIT.FAILURE);
  await requireLease(ctx, row);
  const np = ctx.wd.env(newName);
  const taken = (why: string) => new BerthError('E_NAME_TAKEN', `cannot rename ${oldName} to ${newName}: ${why}`, EXIT.FAILURE, { hint: 'choose another name (see berth jls and berth cluster ls)' });
  if (ctx.inv.get(newName)) throw taken(`an env ${newName} is registered on node ${ctx.nodename}`);
  if (existsSync(np.lease)) throw taken(`${np.lease} exists (an env of that name is known to the cluster)`);
  if (existsSync(np.rcconfFile)) throw taken(`${np.rcconfFile} exists (an unregistered env of that name)`);
  for (const d of [np.data, np.sysdir, np.fstabDir, np.path]) {
    if (existsSync(d) && readdirSync(d).length > 0) throw taken(`${d} exists and is not empty`);
  }
  if (!ctx.inv.claimStart(oldName, renameClaim(oldName, newName))) throw ownedError('E_BUSY', `${oldName} is busy`);
  const step = async (s: RenameStep) => { await opts.onStep?.(s); };
  const newConf = confAs(ctx, row.conf, oldName, newName);
  let committed = false;
  try {
    await step('reserve');
    const lease = await acquireEnvLease(ctx, newName, row.uuid);
    await step('move');
    await moveFiles(ctx, oldName, newName, newConf, row.uuid, opts);
    await step('commit');
    ctx.inv.db.prepare('UPDATE jails SET jname = ?, conf = ?, generation = ? WHERE jname = ? AND run_id = ?')
      .run(newName, JSON.stringify(newConf), lease.generation, oldName, renameClaim(oldName, newName));
    ctx.inv.updateConf(newName, newConf); // (the summary column)
    committed = true;
    await rollForward(ctx, ctx.inv.get(newName)!, oldName, newName, step);
  } catch (e) {
    if (committed) {
      // from the commit on the new name is the env's: finish what is left, then report the failure
      await rollForward(ctx, ctx.inv.get(newName)!, oldName, newName, async () => undefined)
        .catch((err) => warn({ jname: newName, err: String(err) }, `renamed ${oldName} to ${newName}, but finishing it failed; the next command on ${newName} retries`));
    } else {
      await rollBack(ctx, ctx.inv.get(oldName)!, newName, opts)
        .catch((err) => warn({ jname: oldName, err: String(err) }, `undoing the rename of ${oldName} failed; the next command on ${oldName} retries`));
    }
    throw e;
  }
  return { ...envInfo(ctx.inv.get(newName)!), oldJname: oldName };
}
