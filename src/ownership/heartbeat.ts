/**
 * Node heartbeats: liveness per node, not per env (design/product.md "Ownership"; the split of
 * sanlock's delta lease per host and resource lease per disk, peers.md). The agent of a node
 * rewrites `<lease_dir>/nodes/<node>/hb` every lease_ttl/3 seconds, whatever the number of envs
 * the node owns, running or stopped; an env's owner is alive exactly while its node's heartbeat
 * moves. One write per node per period: the cost of staying alive does not grow with the
 * number of envs.
 *
 * The heartbeat's content changes on every write (`counter`, a random `nonce`); it carries the
 * writer's `leaseTtl` so that a node watching it for a takeover watches at least as long as the
 * writer's own period allows, and a `boot` id that changes when the agent restarts. Its `at`
 * (the writer's clock) is shown, never compared with another machine's clock.
 *
 * ## Ages without comparing clocks
 *
 * A node records, in `var/run/heartbeats.json` (local), when IT first saw each node's current
 * heartbeat content and when it last looked. Both times are its own clock, so:
 * - `ageSec` = now − first sighting of the current content: a LOWER bound of the real age;
 * - when the previous content was seen at the last look (time L), the heartbeat changed after
 *   L, so `ageMaxSec` = now − L is an UPPER bound; otherwise it is null (first sighting: the
 *   table shows `>=Ns`);
 * - `silent` = unchanged, as seen here, for more than lease_ttl seconds (the condition under
 *   which `jregister --force` would take that node's envs over).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { readSharedTextAsync, replaceFileAtomic } from '../sharedfs.js';

/** The content of `nodes/<node>/hb`. */
export interface NodeBeat {
  node: string;
  /** random id of the agent run that writes it (a restarted agent has a new one) */
  boot: string;
  /** grows by one on every write of this agent run */
  counter: number;
  /** random on every write, so that two writes never have the same content */
  nonce: string;
  /** the writer's clock, ISO 8601 (shown, never compared) */
  at: string;
  /** the writer's lease_ttl, seconds: it writes every leaseTtl/3 */
  leaseTtl: number;
  /** berth version of the writer */
  version?: string;
}

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException)?.code;

/**
 * Writes a node heartbeat (temp file + rename; not fsync'd: a heartbeat lost in a server crash
 * only looks like a silent node for a while).
 * @throws the file system error (ENOENT when the node dir is missing)
 */
export async function writeNodeBeat(file: string, beat: Omit<NodeBeat, 'nonce' | 'at'>): Promise<NodeBeat> {
  const b: NodeBeat = { ...beat, nonce: randomBytes(8).toString('hex'), at: new Date().toISOString() };
  await replaceFileAtomic(file, JSON.stringify(b) + '\n', { durable: false });
  return b;
}

/**
 * The raw heartbeat text of a node ('' when it has none): compared, never parsed for time.
 * Read as src/sharedfs.ts readSharedTextAsync does for files replaced by rename on another node.
 * @throws I/O errors other than ENOENT
 */
export async function readNodeBeatRaw(file: string): Promise<string> {
  try {
    return await readSharedTextAsync(file, { nonEmpty: true });
  } catch (e) {
    if (errno(e) === 'ENOENT') return '';
    throw e;
  }
}

/** Parses a heartbeat ('' or garbage: undefined; a heartbeat is advisory). */
export function parseNodeBeat(raw: string): NodeBeat | undefined {
  if (!raw) return undefined;
  try {
    const b = JSON.parse(raw) as NodeBeat;
    return b && typeof b.node === 'string' && typeof b.counter === 'number' ? b : undefined;
  } catch {
    return undefined;
  }
}

/**
 * How long a node must watch another node's heartbeat before it may call it silent, seconds:
 * its own lease_ttl, or the writer's when that is longer (a writer with lease_ttl 30 beats
 * every 10 s: a watcher with lease_ttl 6 must still wait 30 s).
 */
