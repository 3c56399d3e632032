/**
 * Live migration of a qemu VM between two qemu processes whose disks are the same files on
 * shared storage (nothing but memory and device state crosses; the disks use cache=none).
 *
 * The sequence (QEMU docs/devel/migration.rst and qapi/migration.json; Incus's driver_qemu.go):
 * 1. the destination runs with `-incoming defer -S` (src/engines/qemu/argv.ts `incoming`);
 *    {@link prepareIncoming}: capability `events`, then `migrate-incoming <uri>` (it listens);
 * 2. {@link migrateToSwitchover} on the source: capabilities `events` and
 *    `pause-before-switchover`, `migrate <uri>`, then wait for the `pre-switchover` state,
 *    where the source is paused (its last RAM not yet sent, its disks no longer written);
 * 3. the caller's switchover hook runs there: berth hands the env's lease to the destination,
 *    so that at no moment two nodes may write the disks;
 * 4. {@link completeSwitchover}: `migrate-continue` and wait for `completed` on the source;
 * 5. {@link startIncoming} on the destination: wait for its `completed`, then `cont`.
 * On any failure ({@link abortMigration}) the source cancels and resumes (`cont`) and the
 * destination's qemu is killed by the caller's callback.
 *
 * Downtime is reported as QEMU measures it (`query-migrate` `downtime`, ms; with
 * pause-before-switchover it includes the hook) and as measured here: from the source's STOP
 * event to the destination's RESUME event, both as received by this process.
 * {@link liveMigrate} runs the whole sequence when both QMP sessions are in this process.
 */
import { BerthError, EXIT } from '../../errors.js';
import type { QmpClient, QmpEvent } from './qmp.js';

/** QEMU's own figures from `query-migrate` on the source. Times in ms, sizes in bytes. */
export interface QemuMigrationStats {
  status: string;
  totalMs: number;
  downtimeMs: number;
  setupMs: number;
  transferredBytes: number;
  ramTotalBytes: number;
}

/** The result of a live migration. Times in ms. */
export interface MigrationResult {
  qemu: QemuMigrationStats;
  measured: {
    /** from `migrate` to the destination running */
    totalMs: number;
    /** from the source's STOP event to the destination's RESUME event */
    downtimeMs: number;
    /** time spent in the switchover hook */
    hookMs: number;
  };
}

/** Options of the migration steps. */
export interface MigrateOptions {
  /** give up when the migration has not reached switchover / completion after this long (default 120000) */
  timeoutMs?: number;
  /** QEMU's downtime-limit parameter, ms (QEMU's default 300) */
  downtimeLimitMs?: number;
  /** QEMU's max-bandwidth parameter, bytes per second (default: QEMU's) */
  maxBandwidth?: number;
}

const migErr = (msg: string, cause?: unknown) => new BerthError('E_MIGRATE', msg, EXIT.ENGINE, { cause, hint: 'the source VM keeps running; see the qemu logs of both sides' });

function waitMigration(qmp: QmpClient, states: string[], timeoutMs: number, since: number): Promise<QmpEvent> {
  return qmp.waitEvent('MIGRATION', {
    timeoutMs, since,
    filter: (e) => states.includes(e.data.status) || e.data.status === 'failed' || e.data.status === 'cancelled',
  }).then(async (e) => {
    if (e.data.status === 'failed' || e.data.status === 'cancelled') {
      const info = await qmp.execute('query-migrate').catch(() => ({}));
      throw migErr(`the migration ${e.data.status}${info?.['error-desc'] ? `: ${info['error-desc']}` : ''}`);
    }
    return e;
  });
}

/**
 * The destination side: capability `events`, then `migrate-incoming` on `uri`
 * (`unix:<path>` or `tcp:<host>:<port>`). The destination qemu must run with `-incoming defer`.
 * @throws BerthError E_QMP (exit 5)
 */
export async function prepareIncoming(dest: QmpClient, uri: string): Promise<void> {
  await dest.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
  await dest.execute('migrate-incoming', { uri });
}

/**
 * The source side up to switchover: capabilities, parameters, `migrate`, then wait until the
 * source is paused in `pre-switchover`.
 * @returns when the source stopped (performance.now(), ms; from its STOP event) and when migrate was sent
 * @throws BerthError E_MIGRATE (exit 5: failed, cancelled or timed out), E_QMP
 */
export async function migrateToSwitchover(source: QmpClient, uri: string, opts: MigrateOptions = {}): Promise<{ startedAt: number; stoppedAt: number }> {
  await source.execute('migrate-set-capabilities', { capabilities: [
    { capability: 'events', state: true },
    { capability: 'pause-before-switchover', state: true },
  ] });
  const params: Record<string, number> = {};
  if (opts.downtimeLimitMs !== undefined) params['downtime-limit'] = opts.downtimeLimitMs;
  if (opts.maxBandwidth !== undefined) params['max-bandwidth'] = opts.maxBandwidth;
  if (Object.keys(params).length) await source.execute('migrate-set-parameters', params);
  const startedAt = performance.now();
  await source.execute('migrate', { uri });
  const pre = await waitMigration(source, ['pre-switchover'], opts.timeoutMs ?? 120_000, startedAt).catch((e) => {
    throw e instanceof BerthError && e.code === 'E_QMP_TIMEOUT' ? migErr(`the migration did not reach switchover within ${opts.timeoutMs ?? 120_000} ms`, e) : e;
  });
  const stop = await source.waitEvent('STOP', { since: startedAt, timeoutMs: 5000 }).catch(() => undefined);
  return { startedAt, stoppedAt: stop?.receivedAt ?? pre.receivedAt };
}

