/** `berth cluster ls`: every env on the shared storage and every node, from the cluster view (src/nodes/cluster.ts). */
import { withNode } from '../args.js';
import { renderTable } from '../table.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'cluster ls', summary: 'every env on the shared storage: owner, generation, state, heartbeat age; and every node', options: [],
  help: 'Read from the shared ownership directory (lease_dir) and the known nodes\' agents: the same owner, generation and state from every node.\nHeartbeat: the owner node\'s, as this node observed it (>=Ns: first sighting; "silent": unchanged for lease_ttl).',
  async handler(opts) {
    const { clusterView, formatHeartbeat } = await import('../../nodes/cluster.js');
    return withNode(opts, async (ctx) => {
      const v = await clusterView(ctx);
      const rows = v.envs.map((e) => [e.jname, e.emulator, e.registered ? 'yes' : 'no', e.owner ?? '', e.generation, e.state, formatHeartbeat(e.heartbeat)]);
      const nodes = v.nodes.map((n) => [n.name + (n.self ? ' (this node)' : ''), n.answering === null ? '-' : n.answering ? 'yes' : 'no', n.envs, formatHeartbeat(n.heartbeat)]);
      return {
        data: { node: ctx.nodename, envs: v.envs, nodes: v.nodes },
        text: renderTable(['jname', 'emulator', 'registered', 'owner', 'gen', 'state', 'heartbeat'], rows) + '\n\n' + renderTable(['node', 'agent answers', 'envs', 'heartbeat'], nodes),
      };
    });
  },
};