export function watchSeconds(raw: string, ownTtlSec: number): number {
  const b = parseNodeBeat(raw);
  return Math.max(ownTtlSec, b && Number.isFinite(b.leaseTtl) && b.leaseTtl > 0 ? b.leaseTtl : 0);
}

// ---------------------------------------------------------------------------------------------
// sightings (var/run/heartbeats.json)

/** One node's heartbeat as this node last saw it. */
export interface Sighting {
  /** the heartbeat content's identity (boot:counter:nonce), opaque */
  key: string;
  /** this node's clock (ms) when it first saw `key` */
  seenAt: number;
  /** this node's clock (ms) of the last look that saw a different key (null: first sighting) */
  after: number | null;
  /** this node's clock (ms) of the last look */
  checkedAt: number;
}

/** The sightings cache: node → sighting. */
export interface SightingCache { version: 2; nodes: Record<string, Sighting> }

/** Reads the cache (missing or unreadable: empty). */
export async function readSightings(file: string): Promise<SightingCache> {
  try {
    const c = JSON.parse(await readFile(file, 'utf8')) as SightingCache;
    if (c && c.version === 2 && c.nodes && typeof c.nodes === 'object') return c;
  } catch { /* none yet, or unreadable: start afresh */ }
  return { version: 2, nodes: {} };
}

/** Writes the cache atomically (a lost update only widens a bound). */
export async function writeSightings(file: string, c: SightingCache): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await replaceFileAtomic(file, JSON.stringify(c) + '\n', { durable: false });
}

/** The identity of a heartbeat's content ('' for none). */
export function beatKey(raw: string): string {
  const b = parseNodeBeat(raw);
  return b ? `${b.boot}:${b.counter}:${b.nonce}` : '';
}

/** Records one observation of content `key` at local time `now` (ms). Pure. */
export function observe(prev: Sighting | undefined, key: string, now: number): Sighting {
  if (!prev) return { key, seenAt: now, after: null, checkedAt: now };
  if (prev.key === key) return { ...prev, checkedAt: now };
  return { key, seenAt: now, after: prev.checkedAt, checkedAt: now };
}

/** A node's heartbeat as this node observes it. */
export interface HeartbeatView {
  /** the writer's counter (of its current agent run) */
  counter: number;
  /** the writer's timestamp of its last beat (its own clock; shown, never compared) */
  renewedAt?: string;
  /** lower bound of the age, seconds (this node's clock only) */
  ageSec: number;
  /** upper bound of the age, seconds; null when this node has not seen the previous heartbeat */
  ageMaxSec: number | null;
  /** unchanged, as seen here, for more than lease_ttl seconds */
  silent: boolean;
}

/** The age view of a sighting at local time `now`. Pure. */
export function heartbeatView(s: Sighting, now: number, leaseTtlSec: number, beat: NodeBeat | undefined): HeartbeatView {
  const ageSec = Math.max(0, (now - s.seenAt) / 1000);
  const v: HeartbeatView = {
    counter: beat?.counter ?? 0,
    ageSec: Math.round(ageSec * 10) / 10,
    ageMaxSec: s.after === null ? null : Math.round(Math.max(0, (now - s.after) / 1000) * 10) / 10,
    silent: ageSec > leaseTtlSec,
  };
  if (beat?.at) v.renewedAt = beat.at;
  return v;
}

/** How a table shows a heartbeat: `3s`, `>=3s` (first sighting), `40s silent`, `-` (none). */
export function formatHeartbeat(h: HeartbeatView | null): string {
  if (!h) return '-';
  const s = `${h.ageMaxSec === null ? '>=' : ''}${Math.floor(h.ageSec)}s`;
  return h.silent ? `${s} silent` : s;
}

/** A fresh random id for an agent run. */
export function newBootId(): string {
  return randomBytes(6).toString('hex');
}
