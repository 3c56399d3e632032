/**
 * jmigrate: moves an env from this node to another through the destination agent's API,
 * without copying data (the env's storage is shared: design/product.md, issue #11).
 *
 * Preflight (nothing changes when it fails): the env is registered here, this node holds its
 * lease (exit 4 otherwise) and it is not busy; the destination is known (`node add`; exit 3),
 * answers as that node, and can start the env (POST prepare: it sees the env's ownership record
 * with the same uuid, the env is not registered there, its base is there, its engine runs there,
 * its hooks are present and safe there). When the env runs, that same call mounts the env's
 * storage at the destination (mnt_start + identity check) while the env still runs here, so no
 * mount is made while it is down.
 *
 * Steps, each timed (ms): stop here (the storage stays mounted); while the env is down (its
 * processes gone, its root unmounted, master_poststop.d run: inside the stop's teardown, before
 * the engine's own cleanup) hand the lease to the destination (one exclusive create of
 * generation N+1 in the ownership record: the env is owned at every moment, by exactly one
 * node) → POST adopt there (it checks the handed-over claim, registers the env at N+1 and
 * starts it when it ran here); then this node's row is deleted and mnt_stop runs here. The
 * downtime is from the stop here to the adopt's answer.
 *
 * Rollback: when the adopt fails, the destination hands the lease back (N+2); this node's row
 * takes that generation and the env starts here again when it ran. When the destination cannot be reached after
 * the handover, it holds the lease: the error names it and says what to run there. A failed
 * migration throws E_MIGRATE_FAILED with the exit code of the failing step's error, and
 * `details` holding the steps and where the env is now.
 */
import { join } from 'node:path';
import { BerthError, EXIT, ownedError, toBerthError, usageError } from '../errors.js';
import { STATUS } from '../inventory.js';
import { effectiveHooks, hookEnv } from './storage.js';
import { getEnv } from './envs.js';
import { startEnv } from './start.js';
import { stopEnv } from './stop.js';
import { type StepTiming } from './types.js';
import { checkJname, checkNodename } from '../names.js';
import type { NodeCtx } from '../node.js';
import { nodeClient } from '../nodes/cluster.js';
import { openMigrationChannel, type MigrationChannel } from '../nodes/stream.js';
import { runStorageHook } from '../hooks.js';
import { handoverEnvLease, journal, reclaimEnvLease, recordDescriptorDigest, requireLease } from '../ownership/leases.js';
import { engineEnv } from '../engines/types.js';

/** One timed step. */
export interface MigrateStep {
  /** prepare | stop | handover | adopt | unmount, and rollback-* for the way back */
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
  /** ms from the stop here to the destination's adopt (and start) answering; null when the env was not running. live=1: from the pause here to the resume there */
  downtimeMs: number | null;
  /** live=1: the engine's own figures (QEMU's downtime, total time, bytes sent) */
  live?: { downtimeMs: number; totalMs: number; transferredBytes: number };
  totalMs: number;
  /** the lease generation the destination now holds */
  generation: number;
  /** where the downtime went: the steps of the stop here and of the adopt (and start) there, ms */
  timings: { stop: StepTiming[]; adopt: StepTiming[] };
}

/**
 * The downtime of a migration in one line, as `berth jmigrate` and the console print it:
 * none (it was not running), stop-to-start (cold) or pause-to-resume (live=1, with the
 * engine's own downtime and the bytes of memory sent). Times in ms.
 */
export function downtimeLine(r: MigrateResult): string {
  if (r.downtimeMs === null) return 'downtime: none (it was not running)';
  if (r.live) return `downtime: ${r.downtimeMs} ms as berth measures it (paused on ${r.from} -> resumed on ${r.to}); ${r.live.downtimeMs} ms as the engine measures it; ${r.live.transferredBytes} bytes of memory sent`;
  return `downtime: ${r.downtimeMs} ms (stopped on ${r.from} -> started on ${r.to})`;
}

