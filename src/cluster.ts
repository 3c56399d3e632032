/**
 * Nodes and the cluster view: `node add|list|remove` (the nodes table of the local inventory:
 * name, agent URL, token) and `cluster ls` (every env found on the shared storage).
 *
 * ## cluster ls
 *
 * Reads, from this node, the shared dirs of its workdir:
 * - `jails-system/<jname>/`: the descriptor `rc.conf_<jname>` (uuid, emulator) and the lease
 *   (src/lease.ts readLeaseState: owner node, generation, heartbeat counter);
 * - `jails-rcconf/rc.conf_<jname>`: unregistered envs (descriptors waiting to be adopted);
 * - the local inventory: whether THIS node runs the envs it owns, and stale rows of envs
 *   another node took over (state `fenced`).
 * For envs owned by a node known from `node add`, the state (On/Off) is asked from that node's
 * agent (best effort, 3 s timeout; `stateFrom: "agent"`); otherwise it is `remote`.
 * Envs whose storage is mounted per env by hooks are visible on the storage only where they are
 * mounted: those registered on a known node are listed from its agent's answer (owner,
 * generation and state as that agent reports them; no heartbeat age), the others cannot be seen
 * (mount the shared dirs whole to see everything).
 *
 * ## Heartbeat age without comparing clocks
 *
 * The heartbeat (`hb.<N>`) carries the holder's counter and the holder's wall-clock time; the
 * latter is never compared with this node's clock (product.md: no clocks of two machines are
 * compared). Instead this node records, in a small cache `var/run/heartbeats.json`, when IT
 * first saw the current heartbeat content (generation + counter + the holder's timestamp as an
 * opaque string) and when it last looked. Both times are this node's own clock. So:
 * - `ageSec` = now − first sighting of the current content: a LOWER bound of the real age;
 * - when this node had seen the previous content at its last look (time L), the heartbeat
 *   changed after L, so `ageMaxSec` = now − L is an UPPER bound; otherwise it is null (first
 *   sighting: the table shows `>=Ns`).
 * - `silent` = the content did not change for more than lease_ttl seconds as seen here (the
 *   condition under which `jregister --force` would take over).
 * The agent refreshes this cache for every env on the storage every lease_ttl seconds
 * ({@link observeLeases}), so with the agent running the bounds are at most lease_ttl apart;
 * `cluster ls` refreshes it too when run. Writers replace the file atomically; a lost update
 * only widens a bound.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { readSharedText } from './sharedfs.js';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { notFound, usageError } from './errors.js';
import { parseDescriptor, type EnvConf } from './descriptor.js';
import { STATUS, statusWord } from './inventory.js';
import { peekHeartbeat, readLeaseState, type LeaseState } from './lease.js';
import { engineEnv } from './lifecycle.js';
import { checkJname, checkNodename } from './names.js';
import type { NodeCtx } from './node.js';
import type { Workdir } from './paths.js';
import { AgentClient, parseNodeUrl } from './agent/client.js';
import { listFenceMarkers } from './agent/fence.js';

/** readDescriptor for a descriptor on shared storage (see {@link readSharedText}). @throws BerthError E_BAD_CONF; Node errors */
export function readSharedDescriptor(file: string, workdir: string): EnvConf {
  return parseDescriptor(readSharedText(file), workdir, file);
}

// ---------------------------------------------------------------------------------------------
// nodes

/** A known node as `node list` shows it (never the token). */
export interface NodeInfo {
  name: string;
  url: string;
  /** unix seconds when it was added (or last updated) */
  addedAt: number;
}

/** Result of {@link addNode}. */
export interface AddNodeResult extends NodeInfo {
  /** true when a node of that name was known and its url/token replaced */
  updated: boolean;
  /** how many envs its agent reported */
  envs: number;
}

/**
 * Checks a token given on the command line: 1..1024 printable characters, no white space.
 * @throws BerthError E_BAD_TOKEN (exit 2); the message never contains the token
 */
export function checkToken(token: string | undefined): string {
  if (!token) throw usageError('E_BAD_TOKEN', 'node add needs token=<the API token of that node> (its etc/api.token)');
  if (token.length > 1024 || !/^[\x21-\x7e]+$/.test(token)) throw usageError('E_BAD_TOKEN', 'bad token=: expected 1 to 1024 printable characters without spaces (the content of that node\'s etc/api.token)');
  return token;
}

