/**
 * Nodes and the cluster view: `node add|list|remove` (the nodes table of the local inventory:
 * name, agent URL, token) and `cluster ls` (every env on the shared storage, every node).
 *
 * ## cluster ls
 *
 * The ownership directory (`lease_dir`, src/ownership/store.ts) is mounted whole on every node,
 * so every node reads the same records, whatever per-env mounts its hooks make. A view costs
 * O(nodes) reads plus what changed, not a few reads per env (10,000 envs over 3 nodes in well
 * under a second):
 * - each node's ownership journal (src/ownership/journal.ts; kept in `var/run/cluster-index.json`
 *   between calls, so an unchanged node costs a listing and one lookup): who owns what, at
 *   which generation; the higher generation wins where two nodes claim an env (the old owner of
 *   an env taken over until its agent fences it);
 * - each node's heartbeat (src/ownership/heartbeat.ts): alive, silent, age as this node observes it;
 * - the known nodes' agents (best effort, `agentTimeoutMs`): the state (On, Off, Maintenance) of
 *   what each owns, straight from its inventory; an agent's answer wins over a stale read;
 * - this node's own inventory (state of what it owns; stale rows of fenced envs);
 * - one listing of `<lease_dir>/envs/` and one of `jails-rcconf/`: the envs nobody claims are read
 *   one by one from their records (released, unregistered, orphans): few, in a working cluster.
 * New names are seen at once through GlusterFS FUSE and journal entries are never rewritten, so a
 * DFS client's cached listing cannot make an env look unregistered right after a migration or a
 * takeover.
 */
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { notFound, usageError } from '../errors.js';
import { readSharedDescriptor } from '../descriptor.js';
import { STATUS, statusWord } from '../inventory.js';
import { engineEnv } from '../engines/types.js';
import { checkJname, checkNodename } from '../names.js';
import type { NodeCtx } from '../node.js';
import { AgentClient, parseNodeUrl } from './client.js';
import { listFenceMarkers } from '../ownership/fence.js';
import {
  beatKey, heartbeatView, observe, parseNodeBeat, readNodeBeatRaw, readSightings, writeSightings,
  type HeartbeatView, type SightingCache,
} from '../ownership/heartbeat.js';
import { readNodeIndex, type NodeIndex } from '../ownership/journal.js';
import { readLeaseState } from '../ownership/record.js';
import { replaceFileAtomic } from '../sharedfs.js';

export { formatHeartbeat, type HeartbeatView } from '../ownership/heartbeat.js';

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

/** The sightings cache of this node. */
const sightingsFile = (ctx: NodeCtx): string => join(ctx.wd.runDir, 'heartbeats.json');

/** Reads every node's heartbeat (raw), by node name. O(nodes). */
async function readBeats(ctx: NodeCtx, nodes: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  await Promise.all(nodes.map(async (n) => { out.set(n, await readNodeBeatRaw(ctx.own.beatFile(n)).catch(() => '')); }));
  return out;
}

/** Records the sightings of `beats` at `now` in `cache`. */
function recordSightings(cache: SightingCache, beats: Map<string, string>, now: number): void {
  for (const [n, raw] of beats) {
    const key = beatKey(raw);
    if (key) cache.nodes[n] = observe(cache.nodes[n], key, now);
  }
}

/**
 * Reads every node's heartbeat in the ownership directory and records when this node saw each
 * one change (the agent calls this every lease_ttl). O(nodes).
 * @returns how many nodes have a heartbeat
 */
export async function observeNodes(ctx: NodeCtx, now = Date.now): Promise<number> {
  const nodes = await ctx.own.listNodes();
  const beats = await readBeats(ctx, nodes);
  const cache = await readSightings(sightingsFile(ctx));
  recordSightings(cache, beats, now());
  await writeSightings(sightingsFile(ctx), cache);
  return [...beats.values()].filter(Boolean).length;
}

// ---------------------------------------------------------------------------------------------
// the view

