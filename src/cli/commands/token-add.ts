/** `berth token add role=admin|viewer [comment=]`: a web console login token, shown once (src/tokens.ts). */
import { str, withNode } from '../args.js';
import { o } from '../options.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'token add', summary: 'make a web console login token (shown once)',
  options: [o('role', 'admin (acts) or viewer (only looks)'), o('comment', 'who or what it is for')],
  async handler(opts) {
    const { addToken } = await import('../../tokens.js');
    return withNode(opts, async (ctx) => {
      const t = addToken(ctx.inv, { role: str(opts, 'role'), comment: str(opts, 'comment') });
      return { data: { token: t }, text: `added: token ${t.id} role=${t.role}\n${t.token}\n(shown once: only its hash is kept)` };
    });
  },
};
