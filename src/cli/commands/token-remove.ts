/** `berth token remove id=` (or a positional id): deletes a web console token; exit 3 when unknown. */
import { str, withNode } from '../args.js';
import { o } from '../options.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'token remove', summary: 'delete a web console token', options: [o('id', 'token id (see token list)')], positional: '[id]',
  async handler(opts, args) {
    const { removeToken } = await import('../../tokens.js');
    return withNode(opts, async (ctx) => {
      const r = removeToken(ctx.inv, str(opts, 'id') ?? args[0]);
      return { data: { token: r }, text: `removed: token ${r.id}` };
    });
  },
};
