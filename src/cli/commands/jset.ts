/** `berth jset jname= key=value ...`: change env settings; says when a restart is needed to apply them. */
import { usageError } from '../../errors.js';
import { settingsOf, withNode } from '../args.js';
import { envKeys } from '../env-options.js';
import { JNAME } from '../options.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'jset', summary: 'change env settings (key=value ...)',
  options: [JNAME, ...envKeys('j').filter((k) => k.key !== 'emulator')], positional: '[jname]',
  async handler(opts, args) {
    const jname = (opts.jname as string | undefined) ?? args[0];
    if (!jname) throw usageError('E_NO_JNAME', 'jset needs jname=<name>');
    const { setEnv } = await import('../../lifecycle/set.js');
    const settings = await settingsOf(opts);
    return withNode(opts, async (ctx) => {
      const r = await setEnv(ctx, jname, settings, { verbose: !!opts.verbose });
      return { data: r, text: `${jname}: ${r.changed.length ? `changed ${r.changed.join(', ')}` : 'nothing changed'}${r.restartNeeded ? ' (restart to apply: berth jrestart jname=' + jname + ')' : ''}` };
    });
  },
};
