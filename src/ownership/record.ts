/**
 * The ownership record of one env: its generation log, kept in the shared ownership directory
 * (`<lease_dir>/envs/<jname>/`, src/ownership/store.ts) that every node mounts whole, so that a
 * node sees every env's owner whatever per-env mounts it has (design/product.md "Ownership:
 * leases and fencing"). No cluster database: the shared file system is the single source of
 * truth, and every decision is taken by the one primitive that is atomic on NFSv4, GlusterFS
 * (FUSE) and CephFS alike: exclusive create (open with O_CREAT|O_EXCL) of a name that must not
 * exist yet.
 *
 * Why not link(2) of a written temp file: on a GlusterFS *distribute* volume with several bricks,
 * two link(2)s of different temp files to one new name both succeeded (measured on GlusterFS
 * 10.3: about 1 race in 100-300 on 3 bricks), because DHT places the new name's link file and
 * the inode on different bricks. O_EXCL create is decided on the name's hashed brick alone and
 * never had two winners (test/integration/lease-gluster.test.ts).
 *
 * ## Protocol
 *
 * The record directory holds an append-only log of generations:
 *
 * - `gen.<N>` (N = 1, 2, 3 ...): the immutable record of generation N, either a **claim**
 *   (`{"kind":"claim","node","uuid","generation":N,"acquiredAt","takeoverFrom"?,"handoverFrom"?}`:
 *   node owns the env from generation N on) or a **release** (`{"kind":"release","node",
 *   "generation":N,"released":N-1,...}`: the holder of N-1 let go; nobody owns the env).
 * - The current state is the highest `gen.<N>`. Every transition (acquire, takeover, handover,
 *   release) creates `gen.<current+1>` with O_EXCL, then writes the record into it and fsyncs.
 *   The create fails with EEXIST when the name exists, so of two nodes racing for the same
 *   transition exactly one wins. Nothing is ever read-then-written: a node decides from what it
 *   read, and the exclusive create tells whether the world was still as it read.
 * - A reader can find a `gen.<N>` that is still empty or partly written (between the winner's
 *   create and write; on GlusterFS another mount may show it empty for ~1 s more). It waits up
 *   to {@link leaseTuning}.settleMs for the record; a file still unreadable then is an
 *   *unfinished claim* (its writer died): it counts as held by nobody-knows-whom, so acquire
 *   refuses it and a forced takeover replaces it.
 *   Because a node only ever creates `gen.<seen+1>`, the generations have no gaps, and a holder
 *   of N is superseded exactly when `gen.<N+1>` exists or `gen.<N>` is gone (pruned, or the
 *   record deleted by jremove): two lookups, {@link checkLease}.
 * - **Liveness is per node, not per env** (sanlock's split of a delta lease per host and a
 *   resource lease per disk, peers.md): the records change only on transitions; whether the
 *   holder is alive is its node's heartbeat (src/ownership/heartbeat.ts), renewed by the node's
 *   agent every lease_ttl/3 whatever the number of envs it owns, running or stopped.
 * - Takeover from a silent holder of N ({@link takeoverLease}, needs `force`): watch the holder
 *   node's heartbeat for `watchSec` seconds; if its content moved (or the generation moved),
 *   refuse; else create `gen.<N+1>`. Two nodes racing a takeover both target N+1: one wins.
 *   Nobody compares the heartbeat's content with a clock: only "did it change while I watched".
 * - Handover ({@link handoverLease}, jmigrate): the holder of N creates the claim N+1 for the
 *   destination node itself, so the env is owned at every moment and the generation is raised
 *   once; the destination checks that claim before it adopts the env.
 * - Release ({@link releaseLease}) creates a release record at N+1, so a superseded node can
 *   never undo a newer owner's claim (its create of N+1 fails), and the generation keeps growing
 *   across release/acquire cycles (a node that slept through a migration never finds "its"
 *   generation current again).
 * - The creator of N prunes `gen.*` older than N-{@link KEEP_GENERATIONS}, lowest first, so the
 *   remaining generations stay contiguous (and `berth cluster ls`/the console can show a short
 *   history).
 * - Deleting the record (jremove) deletes the log: a recreated env of that name starts again at
 *   generation 1 (or above a legacy log, src/ownership/legacy.ts), with a new uuid, so fencing
 *   checks pass the uuid too.
 *
 * On GlusterFS FUSE a second mount may return a rewritten file's old content for up to ~1 s
 * (entry/attribute caches), but sees a newly created name at once (no negative lookup caching):
 * `gen.*` files are never rewritten and the `gen.<N+1>` probe is exact.
 *
 * Errors: {@link BerthError} with exit 4 (`ownedError`) and codes E_LEASE_HELD (another node
 * owns it; names it), E_LEASE_SUPERSEDED (the caller's generation is no longer current),
 * E_LEASE_MISSING (the caller holds no lease), E_LEASE_BUSY (the lease kept changing);
 * exit 1 for E_LEASE_CORRUPT (a record of the wrong shape, a path that is not a directory)
 * and E_LEASE_IO (the ownership directory missing, I/O errors).
 */
