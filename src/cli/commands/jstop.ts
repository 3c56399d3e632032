/** `berth jstop jname=<name or glob> ...`: stop env(s); handed to this node's agent when it runs (src/cli/fast.ts). */
import { each, withNode } from '../args.js';
import { JNAME } from '../options.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'jstop', summary: 'stop env(s)', options: [JNAME], positional: '[jname...]',
  fast: { route: 'stop', verb: 'stopped' },
  async handler(opts, args) {
    const { stopEnv } = await import('../../lifecycle/stop.js');
    return withNode(opts, (ctx) => each(ctx, opts, args, 'stopped', async (j) => {
      const e = await stopEnv(ctx, j, { verbose: !!opts.verbose });
      return { status: e.status };
    }, ['E_NOT_RUNNING']));
  },
};
