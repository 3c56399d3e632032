/**
 * Ownership operations of one node, over its opened context: the record (record.ts) in the
 * shared ownership directory, the node's journal (journal.ts), the node heartbeats
 * (heartbeat.ts), fence notices (notices.ts) and the import of berth 0.1 leases (legacy.ts).
 * The lifecycle, register, clone and migrate code call these, never the record functions
 * directly, so that every transition is journaled and every check honours a legacy lease.
 */
import { existsSync } from 'node:fs';
import type { EnvConf } from '../descriptor.js';
import { writeDescriptor } from '../descriptor.js';
import { BerthError } from '../errors.js';
import type { EnvRow, Inventory } from '../inventory.js';
import { warn } from '../log.js';
import { readSharedText, textDigest } from '../sharedfs.js';
import type { Workdir } from '../paths.js';
import { COMPACT_EVERY, entriesSinceSnapshot, writeSnapshot, type JournalWriter } from './journal.js';
import { isFenced } from './fence.js';
import type { Ownership } from './store.js';
import { readNodeBeatRaw, watchSeconds } from './heartbeat.js';
import { importLegacy } from './legacy.js';
import { leaveNotice } from './notices.js';
import {
  acquireLease, checkLease, claimFrom, handoverLease, reclaimHandover, releaseLease, takeoverLease, watchHolder,
  type LeaseRecord, type TakeoverOptions, type WatchResult,
} from './record.js';

/**
 * What the ownership operations need of an opened node (src/node.ts NodeCtx has all of it):
 * its name and workdir, its lease_ttl, the ownership directory and its journal writer.
 */
export interface OwnerCtx {
  nodename: string;
  wd: Workdir;
  settings: { lease_ttl: number };
  own: Ownership;
  journal: JournalWriter;
}

/** The record directory of an env. */
export const recordOf = (ctx: OwnerCtx, jname: string): string => ctx.wd.env(jname).lease;

/**
 * Requires that this node holds the env's lease at the generation its inventory records
 * (and the env's uuid). A record missing because the env was made by berth 0.1 is imported
 * from the sysdir first, when that is visible (legacy.ts).
 * @returns the current record
 * @throws BerthError E_LEASE_SUPERSEDED / E_LEASE_MISSING (exit 4), E_LEASE_IO (exit 1)
 */
export async function requireLease(ctx: OwnerCtx, row: Pick<EnvRow, 'jname' | 'generation' | 'uuid'>): Promise<LeaseRecord> {
  const who = { node: ctx.nodename, generation: row.generation, uuid: row.uuid };
  try {
    return await checkLease(recordOf(ctx, row.jname), who);
  } catch (e) {
    if (!(e instanceof BerthError) || e.code !== 'E_LEASE_MISSING') throw e;
    if (!(await importLegacy(ctx.wd.env(row.jname).legacyLease, recordOf(ctx, row.jname)))) throw e;
    return checkLease(recordOf(ctx, row.jname), who);
  }
}

/** Imports a legacy lease of `jname` when its sysdir shows one and the record has none. @returns the generation imported (0: none) */
export async function importLegacyLease(ctx: OwnerCtx, jname: string): Promise<number> {
  return importLegacy(ctx.wd.env(jname).legacyLease, recordOf(ctx, jname));
}

/**
 * Acquires a free lease for a new or adopted env (jcreate, jregister, jclone). With `legacy`
 * (adopting an env that may come from berth 0.1), a legacy log in the (mounted) sysdir is
 * imported first, so the new generation is above it and a node that still records an old
 * generation is superseded.
 * @throws BerthError E_LEASE_HELD (exit 4) naming the owner; E_LEASE_IO (exit 1)
 */
export async function acquireEnvLease(ctx: OwnerCtx, jname: string, uuid: string, opts: { legacy?: boolean } = {}): Promise<LeaseRecord> {
  if (opts.legacy) await importLegacyLease(ctx, jname);
  return acquireLease(recordOf(ctx, jname), { node: ctx.nodename, uuid });
}

