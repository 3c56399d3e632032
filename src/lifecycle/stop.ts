/**
 * jstop: master_prestop.d, then the teardown (src/lifecycle/teardown.ts).
 */
import { join } from 'node:path';
import { BerthError, EXIT, ownedError } from '../errors.js';
import { runHookDir } from '../hooks.js';
import { STATUS } from '../inventory.js';
import type { NodeCtx } from '../node.js';
import { requireLease } from '../ownership/leases.js';
import { sleep } from '../proc.js';
import { getEnv } from './envs.js';
import { hookEnv } from './storage.js';
import { recoverStaleClaim, teardownRun } from './teardown.js';
import { envInfo, timed, type EnvInfo, type OpOptions } from './types.js';

/**
 * jstop: master_prestop.d, then the teardown (engine stop with stop_timeout seconds, then
 * SIGKILL; unmount; master_poststop.d; mnt_stop). When another process is already tearing
 * the run down (the env just exited), waits for it to finish.
 * @throws BerthError E_NOT_RUNNING (1), E_LEASE_* (4)
 */
export async function stopEnv(ctx: NodeCtx, jname: string, opts: OpOptions = {}): Promise<EnvInfo> {
  const row = getEnv(ctx, jname);
  if (await recoverStaleClaim(ctx, row, opts)) return envInfo(ctx.inv.get(jname)!);
  if (row.status === STATUS.OFF) throw new BerthError('E_NOT_RUNNING', `${jname} is not running`, EXIT.FAILURE);
  if (row.status === STATUS.ON && row.run_id) {
    await timed(opts.timings, 'lease', () => requireLease(ctx, row));
    await timed(opts.timings, 'master_prestop.d', () => runHookDir(join(ctx.wd.env(jname).sysdir, 'master_prestop.d'), 'stop', hookEnv(ctx, jname, row.conf, opts), { stopOnError: false }));
    if (await teardownRun(ctx, jname, row.run_id, { ...opts, engineStarted: true, reason: 'stop' })) return envInfo(ctx.inv.get(jname)!);
  }
  for (let i = 0; i < 600; i++) {
    const r = ctx.inv.get(jname);
    if (!r || r.status === STATUS.OFF) return envInfo(r ?? row, 'Off');
    await sleep(100);
  }
  throw ownedError('E_BUSY', `${jname} is still being started or stopped by another process`);
}
