/**
 * Each node's ownership journal, so that `cluster ls` reads O(nodes) records plus what changed
 * instead of every env's record (issue #11: 22 file operations per env made `cluster ls` of
 * 2,000 envs take 30–46 s through GlusterFS FUSE).
 *
 * ```
 * <lease_dir>/nodes/<node>/journal/<V>     one transition of <node>, V = 1, 2, 3 ... (immutable)
 * <lease_dir>/nodes/<node>/snapshot.<V>    everything <node> owned at version V (immutable)
 * ```
 *
 * - Writers (the berth command or agent that made the transition, on that node) create
 *   `journal/<V+1>` with O_EXCL after the record's `gen.<N>` and the inventory row: an `own`
 *   entry (acquire, takeover, handover received) or a `drop` entry (release, remove, handover
 *   given, fenced). Concurrent writers on one node get distinct versions (EEXIST: try the next).
 * - The agent compacts ({@link writeSnapshot}) from its inventory, when the journal grew by
 *   {@link COMPACT_EVERY} entries: `snapshot.<H>` (H read before the inventory, so the snapshot
 *   holds at least every transition up to H), then deletes what readers no longer need.
 * - Readers ({@link readNodeIndex}) keep what they read (var/run, per node): a look at a node
 *   that changed nothing is one listing of its journal dir and one failed lookup. New names are
 *   seen at once on GlusterFS FUSE (no negative lookup cache), so a reader never misses an entry
 *   another node just wrote; entries are never rewritten, so no stale content is ever read.
 *
 * The journal is an index, not the truth: the records' generations are. A reader resolves two
 * nodes claiming one env by the higher generation (the old owner of a taken-over env still has
 * it in its journal until its agent fences it).
 */
import { mkdir, open, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { readSharedTextAsync } from '../sharedfs.js';
import type { Ownership } from './store.js';

/** One owned env as a journal or snapshot records it. */
export interface IndexEntry {
  jname: string;
  uuid: string;
  generation: number;
  emulator: string;
}

/** One journal entry. */
export interface JournalEntry extends IndexEntry {
  v: number;
  /** own: the node holds `jname` from `generation` on; drop: it no longer holds it at `generation` */
  op: 'own' | 'drop';
  /** acquire | takeover | handover | release | remove | handed | fenced | rename ... (shown only) */
  why: string;
}

/** What a node owns, as its journal says at version `v`. */
export interface NodeIndex {
  node: string;
  v: number;
  envs: Record<string, IndexEntry>;
}

/** The agent compacts when the journal has this many entries after the newest snapshot. */
export const COMPACT_EVERY = 64;

const SNAP_RE = /^snapshot\.(\d+)$/;
const NUM_RE = /^(\d+)$/;
const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException)?.code;

async function listNumbers(dir: string, re: RegExp): Promise<number[]> {
  const names = await readdir(dir).catch((e) => { if (errno(e) === 'ENOENT') return [] as string[]; throw e; });
  const out: number[] = [];
  for (const n of names) { const m = re.exec(n); if (m) out.push(Number(m[1])); }
  return out.sort((a, b) => a - b);
}

async function exists(p: string): Promise<boolean> {
  try { const fh = await open(p, 'r'); await fh.close(); return true; } catch { return false; }
}

/**
 * Appends entries to this node's journal. One writer per process: appends are serialised, and
 * the head is remembered between them (looked up again only when another process took a version).
 */
export class JournalWriter {
  private head?: number;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly own: Ownership) {}

  /** The highest version in the journal (listing, then probes upward). */
  async currentHead(): Promise<number> {
    const dir = this.own.journalDir();
    const nums = await listNumbers(dir, NUM_RE);
    let v = Math.max(nums.at(-1) ?? 0, (await listNumbers(this.own.nodeDir(), SNAP_RE)).at(-1) ?? 0);
    while (await exists(join(dir, String(v + 1)))) v++;
    return v;
  }

  /**
   * Appends one entry; resolves with its version.
   * @throws file system errors (the caller's transition already happened: it logs and goes on,
   *   the agent's next snapshot covers the entry)
   */
  append(e: Omit<JournalEntry, 'v'>): Promise<number> {
    const p = this.chain.then(() => this.write(e));
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async write(e: Omit<JournalEntry, 'v'>): Promise<number> {
    const dir = this.own.journalDir();
    // the dir is made when an open says it is missing, not before every entry (a round trip
    // each on the shared storage, and entries are written one after the other)
    let v = (this.head ?? (await this.currentHead())) + 1;
    let made = false;
    for (let attempt = 0; ; attempt++) {
      let fh;
      try {
        fh = await open(join(dir, String(v)), 'wx', 0o644);
      } catch (err) {
        if (errno(err) === 'EEXIST' && attempt < 1000) { v++; continue; }
        if (errno(err) === 'ENOENT' && !made) { await mkdir(dir, { recursive: true }); made = true; continue; }
        throw err;
      }
      try {
        await fh.writeFile(JSON.stringify({ ...e, v }) + '\n');
      } finally {
        await fh.close();
      }
      this.head = v;
      return v;
    }
  }
}

