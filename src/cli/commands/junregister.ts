/** `berth junregister`: let env(s) go (descriptor written, lease released); thin handler over src/lifecycle/register.ts. */
import { str, withNode } from '../args.js';
import { forEachEnv } from '../each.js';
import { JNAME, o } from '../options.js';
import { compactAfterMany, REGISTER_CONCURRENCY } from '../register-args.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'junregister', summary: 'let env(s) go: write jails-rcconf/rc.conf_<jname>, release the lease',
  options: [JNAME, o('rcfile', 'where to write the descriptor')], positional: '[jname...]',
  async handler(opts, args) {
    const patterns = [...(str(opts, 'jname') ? [str(opts, 'jname')!] : []), ...args];
    const { unregisterEnv } = await import('../../lifecycle/register.js');
    const { selectEnvs } = await import('../../lifecycle/envs.js');
    return withNode(opts, async (ctx) => {
      const rows = selectEnvs(ctx, patterns);
      const targets = rows.map((r) => r.jname);
      const out = await forEachEnv(targets, 'unregistered', (j) => unregisterEnv(ctx, j, { verbose: !!opts.verbose, rcfile: rows.length === 1 ? str(opts, 'rcfile') : undefined }), REGISTER_CONCURRENCY);
      await compactAfterMany(ctx, targets.length);
      return out;
    });
  },
};