/**
 * node add: validates name, url and token, asks the node's agent `GET /v1/envs` with that
 * token, and saves it only when the agent answers as the node `name`. Nothing is saved on any
 * failure. Adding an existing name replaces its url and token.
 * @throws BerthError E_BAD_NODENAME / E_BAD_URL / E_BAD_TOKEN (2), E_SELF (2: this node
 *   itself), E_NODE_UNREACHABLE (1), E_UNAUTHORIZED (1: wrong token), E_NODE_MISMATCH (2: the
 *   agent there is another node)
 */
export async function addNode(ctx: NodeCtx, input: { name?: string; url?: string; token?: string }): Promise<AddNodeResult> {
  if (!input.name) throw usageError('E_BAD_NODENAME', 'node add needs name=<nodename>');
  const name = checkNodename(input.name);
  if (!input.url) throw usageError('E_BAD_URL', 'node add needs url=http://127.0.0.1:<port> or url=unix:/path/agent.sock');
  parseNodeUrl(input.url);
  const token = checkToken(input.token);
  if (name === ctx.nodename) throw usageError('E_SELF', `${name} is this node; add the other nodes`);
  const answer = await new AgentClient(name, input.url, token).list();
  if (answer.node !== name) {
    throw usageError('E_NODE_MISMATCH', `the agent at ${input.url} is node '${String(answer.node)}', not '${name}'; nothing saved`, {
      hint: `use name=${String(answer.node)}, or the URL of node '${name}'`,
    });
  }
  const updated = !!ctx.inv.getNode(name);
  ctx.inv.upsertNode({ name, url: input.url, token });
  const row = ctx.inv.getNode(name)!;
  return { name, url: row.url, addedAt: row.added_at, updated, envs: Array.isArray(answer.envs) ? answer.envs.length : 0 };
}

/** node list: the known nodes, by name, without tokens. */
export function listNodes(ctx: NodeCtx): NodeInfo[] {
  return ctx.inv.listNodes().map((n) => ({ name: n.name, url: n.url, addedAt: n.added_at }));
}

/** node remove. @throws BerthError E_NO_SUCH_NODE (exit 3) when unknown */
export function removeNode(ctx: NodeCtx, name: string | undefined): { name: string } {
  if (!name) throw usageError('E_BAD_NODENAME', 'node remove needs name=<nodename>');
  checkNodename(name);
  if (!ctx.inv.deleteNode(name)) throw notFound('E_NO_SUCH_NODE', `no node '${name}' is known to node ${ctx.nodename}`, { hint: 'see: berth node list' });
  return { name };
}

/**
 * The client of a known node's agent.
 * @throws BerthError E_NO_SUCH_NODE (exit 3)
 */
export function nodeClient(ctx: NodeCtx, name: string): AgentClient {
  checkNodename(name);
  const n = ctx.inv.getNode(name);
  if (!n) throw notFound('E_NO_SUCH_NODE', `no node '${name}' is known to node ${ctx.nodename}`, { hint: `add it first: berth node add name=${name} url=... token=...` });
  return new AgentClient(n.name, n.url, n.token);
}

// ---------------------------------------------------------------------------------------------
// heartbeat observations

interface Sighting {
  /** generation:counter:holder-timestamp (opaque) */
  key: string;
  /** this node's clock (ms) when it first saw `key` */
  seenAt: number;
  /** this node's clock (ms) of the last look that saw a different key (null: first sighting) */
  after: number | null;
  /** this node's clock (ms) of the last look */
  checkedAt: number;
}
interface SightingCache { version: 1; envs: Record<string, Sighting> }

/** The observation cache file. */
export function heartbeatCacheFile(wd: Workdir): string {
  return join(wd.runDir, 'heartbeats.json');
}

function readCache(wd: Workdir): SightingCache {
  try {
    const c = JSON.parse(readFileSync(heartbeatCacheFile(wd), 'utf8')) as SightingCache;
    if (c && c.version === 1 && c.envs && typeof c.envs === 'object') return c;
  } catch { /* none yet, or unreadable: start afresh */ }
  return { version: 1, envs: {} };
}

