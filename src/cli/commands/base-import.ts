/**
 * `berth base import name= source=<dir | .tar | .tar.gz | .tar.xz | .txz>`: thin handler over
 * src/bases.ts. Bytes copied (of the source's size, for a directory) and the rate on stderr
 * when it is a terminal (src/cli/progress.ts); quiet otherwise.
 */
import { usageError } from '../../errors.js';
import { str, withNode } from '../args.js';
import { baseName, importText } from '../base-args.js';
import { o } from '../options.js';
import { progressRenderer } from '../progress.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'base import', summary: 'import a base from a directory, .tar, .tar.gz, .tar.xz or base.txz',
  options: [o('name', 'base name'), o('source', 'directory or archive')],
  async handler(opts, _args, io) {
    const name = baseName(opts);
    const source = str(opts, 'source');
    if (!source) throw usageError('E_BAD_SOURCE', 'give source=<dir | .tar | .tar.gz | .tar.xz | .txz>');
    const { importBase } = await import('../../bases.js');
    return withNode(opts, async (ctx) => {
      const p = await progressRenderer(io);
      try {
        const r = await importBase(ctx, name, source, { onProgress: io.interactive || io.verbose ? io.note : undefined, onProgressEvent: p.on });
        p.stop();
        return { data: { base: r }, text: importText(r) };
      } finally {
        p.stop();
      }
    });
  },
};
