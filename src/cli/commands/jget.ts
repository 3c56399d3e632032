/**
 * `berth jget`: every setting of an env (`key: value` lines, sorted), or the keys named after it
 * (CBSD style: `jget jname=web1 ip4_addr host_hostname`), or with key= one bare value.
 * A key the env does not have is E_NO_SUCH_KEY (exit 3), naming it.
 */
import { notFound, usageError } from '../../errors.js';
import { withNode } from '../args.js';
import { JNAME, o } from '../options.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'jget', summary: 'show env settings (all, or the keys named)',
  options: [JNAME, o('key', 'one key only: print its bare value')], positional: '[jname] [key...]',
  help: 'Examples: berth jget jname=web1 (every setting); berth jget jname=web1 ip4_addr host_hostname (those, as key: value); berth jget jname=web1 key=uuid (the bare value, for scripts).',
  async handler(opts, args) {
    const rest = [...args];
    const jname = (opts.jname as string | undefined) ?? rest.shift();
    if (!jname) throw usageError('E_NO_JNAME', 'jget needs jname=<name>');
    const { getEnv } = await import('../../lifecycle/envs.js');
    return withNode(opts, async (ctx) => {
      const row = getEnv(ctx, jname);
      const noSuchKey = (keys: string[]) => notFound('E_NO_SUCH_KEY', `${jname} has no setting ${keys.map((k) => JSON.stringify(k)).join(', ')}`,
        { hint: `see every setting: berth jget jname=${jname}` });
      if (typeof opts.key === 'string') {
        if (!opts.key) throw usageError('E_USAGE', 'key= needs a setting name, e.g. key=ip4_addr');
        if (rest.length) throw usageError('E_USAGE', `give either key=${opts.key} or key names (${rest.join(' ')}), not both`);
        if (!Object.hasOwn(row.conf, opts.key)) throw noSuchKey([opts.key]);
        return { data: { jname, [opts.key]: row.conf[opts.key] }, text: row.conf[opts.key] };
      }
      const missing = rest.filter((k) => !Object.hasOwn(row.conf, k));
      if (missing.length) throw noSuchKey(missing);
      const keys = rest.length ? rest : Object.keys(row.conf).sort();
      const conf = rest.length ? Object.fromEntries(keys.map((k) => [k, row.conf[k]])) : row.conf;
      return { data: { jname, conf }, text: keys.map((k) => `${k}: ${row.conf[k]}`).join('\n') };
    });
  },
};
