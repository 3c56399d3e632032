/** `berth token list`: the web console tokens (id, role, comment; never the secret). */
import { withNode } from '../args.js';
import { isoTime } from '../node-args.js';
import { renderTable } from '../table.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'token list', summary: 'list web console tokens', options: [],
  async handler(opts) {
    const { listTokens } = await import('../../tokens.js');
    return withNode(opts, async (ctx) => {
      const tokens = listTokens(ctx.inv);
      return { data: { tokens }, text: renderTable(['id', 'role', 'comment', 'added'], tokens.map((t) => [t.id, t.role, t.comment, isoTime(t.createdAt)])) };
    });
  },
};
