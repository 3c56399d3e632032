/**
 * `berth base debootstrap name= suite= [mirror=] [variant=] [include=a,b] [cache=] [arch=]`: a
 * Debian base made by debootstrap; thin handler over src/debootstrap.ts. The growing tree's
 * size and rate on stderr when it is a terminal; quiet otherwise (with -v: one line).
 */
import { str as anyStr, withNode } from '../args.js';
import { baseName, importText } from '../base-args.js';
import { o } from '../options.js';
import { progressRenderer } from '../progress.js';
import type { CmdDef, Opts } from '../types.js';

/** A non-empty string option. */
const str = (opts: Opts, key: string): string | undefined => anyStr(opts, key) || undefined;

export const command: CmdDef = {
  name: 'base debootstrap', summary: 'make a Debian base with debootstrap (signatures checked, packages cached)',
  options: [o('name', 'base name'), o('suite', 'Debian codename, e.g. bookworm'), o('mirror', 'archive URL (default: the one this host\'s apt uses)'),
    o('variant', 'minbase (default), buildd, fakechroot or -'), o('include', 'extra packages, comma separated'),
    o('cache', 'package cache dir (default <workdir>/var/cache/debootstrap)'), o('arch', 'Debian architecture (default the host\'s)')],
  help: '\nExample:\n  berth base debootstrap name=bookworm suite=bookworm\n  berth jcreate jname=deb1 base=bookworm && berth jstart deb1 && berth jexec jname=deb1 apt --version\n',
  async handler(opts, _args, io) {
    const name = baseName(opts);
    const { debootstrapBase } = await import('../../debootstrap.js');
    return withNode(opts, async (ctx) => {
      const p = await progressRenderer(io);
      try {
        const r = await debootstrapBase(ctx, name, {
          suite: str(opts, 'suite') ?? '', mirror: str(opts, 'mirror'), variant: str(opts, 'variant'),
          include: str(opts, 'include')?.split(','), cacheDir: str(opts, 'cache'), arch: str(opts, 'arch'),
          onProgressEvent: p.on, onProgress: io.verbose ? io.note : undefined,
        });
        p.stop();
        return {
          data: { base: r },
          text: `${importText(r)}; debootstrap ${r.suite} ${r.variant}${r.include.length ? ` +${r.include.join(',')}` : ''} in ${(r.durationMs / 1000).toFixed(1)} s (${r.reusedTree
            ? `the tree kept in ${r.cacheDir} copied: the mirror's signed InRelease is unchanged`
            : `${r.cachedDebs} packages were cached in ${r.cacheDir}`})`,
        };
      } finally {
        p.stop();
      }
    });
  },
};
