/**
 * `berth doctor [jname=<name or glob>] [fix=1]`: thin handler over src/doctor.ts. Prints one
 * row per check (CHECK SUBJECT STATUS DETAIL; subjects relative to the workdir) and a summary
 * line, or the report as JSON with --json. Exit 1 when a check failed.
 */
import { EXIT } from '../../errors.js';
import { withNode } from '../args.js';
import { f, JNAME } from '../options.js';
import { renderTable } from '../table.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'doctor', summary: 'check shared dirs, locks, var/db, pkg.conf and hooks',
  options: [JNAME, f('fix', 'add NFS_WITH_PROPER_LOCKING to pkg.conf where needed')],
  async handler(opts) {
    const { displaySubject, doctor } = await import('../../doctor.js');
    return withNode(opts, async (ctx) => {
      const report = await doctor(ctx, {
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
  },
};
