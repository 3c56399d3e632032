/** `berth jstart jname=<name or glob> ...`: start env(s); handed to this node's agent when it runs (src/cli/fast.ts). */
import { each, withNode } from '../args.js';
import { JNAME } from '../options.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'jstart', summary: 'start env(s)', options: [JNAME], positional: '[jname...]',
  fast: { route: 'start', verb: 'started' },
  async handler(opts, args) {
    const { startEnv } = await import('../../lifecycle/start.js');
    return withNode(opts, (ctx) => each(ctx, opts, args, 'started', async (j) => {
      const e = await startEnv(ctx, j, { verbose: !!opts.verbose });
      return { jid: e.jid, status: e.status };
    }, ['E_RUNNING']));
  },
};