/** One env of the cluster view. */
export interface ClusterEnv {
  jname: string;
  uuid: string;
  emulator: string;
  /** a node holds its lease */
  registered: boolean;
  /** the lease holder (null: not held) */
  owner: string | null;
  /** the lease's current generation as the records say (0: never leased) */
  generation: number;
  /**
   * On | Off | Maintenance: the owner's state (from this node's inventory, or the owner's agent);
   * remote: owned by another node whose agent was not asked or did not answer;
   * unregistered: not held, its descriptor waits in jails-rcconf/;
   * released: not held, no descriptor in jails-rcconf/ (adoptable from its ownership record);
   * no lease: a descriptor in jails-rcconf/ that was never leased (e.g. written by CBSD);
   * fenced: this node has a stale inventory row (another node holds the lease);
   * orphan: a node holds the lease but has no inventory row for it.
   */
  state: string;
  /** where `state` comes from: this node, the owner's agent, the records, or nobody */
  stateFrom: 'local' | 'agent' | 'record' | 'none';
  /** running on this node (null when another node owns it) */
  running: boolean | null;
  /** the owner node's heartbeat as this node observes it (null: not owned, or no heartbeat) */
  heartbeat: HeartbeatView | null;
  /** the env's address (ip4_addr) when its owner reported it */
  ip4_addr: string;
  /** this node's inventory row, if any */
  local: { status: string; generation: number; fenced: boolean } | null;
  /** anything unreadable or inconsistent */
  problems: string[];
}

/** One node of the cluster view. */
export interface ClusterNode {
  name: string;
  /** this node */
  self: boolean;
  /** known to this node (`node add`) */
  known: boolean;
  /** its agent answered this call (null: not asked: unknown node, or this node) */
  answering: boolean | null;
  /** its heartbeat as this node observes it (null: it never wrote one) */
  heartbeat: HeartbeatView | null;
  /** envs it owns in this view */
  envs: number;
  /** why its agent did not answer */
  problem?: string;
}

/** What {@link clusterView} returns. */
export interface ClusterView {
  /** the node that made the view */
  node: string;
  envs: ClusterEnv[];
  nodes: ClusterNode[];
}

/** Options of {@link clusterView}. */
export interface ClusterListOptions {
  /** ask known nodes' agents for the state of the envs they own (default true) */
  askAgents?: boolean;
  /** per-agent timeout in ms (default 3000) */
  agentTimeoutMs?: number;
}

interface AgentEnv { jname: string; uuid: string; emulator: string; status: string; generation: number; fenced?: unknown; conf?: Record<string, string> }
interface Claim { node: string; generation: number; uuid: string; emulator: string; from: 'local' | 'agent' | 'record'; status?: string; ip4?: string }

const indexFile = (ctx: NodeCtx): string => join(ctx.wd.runDir, 'cluster-index.json');

async function readIndexCache(ctx: NodeCtx): Promise<Record<string, NodeIndex>> {
  try { return JSON.parse(await readFile(indexFile(ctx), 'utf8')) as Record<string, NodeIndex>; } catch { return {}; }
}

const isJname = (n: string): boolean => { try { checkJname(n); return true; } catch { return false; } };

function rcconfNames(dir: string): string[] {
  try {
    return readdirSync(dir).map((f) => /^rc\.conf_(.+)$/.exec(f)?.[1]).filter((n): n is string => !!n && isJname(n));
  } catch {
    return [];
  }
}

/**
 * cluster ls: every env on the shared storage and every node, as this node sees them (see the
 * module header). The same owner, generation and state from every node whose agents answer.
 */