/** The options of takeoverLease that come from this node: liveness read from the shared node heartbeats. */
export function livenessOf(ctx: OwnerCtx): Pick<TakeoverOptions, 'beat' | 'watchSec'> {
  return {
    beat: (node) => readNodeBeatRaw(ctx.own.beatFile(node)),
    watchSec: async (node) => (node ? watchSeconds(await readNodeBeatRaw(ctx.own.beatFile(node)), ctx.settings.lease_ttl) : ctx.settings.lease_ttl),
  };
}

/** Options of a takeover from this node. */
export type TakeoverEnvOptions = Pick<TakeoverOptions, 'force' | 'onWait' | 'sleep' | 'pollMs'> & {
  /** seconds to watch instead of lease_ttl (0: this node's own lease survived a lost inventory) */
  watchSec?: number;
  signal?: AbortSignal;
};

function takeoverOpts(ctx: OwnerCtx, opts: TakeoverEnvOptions): TakeoverOptions & { signal?: AbortSignal } {
  const live = livenessOf(ctx);
  return { ...live, ...opts, watchSec: opts.watchSec !== undefined ? async () => opts.watchSec! : live.watchSec };
}

/**
 * The watch of a takeover (changes nothing): proves the env's owner node silent for lease_ttl
 * (src/ownership/record.ts watchHolder). jregister --force runs it while mnt_start mounts the
 * storage, then calls {@link completeTakeover}.
 */
export function watchOwner(ctx: OwnerCtx, jname: string, opts: TakeoverEnvOptions): Promise<WatchResult> {
  return watchHolder(recordOf(ctx, jname), takeoverOpts(ctx, opts));
}

/**
 * Claims the env after {@link watchOwner} proved its owner silent (or acquires it when it was
 * free or got released meanwhile), and leaves the old owner a fence notice.
 * @throws BerthError E_LEASE_HELD (exit 4): another node was faster, or the owner came back
 */
export async function completeTakeover(ctx: OwnerCtx, jname: string, uuid: string, w: WatchResult, opts: TakeoverEnvOptions): Promise<LeaseRecord> {
  const path = recordOf(ctx, jname);
  const who = { node: ctx.nodename, uuid };
  const r = (w.holder ? await claimFrom(path, who, w.holder) : undefined) ?? await takeoverLease(path, who, takeoverOpts(ctx, opts));
  if (r.takeoverFrom && r.takeoverFrom.node && r.takeoverFrom.node !== ctx.nodename) {
    await leaveNotice(ctx.own, r.takeoverFrom.node, { jname, generation: r.takeoverFrom.generation, uuid, by: ctx.nodename, newGeneration: r.generation })
      .catch((e) => warn({ jname, err: String(e) }, `could not leave node '${r.takeoverFrom!.node}' its fence notice; its agent finds the takeover by its own checks`));
  }
  return r;
}

/**
 * Takes an env over from a silent owner: {@link watchOwner} then {@link completeTakeover}.
 * @throws BerthError E_LEASE_HELD (exit 4): the owner is alive, or no force
 */
export async function takeoverEnvLease(ctx: OwnerCtx, jname: string, uuid: string, opts: TakeoverEnvOptions): Promise<LeaseRecord> {
  return completeTakeover(ctx, jname, uuid, await watchOwner(ctx, jname, opts), opts);
}

/** Releases this node's lease of `row` (junregister). @returns the release's generation (0: nothing was held) */
export async function releaseEnvLease(ctx: OwnerCtx, row: Pick<EnvRow, 'jname' | 'generation'>): Promise<number> {
  return releaseLease(recordOf(ctx, row.jname), { node: ctx.nodename, generation: row.generation });
}

/** Hands this node's lease of `row` to node `to` (jmigrate): one exclusive create, generation + 1. */
export async function handoverEnvLease(ctx: OwnerCtx, row: Pick<EnvRow, 'jname' | 'generation' | 'uuid'>, to: string): Promise<LeaseRecord> {
  return handoverLease(recordOf(ctx, row.jname), { node: ctx.nodename, generation: row.generation, uuid: row.uuid }, { node: to, uuid: row.uuid });
}

