/** `berth node remove name=` (or a positional name): forgets a node; exit 3 when it is not known. */
import { str, withNode } from '../args.js';
import { o } from '../options.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'node remove', summary: 'forget a node', options: [o('name', 'node name')], positional: '[name]',
  async handler(opts, args) {
    const { removeNode } = await import('../../nodes/cluster.js');
    return withNode(opts, async (ctx) => {
      const r = removeNode(ctx, str(opts, 'name') ?? args[0]);
      return { data: { node: r }, text: `removed: node ${r.name}` };
    });
  },
};