async function writeCache(wd: Workdir, c: SightingCache): Promise<void> {
  await mkdir(wd.runDir, { recursive: true });
  await writeFileAtomic(heartbeatCacheFile(wd), JSON.stringify(c) + '\n', { mode: 0o644 });
}

/**
 * Records one observation of heartbeat content `key` at local time `now` (ms), returning the
 * updated sighting. Pure.
 */
export function observe(prev: Sighting | undefined, key: string, now: number): Sighting {
  if (!prev) return { key, seenAt: now, after: null, checkedAt: now };
  if (prev.key === key) return { ...prev, checkedAt: now };
  return { key, seenAt: now, after: prev.checkedAt, checkedAt: now };
}

/** The heartbeat of a held lease as this node observes it. */
export interface HeartbeatView {
  /** the holder's heartbeat counter */
  counter: number;
  /** the holder's timestamp of its last renewal (its own clock; shown, never compared) */
  renewedAt?: string;
  /** lower bound of the age, seconds (this node's clock only) */
  ageSec: number;
  /** upper bound of the age, seconds; null when this node has not seen the previous heartbeat */
  ageMaxSec: number | null;
  /** unchanged, as seen here, for more than lease_ttl seconds */
  silent: boolean;
}

/** The age view of a sighting at local time `now`. Pure. */
export function heartbeatView(s: Sighting, now: number, leaseTtlSec: number, counter: number, renewedAt?: string): HeartbeatView {
  const ageSec = Math.max(0, (now - s.seenAt) / 1000);
  const v: HeartbeatView = { counter, ageSec: Math.round(ageSec * 10) / 10, ageMaxSec: s.after === null ? null : Math.round(Math.max(0, (now - s.after) / 1000) * 10) / 10, silent: ageSec > leaseTtlSec };
  if (renewedAt) v.renewedAt = renewedAt;
  return v;
}

/** How the table shows a heartbeat: `3s`, `>=3s` (first sighting), `40s silent`. */
export function formatHeartbeat(h: HeartbeatView | null): string {
  if (!h) return '-';
  const s = `${h.ageMaxSec === null ? '>=' : ''}${Math.floor(h.ageSec)}s`;
  return h.silent ? `${s} silent` : s;
}

/** The opaque key of a held lease's heartbeat content: `generation:counter:holder timestamp`. */
export const heartbeatKey = (st: LeaseState): string | undefined =>
  st.holder ? `${st.holder.generation}:${st.holder.heartbeat}:${st.holder.renewedAt ?? ''}` : undefined;

// ---------------------------------------------------------------------------------------------
// storage scan

/** One env found on the shared storage (or in the local inventory). */
export interface ClusterEnv {
  jname: string;
  uuid: string;
  emulator: string;
  /** a node holds its lease */
  registered: boolean;
  /** the lease holder (null: not held) */
  owner: string | null;
  /** the lease's current generation (0: never leased) */
  generation: number;
  /**
   * On | Off | Maintenance: owned by this node (from its inventory and engine);
   * On | Off | ... with stateFrom "agent": owned by a known node that answered;
   * remote: owned by another node that was not asked or did not answer;
   * unregistered: not held, descriptor in jails-rcconf/; released: not held, no descriptor there;
   * no lease: a descriptor in jails-system/ but never leased (e.g. made by CBSD);
   * fenced: this node has a stale inventory row (another node holds the lease);
   * orphan: this node holds the lease but has no inventory row;
   * (an env in this node's inventory whose sysdir is not visible here, e.g. storage a hook mounts
   * only while in use, is shown with this node as owner, the inventory's generation and status,
   * no heartbeat, and a note in `problems`).
   */
  state: string;
  /** where `state` comes from: this node, the owner's agent, or nobody */
  stateFrom: 'local' | 'agent' | 'none';
  /** running on this node (null when another node owns it) */
  running: boolean | null;
  heartbeat: HeartbeatView | null;
  /** this node's inventory row, if any */
  local: { status: string; generation: number; fenced: boolean } | null;
  /** anything unreadable (descriptor, lease) */
  problems: string[];
}

/** The names of the sub-directories of `dir` (file types from the listing: no stat per entry). */
function listDirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return [];
  }
}

function rcconfNames(dir: string): string[] {
  try {
    return readdirSync(dir).map((f) => /^rc\.conf_(.+)$/.exec(f)?.[1]).filter((n): n is string => !!n);
  } catch {
    return [];
  }
}

