/**
 * The ownership lease of an env, kept next to it on the shared storage
 * (`jails-system/<jname>/lease`, {@link EnvPaths.lease}); design/product.md "Ownership: leases
 * and fencing". No cluster database: the shared file system is the single source of truth, and
 * every decision is taken by the one primitive that is atomic on NFSv4, GlusterFS (FUSE) and
 * CephFS alike: exclusive create (open with O_CREAT|O_EXCL) of a name that must not exist yet.
 *
 * Why not link(2) of a written temp file: on a GlusterFS *distribute* volume with several bricks,
 * two link(2)s of different temp files to one new name both succeeded (measured on GlusterFS
 * 10.3: about 1 race in 100-300 on 3 bricks), because DHT places the new name's link file and
 * the inode on different bricks. O_EXCL create is decided on the name's hashed brick alone and
 * never had two winners (see the test notes in test/integration/lease-gluster.test.ts).
 *
 * ## Protocol
 *
 * `lease` is a directory holding an append-only log of generations:
 *
 * - `gen.<N>` (N = 1, 2, 3 ...): the immutable record of generation N, either a **claim**
 *   (`{"kind":"claim","node","uuid","generation":N,"acquiredAt","takeoverFrom"?}`: node owns the
 *   env from generation N on) or a **release** (`{"kind":"release","node","generation":N,
 *   "released":N-1,...}`: the holder of N-1 let go; nobody owns the env).
 * - The current state is the highest `gen.<N>`. Every transition (acquire, takeover, release)
 *   creates `gen.<current+1>` with O_EXCL, then writes the record into it and fsyncs. The create
 *   fails with EEXIST when the name exists, so of two nodes racing for the same transition exactly
 *   one wins. Nothing is ever read-then-written: a node decides from what it read, and the
 *   exclusive create tells whether the world was still as it read.
 * - A reader can find a `gen.<N>` that is still empty or partly written (between the winner's
 *   create and write; on GlusterFS another mount may show it empty for ~1 s more). It waits up
 *   to {@link leaseTuning}.settleMs for the record; a file still unreadable then is an
 *   *unfinished claim* (its writer died): it counts as held by nobody-knows-whom, so acquire
 *   refuses it and a forced takeover (it has no heartbeat) replaces it.
 *   Because a node only ever creates `gen.<seen+1>`, the generations have no gaps, and a holder
 *   of N is superseded exactly when `gen.<N+1>` exists or `gen.<N>` is gone (pruned, or the
 *   lease deleted with its sysdir): two lookups, {@link checkLease}.
 * - `hb.<N>`: the heartbeat of claim N (`{"generation","node","counter","nonce","at"}`), rewritten
 *   by the holder (temp file + rename, atomic) every lease_ttl/3 ({@link renewLease}). Its content
 *   changes on every write (counter + random nonce); nobody compares it with a clock. A new
 *   claim has no `hb.<N>` until its first renewal; "none" is a value like any other to a watcher.
 * - Takeover from a silent holder of N ({@link takeoverLease}, needs `force`): watch `hb.<N>` for
 *   ttlSec seconds; if its content moved (or the generation moved), refuse; else create
 *   `gen.<N+1>` as above. Two nodes racing a takeover both target N+1: one wins.
 * - Release ({@link releaseLease}) creates a release record at N+1, so a superseded node can
 *   never undo a newer owner's claim (its create of N+1 fails), and the generation keeps growing
 *   across release/acquire cycles (a node that slept through a migration never finds "its"
 *   generation current again).
 * - The holder of N prunes `gen.*`/`hb.*` older than N-{@link KEEP_GENERATIONS}, lowest first,
 *   so the remaining generations stay contiguous; a heartbeat is written as `.hb.<N>.<hex>` and
 *   renamed (src/sharedfs.ts replaceFileAtomic: one brick on GlusterFS).
 * - Deleting the sysdir (jremove) deletes the log: a recreated env of that name starts again at
 *   generation 1, with a new uuid, so fencing checks should pass the uuid too.
 *
 * On GlusterFS FUSE a second mount may return a rewritten file's old content for up to ~1 s
 * (entry/attribute caches), but sees a newly created name at once (no negative lookup caching):
 * so `gen.*` (never rewritten) and the `gen.<N+1>` probe are exact, and heartbeats may lag ~1 s,
 * which lease_ttl (default 30 s, renewed every ttl/3) absorbs.
 *
 * Errors: {@link BerthError} with exit 4 (`ownedError`) and codes E_LEASE_HELD (another node
 * owns it; names it), E_LEASE_SUPERSEDED (the caller's generation is no longer current),
 * E_LEASE_MISSING (the caller holds no lease), E_LEASE_BUSY (the lease kept changing);
 * exit 1 for E_LEASE_CORRUPT (a record of the wrong shape, a lease path that is not a directory)
 * and E_LEASE_IO (sysdir missing, I/O errors).
 */
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError, EXIT, ownedError } from './errors.js';
import { isStale, readSharedTextAsync, replaceFileAtomic } from './sharedfs.js';

