/** `jmigrate jname= dst=`: thin wrapper over src/migrate.ts. Steps go to stderr as they finish. */
import { usageError } from '../../errors.js';
import { migrateEnv } from '../../lifecycle/migrate.js';
import { renderTable } from '../table.js';
import { withNode } from './env.js';
import type { Handler } from '../types.js';

export const jmigrate: Handler = async (opts, args, io) => withNode(opts, async (ctx) => {
  const jname = typeof opts.jname === 'string' ? opts.jname : args[0];
  if (!jname) throw usageError('E_NO_JNAME', 'jmigrate needs jname=<name> and dst=<node>');
  const dst = typeof opts.dst === 'string' ? opts.dst : '';
  const r = await migrateEnv(ctx, jname, dst, {
    verbose: !!opts.verbose,
    onStep: (s) => { if (!opts.json) io.note(`${s.ok ? 'done' : 'FAILED'}: ${s.step} on ${s.node} (${s.ms} ms)${s.error ? `: ${s.error.message}` : ''}`); },
  });
  const table = renderTable(['step', 'node', 'ms'], r.steps.map((s) => [s.step, s.node, s.ms]));
  const down = r.downtimeMs === null ? 'downtime: none (it was not running)' : `downtime: ${r.downtimeMs} ms (stopped on ${r.from} -> started on ${r.to})`;
  return {
    data: { migration: r },
    text: `${table}\n${down}\nmigrated: ${r.jname} ${r.from} -> ${r.to} (generation ${r.generation}, no data copied, total ${r.totalMs} ms)`,
  };
});
