/**
 * jmigrate's destination (src/lifecycle/migrate.ts): can this node take an env (prepare, with its
 * storage mounted ahead while the source still runs it), undo that (cancel), and adopt an env
 * whose lease the source handed to this node (adopt).
 */
import { randomUUID } from 'node:crypto';
import { ensureMonitor } from './run-monitor.js';
import { existsSync } from 'node:fs';
import { readSharedDescriptor, readSharedDescriptorAs, writeDescriptorIfChanged, type EnvConf } from '../descriptor.js';
import { BerthError, EXIT, notFound, ownedError } from '../errors.js';
import { checkHookSafe } from '../hooks.js';
import { unmountAllUnder } from '../mounts/types.js';
import { checkJname } from '../names.js';
import type { NodeCtx } from '../node.js';
import { forgetFencedEnv } from '../ownership/fence.js';
import { handoverEnvLease, journal } from '../ownership/leases.js';
import { checkLease, readLease } from '../ownership/record.js';
import type { RegisterResult } from './register.js';
import { startEnv } from './start.js';
import { assembleRoot } from './root.js';
import { effectiveHooks, mntStop, withStorage } from './storage.js';
import { timed, type OpOptions, type StepTiming } from './types.js';

/** What {@link prepareAdopt} checked and mounted at a jmigrate destination. */
export interface AdoptPlan {
  jname: string;
  uuid: string;
  emulator: string;
  /** the storage hooks as they will run here */
  hooks: { start: string; stop: string };
  /** mnt_start ran (the storage stays mounted until adoptEnv or cancelAdopt) */
  mounted: boolean;
  /** the env's root is assembled too (a tree engine's, mounted with the storage): the start skips it */
  rootReady?: boolean;
  /** sha256 of the record's descriptor text the checks were made on (src/sharedfs.ts textDigest) */
  digest: string;
}

/**
 * Reads the descriptor in `jname`'s ownership record at a jmigrate destination, in the version
 * the source holds: `digest` is the sha256 of the text the source reads (PrepareBody.digest).
 * This node's DFS client may still serve the previous version for a while (a `jset` on the
 * source just before the jmigrate; GlusterFS FUSE caches about 1 s): it is read again until it
 * matches, for up to 3 s, so that the env is never mounted or started here with settings the
 * source has already replaced. Without `digest` (an older source) the current read is taken.
 * @returns the settings and the digest of the text they came from
 * @throws BerthError E_NOT_SHARED (1) when this node does not see the record or sees another env
 *   (`uuid` differs), E_RECORD_STALE (1) when it still reads another version after the wait; E_BAD_CONF
 */
export async function readRecordDescriptor(ctx: NodeCtx, jname: string, digest?: string, uuid?: string): Promise<{ conf: EnvConf; digest: string }> {
  const p = ctx.wd.env(jname);
  const notShared = (conf: EnvConf) => new BerthError('E_NOT_SHARED', `node ${ctx.nodename} sees another env named ${jname} in its ownership directory (uuid ${conf.uuid}, the source's ${uuid}): the two nodes do not share it`, EXIT.FAILURE);
  try {
    const r = await readSharedDescriptorAs(p.recordDescriptor, ctx.wd.root, digest);
    if (r && uuid && r.conf.uuid !== uuid) throw notShared(r.conf);
    if (r) return r;
    const seen = readSharedDescriptor(p.recordDescriptor, ctx.wd.root);
    if (uuid && seen.uuid !== uuid) throw notShared(seen);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new BerthError('E_NOT_SHARED', `node ${ctx.nodename} does not see the ownership record of ${jname} (${p.recordDescriptor}): the two nodes do not share the ownership directory`, EXIT.FAILURE,
        { hint: `mount the shared lease_dir (${ctx.wd.leaseDir}) on node ${ctx.nodename}, the same directory as on the source (see berth doctor)` });
    }
    throw e;
  }
  throw new BerthError('E_RECORD_STALE', `node ${ctx.nodename} still reads another version of the descriptor of ${jname} (${p.recordDescriptor}) than the source holds, after 3 s: its view of the ownership directory is stale, or it is not the same directory`, EXIT.FAILURE,
    { hint: `compare the file on both nodes and check how node ${ctx.nodename} mounts the ownership directory (berth doctor); then run jmigrate again` });
}

