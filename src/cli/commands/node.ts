/** `node add|list|remove` and `cluster ls`: thin wrappers over src/cluster.ts. */
import { addNode, clusterList, formatHeartbeat, listNodes, removeNode } from '../../cluster.js';
import { renderTable } from '../table.js';
import { withNode } from './env.js';
import type { Handler, Opts } from '../types.js';

const str = (o: Opts, k: string) => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
const when = (unix: number) => new Date(unix * 1000).toISOString().replace(/\.\d+Z$/, 'Z');

export const nodeAdd: Handler = async (opts) => withNode(opts, async (ctx) => {
  const r = await addNode(ctx, { name: str(opts, 'name'), url: str(opts, 'url'), token: str(opts, 'token') });
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
  const envs = await clusterList(ctx);
  const rows = envs.map((e) => [e.jname, e.emulator, e.registered ? 'yes' : 'no', e.owner ?? '', e.generation, e.state, formatHeartbeat(e.heartbeat)]);
  return { data: { node: ctx.nodename, envs }, text: renderTable(['jname', 'emulator', 'registered', 'owner', 'gen', 'state', 'heartbeat'], rows) };
});