import { lstat, mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError, EXIT, ownedError } from '../errors.js';
import { sleep } from '../proc.js';
import { isStale, readSharedTextAsync } from '../sharedfs.js';

/** How many generations older than the current one are kept (the history `cluster ls` and the console show). */
export const KEEP_GENERATIONS = 8;

/** Who asks for a lease: this node's name and the env's uuid. */
export interface LeaseIdentity {
  node: string;
  uuid: string;
}

/** A holder of a given generation (what a node records in its inventory). */
export interface LeaseHolder {
  node: string;
  generation: number;
  /** When given, {@link checkLease} also requires this env uuid. */
  uuid?: string;
}

/** The current claim of a lease. */
export interface LeaseRecord {
  node: string;
  uuid: string;
  /** The fencing token: grows by at least one on every acquire, takeover, handover and release. */
  generation: number;
  /** When the holder acquired it (ISO 8601, the holder's clock; informational only). */
  acquiredAt: string;
  /** Set when this claim was a forced takeover: whom it was taken from. */
  takeoverFrom?: { node: string; generation: number };
  /** Set when the previous holder handed the env over (jmigrate): who handed it over. */
  handoverFrom?: { node: string; generation: number };
  /** An unfinished claim: `gen.<N>` exists but its writer never wrote it (node and uuid are ''). */
  incomplete?: boolean;
}

/**
 * Tuning (tests lower settleMs). settleMs: how long a reader waits for an exclusively created
 * but still empty or partial `gen.<N>` to be written before calling it unfinished (ms; GlusterFS
 * FUSE may show a file's old size for ~1 s on another mount). settleStepMs: the re-read step.
 */
export const leaseTuning = { settleMs: 3000, settleStepMs: 50 };

/** What {@link readLeaseState} finds. */
export interface LeaseState {
  /** The current generation; 0 when the env never had a lease. */
  generation: number;
  /** The holder, when the lease is held. */
  holder?: LeaseRecord;
  /** When the current generation is a release: who released which generation, and when. */
  released?: { node: string; uuid: string; generation: number; released: number; at: string };
}

/** One entry of {@link readLeaseHistory}: a kept generation of the log. */
export interface LeaseHistoryEntry {
  generation: number;
  kind: 'claim' | 'release' | 'incomplete';
  node: string;
  uuid: string;
  /** acquiredAt of a claim, at of a release (the writer's clock, ISO 8601) */
  at: string;
  takeoverFrom?: { node: string; generation: number };
  handoverFrom?: { node: string; generation: number };
}

/** Options of {@link takeoverLease}. */
export interface TakeoverOptions {
  /** Without it, a held lease is refused with a hint to use --force. */
  force: boolean;
  /**
   * The raw heartbeat content of node `node` ('' when it has none): compared, never parsed
   * for time (src/ownership/heartbeat.ts readNodeBeat).
   */
  beat: (node: string) => Promise<string>;
  /**
   * How long to watch the holder `node`'s heartbeat, in seconds (fractions allowed): the
   * caller's lease_ttl, or the holder's own when that is longer (heartbeat.ts watchSeconds).
   */
  watchSec: (node: string) => Promise<number>;
  /** Sleeps `ms` milliseconds (tests inject a fake one). */
  sleep?: (ms: number) => Promise<void>;
  /** Called before each wait step with the seconds left to watch (for progress output). */
  onWait?: (secondsLeft: number) => void;
  /** Wait step in milliseconds between two reads of the heartbeat (default 1000). */
  pollMs?: number;
}

interface ClaimFile {
  kind: 'claim';
  node: string;
  uuid: string;
  generation: number;
  acquiredAt: string;
  takeoverFrom?: { node: string; generation: number };
  handoverFrom?: { node: string; generation: number };
}
interface ReleaseFile {
  kind: 'release';
  node: string;
  uuid: string;
  generation: number;
  released: number;
  at: string;
}
type GenFile = ClaimFile | ReleaseFile;
/** A `gen.<N>` that stayed empty or unparseable for settleMs: its creator died before writing. */
interface IncompleteFile {
  kind: 'incomplete';
  generation: number;
}
type GenEntry = GenFile | IncompleteFile;

const GEN_RE = /^gen\.(\d+)$/;
const MAX_ATTEMPTS = 20;

const genName = (n: number): string => `gen.${n}`;
const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException)?.code;

