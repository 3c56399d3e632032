/**
 * The steps of a jrename (src/lifecycle/rename.ts has the order and why) and their recovery:
 * moving an env's files to a new name, rolling back before the commit point and forward after
 * it, and {@link recoverRename}, which finishes a jrename whose process died (called from the
 * stale-claim recovery in ./teardown.ts, so this file must not import it).
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

export const CLAIM = 'rename:';
/** The run_id of a rename's Maintenance claim. */
export const renameClaim = (oldName: string, newName: string): string => `${CLAIM}${oldName}:${newName}`;
/** The names of a rename claim, or undefined. */
export function parseRenameClaim(runId: string | null | undefined): { oldName: string; newName: string } | undefined {
  if (!runId?.startsWith(CLAIM)) return undefined;
  const [oldName, newName] = runId.slice(CLAIM.length).split(':');
  return oldName && newName ? { oldName, newName } : undefined;
}

/** True when the env's data= names a dir of its own, not jails-data/<jname>-data (it stays where it is). */
export const ownData = (ctx: NodeCtx, jname: string, conf: EnvConf): boolean => ctx.wd.env(jname, conf.data).data !== ctx.wd.env(jname).data;

/** The conf of an env under the name `jname` (the keys that carry its paths follow; a data dir of its own stays). */
export function confAs(ctx: NodeCtx, conf: EnvConf, fromName: string, jname: string): EnvConf {
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
export async function moveDir(from: string, to: string): Promise<void> {
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
export async function moveFiles(ctx: NodeCtx, from: string, to: string, conf: EnvConf, uuid: string, opts: OpOptions): Promise<void> {
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
    await verifyIdentity(ctx, to, uuid, conf);
  } catch (e) {
    await runStorageHook('mnt_stop', hooks.stop, 'rename', henv).catch((err) => warn({ jname: to, err: String(err) }, 'mnt_stop after a failed rename'));
    throw e;
  }
  await runStorageHook('mnt_stop', hooks.stop, 'rename', henv);
}

/** Deletes the ownership record of `jname` if it is this node's claim for `uuid` (the reservation of step 2). */
export async function dropReservation(ctx: NodeCtx, jname: string, uuid: string): Promise<void> {
  const p = ctx.wd.env(jname);
  const l = await readLease(p.lease).catch(() => undefined);
  if (l && l.node === ctx.nodename && l.uuid === uuid) await rm(p.lease, { recursive: true, force: true });
}

/** Steps 5-7 (after the commit): see the module header. Idempotent. */
export async function rollForward(ctx: NodeCtx, row: EnvRow, oldName: string, newName: string, step: (s: RenameStep) => Promise<void>): Promise<void> {
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
export async function rmdirUnmounted(ctx: NodeCtx, jname: string): Promise<void> {
  const p = ctx.wd.env(jname);
  const table = await (await ctx.mounts()).list();
  for (const d of [p.data, p.sysdir, p.fstabDir, p.path]) {
    if (!isMountpoint(table, d)) await rmdir(d).catch(() => undefined); // rmdir: an empty dir only
  }
}

/** Steps 3 and 2 undone (before the commit): the old name works again. */
export async function rollBack(ctx: NodeCtx, row: EnvRow, newName: string, opts: OpOptions): Promise<void> {
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

