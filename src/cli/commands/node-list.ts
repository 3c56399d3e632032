/** `berth node list`: the known nodes (never their tokens). */
import { withNode } from '../args.js';
import { isoTime } from '../node-args.js';
import { renderTable } from '../table.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'node list', summary: 'list known nodes', options: [],
  async handler(opts) {
    const { listNodes } = await import('../../nodes/cluster.js');
    return withNode(opts, async (ctx) => {
      const nodes = listNodes(ctx);
      return { data: { nodes }, text: renderTable(['name', 'url', 'added'], nodes.map((n) => [n.name, n.url, isoTime(n.addedAt)])) };
    });
  },
};