/** How many generations older than the current one are kept (for `cluster ls` and debugging). */
export const KEEP_GENERATIONS = 4;

/** Who asks for a lease: this node's name and the env's uuid. */
export interface LeaseIdentity {
  node: string;
  uuid: string;
}

/** A holder of a given generation (what a node records in its inventory). */
export interface LeaseHolder {
  node: string;
  generation: number;
  /** When given, {@link checkLease} and {@link renewLease} also require this env uuid. */
  uuid?: string;
}

/** The current claim of a lease. */
export interface LeaseRecord {
  node: string;
  uuid: string;
  /** The fencing token: grows by at least one on every acquire, takeover and release. */
  generation: number;
  /** The heartbeat counter written by the holder (0 before the first heartbeat). */
  heartbeat: number;
  /** When the holder acquired it (ISO 8601, the holder's clock; informational only). */
  acquiredAt: string;
  /** When the holder last renewed it (ISO 8601, the holder's clock; informational only). */
  renewedAt?: string;
  /** Set when this claim was a forced takeover: whom it was taken from. */
  takeoverFrom?: { node: string; generation: number };
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

/** Options of {@link takeoverLease}. */
export interface TakeoverOptions {
  /** lease_ttl: how long to watch the holder's heartbeat, in seconds (fractions allowed). */
  ttlSec: number;
  /** Without it, a held lease is refused with a hint to use --force. */
  force: boolean;
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

interface HeartbeatFile {
  generation: number;
  node: string;
  counter: number;
  nonce: string;
  at: string;
}

const GEN_RE = /^gen\.(\d+)$/;
const HB_RE = /^hb\.(\d+)$/;
const MAX_ATTEMPTS = 20;

const genName = (n: number): string => `gen.${n}`;
const hbName = (n: number): string => `hb.${n}`;
const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException)?.code;
const defaultSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function ioError(message: string, cause: unknown): BerthError {
  return new BerthError('E_LEASE_IO', message, EXIT.FAILURE, { cause });
}

function corrupt(path: string, why: string): BerthError {
  return new BerthError('E_LEASE_CORRUPT', `lease record ${path} is unreadable: ${why}`, EXIT.FAILURE, {
    hint: 'inspect the lease directory on the shared storage; berth never rewrites gen.* files',
  });
}

/** Temp files of crashed heartbeat writers (`.hb.<N>.<hex>`, src/sharedfs.ts) and of the older naming `.tmp.*`. */
const TMP_RE = /^\.(hb\.\d+\.[0-9a-f]+|tmp\..*)$/;

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
      // ENOENT: the lease dir is gone although mkdir said it exists (a GlusterFS client's cached
      // entry of a dir another mount removed): make it again and retry, a few times
      if (errno(e) === 'ENOENT' && attempt < 3) {
        await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
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
    await defaultSleep(leaseTuning.settleStepMs);
  }
}

/** The raw heartbeat text of generation n ('' when there is none): compared, never parsed for time. */
async function readHeartbeatRaw(dir: string, n: number): Promise<string> {
  try {
    return await readSharedTextAsync(join(dir, hbName(n)), { nonEmpty: true });
  } catch (e) {
    if (errno(e) === 'ENOENT') return '';
    throw ioError(`cannot read ${join(dir, hbName(n))}: ${(e as Error).message}`, e);
  }
}

async function readHeartbeat(dir: string, n: number): Promise<HeartbeatFile | undefined> {
  const raw = await readHeartbeatRaw(dir, n);
  if (!raw) return undefined;
  try {
    return JSON.parse(raw) as HeartbeatFile;
  } catch {
    return undefined; // a heartbeat is advisory; a bad one counts as none
  }
}

