/**
 * Fencing (design/product.md "Ownership: leases and fencing"): what this node does when it sees
 * that its generation of an env's lease was superseded (another node took the env over, or the
 * lease was released behind its back).
 *
 * - The running copy, if any, is stopped AT ONCE with a full teardown (src/lifecycle/teardown.ts fenceRun): the
 *   same exactly-once claim of the run as teardownRun (src/lifecycle.ts), so the run
 *   monitor, a jstop and the agent never tear down twice; the engine is killed without the
 *   stop_timeout grace (SIGTERM then SIGKILL immediately: every second of grace is a second
 *   in which two nodes write the same data); mounts under jails/<jname> are unmounted deepest
 *   first; master_poststop.d and mnt_stop run with `BERTH_FENCED=1` in their environment
 *   (they undo host-side state; they must not write to the env's data when it is set). No
 *   lease check is made: it would refuse, since the generation moved.
 * - The inventory row is KEPT, status Off, with its old (stale) generation, so `jls` on this
 *   node still shows the env; every operation that checks the lease (jstart, jstop, jset,
 *   jclone, jremove, junregister) refuses it with exit 4 naming the new owner, because the
 *   recorded generation is no longer current. The agent writes a marker
 *   `var/run/fenced/<jname>.json` ({@link FenceMarker}) and, from then on, never renews that
 *   lease and never reconciles, autostarts or otherwise touches that env's storage again,
 *   except to fence a copy that still got started (a start that passed its lease check just
 *   before the takeover).
 * - The stale row is dropped only when the env comes back to this node: {@link forgetFencedEnv}
 *   (used by the agent's register route, so `jmigrate` back to this node works) deletes the
 *   row and the marker after re-checking that the lease really moved on; or when its new owner
 *   removed it (the record is gone from an ownership directory that is there): the agent's
 *   check of a fenced row, and jregister, drop it then.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { BerthError } from '../errors.js';
import { STATUS } from '../inventory.js';
import { checkLease } from './record.js';
import type { Inventory } from '../inventory.js';
import type { Workdir } from '../paths.js';

/** What the agent records when it fences an env (`var/run/fenced/<jname>.json`). */
export interface FenceMarker {
  jname: string;
  uuid: string;
  /** the generation this node held (and the inventory row still records) */
  generation: number;
  /** the current generation of the lease when fenced, and its holder (undefined: released) */
  current?: number;
  owner?: string;
  /** why: the lease error code (E_LEASE_SUPERSEDED, E_LEASE_MISSING) */
  reason: string;
  /** when, by this node's clock (ISO 8601) */
  at: string;
  /** true when a running copy was stopped */
  stopped: boolean;
}

/** The marker dir `var/run/fenced`. */
export function fencedDir(wd: Workdir): string {
  return join(wd.runDir, 'fenced');
}

/** Reads the marker of `jname` (undefined when none or unreadable). */
export function readFenceMarker(wd: Workdir, jname: string): FenceMarker | undefined {
  try {
    return JSON.parse(readFileSync(join(fencedDir(wd), `${jname}.json`), 'utf8')) as FenceMarker;
  } catch {
    return undefined;
  }
}

/** Every marker, by jname. */
export function listFenceMarkers(wd: Workdir): Map<string, FenceMarker> {
  const out = new Map<string, FenceMarker>();
  let names: string[] = [];
  try { names = readdirSync(fencedDir(wd)); } catch { return out; }
  for (const n of names) {
    if (!n.endsWith('.json')) continue;
    const m = readFenceMarker(wd, n.slice(0, -5));
    if (m) out.set(m.jname, m);
  }
  return out;
}

/** What fencing needs of an opened node (src/node.ts NodeCtx has all of it). */
export interface FenceCtx {
  nodename: string;
  wd: Workdir;
  inv: Pick<Inventory, 'get' | 'delete'>;
}

/** True when the marker of `jname` is about the generation the inventory row records now. */
export function isFenced(ctx: FenceCtx, jname: string): FenceMarker | undefined {
  const row = ctx.inv.get(jname);
  const m = readFenceMarker(ctx.wd, jname);
  return row && m && m.generation === row.generation && m.uuid === row.uuid ? m : undefined;
}

/** Writes (atomically) the marker of an env. */
export async function writeFenceMarker(wd: Workdir, m: FenceMarker): Promise<void> {
  await mkdir(fencedDir(wd), { recursive: true, mode: 0o755 });
  await writeFileAtomic(join(fencedDir(wd), `${m.jname}.json`), JSON.stringify(m) + '\n', { mode: 0o644 });
}

/** Deletes the marker of `jname` (no-op when none). */
export async function clearFenceMarker(wd: Workdir, jname: string): Promise<void> {
  await rm(join(fencedDir(wd), `${jname}.json`), { force: true });
}

/**
 * Drops this node's stale inventory row of `jname` when its lease generation was superseded
 * (a fenced env, or one taken over while this node was down), so that the env can be
 * registered here again; or when this node was fenced from it and its record is gone since
 * (the new owner removed it: jremove deletes the record) while the ownership directory is there.
 * Re-checks the lease first; changes nothing when this node still holds it, when the row is not
 * Off, or when the lease cannot be read.
 * @returns true when a stale row was dropped
 */
export async function forgetFencedEnv(ctx: FenceCtx, jname: string): Promise<boolean> {
  const row = ctx.inv.get(jname);
  if (!row || row.status !== STATUS.OFF) return false;
  const lease = ctx.wd.env(jname).lease;
  if (!existsSync(lease)) {
    // no record: removed by the node that took it over (this node's marker says so), unless
    // the ownership directory itself is missing (not mounted): then nothing can be told
    if (!isFenced(ctx, jname) || !existsSync(join(ctx.wd.leaseDir, 'envs'))) return false;
    ctx.inv.delete(jname);
    await clearFenceMarker(ctx.wd, jname);
    return true;
  }
  try {
    await checkLease(lease, { node: ctx.nodename, generation: row.generation, uuid: row.uuid });
    return false; // still ours
  } catch (e) {
    if (!(e instanceof BerthError) || e.code !== 'E_LEASE_SUPERSEDED') return false;
  }
  ctx.inv.delete(jname);
  await clearFenceMarker(ctx.wd, jname);
  return true;
}