function ioError(message: string, cause: unknown): BerthError {
  return new BerthError('E_LEASE_IO', message, EXIT.FAILURE, { cause });
}

function corrupt(path: string, why: string): BerthError {
  return new BerthError('E_LEASE_CORRUPT', `lease record ${path} is unreadable: ${why}`, EXIT.FAILURE, {
    hint: 'inspect the ownership record on the shared storage; berth never rewrites gen.* files',
  });
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if (errno(e) === 'ENOENT') return false;
    throw ioError(`cannot stat ${path}: ${(e as Error).message}`, e);
  }
}

/**
 * Creates `dir/name` exclusively (O_CREAT|O_EXCL), then writes `text` into it and fsyncs.
 * @returns true when this call created it, false when the name already existed.
 * If the write fails after the create, the file is removed again (nobody can have acted on an
 * unreadable claim) and E_LEASE_IO is thrown.
 */
async function createExclusive(dir: string, name: string, text: string): Promise<boolean> {
  const target = join(dir, name);
  let fh;
  for (let attempt = 0; ; attempt++) {
    try {
      fh = await open(target, 'wx', 0o644);
      break;
    } catch (e) {
      if (errno(e) === 'EEXIST') return false;
      // ENOENT: the record dir is gone although mkdir said it exists (a GlusterFS client's cached
      // entry of a dir another mount removed): make it again and retry, a few times
      if (errno(e) === 'ENOENT' && attempt < 3) {
        await sleep(50 * (attempt + 1));
        await mkdir(dir).catch(() => undefined);
        continue;
      }
      throw ioError(`cannot create ${target}: ${(e as Error).message}`, e);
    }
  }
  try {
    await fh.writeFile(text);
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await unlink(target).catch(() => undefined);
    throw ioError(`cannot write ${target}: ${(e as Error).message}`, e);
  }
  await fh.close();
  return true;
}

/**
 * Reads `gen.<n>`: undefined when it does not exist; the record; or, when it stays empty or
 * unparseable for leaseTuning.settleMs (its creator died between create and write), incomplete.
 */
async function readGen(dir: string, n: number): Promise<GenEntry | undefined> {
  const path = join(dir, genName(n));
  for (let waited = 0; ; waited += leaseTuning.settleStepMs) {
    let text: string;
    try {
      text = await readSharedTextAsync(path);
    } catch (e) {
      if (errno(e) === 'ENOENT') return undefined;
      if (errno(e) === 'EISDIR') throw corrupt(path, 'is a directory');
      throw ioError(`cannot read ${path}: ${(e as Error).message}`, e);
    }
    let g: GenFile | undefined;
    try {
      g = JSON.parse(text) as GenFile;
    } catch {
      g = undefined; // empty or partly written: its creator is (or was) still writing it
    }
    if (g !== undefined) {
      if (g === null || (g.kind !== 'claim' && g.kind !== 'release') || typeof g.node !== 'string' || g.generation !== n) {
        throw corrupt(path, `unexpected content ${JSON.stringify(text.slice(0, 80))}`);
      }
      return g;
    }
    if (waited >= leaseTuning.settleMs) return { kind: 'incomplete', generation: n };
    await sleep(leaseTuning.settleStepMs);
  }
}

/** The `gen.<N>` numbers in `dir` (empty when there is no dir), unsorted. */
async function listGenerations(dir: string): Promise<number[]> {
  let names: string[];
  for (let attempt = 0; ; attempt++) {
    try {
      names = await readdir(dir);
      break;
    } catch (e) {
      if (errno(e) === 'ENOENT') return [];
      if (errno(e) === 'ENOTDIR') throw corrupt(dir, 'is not a directory (berth keeps the record as a directory)');
      // ESTALE: the dir was removed and made again through another mount (GlusterFS FUSE);
      // a fresh lookup replaces this client's stale handle
      if (isStale(e) && attempt < 3) {
        await lstat(dir).catch(() => undefined);
        continue;
      }
      throw ioError(`cannot list ${dir}: ${(e as Error).message}`, e);
    }
  }
  const out: number[] = [];
  for (const n of names) {
    const m = GEN_RE.exec(n);
    if (m) out.push(Number(m[1]));
  }
  return out;
}

/** The highest generation in `dir` (0 when none or no dir): readdir, then probe upwards. */
async function currentGeneration(dir: string): Promise<number> {
  let max = 0;
  for (const n of await listGenerations(dir)) max = Math.max(max, n);
  // A listing may lag behind a create on another node; a lookup of the next name does not.
  while (await exists(join(dir, genName(max + 1)))) max++;
  return max;
}