/** The last line `berth jmigrate` prints: `migrated: web1 node1 -> node2 (generation 3, ...)`. */
export function migratedLine(r: MigrateResult): string {
  return `migrated: ${r.jname} ${r.from} -> ${r.to} (generation ${r.generation}, no data copied, total ${r.totalMs} ms)`;
}

/** Options of {@link migrateEnv}. */
export interface MigrateOptions {
  verbose?: boolean;
  /**
   * live=1: move a running env without stopping it (engines with EngineInfo.liveMigration:
   * qemu): started paused there (POST incoming), its state sent through the destination
   * agent's token-authenticated migration channel (src/nodes/stream.ts), the lease
   * handed over and the run adopted there while it is paused here, then resumed there.
   */
  live?: boolean;
  /** called after every step (progress lines) */
  onStep?: (s: MigrateStep) => void;
}

const ms = (t0: number) => Math.round(performance.now() - t0);

/**
 * jmigrate jname= dst=.
 * @throws BerthError: E_NO_SUCH_ENV/E_NO_SUCH_NODE (3), lease errors (4), E_BUSY (4),
 *   E_MIGRATE_REFUSED with the exit code of the destination's refusal (E_ENV_EXISTS 1,
 *   E_NOT_SHARED 1, E_RECORD_STALE 1, E_NO_SUCH_BASE 3, E_BAD_EMULATOR 2, E_HOOK_UNSAFE 1, a failing mnt_start
 *   there ...; details.cause) when nothing was changed, E_NODE_MISMATCH (1),
 *   E_NODE_UNREACHABLE (1), E_MIGRATE_FAILED (the failing step's exit code; details.steps,
 *   details.location)
 */
