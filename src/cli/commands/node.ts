/** `node add|list|remove` and `cluster ls`: thin wrappers over src/cluster.ts. */
import { addNode, clusterView, formatHeartbeat, listNodes, removeNode } from '../../nodes/cluster.js';
import { readFileSync } from 'node:fs';
import { usageError } from '../../errors.js';
import { renderTable } from '../table.js';
import { withNode } from './env.js';
import type { Handler, Opts } from '../types.js';

const str = (o: Opts, k: string) => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
const when = (unix: number) => new Date(unix * 1000).toISOString().replace(/\.\d+Z$/, 'Z');

/** The token of `node add`: token=, or the first line of token_file= (not visible in ps). */
function tokenOf(opts: Opts): string | undefined {
  const file = str(opts, 'token_file');
  if (file === undefined) return str(opts, 'token');
  if (str(opts, 'token') !== undefined) throw usageError('E_USAGE', 'give token= or token_file=, not both');
  let token: string;
  try {
    token = readFileSync(file, 'utf8').split('\n')[0]!.trim();
  } catch (e) {
    throw usageError('E_BAD_TOKEN_FILE', `cannot read token_file=${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (!token) throw usageError('E_BAD_TOKEN_FILE', `token_file=${file} holds no token on its first line`, { hint: "copy that node's etc/api.token" });
  return token;
}

export const nodeAdd: Handler = async (opts) => withNode(opts, async (ctx) => {
  const r = await addNode(ctx, { name: str(opts, 'name'), url: str(opts, 'url'), token: tokenOf(opts) });
  return { data: { node: r }, text: `${r.updated ? 'updated' : 'added'}: node ${r.name} at ${r.url} (its agent answered; ${r.envs} env(s) registered there)` };
});

export const nodeList: Handler = async (opts) => withNode(opts, async (ctx) => {
  const nodes = listNodes(ctx);
  return { data: { nodes }, text: renderTable(['name', 'url', 'added'], nodes.map((n) => [n.name, n.url, when(n.addedAt)])) };
});

export const nodeRemove: Handler = async (opts, args) => withNode(opts, async (ctx) => {
  const r = removeNode(ctx, str(opts, 'name') ?? args[0]);
  return { data: { node: r }, text: `removed: node ${r.name}` };
});

export const clusterLs: Handler = async (opts) => withNode(opts, async (ctx) => {
  const v = await clusterView(ctx);
  const rows = v.envs.map((e) => [e.jname, e.emulator, e.registered ? 'yes' : 'no', e.owner ?? '', e.generation, e.state, formatHeartbeat(e.heartbeat)]);
  const nodes = v.nodes.map((n) => [n.name + (n.self ? ' (this node)' : ''), n.answering === null ? '-' : n.answering ? 'yes' : 'no', n.envs, formatHeartbeat(n.heartbeat)]);
  return {
    data: { node: ctx.nodename, envs: v.envs, nodes: v.nodes },
    text: renderTable(['jname', 'emulator', 'registered', 'owner', 'gen', 'state', 'heartbeat'], rows) + '\n\n' + renderTable(['node', 'agent answers', 'envs', 'heartbeat'], nodes),
  };
});
