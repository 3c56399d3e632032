/**
 * The teardown, written once for every way a run ends (design/product.md "Stop"): jstop, the
 * main process exiting by itself (the run monitor), kill -9, a failed start, the agent noticing,
 * fencing. The caller first claims the run's `run_id` in the inventory (an atomic UPDATE):
 * exactly one caller wins and tears down: engine gone, mounts under jails/<jname> gone deepest
 * first, master_poststop.d, mnt_stop; then status Off. The host mount table after any number of
 * start/stop cycles equals the one before.
 */
import { join } from 'node:path';
import type { EnvRow } from '../inventory.js';
import { STATUS } from '../inventory.js';
import { runHookDir, runStorageHook, type HookEnv } from '../hooks.js';
import { warn } from '../log.js';
import { unmountAllUnder } from '../mounts/types.js';
import { engineEnv } from '../engines/types.js';
import type { NodeCtx } from '../node.js';
import { pidAlive } from '../proc.js';
import { effectiveHooks, hookEnv } from './storage.js';
import { timed, type OpOptions, type StepTiming } from './types.js';

/** Options of {@link teardownRun}. */
export interface TeardownOptions extends OpOptions {
  /** the engine was started (run master_poststop.d) */
  engineStarted: boolean;
  /** why: 'stop' | 'exited' | 'failed-start' | 'fenced' | 'reconcile' (logged) */
  reason: string;
}

/**
 * Tears one run down, exactly once across processes: claims `runId`; returns false when
 * another caller already did. Order: engine stopped and cleaned up, every mount under
 * jails/<jname> unmounted deepest first, master_poststop.d, mnt_stop; then status Off.
 * Every step is attempted even when an earlier one fails; the first error is thrown after.
 */
export async function teardownRun(ctx: NodeCtx, jname: string, runId: string, opts: TeardownOptions): Promise<boolean> {
  if (!ctx.inv.claimTeardown(jname, runId)) return false;
  const row = ctx.inv.get(jname)!;
  await teardownSteps(ctx, row, {
    stopTimeoutSec: Number(row.conf.stop_timeout ?? 10), poststop: opts.engineStarted, mntStop: !opts.keepStorage,
    hookEnv: hookEnv(ctx, jname, row.conf, opts), reason: opts.reason, timings: opts.timings, whileDown: opts.whileDown,
  });
  return true;
}

/** What differs between the ways a run is torn down (see {@link teardownSteps}). */
export interface TeardownPlan {
  /** seconds the engine waits after its stop signal before killing (0: kill at once) */
  stopTimeoutSec: number;
  /** run master_poststop.d */
  poststop: boolean;
  /** run the env's mnt_stop hook */
  mntStop: boolean;
  /** the environment of those hooks */
  hookEnv: HookEnv;
  /** why, for the warning logged when a step failed */
  reason: string;
  /** when given, each step appends its duration */
  timings?: StepTiming[];
  /** see {@link OpOptions.whileDown} */
  whileDown?: () => Promise<void>;
}

/**
 * The one teardown sequence, for an env whose teardown the caller has claimed (teardownRun,
 * recoverStaleClaim, agent/fence.ts fenceRun): engine stopped and cleaned up, every mount
 * under jails/<jname> unmounted deepest first, master_poststop.d, mnt_stop (as `plan` says);
 * then status Off. Every step is attempted even when an earlier one fails; the first error
 * is thrown after, once the failures were logged.
 */