/** The highest generation in `dir` (0 when none or no dir): readdir, then probe upwards. */
async function currentGeneration(dir: string): Promise<number> {
  let names: string[];
  for (let attempt = 0; ; attempt++) {
    try {
      names = await readdir(dir);
      break;
    } catch (e) {
      if (errno(e) === 'ENOENT') return 0;
      if (errno(e) === 'ENOTDIR') throw corrupt(dir, 'is not a directory (berth keeps the lease as a directory)');
      // ESTALE: the lease dir was removed and made again through another mount (GlusterFS FUSE);
      // a fresh lookup replaces this client's stale handle
      if (isStale(e) && attempt < 3) {
        await lstat(dir).catch(() => undefined);
        continue;
      }
      throw ioError(`cannot list ${dir}: ${(e as Error).message}`, e);
    }
  }
  let max = 0;
  for (const n of names) {
    const m = GEN_RE.exec(n);
    if (m) max = Math.max(max, Number(m[1]));
  }
  // A listing may lag behind a create on another node; a lookup of the next name does not.
  while (await exists(join(dir, genName(max + 1)))) max++;
  return max;
}

function toRecord(g: ClaimFile | IncompleteFile, hb: HeartbeatFile | undefined): LeaseRecord {
  const r: LeaseRecord = g.kind === 'incomplete'
    ? { node: '', uuid: '', generation: g.generation, heartbeat: 0, acquiredAt: '', incomplete: true }
    : { node: g.node, uuid: g.uuid, generation: g.generation, heartbeat: 0, acquiredAt: g.acquiredAt };
  if (hb && hb.generation === g.generation && typeof hb.counter === 'number') r.heartbeat = hb.counter;
  if (hb?.at) r.renewedAt = hb.at;
  if (g.kind === 'claim' && g.takeoverFrom) r.takeoverFrom = g.takeoverFrom;
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
    return { generation: n, holder: toRecord(g, await readHeartbeat(dir, n)) };
  }
  throw ownedError('E_LEASE_BUSY', `the lease ${dir} kept changing while being read`, { hint: 'try again' });
}

/**
 * Reads the whole state of a lease: current generation, holder or release.
 * @param leasePath the lease directory, `Workdir.env(jname).lease`
 * @throws E_LEASE_CORRUPT (exit 1) when a record cannot be parsed.
 */
export async function readLeaseState(leasePath: string): Promise<LeaseState> {
  return stateOf(leasePath);
}

/**
 * A cheap look at a lease believed held at `generation` (the agent's periodic observation of
 * every lease on the storage, src/cluster.ts observeLeases): one lookup of `gen.<N+1>` and one
 * read of `hb.<N>`, instead of a listing and three reads.
 * @returns the heartbeat's counter and holder timestamp, or undefined when the generation moved
 *   on, or there is no readable heartbeat of that generation (then use readLeaseState)
 */
export async function peekHeartbeat(leasePath: string, generation: number): Promise<{ counter: number; renewedAt?: string } | undefined> {
  if (!(generation > 0) || await exists(join(leasePath, genName(generation + 1)))) return undefined;
  const hb = await readHeartbeat(leasePath, generation);
  if (!hb || hb.generation !== generation || typeof hb.counter !== 'number') return undefined;
  return { counter: hb.counter, renewedAt: hb.at };
}

/**
 * Reads the current holder of a lease.
 * @returns the record, or undefined when nobody holds it (never acquired, or released).
 */
export async function readLease(leasePath: string): Promise<LeaseRecord | undefined> {
  return (await stateOf(leasePath)).holder;
}

function describe(r: LeaseRecord): string {
  if (r.incomplete) return `an unfinished claim at generation ${r.generation} (its writer stopped before writing it)`;
  return `node '${r.node}' (generation ${r.generation}, heartbeat ${r.heartbeat}${r.renewedAt ? `, last renewed ${r.renewedAt} by its clock` : ''})`;
}

