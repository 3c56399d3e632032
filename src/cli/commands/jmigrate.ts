/** `berth jmigrate jname= dst=`: thin handler over src/lifecycle/migrate.ts. Steps go to stderr as they finish. */
import { usageError } from '../../errors.js';
import { withNode } from '../args.js';
import { JNAME, o } from '../options.js';
import { renderTable } from '../table.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'jmigrate', summary: 'move an env to another node through its agent, without copying data',
  options: [JNAME, o('dst', 'destination node (see node add)'), o('live', '1: move a running VM without stopping it (qemu): memory sent, disk shared, lease handed over at switchover', '0|1')], positional: '[jname]',
  async handler(opts, args, io) {
    const jname = typeof opts.jname === 'string' ? opts.jname : args[0];
    if (!jname) throw usageError('E_NO_JNAME', 'jmigrate needs jname=<name> and dst=<node>');
    const dst = typeof opts.dst === 'string' ? opts.dst : '';
    if (opts.live !== undefined && opts.live !== '0' && opts.live !== '1') throw usageError('E_BAD_VALUE', `bad live=${JSON.stringify(opts.live)}: expected 0 or 1`);
    const { downtimeLine, migrateEnv, migratedLine } = await import('../../lifecycle/migrate.js');
    return withNode(opts, async (ctx) => {
      const r = await migrateEnv(ctx, jname, dst, {
        verbose: !!opts.verbose, live: opts.live === '1',
        onStep: (s) => { if (!opts.json) io.note(`${s.ok ? 'done' : 'FAILED'}: ${s.step} on ${s.node} (${s.ms} ms)${s.error ? `: ${s.error.message}` : ''}`); },
      });
      const table = renderTable(['step', 'node', 'ms'], r.steps.map((s) => [s.step, s.node, s.ms]));
      return { data: { migration: r }, text: `${table}\n${downtimeLine(r)}\n${migratedLine(r)}` };
    });
  },
};