export async function migrateEnv(ctx: NodeCtx, jname: string, dst: string, opts: MigrateOptions = {}): Promise<MigrateResult> {
  const tStart = performance.now();
  checkJname(jname);
  if (!dst) throw usageError('E_NO_DST', 'jmigrate needs dst=<node> (see: berth node list)');
  checkNodename(dst);
  if (dst === ctx.nodename) throw usageError('E_SELF', `${jname} is already on node ${dst}`);
  const row = getEnv(ctx, jname);
  // an engine without live migration (EngineInfo.liveMigration) is refused before any node is asked
  if (opts.live && !(await ctx.engine(row.emulator)).info.liveMigration) {
    throw usageError('E_NO_LIVE', `${jname} is a ${row.emulator} env: ${row.emulator} has no live migration; move it stopped: berth jmigrate jname=${jname} dst=${dst} (without live=1; the disk stays on the shared storage)`);
  }
  const client = nodeClient(ctx, dst);
  await requireLease(ctx, row);
  if (row.status === STATUS.MAINTENANCE) throw ownedError('E_BUSY', `${jname} is being started or stopped; try again`);
  const wasRunning = row.status === STATUS.ON;
  const here = ctx.nodename;
  const op = { verbose: opts.verbose };
  const steps: MigrateStep[] = [];
  // steps are listed in the order they began (the stop ends last: the handover and the adopt
  // happen while the env is down, before the stop's final cleanup)
  const runStep = async <T>(step: string, node: string, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const s: MigrateStep = { step, node, ms: 0, ok: false };
    steps.push(s);
    try {
      const r = await f();
      Object.assign(s, { ms: ms(t0), ok: true });
      opts.onStep?.(s);
      return r;
    } catch (e) {
      const err = toBerthError(e);
      Object.assign(s, { ms: ms(t0), ok: false, error: { code: err.code, message: err.message, exitCode: err.exitCode } });
      opts.onStep?.(s);
      throw err;
    }
  };
  const fail = (at: string, cause: BerthError, location: string, hint: string | undefined, rollbackErr?: BerthError): BerthError =>
    new BerthError('E_MIGRATE_FAILED', `jmigrate ${jname} to ${dst} failed at ${at}: ${cause.message}; ${location}` +
      (rollbackErr ? ` (rollback failed: ${rollbackErr.message})` : ''), cause.exitCode, {
      hint, details: { steps, location, cause: cause.toJSON(), rollback: rollbackErr?.toJSON() }, cause,
    });

  // preflight at the destination (it mounts the storage there ahead when the env runs), on the
  // descriptor version this node holds (digest: the destination's DFS cache may be older)
  const digest = recordDescriptorDigest(ctx, jname);
  let prep;
  try {
    prep = await runStep('prepare', dst, () => client.call('POST', `/v1/envs/${encodeURIComponent(jname)}/prepare`, { uuid: row.uuid, mount: wasRunning, digest }));
  } catch (e) {
    const cause = toBerthError(e);
    throw new BerthError('E_MIGRATE_REFUSED', `node ${dst} cannot take ${jname}: ${cause.message}; nothing was changed (${jname} stays ${wasRunning ? 'running ' : ''}on ${here})`, cause.exitCode, {
      hint: cause.hint, details: { steps, location: `${jname} stays on ${here}`, cause: cause.toJSON() }, cause,
    });
  }
  if (prep.node !== dst) {
    if (wasRunning) await client.call('POST', `/v1/envs/${encodeURIComponent(jname)}/cancel`, {}).catch(() => undefined);
    throw new BerthError('E_NODE_MISMATCH', `the agent at ${client.url} is node '${prep.node}', not '${dst}'`, EXIT.FAILURE, { hint: 'fix it with berth node add' });
  }
  const cancelThere = () => (wasRunning ? client.call('POST', `/v1/envs/${encodeURIComponent(jname)}/cancel`, {}).then(() => undefined, () => undefined) : Promise.resolve());

  let tDown: number | undefined;
  let tUp: number | undefined;
  const stopTimings: StepTiming[] = [];
  let adoptTimings: StepTiming[] = [];
  const unmountHere = () => runStorageHook('mnt_stop', effectiveHooks(ctx, row.conf).stop, 'unregister', hookEnv(ctx, jname, row.conf, op));

  // hand the lease over (from then on the destination owns the env) and adopt it there; when
  // the env runs, this happens inside the stop's teardown, once nothing of it runs here
  let generation = 0;
  let handoverErr: BerthError | undefined;
  let adoptErr: BerthError | undefined;
  const switchOver = async () => {
    try {
      generation = (await runStep('handover', here, () => handoverEnvLease(ctx, row, dst))).generation;
    } catch (e) {
      handoverErr = toBerthError(e);
      return;
    }
    try {
      const a = await runStep('adopt', dst, () => client.call('POST', `/v1/envs/${encodeURIComponent(jname)}/adopt`,
        { generation, start: wasRunning, mounted: wasRunning, return_to: here, digest }));
      adoptTimings = ((a.result as { timings?: StepTiming[] } | undefined)?.timings) ?? [];
      tUp = performance.now();
    } catch (e) {
      adoptErr = toBerthError(e);
    }
  };
  if (opts.live && wasRunning) return migrateLive();
  if (wasRunning) {
    tDown = performance.now();
    try {
      // keepStorage: the storage stays mounted here until the destination runs the env
      await runStep('stop', here, () => stopEnv(ctx, jname, { ...op, keepStorage: true, timings: stopTimings, whileDown: switchOver }));
    } catch (e) {
      // the switch-over did not happen (the stop failed before its teardown), or a cleanup step
      // after it failed (logged by the teardown; the switch-over's outcome decides below)
      if (!generation && !handoverErr) {
        await cancelThere();
        throw fail('stop', toBerthError(e), `${jname} stays on ${here}`, undefined);
      }
    }
  } else {
    await switchOver();
  }

  if (handoverErr) {
    await cancelThere();
    if (wasRunning) {
      const back = await runStep('rollback-start', here, () => startEnv(ctx, jname, { ...op, mounted: true })).then(() => undefined, (x) => toBerthError(x));
      throw fail('handover', handoverErr, back ? `${jname} is registered but stopped on ${here}` : `${jname} runs on ${here} again`, handoverErr.hint, back);
    }
    throw fail('handover', handoverErr, `${jname} is still registered on ${here}`, handoverErr.hint);
  }
  if (adoptErr) {
    const back = adoptErr.details?.handedBack as { node: string; generation: number } | undefined;
    if (back?.node === here) {
      // the destination gave the lease back: this node's row holds it again (its storage is still mounted here)
      const again = await runStep('rollback-adopt', here, async () => {
        ctx.inv.setGeneration(jname, back.generation);
        await journal(ctx, 'own', { ...row, generation: back.generation }, 'handed back');
        if (wasRunning) await startEnv(ctx, jname, { ...op, mounted: true });
      }).then(() => undefined, (x) => toBerthError(x));
      throw fail(`adopt on ${dst}`, adoptErr, again ? `${jname} could not be started again on ${here}` : `${jname} is back on ${here}${wasRunning ? ' and running' : ''}`,
        again ? `the lease is node ${here}'s (generation ${back.generation}): on ${here} run berth jstart jname=${jname}` : adoptErr.hint, again);
    }
    // no answer, or not given back: the destination holds the lease (generation N+1)
    ctx.inv.delete(jname);
    await journal(ctx, 'drop', row, 'handed');
    if (wasRunning) await unmountHere().catch(() => undefined);
    throw fail(`adopt on ${dst}`, adoptErr, `node ${dst} holds the lease of ${jname} (generation ${generation}) but did not confirm it runs the env`,
      `on ${dst}: berth jls jname=${jname}; if it is not listed there, run on ${dst}: berth jregister jname=${jname}${wasRunning ? ' --start' : ''}`);
  }
  const downtimeMs = tDown === undefined || tUp === undefined ? null : Math.round(tUp - tDown);
  ctx.inv.delete(jname);
  await journal(ctx, 'drop', row, 'handed');
  if (wasRunning) await runStep('unmount', here, unmountHere).catch(() => undefined);
  return { jname, from: here, to: dst, wasRunning, steps, downtimeMs, totalMs: ms(tStart), generation, timings: { stop: stopTimings, adopt: adoptTimings } };

  /**
   * live=1 (see MigrateOptions.live): incoming there, then the engine sends the state; while
   * the env is paused here: lease handover (N+1) and adopt of the run there, this node's row
   * deleted; then the source quits, the destination resumes. A failure before the adopt
   * resumes the env here, with its lease (given back when it was handed over), and stops the
   * paused one there.
   */
  async function migrateLive(): Promise<MigrateResult> {
    const engine = await ctx.engine(row.emulator);
    const eenv = engineEnv(ctx, jname, row.conf);
    if (!engine.info.liveMigration || !engine.liveSend) {
      await cancelThere();
      throw usageError('E_NO_LIVE', `${jname} is a ${row.emulator} env: ${row.emulator} has no live migration; use jmigrate without live=1`);
    }
    let inc: { jid: number; channel: string };
    let channel: MigrationChannel;
    try {
      inc = (await runStep('incoming', dst, () => client.call('POST', `/v1/envs/${encodeURIComponent(jname)}/incoming`, {}))).incoming as { jid: number; channel: string };
      // the state goes over the destination agent's channel, authenticated with its token
      channel = await runStep('channel', here, () => openMigrationChannel(client, inc.channel, join(ctx.wd.runDir, `migrate-${jname}.sock`)));
    } catch (e) {
      await cancelThere();
      const cause = toBerthError(e);
      throw new BerthError('E_MIGRATE_REFUSED', `node ${dst} cannot receive ${jname} live: ${cause.message}; nothing was changed (${jname} stays running on ${here})`, cause.exitCode, { hint: cause.hint, details: { steps, cause: cause.toJSON() }, cause });
    }
    let handed = false;
    let adopted = false;
    let pausedAt = 0;
    let dropped: Promise<void> | undefined;
    let resumed: Promise<unknown> | undefined;
    // set when the handover could not be taken back: the env stays paused here (no lease)
    let keepPaused: BerthError | undefined;
    let stats;
    try {
      stats = await runStep('send', here, () => engine.liveSend!(eenv, channel.uri, async () => {
        pausedAt = performance.now();
        generation = (await runStep('handover', here, () => handoverEnvLease(ctx, row, dst))).generation;
        handed = true;
        try {
          await runStep('adopt', dst, () => client.call('POST', `/v1/envs/${encodeURIComponent(jname)}/adopt`, { generation, mounted: true, return_to: here, running_jid: inc.jid, digest }));
        } catch (e) {
          const back = toBerthError(e).details?.handedBack as { node: string; generation: number } | undefined;
          if (back?.node === here) { ctx.inv.setGeneration(jname, back.generation); await journal(ctx, 'own', { ...row, generation: back.generation }, 'handed back'); handed = false; throw e; }
          // no adopt there and no lease given back (its agent did not answer): the paused
          // destination resumes only when asked, after a lease check, so this node may take
          // the handover back; the env resumes here only when it holds the lease again
          try {
            const rec = await runStep('reclaim', here, () => reclaimEnvLease(ctx, row, dst));
            ctx.inv.setGeneration(jname, rec.generation);
            await journal(ctx, 'own', { ...row, generation: rec.generation }, 'reclaimed');
            generation = rec.generation;
            handed = false;
          } catch (r) {
            keepPaused = toBerthError(r);
            throw Object.assign(toBerthError(e), { keepPaused: true });
          }
          throw e;
        }
        adopted = true;
        // the run is the destination's now: this node's row goes before the source's qemu quits
        // (its run monitor must not tear down a run that moved)
        ctx.inv.delete(jname);
        // while the last of the state is sent: the journal entry, and the destination's resume
        // (it waits there until its incoming state is complete, then runs the env; the source
        // stays paused until it quits)
        dropped = journal(ctx, 'drop', row, 'handed');
        resumed = runStep('resume', dst, () => client.call('POST', `/v1/envs/${encodeURIComponent(jname)}/resume`, {}));
        resumed.catch(() => undefined);
      }));
    } catch (e) {
      await channel.close();
      await Promise.allSettled([dropped, resumed]);
      const err = toBerthError(e);
      if (!adopted) {
        await cancelThere();
        if (keepPaused) {
          throw fail('send', err, `${jname} is paused on ${here}, not resumed: node ${dst} holds its lease (generation ${generation}) and this node could not take it back (${keepPaused.message})`,
            `once ${dst} answers: berth jmigrate jname=${jname} dst=${dst} live=1 again, or stop it here (berth bstop jname=${jname}) and start it on ${dst}`);
        }
        throw fail('send', err, handed ? `node ${dst} holds the lease of ${jname} (generation ${generation}); ${jname} runs on ${here} again` : `${jname} runs on ${here} again`, handed ? `on ${dst}: berth jls jname=${jname}` : err.hint);
      }
      throw fail('send', err, `node ${dst} owns ${jname} (generation ${generation}) but the state did not complete`, `on ${dst}: berth bstop jname=${jname}; berth bstart jname=${jname}`);
    }
    try {
      await resumed;
    } finally {
      // closed only now: the relay may still carry the last bytes when the source is done
      await channel.close();
    }
    const downtimeMs = Math.round(performance.now() - pausedAt);
    await dropped;
    await engine.cleanup(eenv).catch(() => undefined);
    await runStep('unmount', here, unmountHere).catch(() => undefined);
    return { jname, from: here, to: dst, wasRunning, steps, downtimeMs, totalMs: ms(tStart), generation, timings: { stop: [], adopt: [] }, live: stats };
  }
}