export async function teardownSteps(ctx: NodeCtx, row: EnvRow, plan: TeardownPlan): Promise<void> {
  const { jname, conf } = row;
  const engine = await ctx.engine(row.emulator);
  const eenv = engineEnv(ctx, jname, conf);
  const errors: unknown[] = [];
  const step = async (name: string, f: () => Promise<unknown>) => { try { await timed(plan.timings, name, f); } catch (e) { errors.push(e); } };
  const cleanup = () => step('engine cleanup', () => engine.cleanup(eenv));
  await step(`engine ${engine.name} stop`, () => engine.stop(eenv, plan.stopTimeoutSec));
  if (!plan.whileDown) await cleanup();
  await step('unmount root', async () => unmountAllUnder(await ctx.mounts(), ctx.wd.env(jname).path));
  if (plan.poststop) await step('master_poststop.d', () => runHookDir(join(ctx.wd.env(jname).sysdir, 'master_poststop.d'), 'stop', plan.hookEnv, { stopOnError: false }));
  if (plan.whileDown) {
    // nothing of the env runs or is mounted here any more: what must happen while it is down
    await step('while down', plan.whileDown);
    await cleanup();
  }
  if (plan.mntStop) await step('mnt_stop', () => runStorageHook('mnt_stop', effectiveHooks(ctx, conf).stop, 'stop', plan.hookEnv));
  ctx.inv.finishTeardown(jname);
  if (errors.length) {
    await warn({ jname, reason: plan.reason, errors: errors.map(String) }, 'teardown finished with errors');
    throw errors[0];
  }
}

/**
 * A Maintenance claim left by a berth command that died (kill -9, SIGINT in the middle of a
 * start, stop, remove or clone): takes the claim over and tears down whatever that command
 * left (the engine's processes and state, every mount under jails/<jname>, the storage via
 * mnt_stop), then marks the env Off. @returns true when a stale claim was recovered
 */
export async function recoverStaleClaim(ctx: NodeCtx, row: EnvRow, opts: OpOptions = {}): Promise<boolean> {
  if (row.status !== STATUS.MAINTENANCE || !row.claim_pid || pidAlive(row.claim_pid)) return false;
  if (row.run_id?.startsWith('rename:')) {
    // a jrename that died: finished (rolled back or forward, src/lifecycle/rename.ts), not torn down
    if (!ctx.inv.takeStaleClaim(row.jname, row.claim_pid, true)) return false;
    const { recoverRename } = await import('./rename-steps.js');
    await recoverRename(ctx, row, opts);
    return true;
  }
  if (!ctx.inv.takeStaleClaim(row.jname, row.claim_pid)) return false;
  await warn({ jname: row.jname, deadPid: row.claim_pid }, `recovering ${row.jname}: a berth command (pid ${row.claim_pid}) died while it held the env; tearing down what it left`);
  await teardownSteps(ctx, row, {
    stopTimeoutSec: 0, poststop: false, mntStop: true, hookEnv: hookEnv(ctx, row.jname, row.conf, opts), reason: `claim of dead pid ${row.claim_pid}`,
  });
  return true;
}

/**
 * If the inventory says On but the env's process is gone (its monitor died too), tears
 * that run down now; a Maintenance claim of a dead berth command is recovered.
 * @returns true when a stale run or claim was cleaned up
 */
export async function reconcileEnv(ctx: NodeCtx, row: EnvRow): Promise<boolean> {
  if (row.status === STATUS.MAINTENANCE) return recoverStaleClaim(ctx, row);
  if (row.status !== STATUS.ON || !row.run_id) return false;
  const engine = await ctx.engine(row.emulator);
  if (await engine.isRunning(engineEnv(ctx, row.jname, row.conf), row.jid)) return false;
  return teardownRun(ctx, row.jname, row.run_id, { engineStarted: true, reason: 'reconcile' });
}

/**
 * Tears down run `runId` of a fenced env at once, exactly once across processes (the same
 * `claimTeardown` as teardownRun). Order: engine killed (no grace) and cleaned up, every mount
 * under jails/<jname> unmounted deepest first, master_poststop.d, mnt_stop (both with
 * BERTH_FENCED=1); then status Off. Every step is attempted; the first error is thrown after.
 * Never checks the lease.
 * @returns false when another caller (monitor, jstop) already claimed this run's teardown
 */
export async function fenceRun(ctx: NodeCtx, jname: string, runId: string): Promise<boolean> {
  if (!ctx.inv.claimTeardown(jname, runId)) return false;
  const row = ctx.inv.get(jname)!;
  await teardownSteps(ctx, row, {
    stopTimeoutSec: 0, poststop: true, mntStop: true, hookEnv: hookEnv(ctx, jname, row.conf, {}, { BERTH_FENCED: '1' }), reason: 'fenced',
  });
  return true;
}
