/** `berth base busybox name=`: a minimal base from the host's busybox-static; thin handler over src/bases.ts. */
import { withNode } from '../args.js';
import { baseName, importText } from '../base-args.js';
import { o } from '../options.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'base busybox', summary: 'make a minimal base from the host\'s busybox-static (tests, demo)',
  options: [o('name', 'base name')],
  async handler(opts, _args, io) {
    const name = baseName(opts);
    const { busyboxBase } = await import('../../bases.js');
    return withNode(opts, async (ctx) => {
      const r = await busyboxBase(ctx, name, { onProgress: io.interactive || io.verbose ? io.note : undefined });
      return { data: { base: r }, text: importText(r) };
    });
  },
};