const isJname = (n: string): boolean => { try { checkJname(n); return true; } catch { return false; } };

interface RawScan { jname: string; desc?: Record<string, string>; rc: boolean; rcDesc?: Record<string, string>; lease?: LeaseState; problems: string[] }

async function scanStorage(ctx: NodeCtx): Promise<RawScan[]> {
  const names = new Set<string>([...listDirs(ctx.wd.jailsSystem), ...rcconfNames(ctx.wd.jailsRcconf)].filter(isJname));
  const out: RawScan[] = [];
  for (const jname of [...names].sort()) {
    const p = ctx.wd.env(jname);
    const r: RawScan = { jname, rc: existsSync(p.rcconfFile), problems: [] };
    if (existsSync(p.descriptor)) {
      try { r.desc = readSharedDescriptor(p.descriptor, ctx.wd.root); } catch (e) { r.problems.push(`descriptor: ${(e as Error).message}`); }
    }
    if (r.rc) {
      try { r.rcDesc = readSharedDescriptor(p.rcconfFile, ctx.wd.root); } catch (e) { r.problems.push(`rcconf: ${(e as Error).message}`); }
    }
    if (existsSync(p.lease)) {
      try { r.lease = await readLeaseState(p.lease); } catch (e) { r.problems.push(`lease: ${(e as Error).message}`); }
    }
    if (!r.desc && !r.rc && !r.lease && !r.problems.length) continue; // an empty mount point dir
    out.push(r);
  }
  return out;
}

/**
 * Reads every lease on the shared storage once and records the heartbeat sightings in the
 * cache (the agent calls this every lease_ttl). Errors of single envs are skipped.
 * A lease seen at the same generation last time costs one lookup and one read (peekHeartbeat).
 * @param own heartbeat keys of the leases this node renewed itself since the last call
 *   (jname → `generation:counter:timestamp`, from the renewal's result): not read again
 * @returns how many held leases were observed
 */
export async function observeLeases(ctx: NodeCtx, now = Date.now, own: ReadonlyMap<string, string> = new Map()): Promise<number> {
  const cache = readCache(ctx.wd);
  let n = 0;
  const seen = new Set<string>();
  for (const jname of listDirs(ctx.wd.jailsSystem).filter(isJname)) {
    const lease = ctx.wd.env(jname).lease;
    // the generation seen last time: when it has not moved on, its heartbeat is all there is to read
    const prevGen = Number(cache.envs[jname]?.key.split(':')[0]);
    let key: string | undefined = own.get(jname);
    try {
      if (!key) {
        const hb = prevGen > 0 ? await peekHeartbeat(lease, prevGen) : undefined;
        key = hb ? `${prevGen}:${hb.counter}:${hb.renewedAt ?? ''}` : heartbeatKey(await readLeaseState(lease));
      }
    } catch { continue; }
    if (!key) continue;
    cache.envs[jname] = observe(cache.envs[jname], key, now());
    seen.add(jname);
    n++;
  }
  for (const j of Object.keys(cache.envs)) if (!seen.has(j)) delete cache.envs[j];
  await writeCache(ctx.wd, cache);
  return n;
}

/** Options of {@link clusterList}. */
export interface ClusterListOptions {
  /** ask known nodes' agents for the state of the envs they own (default true) */
  askAgents?: boolean;
  /** per-agent timeout in ms (default 3000) */
  agentTimeoutMs?: number;
}

/**
 * cluster ls: every env found on the shared storage and in the local inventory, with owner,
 * generation, state and heartbeat age as this node observes it (see the module header).
 */
