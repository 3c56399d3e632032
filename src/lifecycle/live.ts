/**
 * The destination side of a live migration (jmigrate live=1, src/lifecycle/migrate.ts), run by
 * the destination's agent: the env started paused, waiting for its state (Engine.liveIncoming),
 * undone when the migration fails, resumed once the state is complete (Engine.liveResume).
 * Between those the source hands the lease over and the destination adopts the run
 * (adoptEnv with runningJid).
 */
import type { EnvConf } from '../descriptor.js';
import { BerthError, EXIT, usageError } from '../errors.js';
import { engineEnv, type Engine, type EngineEnv } from '../engines/types.js';
import type { NodeCtx } from '../node.js';
import { getEnv } from './envs.js';
import { requireLease } from '../ownership/leases.js';
import { readRecordDescriptor } from './adopt.js';

async function incomingEnv(ctx: NodeCtx, jname: string, digest?: string): Promise<{ engine: Engine; env: EngineEnv }> {
  const p = ctx.wd.env(jname);
  const conf: EnvConf = { ...(await readRecordDescriptor(ctx, jname, digest)).conf, jname, path: p.path, data: p.data, rcconf: p.rcconfFile };
  const engine = await ctx.engine(conf.emulator ?? 'jail');
  return { engine, env: engineEnv(ctx, jname, conf) };
}

/**
 * Starts `jname` here paused, waiting for its running state (after a prepare that mounted its
 * storage), with the descriptor version `digest` that prepare checked (adopt.ts readRecordDescriptor).
 * @returns the run id and the URI the source sends the state to
 * @throws BerthError E_NO_LIVE (2) for an engine without live migration, E_ENV_EXISTS (1), E_RECORD_STALE (1), engine errors (5)
 */
export async function startIncoming(ctx: NodeCtx, jname: string, digest?: string): Promise<{ jid: number; uri: string }> {
  if (ctx.inv.get(jname)) throw new BerthError('E_ENV_EXISTS', `${jname} is already registered on node ${ctx.nodename}`, EXIT.FAILURE);
  const { engine, env } = await incomingEnv(ctx, jname, digest);
  if (!engine.info.liveMigration || !engine.liveIncoming) throw usageError('E_NO_LIVE', `${jname} is a ${engine.name} env: ${engine.name} has no live migration; use jmigrate without live=1`);
  return engine.liveIncoming(env);
}

/** Stops a paused incoming `jname` that was not adopted (the migration failed). Idempotent; never throws. */
export async function abortIncoming(ctx: NodeCtx, jname: string): Promise<void> {
  if (ctx.inv.get(jname)) return;
  try {
    const { engine, env } = await incomingEnv(ctx, jname);
    await engine.stop(env, 0);
    await engine.cleanup(env);
  } catch { /* nothing incoming */ }
}

/**
 * Resumes the adopted `jname` once its state is complete, only while this node holds its
 * lease at the adopted generation (the source may have taken back a handover whose adopt it
 * never heard of: src/ownership/record.ts reclaimHandover).
 * @throws BerthError E_LEASE_* (4) when this node no longer holds it (the env stays paused;
 *   the agent's fencing stops it), E_MIGRATE (5)
 */
export async function resumeIncoming(ctx: NodeCtx, jname: string): Promise<void> {
  const row = getEnv(ctx, jname);
  const engine = await ctx.engine(row.emulator);
  if (!engine.liveResume) throw usageError('E_NO_LIVE', `${row.emulator} has no live migration`);
  await requireLease(ctx, row);
  await engine.liveResume(engineEnv(ctx, jname, row.conf));
}
