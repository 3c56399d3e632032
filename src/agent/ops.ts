/**
 * The agent's API operations over an opened node (src/agent/api.ts AgentOps): thin calls into
 * the lifecycle (src/lifecycle.ts) and register (src/register.ts) code, plus what the agent
 * knows about fencing (src/agent/fence.ts).
 */
import { existsSync } from 'node:fs';
import { readSharedDescriptor } from '../descriptor.js';
import { BerthError, EXIT } from '../errors.js';
import { berthVersion } from '../pkg.js';
import { STATUS } from '../inventory.js';
import { readLeaseState } from '../ownership/record.js';
import { engineEnv } from '../engines/types.js';
import { getEnv } from '../lifecycle/envs.js';
import { listEnvs } from '../lifecycle/list.js';
import { startEnv } from '../lifecycle/start.js';
import { stopEnv } from '../lifecycle/stop.js';
import { type EnvInfo } from '../lifecycle/types.js';
import type { NodeCtx } from '../node.js';
import { registerEnv, unregisterEnv } from '../lifecycle/register.js';
import { adoptEnv, cancelAdopt, prepareAdopt, type AdoptPlan } from '../lifecycle/adopt.js';
import { abortIncoming, resumeIncoming, startIncoming } from '../lifecycle/live.js';
import { dropStream, expectStream } from './stream.js';
import { readSharedText, revalidate } from '../sharedfs.js';
import { explainNotFound } from '../nodes/owner.js';
import { readSettings } from '../settings.js';
import type { AdoptBody, AgentOps, PrepareBody, RegisterBody, RunBody } from './api.js';
import { checkFamily } from '../engines/registry.js';
import { clearFenceMarker, forgetFencedEnv, isFenced, listFenceMarkers, type FenceMarker } from '../ownership/fence.js';

/** An env as the API reports it: EnvInfo plus running and fencing state. */
export interface EnvStatus extends EnvInfo {
  /** the engine reports the env's process alive */
  running: boolean;
  /** set when the agent fenced this env (its lease generation moved on) */
  fenced: FenceMarker | null;
}

/** What a node sees of an env on the shared storage (GET /v1/envs/:jname/storage). */
export interface StorageView {
  jname: string;
  /** this node has an inventory row for it */
  registered: boolean;
  /** that row is a stale one of a fenced env (the lease moved on) */
  fenced: boolean;
  /** the descriptor in the env's ownership record as seen here (null: not visible) */
  descriptor: { uuid: string; emulator: string } | null;
  /** jails-rcconf/rc.conf_<jname> exists here */
  rcconf: boolean;
  /** the lease as seen here (null: no lease dir visible) */
  lease: { generation: number; node: string | null } | null;
  /** this node's default mnt_start ('0': none) */
  defaultMntStart: string;
}

/** Seconds a prepare's mount waits for its adopt before it is undone (a source that died mid-jmigrate). */
export const PREPARE_TTL_SEC = 120;