/**
 * Writes `snapshot.<v>` of this node (what it owns, from its inventory, read AFTER `v` was
 * taken as the head), then deletes what no reader needs any more: older snapshots but the
 * previous one, and journal entries up to the previous snapshot.
 * @returns false when snapshot.<v> already existed
 */
export async function writeSnapshot(own: Ownership, v: number, envs: IndexEntry[]): Promise<boolean> {
  const file = join(own.nodeDir(), `snapshot.${v}`);
  let fh;
  try {
    fh = await open(file, 'wx', 0o644);
  } catch (e) {
    if (errno(e) === 'EEXIST') return false;
    throw e;
  }
  try {
    await fh.writeFile(JSON.stringify({ node: own.node, v, at: new Date().toISOString(), envs }) + '\n');
    await fh.sync();
  } finally {
    await fh.close();
  }
  const snaps = (await listNumbers(own.nodeDir(), SNAP_RE)).filter((s) => s < v);
  const keep = snaps.at(-1) ?? 0; // the previous snapshot stays, for readers that listed before this one
  for (const s of snaps) if (s < keep) await unlink(join(own.nodeDir(), `snapshot.${s}`)).catch(() => undefined);
  for (const j of await listNumbers(own.journalDir(), NUM_RE)) if (j <= keep) await unlink(join(own.journalDir(), String(j))).catch(() => undefined);
  return true;
}

/** How many journal entries of this node come after its newest snapshot. */
export async function entriesSinceSnapshot(own: Ownership): Promise<number> {
  const snap = (await listNumbers(own.nodeDir(), SNAP_RE)).at(-1) ?? 0;
  return (await listNumbers(own.journalDir(), NUM_RE)).filter((j) => j > snap).length;
}

function apply(envs: Record<string, IndexEntry>, e: JournalEntry): void {
  const cur = envs[e.jname];
  if (e.op === 'own') {
    if (!cur || e.generation >= cur.generation) envs[e.jname] = { jname: e.jname, uuid: e.uuid, generation: e.generation, emulator: e.emulator };
  } else if (cur && cur.generation <= e.generation) {
    delete envs[e.jname];
  }
}

/**
 * What `node` owns according to its snapshot and journal, starting from `cached` (what this
 * reader saw last time) when it is still usable. Unreadable entries are skipped (an index is
 * advisory; the records decide).
 * @returns the index (give it back as `cached` next time)
 */
export async function readNodeIndex(own: Ownership, node: string, cached?: NodeIndex): Promise<NodeIndex> {
  const jdir = own.journalDir(node);
  const snaps = await listNumbers(own.nodeDir(node), SNAP_RE);
  const entries = await listNumbers(jdir, NUM_RE);
  const newestSnap = snaps.at(-1) ?? 0;
  let idx: NodeIndex;
  // a cached index at or after the newest snapshot: every entry after it is still there
  const usable = !!cached && cached.node === node && cached.v >= newestSnap;
  if (usable) {
    idx = { node, v: cached!.v, envs: { ...cached!.envs } };
  } else {
    idx = { node, v: 0, envs: {} };
    if (newestSnap) {
      try {
        const s = JSON.parse(await readSharedTextAsync(join(own.nodeDir(node), `snapshot.${newestSnap}`), { nonEmpty: true })) as { v: number; envs: IndexEntry[] };
        idx.v = s.v;
        for (const e of s.envs) idx.envs[e.jname] = e;
      } catch { /* pruned under us or unreadable: the journal alone */ }
    }
  }
  // the entries after v, by lookup (a listing may lag behind another node's create; a lookup does not)
  for (;;) {
    const next = idx.v + 1;
    let text: string;
    try {
      text = await readSharedTextAsync(join(jdir, String(next)), { nonEmpty: true });
    } catch (e) {
      if (errno(e) === 'ENOENT') {
        // a hole (entries pruned after a snapshot this reader has not read): start from the snapshot
        if (usable && entries.some((j) => j > next)) return readNodeIndex(own, node, undefined);
        break;
      }
      throw e;
    }
    let entry: JournalEntry | undefined;
    try { entry = JSON.parse(text) as JournalEntry; } catch { entry = undefined; }
    if (!entry) {
      // created but not written yet (or its writer died): wait for it, unless later entries exist
      if (!(await exists(join(jdir, String(next + 1))))) break;
    } else {
      apply(idx.envs, entry);
    }
    idx.v = next;
  }
  return idx;
}