function toRecord(g: ClaimFile | IncompleteFile): LeaseRecord {
  if (g.kind === 'incomplete') return { node: '', uuid: '', generation: g.generation, acquiredAt: '', incomplete: true };
  const r: LeaseRecord = { node: g.node, uuid: g.uuid, generation: g.generation, acquiredAt: g.acquiredAt };
  if (g.takeoverFrom) r.takeoverFrom = g.takeoverFrom;
  if (g.handoverFrom) r.handoverFrom = g.handoverFrom;
  return r;
}

async function stateOf(dir: string): Promise<LeaseState> {
  for (let i = 0; i < MAX_ATTEMPTS; i++) {
    const n = await currentGeneration(dir);
    if (n === 0) return { generation: 0 };
    const g = await readGen(dir, n);
    if (!g) continue; // pruned under us (cannot happen for the current one, but be safe): retry
    if (g.kind === 'release') {
      return { generation: n, released: { node: g.node, uuid: g.uuid, generation: g.generation, released: g.released, at: g.at } };
    }
    return { generation: n, holder: toRecord(g) };
  }
  throw ownedError('E_LEASE_BUSY', `the lease ${dir} kept changing while being read`, { hint: 'try again' });
}

/**
 * Reads the whole state of a lease: current generation, holder or release.
 * @param leasePath the record directory, `Workdir.env(jname).lease`
 * @throws E_LEASE_CORRUPT (exit 1) when a record cannot be parsed.
 */
export async function readLeaseState(leasePath: string): Promise<LeaseState> {
  return stateOf(leasePath);
}

/**
 * Reads the current holder of a lease.
 * @returns the record, or undefined when nobody holds it (never acquired, or released).
 */
export async function readLease(leasePath: string): Promise<LeaseRecord | undefined> {
  return (await stateOf(leasePath)).holder;
}

/**
 * The generations the log still keeps (at most KEEP_GENERATIONS + 1), oldest first: who claimed
 * or released the env when, and how (takeover, handover). For `cluster ls` and the console.
 * @throws E_LEASE_CORRUPT (exit 1), E_LEASE_IO (exit 1)
 */
export async function readLeaseHistory(leasePath: string): Promise<LeaseHistoryEntry[]> {
  const cur = await currentGeneration(leasePath);
  const out: LeaseHistoryEntry[] = [];
  for (let n = Math.max(1, cur - KEEP_GENERATIONS); n <= cur; n++) {
    const g = await readGen(leasePath, n);
    if (!g) continue;
    if (g.kind === 'incomplete') { out.push({ generation: n, kind: 'incomplete', node: '', uuid: '', at: '' }); continue; }
    const e: LeaseHistoryEntry = { generation: n, kind: g.kind, node: g.node, uuid: g.uuid, at: g.kind === 'claim' ? g.acquiredAt : g.at };
    if (g.kind === 'claim' && g.takeoverFrom) e.takeoverFrom = g.takeoverFrom;
    if (g.kind === 'claim' && g.handoverFrom) e.handoverFrom = g.handoverFrom;
    out.push(e);
  }
  return out;
}

function describe(r: LeaseRecord): string {
  if (r.incomplete) return `an unfinished claim at generation ${r.generation} (its writer stopped before writing it)`;
  return `node '${r.node}' (generation ${r.generation})`;
}

function heldError(leasePath: string, r: LeaseRecord, hint?: string): BerthError {
  return ownedError('E_LEASE_HELD', `the env is owned by ${describe(r)}`, {
    hint: hint ?? (r.incomplete ? 'use --force to take over after lease_ttl seconds'
      : `ask node '${r.node}' to let it go (junregister or jmigrate), or, if that node is down, use --force to take over after lease_ttl seconds without a heartbeat of node '${r.node}'`),
    details: { lease: leasePath, node: r.node, uuid: r.uuid, generation: r.generation },
  });
}

/**
 * Makes the record directory when missing. Its parent (`<lease_dir>/envs`) is made too: the
 * ownership dir itself must exist (initenv makes it; on shared storage it is a mount).
 */
async function ensureDir(leasePath: string): Promise<void> {
  try {
    await mkdir(leasePath);
    return;
  } catch (e) {
    if (errno(e) === 'EEXIST') return; // a regular file there is reported by the readdir that follows
    if (errno(e) !== 'ENOENT') throw ioError(`cannot create the ownership record ${leasePath}: ${(e as Error).message}`, e);
  }
  const parent = join(leasePath, '..');
  if (!(await exists(join(parent, '..')))) {
    throw ioError(`cannot create the ownership record ${leasePath}: the ownership directory ${join(parent, '..')} does not exist (is the shared lease_dir mounted? see berth doctor)`, undefined);
  }
  try {
    await mkdir(parent, { recursive: true });
    await mkdir(leasePath);
  } catch (e) {
    if (errno(e) !== 'EEXIST') throw ioError(`cannot create the ownership record ${leasePath}: ${(e as Error).message}`, e);
  }
}

