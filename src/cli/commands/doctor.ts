/**
 * `berth doctor [jname=<name or glob>] [fix=1]`: thin handler over src/doctor.ts. Prints one
 * row per check (CHECK SUBJECT STATUS DETAIL; subjects relative to the workdir) and a summary
 * line, or the report as JSON with --json. Exit 1 when a check failed.
 */
import { displaySubject, doctor as runDoctor } from '../../doctor.js';
import { EXIT } from '../../errors.js';
import { renderTable } from '../table.js';
import { withNode } from './env.js';
import type { Handler } from '../types.js';

export const doctor: Handler = async (opts) => withNode(opts, async (ctx) => {
  const report = await runDoctor(ctx, {
    jname: typeof opts.jname === 'string' && opts.jname !== '' ? opts.jname : undefined,
    fix: opts.fix === true || opts.fix === '1',
  });
  const rows = report.checks.map((c) => [c.check, displaySubject(report.workdir, c.subject), c.status.toUpperCase(), c.detail]);
  const count = (s: string) => report.checks.filter((c) => c.status === s).length;
  const summary = `${report.checks.length} checks on node ${report.node} (${report.workdir}): ${count('fail')} failed, ${count('warn')} warnings, ${count('fixed')} fixed`;
  return {
    data: { node: report.node, workdir: report.workdir, checks: report.checks },
    text: `${renderTable(['check', 'subject', 'status', 'detail'], rows)}\n${summary}`,
    exitCode: report.ok ? 0 : EXIT.FAILURE,
  };
});
