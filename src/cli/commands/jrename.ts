/** `berth jrename old= new=` (and `brename` for VMs, src/cli/family.ts): rename a stopped env this node owns; thin handler over src/lifecycle/rename.ts. */
import { usageError } from '../../errors.js';
import { familyOf, str, withNode } from '../args.js';
import { o } from '../options.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'jrename', summary: 'rename a stopped env: its dirs, descriptor, fstab entries, inventory row and ownership record',
  options: [o('old', 'the env to rename', 'jname'), o('new', 'its new name', 'jname')], positional: '[old] [new]',
  help: 'With per-env storage hooks, mnt_start runs for the new name with BERTH_ACTION=rename and BERTH_OLD_JNAME=<old>: the hook moves the env on its volume. A rename cut short (a crash) is finished by the next command on the env: rolled back to the old name, or forward to the new one.',
  async handler(opts, args) {
    const old = str(opts, 'old') ?? args[0];
    const nw = str(opts, 'new') ?? args[1];
    if (!old || !nw) throw usageError('E_USAGE', 'jrename needs old=<env> new=<new name>');
    const { renameEnv } = await import('../../lifecycle/rename.js');
    const { checkFamily } = await import('../../engines/registry.js');
    const family = familyOf(opts);
    return withNode(opts, async (ctx) => {
      // jrename renames jails and containers, brename VMs (CBSD's split)
      const row = ctx.inv.get(old);
      if (row) checkFamily(old, row.emulator, family, 'rename');
      const r = await renameEnv(ctx, old, nw, { verbose: !!opts.verbose });
      return { data: { env: r }, text: `renamed: ${old} -> ${nw}` };
    });
  },
};
