/** `berth jregister`: adopt env(s) whose data exists; thin handler over src/lifecycle/register.ts. */
import { usageError } from '../../errors.js';
import { str, withNode } from '../args.js';
import { forEachEnv } from '../each.js';
import { f, JNAME, o } from '../options.js';
import { compactAfterMany, REGISTER_CONCURRENCY } from '../register-args.js';
import type { CmdDef } from '../types.js';

/** `fn`, called the first time only (the takeover's wait note; the library calls it every second). */
function once<A extends unknown[]>(fn: (...a: A) => void): (...a: A) => void {
  let done = false;
  return (...a) => { if (!done) { done = true; fn(...a); } };
}

export const command: CmdDef = {
  name: 'jregister', summary: 'adopt env(s) whose data exists (from jails-rcconf/ or rcfile=)',
  options: [JNAME, o('rcfile', 'descriptor file'), o('mnt_start', 'hook to mount the env first'), o('mnt_stop', 'hook to unmount'), f('force', 'take over a lease whose owner node stopped heartbeating (watches it for lease_ttl)'), f('start', 'start the env once registered')],
  positional: '[jname...]',
  help: 'The descriptor comes from rcfile=, else jails-rcconf/rc.conf_<jname>, else the copy in the env\'s ownership record (lease_dir/envs/<jname>/), which every node sees: an env whose owner died can be taken over with --force from any node, even with per-env storage mounts.',
  async handler(opts, args, io) {
    const patterns = [...(str(opts, 'jname') ? [str(opts, 'jname')!] : []), ...args];
    const rcfile = str(opts, 'rcfile');
    if (!patterns.length && !rcfile) throw usageError('E_NO_JNAME', 'jregister needs jname=<name or glob> or rcfile=<file>');
    const ropts = {
      verbose: !!opts.verbose, rcfile, mntStart: str(opts, 'mnt_start'), mntStop: str(opts, 'mnt_stop'), force: !!opts.force, start: !!opts.start,
      onWait: once((sec: number) => io.note(`waiting ${Math.round(sec)} s to prove the current owner node is silent (its heartbeat must not move)...`)),
    };
    const { registerEnv, registerTargets } = await import('../../lifecycle/register.js');
    // what the descriptor named and this node uses instead (another workdir's layout)
    const noteMapped = <R extends { jname: string; mapped?: { key: string; from: string; to: string }[] }>(r: R): R => {
      for (const m of r.mapped ?? []) io.note(`${r.jname}: ${m.key}=${m.from} of the descriptor mapped to ${m.to}`);
      return r;
    };
    return withNode(opts, async (ctx) => {
      if (rcfile && patterns.length <= 1) {
        const r = noteMapped(await registerEnv(ctx, patterns[0], ropts));
        return { data: { results: [{ ok: true, ...r }] }, text: `registered: ${r.jname} (generation ${r.generation}${r.tookOver ? `, taken over from ${r.previousOwner}` : ''})${r.started ? `\nstarted: ${r.jname}` : ''}` };
      }
      const targets = registerTargets(ctx, patterns);
      const out = await forEachEnv(targets, 'registered', async (j) => noteMapped(await registerEnv(ctx, j, ropts)), REGISTER_CONCURRENCY);
      await compactAfterMany(ctx, targets.length);
      return out;
    });
  },
};