/** Deletes generations <= current-KEEP (lowest first, so the rest stay contiguous). */
async function prune(dir: string, current: number): Promise<void> {
  if (current <= KEEP_GENERATIONS) return;
  let gens: number[];
  try {
    gens = await listGenerations(dir);
  } catch {
    return;
  }
  const old = gens.filter((n) => n <= current - KEEP_GENERATIONS).sort((a, b) => a - b);
  for (const n of old) await unlink(join(dir, genName(n))).catch(() => undefined);
}

/** Creates claim `gen.<n>`; prunes. @returns the record, or undefined when `gen.<n>` already existed */
async function claim(leasePath: string, n: number, who: LeaseIdentity, from?: { takeoverFrom?: LeaseHolder; handoverFrom?: LeaseHolder }): Promise<LeaseRecord | undefined> {
  const rec: ClaimFile = { kind: 'claim', node: who.node, uuid: who.uuid, generation: n, acquiredAt: new Date().toISOString() };
  if (from?.takeoverFrom) rec.takeoverFrom = { node: from.takeoverFrom.node, generation: from.takeoverFrom.generation };
  if (from?.handoverFrom) rec.handoverFrom = { node: from.handoverFrom.node, generation: from.handoverFrom.generation };
  if (!(await createExclusive(leasePath, genName(n), JSON.stringify(rec) + '\n'))) return undefined;
  await prune(leasePath, n);
  return toRecord(rec);
}

/**
 * Acquires a free lease (never acquired, or released) for `who`, creating the record dir when
 * missing. Used by jcreate, jregister and jclone.
 * @returns the new record; record its `generation` in the inventory.
 * @throws E_LEASE_HELD (exit 4) naming the owner when another claim is current (also when this
 *   node holds it: the caller must know its generation from the inventory, or take over);
 *   E_LEASE_IO (exit 1) when the ownership dir is missing or the file system cannot create files exclusively (O_EXCL).
 */
export async function acquireLease(leasePath: string, who: LeaseIdentity): Promise<LeaseRecord> {
  await ensureDir(leasePath);
  let contended = 0;
  for (let i = 0; i < MAX_ATTEMPTS; i++) {
    const st = await stateOf(leasePath);
    if (st.holder) {
      const e = heldError(leasePath, st.holder);
      if (contended) e.details!.contended = contended;
      throw e;
    }
    const r = await claim(leasePath, st.generation + 1, who);
    if (r) return r;
    contended++; // someone created gen.<N+1> between our read and our create: look again
  }
  throw ownedError('E_LEASE_BUSY', `the lease ${leasePath} kept changing; ${MAX_ATTEMPTS} attempts to acquire it failed`, { hint: 'try again' });
}

function supersededError(leasePath: string, who: LeaseHolder, next: GenEntry | undefined, current?: LeaseState): BerthError {
  let what: string;
  if (next?.kind === 'claim') what = next.handoverFrom ? `it was handed over to node '${next.node}' at generation ${next.generation}` : `node '${next.node}' took it over at generation ${next.generation}`;
  else if (next?.kind === 'release') what = `it was released at generation ${next.generation} by node '${next.node}'`;
  else if (next?.kind === 'incomplete') what = `generation ${next.generation} was claimed (unfinished claim)`;
  else what = 'it moved on';
  const cur = current?.holder ? `; now owned by ${describe(current.holder)}` :
    current ? `; current generation ${current.generation}, not held` : '';
  return ownedError('E_LEASE_SUPERSEDED', `node '${who.node}' no longer holds the lease at generation ${who.generation}: ${what}${cur}`, {
    hint: current?.holder && current.holder.node !== who.node
      ? `this node must not start, change or write to this env; operate it on node '${current.holder.node}'`
      : 'this node must not start, change or write to this env; stop its local copy (the agent does this) and register again if it should own it',
    details: { lease: leasePath, node: who.node, generation: who.generation, current: current?.generation, owner: current?.holder?.node },
  });
}

/**
 * Checks that `who.node` still holds the lease at `who.generation` (and env `who.uuid` when
 * given). Cheap (two lookups and one small read); call it before every start, stop, jset, jclone
 * and jremove, and from the agent for fencing.
 * @returns the current record.
 * @throws E_LEASE_SUPERSEDED (exit 4) when the generation moved on or belongs to another node/env;
 *   E_LEASE_MISSING (exit 4) when there is no such generation at all (no lease, or a lease that
 *   was deleted and recreated).
 */
export async function checkLease(leasePath: string, who: LeaseHolder): Promise<LeaseRecord> {
  return toRecord(await verifyHolder(leasePath, who));
}

