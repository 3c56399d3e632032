/**
 * `berth jexec jname= command...`: run a command inside a running env; its exit code is
 * berth's. With --json the command's stdout and stderr are captured into the JSON document
 * (`stdout`, `stderr`, `exitCode`), so that stdout holds that document alone.
 */
import { usageError } from '../../errors.js';
import { withNode } from '../args.js';
import { JNAME } from '../options.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'jexec', summary: 'run a command inside a running env', options: [JNAME], positional: '[command...]',
  help: 'Example: berth jexec jname=web1 cat /etc/hostname\nWith --json the command\'s output is in the document (stdout, stderr, exitCode), not printed.',
  async handler(opts, args) {
    let jname = opts.jname as string | undefined;
    let argv = args;
    if (!jname) { jname = args[0]; argv = args.slice(1); }
    if (!jname) throw usageError('E_NO_JNAME', 'jexec needs jname=<name> and a command');
    const { execInEnv } = await import('../../lifecycle/exec.js');
    const name = jname;
    if (!opts.json) {
      return withNode(opts, async (ctx) => {
        const code = await execInEnv(ctx, name, argv, { tty: !!process.stdin.isTTY && !!process.stdout.isTTY });
        return { data: { jname: name, exitCode: code }, exitCode: code };
      });
    }
    // --json: the command writes into two files of a private temp dir, read back after
    const { mkdtempSync, openSync, closeSync, readFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = mkdtempSync(join(tmpdir(), 'berth-jexec-'));
    const out = openSync(join(dir, 'stdout'), 'w+', 0o600);
    const err = openSync(join(dir, 'stderr'), 'w+', 0o600);
    try {
      const code = await withNode(opts, (ctx) => execInEnv(ctx, name, argv, { tty: false, stdout: out, stderr: err }));
      return { data: { jname: name, exitCode: code, stdout: readFileSync(join(dir, 'stdout'), 'utf8'), stderr: readFileSync(join(dir, 'stderr'), 'utf8') }, exitCode: code };
    } finally {
      closeSync(out);
      closeSync(err);
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
