/**
 * `berth base fetch ver= [arch=] [name=] [mirror=]`: thin handler over src/fetch.ts. A
 * progress bar (cli-progress, on stderr) while downloading on a terminal; quiet otherwise
 * (with -v: one line per phase).
 */
import { usageError } from '../../errors.js';
import type { FetchProgress } from '../../fetch.js';
import { str as anyStr, withNode } from '../args.js';
import { o } from '../options.js';
import { progressRenderer } from '../progress.js';
import type { CmdDef, CmdIO, Opts } from '../types.js';

/** A non-empty string option. */
const str = (opts: Opts, key: string): string | undefined => anyStr(opts, key) || undefined;

const mb = (n: number) => (n / 1048576).toFixed(1);

/**
 * Makes the progress callback: a bar with MB, percentage and rate on a terminal
 * (src/cli/progress.ts), phase lines with -v, else nothing.
 */
async function progress(io: CmdIO): Promise<{ on: (p: FetchProgress) => void; stop: () => void }> {
  const r = await progressRenderer(io);
  const on = r.on;
  if (on) return { on: (p) => on({ phase: p.phase.padEnd(8), done: p.received, total: p.total, unit: 'bytes' }), stop: r.stop };
  let phase = '';
  return {
    on: (p) => {
      if (io.verbose && p.phase !== phase) {
        phase = p.phase;
        io.note(`base fetch: ${p.phase}${p.total !== undefined ? ` (${mb(p.total)} MB)` : ''}`);
      }
    },
    stop: () => undefined,
  };
}

export const command: CmdDef = {
  name: 'base fetch', summary: 'download a FreeBSD base.txz (checksum checked against MANIFEST) into bases/',
  options: [o('name', 'base name (default <ver>-<arch>)'), o('ver', 'release, e.g. 14.1'), o('arch', 'amd64, arm64 ...'), o('mirror', 'mirror URL')],
  async handler(opts, _args, io) {
    const ver = str(opts, 'ver');
    if (!ver) throw usageError('E_NO_VER', 'give the FreeBSD release: ver=14.1 (and arch=, default the host\'s)');
    const { fetchBase } = await import('../../fetch.js');
    return withNode(opts, async (ctx) => {
      const p = await progress(io);
      try {
        const r = await fetchBase({ workdir: ctx.wd, ver, name: str(opts, 'name'), arch: str(opts, 'arch'), mirror: str(opts, 'mirror'), onProgress: p.on });
        p.stop();
        return {
          data: { base: { name: r.name, path: r.path, bytes: r.bytes, sha256: r.sha256, url: r.url } },
          text: `base ${r.name} ready at ${r.path} (base.txz ${r.bytes} bytes from ${r.url}, SHA-256 ${r.sha256} matches MANIFEST)`,
        };
      } finally {
        p.stop();
      }
    });
  },
};
