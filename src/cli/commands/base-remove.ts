/** `berth base remove name=` (or a positional name): refused while an env uses the base. */
import { withNode } from '../args.js';
import { baseName } from '../base-args.js';
import { o } from '../options.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'base remove', summary: 'remove a base (refused while an env uses it)', options: [o('name', 'base name')], positional: '[name]',
  async handler(opts, args) {
    const name = baseName(opts, args);
    const { removeBase } = await import('../../bases.js');
    return withNode(opts, async (ctx) => {
      const b = await removeBase(ctx, name);
      return { data: { removed: b }, text: `base ${b.name} removed (${b.path}, ${b.size} bytes)` };
    });
  },
};
