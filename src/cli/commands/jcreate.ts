/** `berth jcreate jname= [jconf=] [key=value ...]`: create an env from a base; thin handler over src/lifecycle/create.ts. */
import { existsSync } from 'node:fs';
import { notFound, usageError } from '../../errors.js';
import { familyOf, settingsOf, withNode } from '../args.js';
import { envKeys } from '../env-options.js';
import { JNAME, o } from '../options.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'jcreate', summary: 'create an env from a base',
  options: [JNAME, o('jconf', 'a descriptor file to create from'), ...envKeys('j')], positional: '[jname]',
  async handler(opts, args) {
    const { readDescriptor } = await import('../../descriptor.js');
    const { SETTABLE_KEYS } = await import('../../lifecycle/settings.js');
    const { createEnv } = await import('../../lifecycle/create.js');
    return withNode(opts, async (ctx) => {
      let settings = await settingsOf(opts);
      let jname = (opts.jname as string | undefined) ?? args[0];
      let emulator = opts.emulator as string | undefined;
      if (typeof opts.jconf === 'string') {
        if (!existsSync(opts.jconf)) throw notFound('E_NO_JCONF', `jconf=${opts.jconf} does not exist`, { hint: 'give the path of a descriptor (key="value"; lines), e.g. one written by junregister' });
        const c = readDescriptor(opts.jconf, ctx.wd.root);
        jname ??= c.jname;
        emulator ??= c.emulator;
        const fromFile: Record<string, string> = {};
        for (const k of SETTABLE_KEYS) if (c[k] !== undefined) fromFile[k] = c[k]!;
        settings = { ...fromFile, ...settings };
      }
      const family = familyOf(opts);
      if (!jname) throw usageError('E_NO_JNAME', `${family}create needs jname=<name>`);
      const env = await createEnv(ctx, { jname, emulator, family, settings }, { verbose: !!opts.verbose });
      const what = family === 'b'
        ? (env.conf.dsk_path1 ? `disk ${env.conf.dsk_path1} of ${env.conf.dsk_size1} bytes${env.conf.base ? ` from base ${env.conf.base}` : ''}${moreDisks(env.conf)}` : 'no disk')
        : `base ${env.conf.base}, baserw=${env.conf.baserw}`;
      return { data: { env }, text: `created: ${env.jname} (uuid ${env.uuid}, emulator ${env.emulator}, ${what})` };
    });
  },
};

/** `, disk 2 rbd/vm1-dsk2 (RBD) of 1073741824 bytes` for each disk row after the first. */
function moreDisks(conf: Record<string, string | undefined>): string {
  let out = '';
  for (let i = 2; conf[`dsk_path${i}`] !== undefined; i++) {
    out += `, disk ${i} ${conf[`dsk_path${i}`]}${conf[`dsk_type${i}`] === 'rbd' ? ' (RBD)' : ''}${Number(conf[`dsk_size${i}`]) ? ` of ${conf[`dsk_size${i}`]} bytes` : ''}`;
  }
  return out;
}
