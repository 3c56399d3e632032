/**
 * `berth jclone old= new= [host_hostname=] [ip4_addr=]`: thin handler over
 * src/lifecycle/clone.ts. A progress bar (cli-progress, on stderr) while berth copies data
 * itself on a terminal; quiet otherwise. Warnings (e.g. an inherited address) go to stderr
 * and into the JSON result.
 */
import { usageError } from '../../errors.js';
import { str, withNode } from '../args.js';
import { o } from '../options.js';
import { progressRenderer } from '../progress.js';
import type { CmdDef, CmdIO } from '../types.js';

const mib = (n: number) => (n / 1048576).toFixed(1);

/** A bar on a terminal (bytes copied / total, MiB/s; src/cli/progress.ts), nothing otherwise. */
async function progress(io: CmdIO): Promise<{ on?: (copied: number, total: number) => void; stop: () => void }> {
  const r = await progressRenderer(io);
  const on = r.on;
  return { on: on ? (copied, total) => on({ phase: 'copying', done: copied, total, unit: 'bytes' }) : undefined, stop: r.stop };
}

export const command: CmdDef = {
  name: 'jclone', summary: 'clone an env (local copy, zfs clone, or a storage clone hook)',
  options: [o('old', 'source env'), o('new', 'new env name'), o('host_hostname', 'hostname of the clone'), o('ip4_addr', 'address of the clone')],
  async handler(opts, args, io) {
    const old = str(opts, 'old') ?? args[0];
    const nw = str(opts, 'new') ?? args[1];
    if (!old || !nw) throw usageError('E_USAGE', 'jclone needs old=<source env> new=<name of the clone> [host_hostname=] [ip4_addr=]');
    const { cloneEnv } = await import('../../lifecycle/clone.js');
    return withNode(opts, async (ctx) => {
      const p = await progress(io);
      try {
        const r = await cloneEnv(ctx, { old, new: nw, host_hostname: str(opts, 'host_hostname'), ip4_addr: str(opts, 'ip4_addr') },
          { verbose: !!opts.verbose, onProgress: p.on });
        p.stop();
        for (const w of r.warnings) io.note(`warning: ${w}`);
        const how = r.method === 'hook' ? `by the clone hook${r.hooks.length > 1 ? 's' : ''} ${r.hooks.join(', ')}`
          : r.method === 'zfs' ? `by zfs clone ${r.zfs!.dataset} of ${r.zfs!.snapshot}`
            : `by a local copy of ${mib(r.bytes ?? 0)} MiB`;
        const disks = r.disks?.length ? `, disk${r.disks.length > 1 ? 's' : ''} by rbd clone: ${r.disks.join(', ')}` : '';
        return {
          data: { clone: r },
          text: `cloned: ${r.old} -> ${r.env.jname} (uuid ${r.env.uuid}, host_hostname ${r.env.conf.host_hostname}, ip4_addr ${r.env.conf.ip4_addr}) ${how}${disks} in ${(r.totalMs / 1000).toFixed(1)} s`,
        };
      } finally {
        p.stop();
      }
    });
  },
};