/** The claim `who` holds, or the E_LEASE_SUPERSEDED / E_LEASE_MISSING error of {@link checkLease}. */
async function verifyHolder(leasePath: string, who: LeaseHolder): Promise<ClaimFile> {
  // Probe the next generation first: a plain lookup, exact even when its content is not written yet.
  if (await exists(join(leasePath, genName(who.generation + 1)))) {
    throw supersededError(leasePath, who, await readGen(leasePath, who.generation + 1).catch(() => undefined), await stateOf(leasePath).catch(() => undefined));
  }
  const g = await readGen(leasePath, who.generation);
  if (!g) {
    const st = await stateOf(leasePath);
    if (st.generation > who.generation) throw supersededError(leasePath, who, await readGen(leasePath, who.generation + 1).catch(() => undefined), st);
    throw ownedError('E_LEASE_MISSING', `node '${who.node}' holds no lease at generation ${who.generation} in ${leasePath}` +
      (st.generation ? ` (current generation ${st.generation}${st.holder ? `, owned by node '${st.holder.node}'` : ', not held'})` : ' (there is no lease)'), {
      hint: 'register the env on this node (jregister) before using it; if every env says this, the shared lease_dir is not mounted here (see berth doctor)',
      details: { lease: leasePath, node: who.node, generation: who.generation, current: st.generation },
    });
  }
  if (g.kind !== 'claim' || g.node !== who.node || (who.uuid !== undefined && g.uuid !== who.uuid)) {
    const whose = g.kind === 'claim' ? `node '${g.node}' (env uuid ${g.uuid})` : g.kind === 'release' ? 'a release' : 'an unfinished claim';
    throw ownedError('E_LEASE_SUPERSEDED', `generation ${who.generation} of ${leasePath} is ${whose}, not node '${who.node}'` +
      (who.uuid !== undefined ? ` (env uuid ${who.uuid})` : ''), {
      hint: 'this node does not own this env; do not use it',
      details: { lease: leasePath, node: who.node, generation: who.generation },
    });
  }
  return g;
}

/**
 * Releases the lease held by `who` (junregister, jremove): records a release at generation+1,
 * which fails if another node took over first, so a superseded node can never undo a newer claim.
 * No-op when nobody holds the lease (never acquired, already released, or no record).
 * @returns the release's generation (0 when nothing was released)
 * @throws E_LEASE_SUPERSEDED (exit 4) when another node (or another generation) holds it.
 */
export async function releaseLease(leasePath: string, who: { node: string; generation: number }): Promise<number> {
  for (let i = 0; i < MAX_ATTEMPTS; i++) {
    const st = await stateOf(leasePath);
    if (!st.holder) return 0;
    if (st.holder.node !== who.node || st.holder.generation !== who.generation) {
      throw supersededError(leasePath, who, await readGen(leasePath, who.generation + 1).catch(() => undefined), st);
    }
    const n = who.generation + 1;
    const rec: ReleaseFile = { kind: 'release', node: who.node, uuid: st.holder.uuid, generation: n, released: who.generation, at: new Date().toISOString() };
    if (await createExclusive(leasePath, genName(n), JSON.stringify(rec) + '\n')) {
      await prune(leasePath, n);
      return n;
    }
    // gen.<N+1> appeared first: someone took over (or a parallel release of ours); look again.
  }
  throw ownedError('E_LEASE_BUSY', `the lease ${leasePath} kept changing; could not release it`, { hint: 'try again' });
}

/**
 * Hands the lease held by `from` to node `to.node` (jmigrate): creates the claim N+1 for the
 * destination in one exclusive create, so that the env is owned at every moment, by exactly one
 * node, and the generation is raised once. The destination checks it ({@link checkLease} at
 * N+1) before it adopts the env; the source is superseded from then on.
 * @returns the destination's record (generation N+1)
 * @throws E_LEASE_SUPERSEDED / E_LEASE_MISSING (exit 4) when `from` does not hold it (as
 *   {@link checkLease}); E_LEASE_BUSY (exit 4) when N+1 appeared in between
 */
export async function handoverLease(leasePath: string, from: LeaseHolder, to: LeaseIdentity): Promise<LeaseRecord> {
  const g = await verifyHolder(leasePath, from);
  if (g.uuid !== to.uuid) throw new BerthError('E_LEASE_CORRUPT', `handover of ${leasePath}: the destination names env uuid ${to.uuid}, the lease ${g.uuid}`, EXIT.FAILURE);
  const r = await claim(leasePath, from.generation + 1, to, { handoverFrom: from });
  if (r) return r;
  throw supersededError(leasePath, from, await readGen(leasePath, from.generation + 1).catch(() => undefined), await stateOf(leasePath).catch(() => undefined));
}