function heldError(leasePath: string, r: LeaseRecord, hint?: string): BerthError {
  return ownedError('E_LEASE_HELD', `the env is owned by ${describe(r)}`, {
    hint: hint ?? (r.incomplete ? 'use --force to take over after lease_ttl seconds without a heartbeat'
      : `ask node '${r.node}' to let it go (junregister), or, if that node is down, use --force to take over after lease_ttl seconds without a heartbeat`),
    details: { lease: leasePath, node: r.node, uuid: r.uuid, generation: r.generation, heartbeat: r.heartbeat },
  });
}

async function ensureDir(leasePath: string): Promise<void> {
  try {
    await mkdir(leasePath);
  } catch (e) {
    if (errno(e) === 'EEXIST') return; // a regular file there is reported by the readdir that follows
    if (errno(e) === 'ENOENT') {
      throw ioError(`cannot create the lease ${leasePath}: its system dir does not exist (is the env's storage mounted?)`, e);
    }
    throw ioError(`cannot create the lease ${leasePath}: ${(e as Error).message}`, e);
  }
}

async function writeHeartbeat(dir: string, generation: number, node: string, counter: number): Promise<HeartbeatFile> {
  const hb: HeartbeatFile = { generation, node, counter, nonce: randomBytes(8).toString('hex'), at: new Date().toISOString() };
  // Not fsync'd: a heartbeat lost in a server crash only looks like a silent owner for a while.
  try {
    await replaceFileAtomic(join(dir, hbName(generation)), JSON.stringify(hb) + '\n', { durable: false });
  } catch (e) {
    throw ioError(`cannot write the heartbeat of ${dir}: ${(e as Error).message}`, e);
  }
  return hb;
}

/** Deletes generations <= current-KEEP (lowest first, so the rest stay contiguous) and old temp files. */
async function prune(dir: string, current: number): Promise<void> {
  if (current <= KEEP_GENERATIONS) return;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  const old: Array<[number, string]> = [];
  for (const n of names) {
    const m = GEN_RE.exec(n) ?? HB_RE.exec(n);
    if (m && Number(m[1]) <= current - KEEP_GENERATIONS) old.push([Number(m[1]), n]);
    if (TMP_RE.test(n)) {
      // Left by a crashed process; age by the local clock is fine for garbage (not for ownership).
      const st = await stat(join(dir, n)).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > 3600_000) await unlink(join(dir, n)).catch(() => undefined);
    }
  }
  old.sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : 1));
  for (const [, n] of old) await unlink(join(dir, n)).catch(() => undefined);
}

/** Creates claim `gen.<n>` (heartbeat 0: the holder's first renewal writes `hb.<n>`); prunes. */
async function claim(leasePath: string, n: number, who: LeaseIdentity, takeoverFrom?: { node: string; generation: number }): Promise<LeaseRecord | undefined> {
  const rec: ClaimFile = { kind: 'claim', node: who.node, uuid: who.uuid, generation: n, acquiredAt: new Date().toISOString() };
  if (takeoverFrom) rec.takeoverFrom = takeoverFrom;
  if (!(await createExclusive(leasePath, genName(n), JSON.stringify(rec) + '\n'))) return undefined;
  await prune(leasePath, n);
  return toRecord(rec, undefined);
}

/**
 * Acquires a free lease (never acquired, or released) for `who`, creating the lease dir when
 * missing (its parent, the sysdir, must exist). Used by jcreate and jregister.
 * @returns the new record; record its `generation` in the inventory.
 * @throws E_LEASE_HELD (exit 4) naming the owner when another claim is current (also when this
 *   node holds it: the caller must know its generation from the inventory, or take over);
 *   E_LEASE_IO (exit 1) when the sysdir is missing or the file system cannot create files exclusively (O_EXCL).
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
    contended++; // someone created gen.<N+1> between our read and our link: look again
  }
  throw ownedError('E_LEASE_BUSY', `the lease ${leasePath} kept changing; ${MAX_ATTEMPTS} attempts to acquire it failed`, { hint: 'try again' });
}

function supersededError(leasePath: string, who: LeaseHolder, next: GenEntry | undefined, current?: LeaseState): BerthError {
  let what: string;
  if (next?.kind === 'claim') what = `node '${next.node}' took it over at generation ${next.generation}`;
  else if (next?.kind === 'release') what = `it was released at generation ${next.generation} by node '${next.node}'`;
  else if (next?.kind === 'incomplete') what = `generation ${next.generation} was claimed (unfinished claim)`;
  else what = 'it moved on';
  const cur = current?.holder ? `; now owned by ${describe(current.holder)}` :
    current ? `; current generation ${current.generation}, not held` : '';
  return ownedError('E_LEASE_SUPERSEDED', `node '${who.node}' no longer holds the lease at generation ${who.generation}: ${what}${cur}`, {
    hint: 'this node must not start, change or write to this env; stop its local copy (the agent does this) and register again if it should own it',
    details: { lease: leasePath, node: who.node, generation: who.generation, current: current?.generation },
  });
}

/**
 * Checks that `who.node` still holds the lease at `who.generation` (and env `who.uuid` when
 * given). Cheap (two lookups and one small read); call it before every start, stop, jset, jclone
 * and jremove, and from the agent for fencing.
 * @returns the current record (with heartbeat).
 * @throws E_LEASE_SUPERSEDED (exit 4) when the generation moved on or belongs to another node/env;
 *   E_LEASE_MISSING (exit 4) when there is no such generation at all (no lease, or a lease that
 *   was deleted and recreated).
 */
