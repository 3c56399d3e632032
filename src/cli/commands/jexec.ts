/** `berth jexec jname= command...`: run a command inside a running env; its exit code is berth's. */
import { usageError } from '../../errors.js';
import { withNode } from '../args.js';
import { JNAME } from '../options.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'jexec', summary: 'run a command inside a running env', options: [JNAME], positional: '[command...]',
  help: 'Example: berth jexec jname=web1 cat /etc/hostname',
  async handler(opts, args) {
    let jname = opts.jname as string | undefined;
    let argv = args;
    if (!jname) { jname = args[0]; argv = args.slice(1); }
    if (!jname) throw usageError('E_NO_JNAME', 'jexec needs jname=<name> and a command');
    const { execInEnv } = await import('../../lifecycle/exec.js');
    const name = jname;
    return withNode(opts, async (ctx) => {
      const code = await execInEnv(ctx, name, argv, { tty: !!process.stdin.isTTY && !!process.stdout.isTTY });
      return { data: { jname: name, exitCode: code }, exitCode: code };
    });
  },
};
