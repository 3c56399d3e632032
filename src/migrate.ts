/**
 * jmigrate: moves an env from this node to another through the destination agent's API,
 * without copying data (the env's storage is shared: design/product.md, issue #4).
 *
 * Preflight (nothing changes when it fails): the env is registered here and this node holds
 * its lease (exit 4 otherwise), it is not busy, the destination is known (`node add`; exit 3)
 * and answers as that node, it has no live registration of the env, and it sees the env's
 * descriptor on the shared storage with the same uuid (unless a storage hook mounts it there
 * at register time).
 *
 * Steps, each timed (ms): stop here (when it runs) → junregister here (descriptor to
 * jails-rcconf/, lease released) → POST register at the destination (it adopts the env and
 * takes the lease at a higher generation) → POST start there (when it ran here). The
 * downtime is from the stop here to the answer of the start there. When the env runs, the
 * stop and the register leave its storage mounted (`keepStorage`) for the step that follows
 * at once, which saves an unmount + mount per side with storage hooks.
 *
 * Rollback: when the register at the destination fails, the env is registered here again (and
 * started when it ran); when the start there fails, it is unregistered there, registered here
 * and started here. If the register answer got lost (timeout) but the destination did adopt
 * the env, that is detected (GET status) and the migration goes on. A failed migration throws
 * E_MIGRATE_FAILED with the exit code of the failing step's error, and `details` holding the
 * steps and where the env is now.
 */
import { BerthError, EXIT, ownedError, toBerthError, usageError } from './errors.js';
import { STATUS } from './inventory.js';
import { effectiveHooks, getEnv, requireLease, startEnv, stopEnv } from './lifecycle.js';
import { checkJname, checkNodename } from './names.js';
import type { NodeCtx } from './node.js';
import { registerEnv, unregisterEnv } from './register.js';
import { nodeClient } from './cluster.js';
import { revalidate } from './sharedfs.js';
import type { StorageView } from './agent/ops.js';

/** One timed step. */
export interface MigrateStep {
  /** stop | unregister | register | start, and rollback-* for the way back */
  step: string;
  /** the node it ran on */
  node: string;
  /** duration, milliseconds */
  ms: number;
  ok: boolean;
  error?: { code: string; message: string; exitCode: number };
}

/** What {@link migrateEnv} reports. */
export interface MigrateResult {
  jname: string;
  from: string;
  to: string;
  wasRunning: boolean;
  steps: MigrateStep[];
  /** ms from the stop here to the start there answering; null when the env was not running */
  downtimeMs: number | null;
  totalMs: number;
  /** the lease generation the destination now holds */
  generation: number;
}

/** Options of {@link migrateEnv}. */
export interface MigrateOptions {
  verbose?: boolean;
  /** called after every step (progress lines) */
  onStep?: (s: MigrateStep) => void;
}

const ms = (t0: number) => Math.round(performance.now() - t0);

/**
 * jmigrate jname= dst=.
 * @throws BerthError: E_NO_SUCH_ENV/E_NO_SUCH_NODE (3), lease errors (4), E_BUSY (4),
 *   E_ENV_EXISTS (1: registered at the destination), E_NOT_SHARED (1: the destination does not
 *   see the env's storage), E_NODE_MISMATCH (1), E_NODE_UNREACHABLE (1), E_MIGRATE_FAILED
 *   (the failing step's exit code; details.steps, details.location)
 */