export async function checkLease(leasePath: string, who: LeaseHolder): Promise<LeaseRecord> {
  const g = await verifyHolder(leasePath, who);
  return toRecord(g, await readHeartbeat(leasePath, who.generation));
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
      hint: 'register the env on this node (jregister) before using it',
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
 * What a holder remembers between its renewals of one lease (the agent keeps one per env):
 * the claim file it verified and its identity on the storage, and the last heartbeat counter.
 * Filled and updated by {@link renewLease}; start with `{}`.
 */
export interface RenewMemo {
  generation?: number;
  counter?: number;
  claim?: ClaimFile;
  /** inode, size and mtime of gen.<N> when it was read */
  claimStamp?: string;
}

async function claimStamp(leasePath: string, generation: number): Promise<string | undefined> {
  try {
    const st = await stat(join(leasePath, genName(generation)));
    return `${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return undefined;
  }
}

/**
 * Renews (heartbeats) the lease held by `who`: checks it (as {@link checkLease}), then rewrites
 * `hb.<generation>` with a new counter and nonce. The agent calls this every lease_ttl/3.
 * With `memo` (kept by the caller between renewals), a renewal after the first costs a lookup of
 * gen.<N+1>, a stat of gen.<N> and the heartbeat write, instead of also reading both files.
 * @returns the record with the new heartbeat.
 * @throws E_LEASE_SUPERSEDED / E_LEASE_MISSING (exit 4) as checkLease: the caller must fence.
 */
export async function renewLease(leasePath: string, who: LeaseHolder, memo?: RenewMemo): Promise<LeaseRecord> {
  // A claim file never changes once written, so a holder that verified gen.<N> need not read it
  // again: the lookup of gen.<N+1> (fencing) and a stat showing gen.<N> is still the same file
  // suffice. Anything unexpected takes the full path.
  if (memo?.claim && memo.generation === who.generation && memo.counter !== undefined && memo.claimStamp
      && memo.claim.node === who.node && (who.uuid === undefined || memo.claim.uuid === who.uuid)
      && !(await exists(join(leasePath, genName(who.generation + 1))))
      && (await claimStamp(leasePath, who.generation)) === memo.claimStamp) {
    const hb = await writeHeartbeat(leasePath, who.generation, who.node, memo.counter + 1);
    memo.counter = hb.counter;
    return toRecord(memo.claim, hb);
  }
  const g = await verifyHolder(leasePath, who);
  const prev = await readHeartbeat(leasePath, who.generation);
  const counter = (prev && prev.generation === who.generation && typeof prev.counter === 'number' ? prev.counter : 0) + 1;
  const stamp = memo ? await claimStamp(leasePath, who.generation) : undefined;
  const hb = await writeHeartbeat(leasePath, who.generation, who.node, counter);
  if (memo) Object.assign(memo, { generation: who.generation, counter, claim: g, claimStamp: stamp });
  return toRecord(g, hb);
}

/**
 * Releases the lease held by `who` (junregister, jremove): records a release at generation+1,
 * which fails if another node took over first, so a superseded node can never undo a newer claim.
 * No-op when nobody holds the lease (never acquired, already released, or no lease dir).
 * @throws E_LEASE_SUPERSEDED (exit 4) when another node (or another generation) holds it.
 */
export async function releaseLease(leasePath: string, who: { node: string; generation: number }): Promise<void> {
  for (let i = 0; i < MAX_ATTEMPTS; i++) {
    const st = await stateOf(leasePath);
    if (!st.holder) return;
    if (st.holder.node !== who.node || st.holder.generation !== who.generation) {
      throw supersededError(leasePath, who, await readGen(leasePath, who.generation + 1).catch(() => undefined), st);
    }
    const n = who.generation + 1;
    const rec: ReleaseFile = { kind: 'release', node: who.node, uuid: st.holder.uuid, generation: n, released: who.generation, at: new Date().toISOString() };
    if (await createExclusive(leasePath, genName(n), JSON.stringify(rec) + '\n')) {
      await unlink(join(leasePath, hbName(who.generation))).catch(() => undefined);
      await prune(leasePath, n);
      return;
    }
    // gen.<N+1> appeared first: someone took over (or a parallel release of ours); look again.
  }
  throw ownedError('E_LEASE_BUSY', `the lease ${leasePath} kept changing; could not release it`, { hint: 'try again' });
}

/**
 * Takes the lease over for `who` (jregister --force on another node). A free lease is simply
 * acquired. A held one needs `force`, then the holder's heartbeat is watched for `ttlSec`
 * seconds (read every `pollMs`): if it moves, the owner is alive and the takeover is refused at
 * once; if the generation moves, the takeover is refused (or, when the lease was released,
 * acquired normally). Otherwise `gen.<N+1>` is claimed by exclusive create: of several nodes racing,
 * one wins and the others get E_LEASE_HELD naming it. Duration is measured by the local
 * sleeps only; no two machines' clocks are compared.
 * @returns the new record (generation = the silent holder's + 1).
 * @throws E_LEASE_HELD (exit 4): held and no force (hint: --force), owner alive, or lost the race.
 */
export async function takeoverLease(leasePath: string, who: LeaseIdentity, opts: TakeoverOptions): Promise<LeaseRecord> {
  const sleep = opts.sleep ?? defaultSleep;
  const pollMs = Math.max(1, opts.pollMs ?? 1000);
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const st = await stateOf(leasePath);
    if (!st.holder) {
      try {
        return await acquireLease(leasePath, who);
      } catch (e) {
        if (e instanceof BerthError && e.code === 'E_LEASE_HELD') continue; // someone acquired it: judge that holder
        throw e;
      }
    }
    const holder = st.holder;
    const n = holder.generation;
    if (!opts.force) {
      throw heldError(leasePath, holder, `run again with --force to take over: berth then watches the lease for ${opts.ttlSec} s (lease_ttl) and takes it only if node '${holder.node}' does not renew it`);
    }
    const hb0 = await readHeartbeatRaw(leasePath, n);
    let leftMs = Math.round(opts.ttlSec * 1000);
    let changed = false;
    while (leftMs > 0) {
      opts.onWait?.(leftMs / 1000);
      const step = Math.min(pollMs, leftMs);
      await sleep(step);
      leftMs -= step;
      if (await exists(join(leasePath, genName(n + 1)))) {
        changed = true;
        break;
      }
      if ((await readHeartbeatRaw(leasePath, n)) !== hb0) {
        const now = (await readLease(leasePath)) ?? holder;
        throw heldError(leasePath, now.generation === n ? now : holder,
          `node '${holder.node}' renewed its lease while we watched: it is alive; ask it to let the env go (junregister or jmigrate)`);
      }
    }
    if (changed) {
      const now = await stateOf(leasePath);
      if (now.holder) {
        throw heldError(leasePath, now.holder, `the lease changed hands while we watched (generation ${n} → ${now.holder.generation}); run again if node '${now.holder.node}' is down too`);
      }
      continue; // released meanwhile: acquire it normally on the next turn
    }
    const r = await claim(leasePath, n + 1, who, { node: holder.node, generation: n });
    if (r) return r;
    const now = await stateOf(leasePath);
    if (now.holder) {
      const e = heldError(leasePath, now.holder, `another node took the lease over first (generation ${now.holder.generation})`);
      e.details!.contended = 1;
      throw e;
    }
    // Released right then: acquire on the next turn.
  }
  throw ownedError('E_LEASE_BUSY', `the lease ${leasePath} kept changing; could not take it over`, { hint: 'try again' });
}