/** Builds the AgentOps of a node. `track` wraps every mutating operation (the agent waits for them on shutdown). */
export function nodeOps(ctx: NodeCtx, track: <T>(p: Promise<T>) => Promise<T> = (p) => p): AgentOps {
  // storage mounted by a prepare, waiting for its adopt: undone after PREPARE_TTL_SEC
  const prepared = new Map<string, { timer: NodeJS.Timeout; plan: AdoptPlan }>();
  const unprepare = (jname: string) => { clearTimeout(prepared.get(jname)?.timer); const p = prepared.get(jname)?.plan; prepared.delete(jname); return p; };
  const statusOf = async (e: EnvInfo): Promise<EnvStatus> => {
    const row = ctx.inv.get(e.jname);
    let running = false;
    if (row && row.status === STATUS.ON) {
      const engine = await ctx.engine(row.emulator);
      running = await engine.isRunning(engineEnv(ctx, row.jname, row.conf), row.jid);
    }
    return { ...e, running, fenced: row ? isFenced(ctx, row.jname) ?? null : null };
  };
  // Each operation reads etc/berth.conf again, as a berth command would (mnt_timeout,
  // default_mnt_start ... changed since the agent started apply at once), except lease_ttl and
  // api_port: the agent heartbeats and listens with the ones it started with until it restarts.
  // A mutating operation: tracked (the agent waits for it on shutdown), with fresh settings.
  const op = <T>(fn: () => Promise<T>): Promise<T> => track((async () => {
    ctx.settings = { ...readSettings(ctx.wd.conf), lease_ttl: ctx.settings.lease_ttl, api_port: ctx.settings.api_port, lease_dir: ctx.settings.lease_dir };
    return fn();
  })());
  // an env this node lacks but another known node owns is reported as that (exit 4), as the CLI does
  const explained = async <T>(jname: string, fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof BerthError) throw await explainNotFound(ctx, jname, e);
      throw e;
    }
  };
  // a jstart/jstop handed over by the CLI refuses a VM as the CLI would (and bstart/bstop a jail)
  const ofFamily = (jname: string, body: RunBody, verb: 'start' | 'stop') => {
    const row = ctx.inv.get(jname);
    if (row && body.family) checkFamily(jname, row.emulator, body.family, verb);
  };
  return {
    nodename: ctx.nodename,
    async info() {
      return { version: berthVersion(), leaseTtl: ctx.settings.lease_ttl, pid: process.pid, fenced: [...listFenceMarkers(ctx.wd).keys()] };
    },
    async list({ unregistered }) {
      return Promise.all((await listEnvs(ctx, { unregistered })).map(async (e) => (e.status === 'Unregister' ? { ...e, running: false, fenced: null } : statusOf(e))));
    },
    async status(jname) {
      const row = getEnv(ctx, jname);
      const [info] = await listEnvs(ctx, { patterns: [row.jname] });
      return statusOf(info!);
    },
    async storage(jname): Promise<StorageView> {
      const p = ctx.wd.env(jname);
      const row = ctx.inv.get(jname);
      let descriptor: StorageView['descriptor'] = null;
      if (existsSync(p.recordDescriptor)) {
        try {
          const d = readSharedDescriptor(p.recordDescriptor, ctx.wd.root);
          descriptor = { uuid: d.uuid ?? '', emulator: d.emulator ?? '' };
        } catch { /* unreadable: reported as not visible */ }
      }
      let lease: StorageView['lease'] = null;
      if (existsSync(p.lease)) {
        const st = await readLeaseState(p.lease);
        lease = { generation: st.generation, node: st.holder?.node ?? null };
      }
      const fenced = !!row && !!lease && (lease.node !== ctx.nodename || lease.generation !== row.generation);
      return { jname, registered: !!row, fenced, descriptor, rcconf: existsSync(p.rcconfFile), lease, defaultMntStart: ctx.settings.default_mnt_start };
    },
    start: (jname, body: RunBody = {}) => op(async () => statusOf(await explained(jname, async () => { ofFamily(jname, body, 'start'); return startEnv(ctx, jname); }))),
    stop: (jname, body: RunBody = {}) => op(async () => statusOf(await explained(jname, async () => { ofFamily(jname, body, 'stop'); return stopEnv(ctx, jname); }))),
    register: (jname, body: RegisterBody) => op(async () => {
      // a stale row of a fenced env (this node lost it earlier) must not block its return
      if (ctx.inv.get(jname)) await forgetFencedEnv(ctx, jname);
      // the descriptors were just written through another node's mount (see revalidate)
      const p = ctx.wd.env(jname);
      for (const f of [p.rcconfFile, p.descriptor, p.recordDescriptor]) revalidate(f);
      const r = await registerEnv(ctx, jname, { force: body.force, mntStart: body.mnt_start, mntStop: body.mnt_stop, keepStorage: body.keep_storage });
      await clearFenceMarker(ctx.wd, jname);
      return r;
    }),
    unregister: (jname) => op(async () => {
      const r = await unregisterEnv(ctx, jname);
      await clearFenceMarker(ctx.wd, jname);
      return r;
    }),
    prepare: (jname, body: PrepareBody) => op(async () => {
      for (const f of [ctx.wd.env(jname).recordDescriptor, ctx.wd.env(jname).descriptor]) revalidate(f);
      const plan = await prepareAdopt(ctx, jname, { uuid: body.uuid, mount: body.mount, digest: body.digest });
      if (plan.mounted) {
        unprepare(jname);
        const timer = setTimeout(() => { prepared.delete(jname); void track(cancelAdopt(ctx, jname).catch(() => undefined)); }, PREPARE_TTL_SEC * 1000);
        timer.unref();
        prepared.set(jname, { timer, plan });
      }
      return plan;
    }),
    cancel: (jname) => op(async () => {
      unprepare(jname);
      dropStream(jname);
      await abortIncoming(ctx, jname);
      await cancelAdopt(ctx, jname);
      return {};
    }),
    adopt: (jname, body: AdoptBody) => op(async () => {
      const plan = unprepare(jname);
      const mounted = !!body.mounted && !!plan;
      for (const f of [ctx.wd.env(jname).recordDescriptor, ctx.wd.env(jname).descriptor]) revalidate(f);
      const r = await adoptEnv(ctx, jname, { generation: body.generation, start: body.start, mounted, returnTo: body.return_to, plan: mounted ? plan : undefined, runningJid: body.running_jid, digest: body.digest });
      await clearFenceMarker(ctx.wd, jname);
      return r;
    }),
    incoming: (jname) => op(async () => {
      const p = prepared.get(jname);
      if (p) { clearTimeout(p.timer); const timer = setTimeout(() => { prepared.delete(jname); void track(Promise.resolve(dropStream(jname)).then(() => abortIncoming(ctx, jname)).then(() => cancelAdopt(ctx, jname)).catch(() => undefined)); }, PREPARE_TTL_SEC * 1000); timer.unref(); p.timer = timer; }
      const inc = await startIncoming(ctx, jname, p?.plan.digest);
      // the state comes through this agent's migration channel (src/agent/stream.ts), relayed
      // to the engine's node-local socket; the source is told the channel, not the socket
      if (!inc.uri.startsWith('unix:')) throw new BerthError('E_INTERNAL', `the ${jname} engine listens on ${inc.uri}, not a unix socket`, EXIT.FAILURE);
      expectStream(jname, inc.uri.slice('unix:'.length));
      return { jid: inc.jid, channel: `/v1/envs/${encodeURIComponent(jname)}/migration` };
    }),
    resume: (jname) => op(async () => { await resumeIncoming(ctx, jname); return {}; }),
    async probe(node, id) {
      try { return readSharedText(ctx.own.probeFile(node, id)); } catch { return ''; }
    },
  };
}

/** True when `e` is a lease error saying this node's generation is no longer current. */
export function isSuperseded(e: unknown): boolean {
  return e instanceof BerthError && e.code === 'E_LEASE_SUPERSEDED';
}