/**
 * Can this node adopt `jname`, and, with `mount`, its storage mounted ahead (jmigrate's
 * destination, while the source still runs the env: the mounts are made outside the downtime).
 * Reads the descriptor from the env's ownership record (the version of `digest`:
 * {@link readRecordDescriptor}) and checks what a start here needs: not
 * registered here (a stale fenced row is dropped), the same uuid as `uuid`, the base present
 * (tree engines, baserw=0), the engine available on this platform, the hooks present and safe; with `mount`,
 * runs mnt_start and the identity check, and assembles a tree engine's root (binds of the base
 * and the data dirs, src/lifecycle/root.ts: they read the shared storage as it is, so they can be
 * made while the source still runs the env, outside the downtime). Changes nothing else;
 * {@link cancelAdopt} undoes the mounts.
 * @throws BerthError E_ENV_EXISTS (1), E_NO_RCCONF (3), E_NOT_SHARED (1), E_RECORD_STALE (1), E_NO_SUCH_BASE (3),
 *   E_BAD_EMULATOR (2), E_HOOK_UNSAFE / E_HOOK_MISSING (1), hook errors, E_IDENTITY (5)
 */
export async function prepareAdopt(ctx: NodeCtx, jname: string, opts: OpOptions & { uuid?: string; mount?: boolean; digest?: string } = {}): Promise<AdoptPlan> {
  checkJname(jname);
  const p = ctx.wd.env(jname);
  if (ctx.inv.get(jname) && !(await forgetFencedEnv(ctx, jname))) throw new BerthError('E_ENV_EXISTS', `${jname} is already registered on node ${ctx.nodename}`, EXIT.FAILURE, { hint: `see it there: berth jls jname=${jname}` });
  const rec = await readRecordDescriptor(ctx, jname, opts.digest, opts.uuid);
  let conf = rec.conf;
  // (a data= of its own, honoured by jregister, stays as written: src/lifecycle/register.ts resolveDescriptorPaths)
  conf = { ...conf, jname, path: p.path, data: ctx.wd.env(jname, conf.data).data, mount_fstab: p.fstab, rcconf: p.rcconfFile };
  conf.emulator ??= 'jail';
  const engine = await ctx.engine(conf.emulator);
  engine.validate(conf);
  // a tree engine's root is assembled from its base at every start; a disk engine's base was used once, at create
  if (engine.info.root === 'tree' && conf.baserw !== '1' && conf.base && !existsSync(ctx.wd.base(conf.base))) {
    throw notFound('E_NO_SUCH_BASE', `base ${JSON.stringify(conf.base)} of ${jname} is not on node ${ctx.nodename} (${ctx.wd.base(conf.base)})`, { hint: `import the same base on ${ctx.nodename} first (berth base import name=${conf.base} ...)` });
  }
  const hooks = effectiveHooks(ctx, conf);
  for (const h of [hooks.start, hooks.stop]) if (h !== '' && h !== '0') checkHookSafe(h);
  const plan: AdoptPlan = { jname, uuid: conf.uuid ?? '', emulator: conf.emulator, hooks, mounted: false, digest: rec.digest };
  if (!opts.mount) return plan;
  // mounted and checked, and left mounted for the adopt (a failure unmounts again)
  await withStorage(ctx, jname, conf, { action: 'register', uuid: plan.uuid, lease: false, keep: true }, opts, async () => {
    if (engine.info.root === 'tree') {
      try {
        await timed(opts.timings, 'root', () => assembleRoot(ctx, jname, conf));
      } catch (e) {
        await unmountRoot(ctx, jname).catch(() => undefined);
        throw e;
      }
      plan.rootReady = true;
    }
    plan.mounted = true;
  });
  return plan;
}

/** Unmounts what is mounted under the env's root dir jails/<jname> (a prepared root), deepest first. */
async function unmountRoot(ctx: NodeCtx, jname: string): Promise<void> {
  await unmountAllUnder(await ctx.mounts(), ctx.wd.env(jname).path);
}

/** Undoes {@link prepareAdopt}'s mount (mnt_stop), when the adoption does not follow. */
export async function cancelAdopt(ctx: NodeCtx, jname: string, opts: OpOptions = {}): Promise<void> {
  const p = ctx.wd.env(jname);
  let conf: EnvConf;
  try { const c = readSharedDescriptor(p.recordDescriptor, ctx.wd.root); conf = { ...c, jname, data: ctx.wd.env(jname, c.data).data }; } catch { return; }
  if (ctx.inv.get(jname)) return; // adopted after all: its storage is the env's now
  await unmountRoot(ctx, jname);
  await mntStop(ctx, jname, conf, 'register', opts);
}

/**
 * Adopts an env whose lease was handed to this node (jmigrate's destination): checks that the
 * record's generation `generation` is this node's claim, takes the descriptor from the record,
 * mnt_start (unless `mounted`: prepareAdopt mounted it), identity check, descriptor copy in the
 * sysdir, inventory row at that generation; then jstart with `start`, else mnt_stop.
 * On any failure nothing is left here, and with `returnTo` the lease is handed back to that
 * node (the source) at the next generation, named in the error's `details.handedBack`.
 * @throws BerthError E_LEASE_SUPERSEDED / E_LEASE_MISSING (4), E_ENV_EXISTS (1), hook errors,
 *   E_IDENTITY (5), start errors
 */