export async function migrateEnv(ctx: NodeCtx, jname: string, dst: string, opts: MigrateOptions = {}): Promise<MigrateResult> {
  const tStart = performance.now();
  checkJname(jname);
  if (!dst) throw usageError('E_NO_DST', 'jmigrate needs dst=<node> (see: berth node list)');
  checkNodename(dst);
  if (dst === ctx.nodename) throw usageError('E_SELF', `${jname} is already on node ${dst}`);
  const row = getEnv(ctx, jname);
  const client = nodeClient(ctx, dst);
  try {
    await requireLease(ctx, row);
  } catch (e) {
    // a stopped env whose storage a hook mounts: its lease is not visible now; junregister
    // checks it after its mnt_start
    const hidden = e instanceof BerthError && e.code === 'E_LEASE_MISSING' && row.status === STATUS.OFF && effectiveHooks(ctx, row.conf).start !== '0';
    if (!hidden) throw e;
  }
  if (row.status === STATUS.MAINTENANCE) throw ownedError('E_BUSY', `${jname} is being started or stopped; try again`);

  // preflight at the destination
  const sv = (await client.storage(jname)) as unknown as { node: string; storage: StorageView };
  if (sv.node !== dst) throw new BerthError('E_NODE_MISMATCH', `the agent at ${client.url} is node '${sv.node}', not '${dst}'`, EXIT.FAILURE, { hint: 'fix it with berth node add' });
  const view = sv.storage;
  if (view.registered && !view.fenced) {
    throw new BerthError('E_ENV_EXISTS', `${jname} is already registered on node ${dst}`, EXIT.FAILURE, { hint: `see it there: berth jls (on ${dst})` });
  }
  if (view.descriptor && view.descriptor.uuid !== row.uuid) {
    throw new BerthError('E_NOT_SHARED', `node ${dst} sees another env named ${jname} (uuid ${view.descriptor.uuid}, here ${row.uuid}): the two nodes do not share this env's storage`, EXIT.FAILURE);
  }
  const startHook = row.conf.mnt_start === undefined || row.conf.mnt_start === '' ? view.defaultMntStart : row.conf.mnt_start;
  if (!view.descriptor && startHook === '0') {
    throw new BerthError('E_NOT_SHARED', `node ${dst} does not see the system dir of ${jname} (its jails-system/${jname}/rc.conf_${jname}) and no mnt_start hook would mount it there`, EXIT.FAILURE,
      { hint: `mount the shared jails-system (and jails-data, jails-rcconf, jails-fstab) on node ${dst}, or give the env a storage hook (jset mnt_start=...)` });
  }

  const steps: MigrateStep[] = [];
  const wasRunning = row.status === STATUS.ON;
  const runStep = async <T>(step: string, node: string, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      const r = await f();
      const s: MigrateStep = { step, node, ms: ms(t0), ok: true };
      steps.push(s);
      opts.onStep?.(s);
      return r;
    } catch (e) {
      const err = toBerthError(e);
      const s: MigrateStep = { step, node, ms: ms(t0), ok: false, error: { code: err.code, message: err.message, exitCode: err.exitCode } };
      steps.push(s);
      opts.onStep?.(s);
      throw err;
    }
  };
  const here = ctx.nodename;
  const op = { verbose: opts.verbose };
  const fail = (at: string, cause: BerthError, location: string, rollbackErr?: BerthError): BerthError =>
    new BerthError('E_MIGRATE_FAILED', `jmigrate ${jname} to ${dst} failed at ${at}: ${cause.message}; ${location}` +
      (rollbackErr ? ` (rollback failed: ${rollbackErr.message})` : ''), cause.exitCode, {
      hint: rollbackErr ? `the descriptor is in jails-rcconf/rc.conf_${jname}: adopt it where it should run with berth jregister jname=${jname}` : cause.hint,
      details: { steps, location, cause: cause.toJSON(), rollback: rollbackErr?.toJSON() }, cause,
    });

  let tDown: number | undefined;
  if (wasRunning) {
    tDown = performance.now();
    // keepStorage: junregister mounts it again at once (its hook finds it mounted) and unmounts it
    await runStep('stop', here, () => stopEnv(ctx, jname, { ...op, keepStorage: true }));
  }
  try {
    await runStep('unregister', here, () => unregisterEnv(ctx, jname, op));
  } catch (e) {
    const cause = toBerthError(e);
    if (wasRunning) {
      const back = await runStep('rollback-start', here, () => startEnv(ctx, jname, op)).then(() => undefined, (x) => toBerthError(x));
      throw fail('unregister', cause, back ? `${jname} is registered but stopped on ${here}` : `${jname} runs on ${here} again`, back);
    }
    throw fail('unregister', cause, `${jname} is still registered on ${here}`);
  }

  // adopt at the destination
  let generation = 0;
  try {
    // keep_storage when a start follows there at once (its teardown unmounts it if it fails)
    const r = await runStep('register', dst, () => client.register(jname, wasRunning ? { keep_storage: true } : {}));
    generation = Number((r.result as { generation?: number } | undefined)?.generation ?? 0);
  } catch (e) {
    const cause = toBerthError(e);
    // the answer may have been lost while the destination did adopt it
    const adopted = await client.status(jname).then((a) => a.env as { generation: number }, () => undefined);
    if (adopted && cause.code === 'E_NODE_UNREACHABLE') {
      generation = adopted.generation;
    } else {
      const back = await rollbackHere(wasRunning);
      throw fail(`register on ${dst}`, cause, back ? `${jname} is unregistered (rollback failed)` : `${jname} is back on ${here}${wasRunning ? ' and running' : ''}`, back);
    }
  }
  if (wasRunning) {
    try {
      await runStep('start', dst, () => client.start(jname));
    } catch (e) {
      const cause = toBerthError(e);
      const un = await runStep('rollback-unregister', dst, () => client.unregister(jname)).then(() => undefined, (x) => toBerthError(x));
      if (un) throw fail(`start on ${dst}`, cause, `${jname} stays registered (stopped) on ${dst}`, un);
      const back = await rollbackHere(true);
      throw fail(`start on ${dst}`, cause, back ? `${jname} is unregistered (rollback failed)` : `${jname} is back on ${here} and running`, back);
    }
  }
  const downtimeMs = tDown === undefined ? null : ms(tDown);
  return { jname, from: here, to: dst, wasRunning, steps, downtimeMs, totalMs: ms(tStart), generation };

  async function rollbackHere(start: boolean): Promise<BerthError | undefined> {
    try {
      // the destination may just have rewritten the descriptors through its own mount
      const p = ctx.wd.env(jname);
      for (const f of [p.rcconfFile, p.descriptor]) revalidate(f);
      await runStep('rollback-register', here, () => registerEnv(ctx, jname, op));
      if (start) await runStep('rollback-start', here, () => startEnv(ctx, jname, op));
      return undefined;
    } catch (x) {
      return toBerthError(x);
    }
  }
}