export async function clusterList(ctx: NodeCtx, opts: ClusterListOptions = {}): Promise<ClusterEnv[]> {
  const scans = await scanStorage(ctx);
  const cache = readCache(ctx.wd);
  const now = Date.now();
  const markers = listFenceMarkers(ctx.wd);
  const out: ClusterEnv[] = [];
  const byName = new Map<string, ClusterEnv>();
  for (const s of scans) {
    const d = s.desc ?? s.rcDesc ?? {};
    const holder = s.lease?.holder;
    let heartbeat: HeartbeatView | null = null;
    const key = s.lease ? heartbeatKey(s.lease) : undefined;
    if (holder && key) {
      const sighting = observe(cache.envs[s.jname], key, now);
      cache.envs[s.jname] = sighting;
      heartbeat = heartbeatView(sighting, now, ctx.settings.lease_ttl, holder.heartbeat, holder.renewedAt);
    }
    const e: ClusterEnv = {
      jname: s.jname, uuid: d.uuid ?? holder?.uuid ?? '', emulator: d.emulator ?? '-',
      registered: !!holder, owner: holder?.node ?? null, generation: s.lease?.generation ?? 0,
      state: holder ? 'remote' : s.rc ? 'unregistered' : s.lease && s.lease.generation > 0 ? 'released' : 'no lease',
      stateFrom: 'none', running: null, heartbeat, local: null, problems: s.problems,
    };
    out.push(e);
    byName.set(s.jname, e);
  }
  // this node's inventory: running state of what it owns, stale rows, invisible envs
  for (const row of ctx.inv.list()) {
    let e = byName.get(row.jname);
    if (!e) {
      e = { jname: row.jname, uuid: row.uuid, emulator: row.emulator, registered: true, owner: null, generation: 0, state: 'invisible', // set below
        stateFrom: 'local', running: null, heartbeat: null, local: null, problems: [`${ctx.wd.env(row.jname).sysdir} is not visible on this node (not mounted?): owner and state as this node's inventory records them`] };
      out.push(e);
      byName.set(row.jname, e);
    }
    const m = markers.get(row.jname);
    const fenced = !!m && m.generation === row.generation;
    e.local = { status: statusWord(row.status), generation: row.generation, fenced };
    const engine = await ctx.engine(row.emulator).catch(() => undefined);
    const running = row.status === STATUS.ON && engine ? await engine.isRunning(engineEnv(ctx, row.jname, row.conf), row.jid) : false;
    if (e.owner === ctx.nodename && e.generation === row.generation) {
      e.state = row.status === STATUS.ON && !running ? 'Maintenance' : statusWord(row.status);
      e.stateFrom = 'local';
      e.running = running;
    } else if (e.state !== 'invisible') {
      e.state = 'fenced';
      e.stateFrom = 'local';
      e.running = running;
    } else {
      // not visible here (storage a hook mounts only while in use): what the inventory says
      e.state = row.status === STATUS.ON && !running ? 'Maintenance' : statusWord(row.status);
      e.running = running;
      e.owner = ctx.nodename;
      e.generation = row.generation;
    }
  }
  for (const e of out) if (e.owner === ctx.nodename && !e.local) { e.state = 'orphan'; e.stateFrom = 'local'; e.running = false; }
  // ask the known nodes' agents (best effort): the state of what they own, and the envs they
  // own whose storage this node cannot see (per-env mounts made by hooks)
  if (opts.askAgents !== false) {
    await Promise.all(ctx.inv.listNodes().map(async (n) => {
      let envs: Array<{ jname: string; uuid: string; emulator: string; status: string; generation: number }>;
      try {
        const a = await new AgentClient(n.name, n.url, n.token).call('GET', '/v1/envs', undefined, opts.agentTimeoutMs ?? 3000);
        if (a.node !== n.name || !Array.isArray(a.envs)) return;
        envs = a.envs as typeof envs;
      } catch {
        return; // unreachable: states stay 'remote'
      }
      for (const env of envs) {
        if (env.status === 'Unregister' || typeof env.jname !== 'string') continue;
        const e = byName.get(env.jname);
        if (!e) {
          const added: ClusterEnv = { jname: env.jname, uuid: env.uuid ?? '', emulator: env.emulator ?? '-', registered: true, owner: n.name,
            generation: env.generation ?? 0, state: env.status, stateFrom: 'agent', running: null, heartbeat: null, local: null,
            problems: ['its storage is not visible on this node (mounted per env by a hook?); owner and state as its agent reports them'] };
          out.push(added);
          byName.set(env.jname, added);
        } else if (e.owner === n.name && env.generation === e.generation) {
          e.state = env.status;
          e.stateFrom = 'agent';
        }
      }
    }));
  }
  await writeCache(ctx.wd, cache).catch(() => undefined);
  return out.sort((a, b) => a.jname.localeCompare(b.jname));
}