export async function adoptEnv(ctx: NodeCtx, jname: string, opts: OpOptions & { generation: number; mounted?: boolean; start?: boolean; returnTo?: string; plan?: AdoptPlan; runningJid?: number; digest?: string }): Promise<RegisterResult> {
  // a plan from this process's prepare (its checks done, the storage mounted) is used as it is
  const plan = opts.plan?.jname === jname && opts.plan.mounted ? opts.plan : await prepareAdopt(ctx, jname, { ...opts, mount: !opts.mounted }).catch(async (e) => {
    if (opts.mounted) await cancelAdopt(ctx, jname, opts).catch(() => undefined);
    throw await handBack(e);
  });
  const p = ctx.wd.env(jname);
  let conf: EnvConf = { jname, data: p.data };
  let inserted = false;
  let mounted = true;
  let started = false;
  const t: StepTiming[] = opts.timings ?? [];
  try {
    const rec = await timed(t, 'lease', () => checkLease(p.lease, { node: ctx.nodename, generation: opts.generation, uuid: plan.uuid }));
    conf = await timed(t, 'descriptor', async () => {
      const d = (await readRecordDescriptor(ctx, jname, plan.digest, plan.uuid)).conf;
      const c: EnvConf = { ...d, jname, path: p.path, data: ctx.wd.env(jname, d.data).data, mount_fstab: p.fstab, rcconf: p.rcconfFile };
      c.emulator ??= 'jail';
      await writeDescriptorIfChanged(p.descriptor, c, ctx.wd.root);
      return c;
    });
    ctx.inv.insert({ jname, uuid: plan.uuid, emulator: conf.emulator!, generation: rec.generation, conf });
    inserted = true;
    // the journal entry is written while the env starts (it never throws: journal())
    const journaled = journal(ctx, 'own', { jname, uuid: plan.uuid, generation: rec.generation, emulator: conf.emulator! }, 'handover');
    const result: RegisterResult = { jname, uuid: plan.uuid, generation: rec.generation, tookOver: false, previousOwner: rec.handoverFrom?.node, rcfile: p.recordDescriptor, timings: t };
    try {
      if (opts.runningJid) {
        // a live migration's destination: the env already runs here (liveIncoming); from now on
        // its run is this node's, watched by the run monitor, and its storage stays mounted
        const runId = randomUUID();
        if (!ctx.inv.claimStart(jname, runId)) throw ownedError('E_BUSY', `${jname} is busy`);
        ctx.inv.setRunning(jname, runId, opts.runningJid);
        started = true;
        mounted = false;
        ensureMonitor(ctx);
      } else if (opts.start) {
        started = true; // from here on the start (or its teardown) owns the mount
        mounted = false;
        result.started = await startEnv(ctx, jname, { verbose: opts.verbose, mounted: true, rootReady: plan.rootReady, timings: t });
      } else if (!opts.keepStorage) {
        mounted = false;
        if (plan.rootReady) await unmountRoot(ctx, jname);
        await mntStop(ctx, jname, conf, 'register', opts);
      }
    } finally {
      await journaled;
    }
    return result;
  } catch (e) {
    if (inserted) {
      ctx.inv.delete(jname);
      await journal(ctx, 'drop', { jname, uuid: plan.uuid, generation: opts.generation, emulator: conf.emulator ?? plan.emulator }, 'handed back');
    }
    if (mounted && !started) {
      if (plan.rootReady) await unmountRoot(ctx, jname).catch(() => undefined);
      await mntStop(ctx, jname, { ...conf, mnt_start: plan.hooks.start, mnt_stop: plan.hooks.stop }, 'register', opts).catch(() => undefined);
    }
    throw await handBack(e);
  }

  // gives the lease back to the source when this node holds the handed-over generation
  async function handBack(e: unknown): Promise<unknown> {
    if (!opts.returnTo || !(e instanceof BerthError)) return e;
    try {
      const uuid = (await readLease(ctx.wd.env(jname).lease))?.uuid ?? '';
      const back = await handoverEnvLease(ctx, { jname, generation: opts.generation, uuid }, opts.returnTo);
      (e as { details?: Record<string, unknown> }).details = { ...e.details, handedBack: { node: opts.returnTo, generation: back.generation } };
    } catch { /* not ours (never was, or moved on): nothing to give back */ }
    return e;
  }
}