/**
 * The source side after the hook: `migrate-continue` and wait for `completed`.
 * @returns QEMU's figures (query-migrate)
 * @throws BerthError E_MIGRATE, E_QMP
 */
export async function completeSwitchover(source: QmpClient, opts: MigrateOptions = {}): Promise<QemuMigrationStats> {
  const since = performance.now();
  await source.execute('migrate-continue', { state: 'pre-switchover' });
  await waitMigration(source, ['completed'], opts.timeoutMs ?? 120_000, since);
  // QEMU announces `completed` before its migration thread stores total-time and downtime
  // (migration_calculate_complete runs after the state change): ask until they are there
  let m = await source.execute('query-migrate');
  for (let i = 0; i < 100 && !(m['total-time'] > 0); i++) {
    await new Promise((r) => setTimeout(r, 10));
    m = await source.execute('query-migrate');
  }
  return {
    status: m.status, totalMs: m['total-time'] ?? 0, downtimeMs: m.downtime ?? 0, setupMs: m['setup-time'] ?? 0,
    transferredBytes: m.ram?.transferred ?? 0, ramTotalBytes: m.ram?.total ?? 0,
  };
}

/**
 * The destination side at the end: wait for its `completed`, then `cont` and its RESUME.
 * @param since performance.now() before the migration started (so that an early event counts)
 * @returns when the destination resumed (performance.now(), ms)
 * @throws BerthError E_MIGRATE, E_QMP
 */
export async function startIncoming(dest: QmpClient, since: number, opts: MigrateOptions = {}): Promise<number> {
  await waitMigration(dest, ['completed'], opts.timeoutMs ?? 120_000, since);
  const before = performance.now();
  await dest.execute('cont');
  const resume = await dest.waitEvent('RESUME', { since: before, timeoutMs: 10_000 });
  return resume.receivedAt;
}

/**
 * Undoes a migration that failed: cancel on the source, make sure it runs (`cont` unless
 * `query-status` says running; not with `resume` false: it stays paused, for a caller that
 * may not run it any more), and kill the destination. Never throws; returns the source's
 * final run state.
 */
export async function abortMigration(source: QmpClient, killDestination: () => Promise<void>, resume = true): Promise<string> {
  await source.execute('migrate_cancel').catch(() => {});
  const end = performance.now() + 10_000;
  for (;;) {
    const m = await source.execute('query-migrate').catch(() => undefined);
    if (!m || !['active', 'setup', 'pre-switchover', 'device', 'cancelling'].includes(m.status) || performance.now() > end) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  await killDestination().catch(() => {});
  const st = await source.execute('query-status').catch(() => undefined);
  if (resume && st && st.status !== 'running') await source.execute('cont').catch(() => {});
  const after = await source.execute('query-status').catch(() => undefined);
  return after?.status ?? 'unknown';
}

/** Options of {@link liveMigrate}. */
export interface LiveMigrateOptions extends MigrateOptions {
  source: QmpClient;
  destination: QmpClient;
  /** `unix:<path>` or `tcp:<host>:<port>` */
  uri: string;
  /** runs while the source is paused before switchover (hand the lease over here); throw to abort */
  onSwitchover?: () => Promise<void>;
  /** kills the destination's qemu (on failure) */
  killDestination: () => Promise<void>;
  /** `quit` the source's qemu after success (default true) */
  quitSource?: boolean;
}

/**
 * The whole live migration with both QMP sessions in this process (see the module comment).
 * @throws BerthError E_MIGRATE (exit 5) after undoing: the source runs again, the destination is killed
 */
export async function liveMigrate(opts: LiveMigrateOptions): Promise<MigrationResult> {
  const { source, destination: dest } = opts;
  const t0 = performance.now();
  let hookMs = 0;
  try {
    await prepareIncoming(dest, opts.uri);
    const { stoppedAt } = await migrateToSwitchover(source, opts.uri, opts);
    const h0 = performance.now();
    if (opts.onSwitchover) await opts.onSwitchover();
    hookMs = performance.now() - h0;
    const qemu = await completeSwitchover(source, opts);
    const resumedAt = await startIncoming(dest, t0, opts);
    if (opts.quitSource !== false) await source.execute('quit').catch(() => {});
    const r = (n: number) => Math.round(n * 10) / 10;
    return { qemu, measured: { totalMs: r(resumedAt - t0), downtimeMs: r(resumedAt - stoppedAt), hookMs: r(hookMs) } };
  } catch (e) {
    await abortMigration(source, opts.killDestination);
    if (e instanceof BerthError && e.code === 'E_MIGRATE') throw e;
    throw migErr(`live migration failed: ${(e as Error).message}`, e);
  }
}
