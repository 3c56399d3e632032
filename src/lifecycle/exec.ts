/**
 * jexec: a command inside a running env (engines with the exec capability).
 */
import { BerthError, EXIT, usageError } from '../errors.js';
import { engineEnv, type ExecOptions } from '../engines/types.js';
import { STATUS } from '../inventory.js';
import type { NodeCtx } from '../node.js';
import { getEnv } from './envs.js';

/**
 * jexec: runs argv inside the running env with the caller's stdio.
 * @returns the command's exit code
 * @throws BerthError E_NOT_RUNNING (1), E_NO_EXEC (2: an engine without exec, a VM), E_NO_COMMAND (2)
 */
export async function execInEnv(ctx: NodeCtx, jname: string, argv: string[], opts: ExecOptions = {}): Promise<number> {
  const row = getEnv(ctx, jname);
  const engine = await ctx.engine(row.emulator);
  if (!engine.exec) {
    throw usageError('E_NO_EXEC', `${jname} is a ${row.emulator} env: ${row.emulator} runs no commands inside${engine.info.console !== 'none' ? `; use its console: berth bconsole jname=${jname}` : ''}`);
  }
  if (row.status !== STATUS.ON || !(await engine.isRunning(engineEnv(ctx, jname, row.conf), row.jid))) {
    throw new BerthError('E_NOT_RUNNING', `${jname} is not running; start it: berth jstart jname=${jname}`, EXIT.FAILURE);
  }
  if (argv.length === 0) throw usageError('E_NO_COMMAND', 'jexec needs a command, e.g. berth jexec jname=web1 /bin/sh');
  return engine.exec(engineEnv(ctx, jname, row.conf), argv, opts);
}
