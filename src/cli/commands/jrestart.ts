/** `berth jrestart jname=<name or glob> ...`: stop (when running) then start env(s). */
import { each, withNode } from '../args.js';
import { JNAME } from '../options.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'jrestart', summary: 'stop then start env(s)', options: [JNAME], positional: '[jname...]',
  async handler(opts, args) {
    const { getEnv } = await import('../../lifecycle/envs.js');
    const { startEnv } = await import('../../lifecycle/start.js');
    const { stopEnv } = await import('../../lifecycle/stop.js');
    return withNode(opts, (ctx) => each(ctx, opts, args, 'restarted', async (j) => {
      if (getEnv(ctx, j).status !== 0) await stopEnv(ctx, j, { verbose: !!opts.verbose });
      const e = await startEnv(ctx, j, { verbose: !!opts.verbose });
      return { jid: e.jid, status: e.status };
    }));
  },
};
