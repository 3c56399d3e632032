/** `berth jremove jname=<name or glob> ...` (CBSD alias jdestroy): remove env(s) this node owns. */
import { each, withNode } from '../args.js';
import { JNAME } from '../options.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'jremove', aliases: ['jdestroy'], summary: 'remove env(s): data, sysdir, fstab, inventory row', options: [JNAME], positional: '[jname...]',
  async handler(opts, args) {
    const { removeEnv } = await import('../../lifecycle/remove.js');
    return withNode(opts, (ctx) => each(ctx, opts, args, 'removed', async (j) => removeEnv(ctx, j, { verbose: !!opts.verbose })));
  },
};