/**
 * Takes back a lease `from` handed to node `to` (generation N+1) that `to` never used: a live
 * migration whose destination could not adopt the paused env and did not answer (its agent
 * stopped). One exclusive create of N+2 for `from`, valid only while N+1 is still the newest
 * generation and is the handover `from` made; a destination that adopts later finds its N+1
 * superseded and refuses. When the destination handed it back itself (N+2 names `from`), that
 * record is returned.
 * Only for a handover whose receiving side cannot act on it without a further request (the
 * paused destination of a live migration resumes only when asked, after a lease check).
 * @returns `from`'s record at N+2
 * @throws E_LEASE_SUPERSEDED / E_LEASE_MISSING / E_LEASE_BUSY (exit 4) when N+1 is not that
 *   handover any more and N+2 does not name `from`
 */
export async function reclaimHandover(leasePath: string, from: LeaseHolder & { uuid: string }, to: string): Promise<LeaseRecord> {
  const n1 = from.generation + 1;
  const mine = async () => {
    const next = await readGen(leasePath, n1 + 1).catch(() => undefined);
    return next?.kind === 'claim' && next.node === from.node && next.uuid === from.uuid ? checkLease(leasePath, { node: from.node, generation: n1 + 1, uuid: from.uuid }) : undefined;
  };
  let g: ClaimFile;
  try {
    g = await verifyHolder(leasePath, { node: to, generation: n1, uuid: from.uuid });
  } catch (e) {
    const back = await mine();
    if (back) return back;
    throw e;
  }
  if (g.handoverFrom?.node !== from.node || g.handoverFrom.generation !== from.generation) {
    throw ownedError('E_LEASE_SUPERSEDED', `generation ${n1} of ${leasePath} is not the handover of node '${from.node}' at ${from.generation}`, { hint: 'this node does not own this env; do not use it', details: { lease: leasePath, node: from.node, generation: n1 } });
  }
  const r = await claim(leasePath, n1 + 1, { node: from.node, uuid: from.uuid }, { handoverFrom: { node: to, generation: n1 } });
  if (r) return r;
  const back = await mine();
  if (back) return back;
  throw supersededError(leasePath, { node: to, generation: n1 }, await readGen(leasePath, n1 + 1).catch(() => undefined), await stateOf(leasePath).catch(() => undefined));
}

/** What {@link watchHolder} found: the holder stayed silent (`holder`), or the lease was free or got released (`free`). */
export type WatchResult = { holder: LeaseRecord; free?: undefined } | { free: true; holder?: undefined };

/**
 * A heartbeat change seen this early in a takeover's watch (ms) may be the holder's last beat
 * reaching this node late (a DFS client's attribute cache, about 1 s on GlusterFS FUSE): the
 * watch then starts over from it, once. A holder that is alive beats again within the new
 * watch (every lease_ttl/3) and is refused; silence is still proven for a whole watchSec.
 */
export const LATE_BEAT_MS = 1500;

/**
 * The watching half of a takeover: reads the current holder and watches its node's heartbeat
 * (`opts.beat`) for `opts.watchSec(holder)` seconds, read every `pollMs`. Resolves with the
 * holder when nothing moved, or `free` when the lease is not held (never, or released meanwhile).
 * Changes nothing. `signal` aborts the watch (AbortError). One change within the first
 * {@link LATE_BEAT_MS} restarts the watch from it (a late beat, not a live node).
 * @throws E_LEASE_HELD (exit 4): no force (hint: --force), the holder's heartbeat moved (alive),
 *   or the lease changed hands while watching
 */