/**
 * Takes back this node's lease of `row` (generation N) that it handed to `to` (N+1) when `to`
 * never adopted it (a live migration's paused destination that did not answer): see
 * record.ts {@link reclaimHandover}. @returns this node's record at N+2
 */
export async function reclaimEnvLease(ctx: OwnerCtx, row: Pick<EnvRow, 'jname' | 'generation' | 'uuid'>, to: string): Promise<LeaseRecord> {
  return reclaimHandover(recordOf(ctx, row.jname), { node: ctx.nodename, generation: row.generation, uuid: row.uuid }, to);
}

/**
 * Records an ownership transition in this node's journal (after the record and the inventory
 * changed). Never throws: a lost entry is covered by the agent's next snapshot; it is logged.
 */
export async function journal(ctx: OwnerCtx, op: 'own' | 'drop', e: { jname: string; uuid: string; generation: number; emulator: string }, why: string): Promise<void> {
  try {
    await ctx.journal.append({ op, why, jname: e.jname, uuid: e.uuid, generation: e.generation, emulator: e.emulator });
  } catch (err) {
    await warn({ jname: e.jname, err: String(err) }, `could not journal ${why} of ${e.jname} in ${ctx.own.journalDir()}; the agent's next snapshot covers it`);
  }
}

/**
 * Writes the env's descriptor copy into its ownership record (atomic replace), so that a node
 * that does not have the env's storage mounted can still find its settings and hooks (a
 * takeover from a dead owner in the per-env hook layout). Called wherever the sysdir copy is
 * written. @throws file system errors (ENOENT when the record dir is missing)
 */
export async function publishDescriptor(ctx: OwnerCtx, jname: string, conf: EnvConf): Promise<void> {
  await writeDescriptor(ctx.wd.env(jname).recordDescriptor, conf, ctx.wd.root);
}

/**
 * The sha256 of the descriptor copy in `jname`'s record as this node reads it (the owner, which
 * wrote it), for a jmigrate destination to wait for that version (src/lifecycle/adopt.ts
 * readRecordDescriptor). @returns undefined when the record holds no readable copy
 */
export function recordDescriptorDigest(ctx: OwnerCtx, jname: string): string | undefined {
  try { return textDigest(readSharedText(ctx.wd.env(jname).recordDescriptor)); } catch { return undefined; }
}

/** True when the record of `jname` holds a descriptor copy. */
export function hasRecordDescriptor(ctx: OwnerCtx, jname: string): boolean {
  return existsSync(ctx.wd.env(jname).recordDescriptor);
}

/**
 * Compacts this node's ownership journal (src/ownership/journal.ts): when at least
 * COMPACT_EVERY (64) entries follow the newest snapshot, or with `force`, writes
 * `snapshot.<head>` from this node's inventory (every row held at a generation, fenced rows
 * left out) and prunes what no reader needs. The agent calls it every 10 heartbeat periods; a
 * command that changed many envs at once (a glob jregister) calls it at its end, so that a
 * reader arriving cold reads one snapshot instead of every entry. Concurrent callers are
 * harmless: one snapshot per head (exclusive create).
 * @returns the snapshot's version and env count, or undefined when none was written
 * @throws file system errors of the ownership directory
 */
export async function compactJournal(ctx: OwnerCtx & { inv: Pick<Inventory, 'list' | 'get' | 'delete'> }, opts: { force?: boolean } = {}): Promise<{ v: number; envs: number } | undefined> {
  if (!opts.force && (await entriesSinceSnapshot(ctx.own)) < COMPACT_EVERY) return undefined;
  // the head first, then the inventory: the snapshot holds at least every transition up to it
  const head = await ctx.journal.currentHead();
  if (head === 0) return undefined;
  const envs = ctx.inv.list().filter((r) => r.generation > 0 && !isFenced(ctx, r.jname))
    .map((r) => ({ jname: r.jname, uuid: r.uuid, generation: r.generation, emulator: r.emulator }));
  return (await writeSnapshot(ctx.own, head, envs)) ? { v: head, envs: envs.length } : undefined;
}