export async function clusterView(ctx: NodeCtx, opts: ClusterListOptions = {}): Promise<ClusterView> {
  const now = Date.now();
  const me = ctx.nodename;
  const known = ctx.inv.listNodes();
  const nodeNames = [...new Set([...(await ctx.own.listNodes()), ...known.map((n) => n.name), me])].sort();
  const cachedIdx = await readIndexCache(ctx);
  const markers = listFenceMarkers(ctx.wd);

  // everything is read side by side: journals, heartbeats, agents, the two listings
  const [indexes, beats, answers, recordNames] = await Promise.all([
    Promise.all(nodeNames.filter((n) => n !== me).map((n) => readNodeIndex(ctx.own, n, cachedIdx[n]).catch(() => cachedIdx[n] ?? { node: n, v: 0, envs: {} }))),
    readBeats(ctx, nodeNames),
    opts.askAgents === false ? Promise.resolve(new Map<string, AgentEnv[] | string>()) : askAgents(ctx, known, opts.agentTimeoutMs ?? 3000),
    ctx.own.listEnvs(),
  ]);
  const waiting = new Set(rcconfNames(ctx.wd.jailsRcconf));

  // candidate owners of each env
  const claims = new Map<string, Claim[]>();
  const add = (jname: string, c: Claim) => { const l = claims.get(jname); if (l) l.push(c); else claims.set(jname, [c]); };
  for (const idx of indexes) {
    for (const e of Object.values(idx.envs)) add(e.jname, { node: idx.node, generation: e.generation, uuid: e.uuid, emulator: e.emulator, from: 'record' });
  }
  for (const [n, a] of answers) {
    if (typeof a === 'string') continue;
    for (const e of a) {
      if (e.status === 'Unregister' || typeof e.jname !== 'string' || e.fenced) continue;
      add(e.jname, { node: n, generation: e.generation, uuid: e.uuid, emulator: e.emulator, from: 'agent', status: e.status, ip4: e.conf?.ip4_addr });
    }
  }
  const rows = ctx.inv.list();
  for (const r of rows) {
    const m = markers.get(r.jname);
    if (m && m.generation === r.generation) continue; // fenced: a stale row
    add(r.jname, { node: me, generation: r.generation, uuid: r.uuid, emulator: r.emulator, from: 'local', ip4: r.conf.ip4_addr });
  }

  const out: ClusterEnv[] = [];
  const names = new Set<string>([...recordNames.filter(isJname), ...waiting, ...claims.keys(), ...rows.map((r) => r.jname)]);
  const unclaimed: string[] = [];
  const byName = new Map<string, ClusterEnv>();
  for (const jname of names) {
    const cs = claims.get(jname);
    if (!cs?.length) { unclaimed.push(jname); continue; }
    // the highest generation is the owner; among equals an answer from the owner itself wins
    const rank = (c: Claim) => c.generation * 4 + (c.from === 'local' ? 3 : c.from === 'agent' ? 2 : 1);
    const best = cs.reduce((a, b) => (rank(b) > rank(a) ? b : a));
    const problems: string[] = [];
    if (cs.some((c) => c.generation === best.generation && c.node !== best.node)) problems.push(`nodes ${[...new Set(cs.filter((c) => c.generation === best.generation).map((c) => c.node))].join(', ')} all claim generation ${best.generation}`);
    const ownAnswer = cs.find((c) => c.node === best.node && c.from !== 'record' && c.generation === best.generation);
    const e: ClusterEnv = {
      jname, uuid: best.uuid, emulator: best.emulator, registered: true, owner: best.node, generation: best.generation,
      state: ownAnswer?.status ?? 'remote', stateFrom: ownAnswer ? (ownAnswer.from === 'local' ? 'local' : 'agent') : 'none',
      running: null, heartbeat: null, ip4_addr: ownAnswer?.ip4 ?? cs.find((c) => c.ip4 !== undefined)?.ip4 ?? '', local: null, problems,
    };
    out.push(e);
    byName.set(jname, e);
  }
  // the envs nobody claims: their records, one by one (released, unregistered, orphans)
  await Promise.all(unclaimed.map(async (jname) => {
    const p = ctx.wd.env(jname);
    const e: ClusterEnv = { jname, uuid: '', emulator: '-', registered: false, owner: null, generation: 0, state: 'released', stateFrom: 'record', running: null, heartbeat: null, ip4_addr: '', local: null, problems: [] };
    try {
      const st = await readLeaseState(p.lease);
      e.generation = st.generation;
      if (st.holder) {
        Object.assign(e, { registered: true, owner: st.holder.node || null, uuid: st.holder.uuid, state: 'orphan' });
        e.problems.push(st.holder.incomplete ? `an unfinished claim at generation ${st.generation}` : `node '${st.holder.node}' holds generation ${st.generation} but does not list it (crashed while registering?)`);
      } else {
        e.uuid = st.released?.uuid ?? '';
        e.state = waiting.has(jname) ? (st.generation ? 'unregistered' : 'no lease') : st.generation ? 'released' : 'no lease';
      }
    } catch (err) {
      e.problems.push(`record: ${(err as Error).message}`);
    }
    const desc = [p.recordDescriptor, p.rcconfFile].find((f) => existsSync(f));
    if (desc) {
      try {
        const d = readSharedDescriptor(desc, ctx.wd.root);
        e.uuid ||= d.uuid ?? '';
        e.emulator = d.emulator ?? '-';
        e.ip4_addr = d.ip4_addr ?? '';
      } catch (err) { e.problems.push(`descriptor: ${(err as Error).message}`); }
    }
    out.push(e);
    byName.set(jname, e);
  }));

  // this node's inventory: running state of what it owns, stale rows
  for (const row of rows) {
    const e = byName.get(row.jname);
    if (!e) continue;
    const m = markers.get(row.jname);
    // a stale row: fenced by the agent, or another generation is current
    const stale = (!!m && m.generation === row.generation) || e.owner !== me || e.generation !== row.generation;
    e.local = { status: statusWord(row.status), generation: row.generation, fenced: stale };
    const engine = row.status === STATUS.ON ? await ctx.engine(row.emulator).catch(() => undefined) : undefined;
    e.running = engine ? await engine.isRunning(engineEnv(ctx, row.jname, row.conf), row.jid) : false;
    if (!stale) {
      e.state = row.status === STATUS.ON && !e.running ? 'Maintenance' : statusWord(row.status);
      e.stateFrom = 'local';
    } else if (e.stateFrom !== 'agent') {
      // the owner's agent did not answer for it: what this node knows is that its row is stale
      e.state = 'fenced';
      e.stateFrom = 'local';
    }
  }

  // heartbeats: each owner's node, as observed here
  const cache = await readSightings(sightingsFile(ctx));
  recordSightings(cache, beats, now);
  const views = new Map<string, HeartbeatView>();
  for (const n of nodeNames) {
    const s = cache.nodes[n];
    const raw = beats.get(n) ?? '';
    if (s && raw) views.set(n, heartbeatView(s, now, ctx.settings.lease_ttl, parseNodeBeat(raw)));
  }
  for (const e of out) if (e.owner) e.heartbeat = views.get(e.owner) ?? null;
  const counts = new Map<string, number>();
  for (const e of out) if (e.owner && e.registered && e.state !== 'orphan') counts.set(e.owner, (counts.get(e.owner) ?? 0) + 1);
  const nodes: ClusterNode[] = nodeNames.map((n) => {
    const a = answers.get(n);
    const node: ClusterNode = { name: n, self: n === me, known: known.some((k) => k.name === n), answering: n === me ? null : a === undefined ? null : typeof a !== 'string', heartbeat: views.get(n) ?? null, envs: counts.get(n) ?? 0 };
    if (typeof a === 'string') node.problem = a;
    return node;
  });

  // keep what was read for the next call (an unchanged node then costs a listing and a lookup)
  const idxOut: Record<string, NodeIndex> = {};
  for (const i of indexes) idxOut[i.node] = i;
  await mkdir(ctx.wd.runDir, { recursive: true }).catch(() => undefined);
  await Promise.all([
    replaceFileAtomic(indexFile(ctx), JSON.stringify(idxOut), { durable: false }).catch(() => undefined),
    writeSightings(sightingsFile(ctx), cache).catch(() => undefined),
  ]);
  return { node: me, envs: out.sort((a, b) => (a.jname < b.jname ? -1 : a.jname > b.jname ? 1 : 0)), nodes };
}

/** {@link clusterView}'s envs (cluster ls). */
export async function clusterList(ctx: NodeCtx, opts: ClusterListOptions = {}): Promise<ClusterEnv[]> {
  return (await clusterView(ctx, opts)).envs;
}

/** Asks each known node's agent for its envs: node → its envs, or why it did not answer. */
async function askAgents(ctx: NodeCtx, known: { name: string; url: string; token: string }[], timeoutMs: number): Promise<Map<string, AgentEnv[] | string>> {
  const out = new Map<string, AgentEnv[] | string>();
  await Promise.all(known.map(async (n) => {
    try {
      const a = await new AgentClient(n.name, n.url, n.token).call('GET', '/v1/envs', undefined, timeoutMs);
      if (a.node !== n.name || !Array.isArray(a.envs)) { out.set(n.name, `the agent at ${n.url} is node '${String(a.node)}'`); return; }
      out.set(n.name, a.envs as AgentEnv[]);
    } catch (e) {
      out.set(n.name, (e as Error).message);
    }
  }));
  return out;
}