export async function watchHolder(leasePath: string, opts: TakeoverOptions & { signal?: AbortSignal }): Promise<WatchResult> {
  const wait = opts.sleep ?? sleep;
  const pollMs = Math.max(1, opts.pollMs ?? 1000);
  const st = await stateOf(leasePath);
  if (!st.holder) return { free: true };
  const holder = st.holder;
  const n = holder.generation;
  const watchSec = await opts.watchSec(holder.node);
  if (!opts.force) {
    throw heldError(leasePath, holder, `run again with --force to take over: berth then watches node '${holder.node || '?'}''s heartbeat for ${watchSec} s (lease_ttl) and takes the env only if that node does not renew it`);
  }
  const readBeat = () => (holder.incomplete ? Promise.resolve('') : opts.beat(holder.node));
  let hb0 = await readBeat();
  let leftMs = Math.round(watchSec * 1000);
  let watchedMs = 0;
  let lateBeatSeen = false;
  while (leftMs > 0) {
    opts.signal?.throwIfAborted();
    opts.onWait?.(leftMs / 1000);
    const step = Math.min(pollMs, leftMs);
    await wait(step);
    leftMs -= step;
    watchedMs += step;
    if (await exists(join(leasePath, genName(n + 1)))) {
      const now = await stateOf(leasePath);
      if (now.holder) {
        throw heldError(leasePath, now.holder, `the lease changed hands while we watched (generation ${n} → ${now.holder.generation}); run again if node '${now.holder.node}' is down too`);
      }
      return { free: true };
    }
    const hb = await readBeat();
    if (hb !== hb0 && !lateBeatSeen && watchedMs <= LATE_BEAT_MS) {
      // the holder's last beat arriving late through a DFS client's cache (GlusterFS FUSE keeps
      // attributes about 1 s): watch again, a whole watchSec from it; once only
      lateBeatSeen = true;
      hb0 = hb;
      leftMs = Math.round(watchSec * 1000);
      continue;
    }
    if (hb !== hb0) {
      throw heldError(leasePath, holder,
        `node '${holder.node}' renewed its heartbeat while we watched: it is alive; ask it to let the env go (junregister or jmigrate)`);
    }
  }
  return { holder };
}

/**
 * The claiming half of a takeover: claims `holder.generation + 1` for `who`, recording whom it
 * was taken from. Call it right after {@link watchHolder} proved the holder silent.
 * @returns the new record, or undefined when the lease got released meanwhile (acquire it instead)
 * @throws E_LEASE_HELD (exit 4) when another node took it over first
 */
export async function claimFrom(leasePath: string, who: LeaseIdentity, holder: LeaseRecord): Promise<LeaseRecord | undefined> {
  const r = await claim(leasePath, holder.generation + 1, who, { takeoverFrom: { node: holder.node, generation: holder.generation } });
  if (r) return r;
  const now = await stateOf(leasePath);
  if (now.holder) {
    const e = heldError(leasePath, now.holder, `another node took the lease over first (generation ${now.holder.generation})`);
    e.details!.contended = 1;
    throw e;
  }
  return undefined;
}

/**
 * Takes the lease over for `who` (jregister --force on another node): a free lease is simply
 * acquired; a held one needs `force`, then {@link watchHolder} proves the holder node silent
 * and {@link claimFrom} claims `gen.<N+1>` by exclusive create: of several nodes racing, one
 * wins and the others get E_LEASE_HELD naming it. Duration is measured by local sleeps only; no
 * two machines' clocks are compared. An unfinished claim has no node, so nothing moves: it is
 * replaced after the watch.
 * @returns the new record (generation = the silent holder's + 1, `takeoverFrom` set).
 * @throws E_LEASE_HELD (exit 4): held and no force (hint: --force), owner alive, or lost the race.
 */
export async function takeoverLease(leasePath: string, who: LeaseIdentity, opts: TakeoverOptions): Promise<LeaseRecord> {
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const w = await watchHolder(leasePath, opts);
    if (w.free) {
      try {
        return await acquireLease(leasePath, who);
      } catch (e) {
        if (e instanceof BerthError && e.code === 'E_LEASE_HELD') continue; // someone acquired it: judge that holder
        throw e;
      }
    }
    const r = await claimFrom(leasePath, who, w.holder);
    if (r) return r;
    // Released right then: acquire on the next turn.
  }
  throw ownedError('E_LEASE_BUSY', `the lease ${leasePath} kept changing; could not take it over`, { hint: 'try again' });
}

/**
 * Seeds an empty record with generation `n` whose record text is `text` (a claim or release
 * in this module's format), by exclusive create: the import of a legacy log (legacy.ts). Two
 * nodes importing the same legacy log write the same text; one create wins, both are content.
 * @returns true when this call created it; false when the record already had generation `n`
 * @throws E_LEASE_CORRUPT (exit 1) when `text` is not a record of generation `n`, or the record
 *   already holds generations other than `n`; E_LEASE_IO (exit 1)
 */
export async function seedLease(leasePath: string, n: number, text: string): Promise<boolean> {
  let g: GenFile;
  try { g = JSON.parse(text) as GenFile; } catch { throw corrupt(leasePath, `the record to import is not JSON: ${JSON.stringify(text.slice(0, 80))}`); }
  if (!g || (g.kind !== 'claim' && g.kind !== 'release') || g.generation !== n) throw corrupt(leasePath, `the record to import is not generation ${n}`);
  await ensureDir(leasePath);
  const gens = await listGenerations(leasePath);
  if (gens.some((x) => x !== n)) throw corrupt(leasePath, `it already holds generations ${gens.sort((a, b) => a - b).join(', ')}; nothing imported`);
  return createExclusive(leasePath, genName(n), text.endsWith('\n') ? text : text + '\n');
}
