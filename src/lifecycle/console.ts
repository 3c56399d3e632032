/**
 * bconsole: where a running env's console is (engines with a console: a VM's serial console).
 */
import { BerthError, EXIT, usageError } from '../errors.js';
import { engineEnv, type ConsoleEndpoint } from '../engines/types.js';
import { STATUS } from '../inventory.js';
import type { NodeCtx } from '../node.js';
import { getEnv } from './envs.js';

/**
 * The console of running env `jname` (the CLI attaches to it).
 * @throws BerthError E_NO_SUCH_ENV (3), E_NO_CONSOLE (2: an engine without a console: use
 *   jexec), E_NOT_RUNNING (1)
 */
export async function consoleOf(ctx: NodeCtx, jname: string): Promise<ConsoleEndpoint> {
  const row = getEnv(ctx, jname);
  const engine = await ctx.engine(row.emulator);
  if (engine.info.console === 'none' || !engine.console) {
    throw usageError('E_NO_CONSOLE', `${jname} is a ${row.emulator} env: it has no console${engine.info.exec ? `; run a shell in it: berth jexec jname=${jname} /bin/sh` : ''}`);
  }
  const eenv = engineEnv(ctx, jname, row.conf);
  if (row.status !== STATUS.ON || !(await engine.isRunning(eenv, row.jid))) {
    throw new BerthError('E_NOT_RUNNING', `${jname} is not running; start it: berth bstart jname=${jname}`, EXIT.FAILURE);
  }
  return engine.console(eenv);
}
