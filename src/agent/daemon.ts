/**
 * `berth agent`: the per-node daemon (design/product.md "Ownership: leases and fencing").
 * Runs in the foreground (systemd unit share/systemd/berth-agent.service, FreeBSD rc.d script
 * share/rc.d/berth_agent) and does, with one opened node:
 *
 * 1. **Heartbeats.** Every lease_ttl/3 seconds it renews (src/lease.ts renewLease) the lease of
 *    every env in the inventory that has one, at the generation the inventory records. Each env
 *    is renewed on its own (one slow or hung env never delays the others' heartbeats), and an
 *    env whose previous renewal has not finished is skipped for that round.
 * 2. **Fencing.** When a renewal says E_LEASE_SUPERSEDED (another node took the env over) the
 *    env is fenced (src/agent/fence.ts): its running copy is killed at once with a full
 *    teardown, a marker is written, the row is kept (status Off, stale generation: every
 *    lease-checked operation refuses it with exit 4), and the agent never renews it or touches
 *    its storage again. Not a fence: a release or a new claim made by this node itself
 *    (junregister, jremove, jmigrate, jregister in progress). E_LEASE_MISSING (no record of
 *    this node's generation) does NOT fence: storage that hooks mount per env is simply not
 *    mounted while the env is stopped or being started/stopped, so its lease is not visible;
 *    it is logged (warn when the env runs) and retried. Other lease errors (I/O) are logged and
 *    retried next round. A takeover is seen at the first renewal after it, so within
 *    lease_ttl/3 (+ the renewal's own time).
 * 3. **Reconcile.** In the same round, an env the inventory says On whose process is gone (its
 *    monitor died too) is torn down (src/lifecycle.ts reconcileEnv; the teardown is claimed
 *    exactly once across monitor, jstop and agent).
 * 4. **Autostart.** Once at start, after the first round (so fencing is decided first), every
 *    `astart=1` env that is Off is started, only if this node holds its lease at the recorded
 *    generation (checkLease; when the lease is not visible because a hook mounts the storage,
 *    startEnv's own check after mnt_start decides).
 * 5. **Heartbeat observations** for `cluster ls`: every lease_ttl seconds it reads every lease
 *    on the shared storage and records when this node saw each heartbeat change
 *    (src/cluster.ts). Every lease_ttl, not every lease_ttl/3 like renewals: each node reads
 *    every env's lease, so this is the agent's biggest load on the storage, and it only feeds
 *    a display (takeover watches the heartbeat itself).
 * 6. **API** (src/agent/api.ts) on the unix socket `var/run/agent.sock` (mode 0600) and, when
 *    api_port (setting or --api_port) is not 0, on 127.0.0.1:<api_port>. Bearer token from
 *    etc/api.token (must not be readable by group or others).
 *
 * SIGTERM/SIGINT: stop the rounds, stop serving, wait (at most 30 s) for operations in
 * progress, remove the socket, exit 0. Envs are NOT stopped: they keep running, and their
 * node's run monitor (src/monitor.ts) tears each down when it ends; the next agent picks up heartbeats.
 * A second agent on the same workdir is refused (E_AGENT_RUNNING, exit 4): the socket answers.
 */
import { lstatSync, statSync } from 'node:fs';
import { chmod, mkdir, unlink } from 'node:fs/promises';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import { BerthError, EXIT, ownedError, toBerthError, usageError } from '../errors.js';
import { readApiToken } from '../initenv.js';
import { STATUS, type EnvRow } from '../inventory.js';
import { checkLease, readLeaseState, renewLease, type RenewMemo } from '../lease.js';
import { effectiveHooks, reconcileEnv, startEnv } from '../lifecycle.js';
import { getLogger } from '../log.js';
import { openNode, type NodeCtx } from '../node.js';
import { heartbeatKey, observeLeases } from '../cluster.js';
import { createApi } from './api.js';
import { fenceRun, isFenced, writeFenceMarker, type FenceMarker } from './fence.js';
import { nodeOps } from './ops.js';

/** Options of {@link Agent.open}. */
export interface AgentOptions {
  /** workdir (default BERTH_WORKDIR or the platform default) */
  workdir?: string;
  /** loopback TCP port; overrides the api_port setting; 0 = unix socket only */
  apiPort?: number;
  /** seconds to wait for operations in progress on shutdown (default 30) */
  shutdownGraceSec?: number;
}

/** Where the agent listens. */
export interface AgentEndpoints {
  socket: string;
  /** the loopback TCP port, when enabled */
  port?: number;
}


async function log(level: 'info' | 'warn' | 'error' | 'debug', obj: Record<string, unknown>, msg: string): Promise<void> {
  (await getLogger())[level]({ component: 'agent', ...obj }, msg);
}

/** True when something answers on the unix socket `path`. */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

function listen(server: Server, ...args: [string] | [number, string]): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => { server.off('listening', onListening); reject(e); };
    const onListening = () => { server.off('error', onError); resolve(); };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(...(args as [string]));
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}

/** The node agent. */
export class Agent {
  /** lease renewal (and reconcile, observation) period in ms: lease_ttl/3 */
  readonly periodMs: number;
  private servers: Server[] = [];
  private timers: NodeJS.Timeout[] = [];
  /** per-env renewal/fence/reconcile in progress */
  private inflight = new Map<string, Promise<void>>();
  /** other work to wait for on shutdown (API operations, autostart) */
  private tasks = new Set<Promise<unknown>>();
  private stopping = false;
  private observing = false;
  private lastError = new Map<string, string>();
  /** heartbeat keys this agent wrote since the last observation (observeLeases need not read them) */
  private renewed = new Map<string, string>();
  /** what each env's previous renewal verified (src/lease.ts RenewMemo) */
  private memos = new Map<string, RenewMemo>();
  private socketIno?: number;
  endpoints?: AgentEndpoints;

  private constructor(readonly ctx: NodeCtx, private readonly token: string, private readonly opts: AgentOptions) {
    this.periodMs = Math.max(100, Math.round((ctx.settings.lease_ttl * 1000) / 3));
  }

  /**
   * Opens the node and reads the token.
   * @throws BerthError E_NOT_INITIALISED (1), E_NO_TOKEN (1), E_TOKEN_MODE (1), E_BAD_VALUE (2: api port)
   */
  static async open(opts: AgentOptions = {}): Promise<Agent> {
    if (opts.apiPort !== undefined && (!Number.isInteger(opts.apiPort) || opts.apiPort < 0 || opts.apiPort > 65535)) {
      throw usageError('E_BAD_VALUE', `bad api_port=${JSON.stringify(opts.apiPort)}: expected 0 (none) or a TCP port 1-65535`);
    }
    const ctx = openNode(opts.workdir);
    try {
      let token: string;
      try {
        token = await readApiToken(ctx.wd);
      } catch (e) {
        throw new BerthError('E_NO_TOKEN', `cannot read the API token ${ctx.wd.apiToken}: ${(e as Error).message}`, EXIT.FAILURE, { hint: `re-run: berth initenv workdir=${ctx.wd.root} (it writes a missing token)` });
      }
      if (!token) throw new BerthError('E_NO_TOKEN', `the API token ${ctx.wd.apiToken} is empty`, EXIT.FAILURE, { hint: `delete it and re-run berth initenv workdir=${ctx.wd.root}` });
      if ((statSync(ctx.wd.apiToken).mode & 0o077) !== 0) {
        throw new BerthError('E_TOKEN_MODE', `the API token ${ctx.wd.apiToken} is readable by group or others`, EXIT.FAILURE, { hint: `chmod 600 ${ctx.wd.apiToken}` });
      }
      return new Agent(ctx, token, opts);
    } catch (e) {
      ctx.close();
      throw e;
    }
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.tasks.add(p);
    const done = () => { this.tasks.delete(p); };
    p.then(done, done);
    return p;
  }

  /**
   * Starts serving and the periodic rounds; runs the first round and then autostart in the
   * background. @returns where it listens
   * @throws BerthError E_AGENT_RUNNING (4), E_LISTEN (1)
   */
  async start(): Promise<AgentEndpoints> {
    const { ctx } = this;
    const sock = ctx.wd.agentSocket;
    if (Buffer.byteLength(sock) > 107) throw usageError('E_SOCKET_PATH', `the socket path ${sock} is longer than 107 bytes (a unix socket limit); use a shorter workdir path`);
    await mkdir(ctx.wd.runDir, { recursive: true });
    let st: ReturnType<typeof lstatSync> | undefined;
    try { st = lstatSync(sock); } catch { st = undefined; }
    if (st) {
      if (!st.isSocket()) throw new BerthError('E_LISTEN', `${sock} exists and is not a socket; refusing to replace it`, EXIT.FAILURE, { hint: `remove it if it is not needed: rm ${sock}` });
      if (await socketAnswers(sock)) {
        throw ownedError('E_AGENT_RUNNING', `an agent already serves ${sock}`, { hint: 'stop it first (one agent per workdir)' });
      }
      await unlink(sock); // stale: its agent died
    }
    const app = createApi({
      token: this.token,
      ops: nodeOps(ctx, (p) => this.track(p)),
      onRequest: (r) => { void log(r.status >= 500 ? 'warn' : 'info', r, 'api'); },
    });
    const unixServer = createAdaptorServer({ fetch: app.fetch }) as Server;
    const oldMask = process.umask(0o077);
    try {
      await listen(unixServer, sock);
    } catch (e) {
      throw new BerthError('E_LISTEN', `cannot listen on ${sock}: ${(e as Error).message}`, EXIT.FAILURE, { cause: e });
    } finally {
      process.umask(oldMask);
    }
    await chmod(sock, 0o600);
    this.socketIno = statSync(sock).ino;
    this.servers.push(unixServer);
    const endpoints: AgentEndpoints = { socket: sock };
    const port = this.opts.apiPort ?? ctx.settings.api_port;
    if (port) {
      const tcp = createAdaptorServer({ fetch: app.fetch }) as Server;
      try {
        await listen(tcp, port, '127.0.0.1');
      } catch (e) {
        await this.closeServers();
        await this.removeSocket();
        throw new BerthError('E_LISTEN', `cannot listen on 127.0.0.1:${port}: ${(e as Error).message}`, EXIT.FAILURE, { hint: 'choose another api_port', cause: e });
      }
      this.servers.push(tcp);
      endpoints.port = port;
    }
    this.endpoints = endpoints;
    await log('info', { node: ctx.nodename, workdir: ctx.wd.root, socket: sock, port: endpoints.port, leaseTtl: ctx.settings.lease_ttl, periodMs: this.periodMs }, 'agent started');
    this.timers.push(setInterval(() => this.round(), this.periodMs));
    this.timers.push(setInterval(() => void this.observe(), this.ctx.settings.lease_ttl * 1000));
    void this.track((async () => {
      await this.round();
      await this.settleRound();
      await this.autostart();
      await this.observe();
    })().catch((e) => log('error', { err: String(e) }, 'first round failed')));
    return endpoints;
  }

  /** Waits until the renewals in progress are done. */
  private async settleRound(): Promise<void> {
    await Promise.allSettled([...this.inflight.values()]);
  }

  /** One round: renew (fence) and reconcile each env with a lease, each on its own. */
  async round(): Promise<void> {
    if (this.stopping) return;
    let rows: EnvRow[];
    try {
      rows = this.ctx.inv.list();
    } catch (e) {
      await log('error', { err: String(e) }, 'cannot read the inventory');
      return;
    }
    for (const row of rows) {
      if (row.generation <= 0 || this.inflight.has(row.jname)) continue;
      const p = this.envRound(row.jname).catch((e) => log('error', { jname: row.jname, err: String(e) }, 'round failed'))
        .finally(() => this.inflight.delete(row.jname));
      this.inflight.set(row.jname, p);
    }
  }

  private async envRound(jname: string): Promise<void> {
    const { ctx } = this;
    const row = ctx.inv.get(jname);
    if (!row || row.generation <= 0) { this.memos.delete(jname); return; }
    if (isFenced(ctx, jname)) {
      // never renew a fenced lease; only kill a copy that got started anyway (a start that
      // passed its lease check just before the takeover)
      if (row.status === STATUS.ON && row.run_id) await this.fenceStop(row, 'still running after fencing');
      return;
    }
    try {
      let memo = this.memos.get(jname);
      if (!memo || (memo.generation !== undefined && memo.generation !== row.generation)) this.memos.set(jname, (memo = {}));
      const rec = await renewLease(ctx.wd.env(jname).lease, { node: ctx.nodename, generation: row.generation, uuid: row.uuid }, memo);
      this.renewed.set(jname, heartbeatKey({ generation: rec.generation, holder: rec })!);
      this.lastError.delete(jname);
    } catch (e) {
      this.memos.delete(jname);
      const err = toBerthError(e);
      if (err.code === 'E_LEASE_SUPERSEDED') {
        await this.fence(row, err);
        return;
      }
      if (this.lastError.get(jname) !== err.code) {
        this.lastError.set(jname, err.code);
        // E_LEASE_MISSING: the lease is not visible (storage mounted by a hook only while the
        // env runs or is being started/stopped) or was wiped; nothing proves another owner
        const running = row.status === STATUS.ON;
        await log(err.code === 'E_LEASE_MISSING' && !running ? 'info' : 'warn', { jname, code: err.code, err: err.message, status: row.status }, 'cannot renew the lease; retrying every round');
      }
    }
    const now = ctx.inv.get(jname);
    if (now && now.status === STATUS.ON && now.run_id && now.generation === row.generation) {
      if (await reconcileEnv(ctx, now)) await log('info', { jname }, 'reconciled: the env had ended without a teardown; torn down');
    } else if (now && now.status === STATUS.MAINTENANCE) {
      // a claim left by a berth command that died mid-operation (kill -9, SIGINT)
      if (await reconcileEnv(ctx, now)) await log('info', { jname }, 'recovered: a berth command died mid-operation; its leftovers were torn down');
    }
  }

  /** Fences `row` (see src/agent/fence.ts): marker first, then the running copy is killed. */
  private async fence(row: EnvRow, err: BerthError): Promise<void> {
    const { ctx } = this;
    const cur = ctx.inv.get(row.jname);
    if (!cur || cur.generation !== row.generation || cur.uuid !== row.uuid) return; // unregistered or re-registered meanwhile
    const t0 = performance.now();
    const st = await readLeaseState(ctx.wd.env(row.jname).lease).catch(() => undefined);
    if (st?.released && st.released.node === ctx.nodename && st.released.released === row.generation) {
      // this node let it go itself (junregister, jremove, jmigrate in progress): not a fence
      return;
    }
    if (st?.holder?.node === ctx.nodename) return; // this node re-registered it (a new row follows)
    const holder = st?.holder;
    const marker: FenceMarker = {
      jname: row.jname, uuid: row.uuid, generation: row.generation,
      current: typeof err.details?.current === 'number' ? err.details.current : holder?.generation,
      owner: holder?.node, reason: err.code, at: new Date().toISOString(), stopped: false,
    };
    await writeFenceMarker(ctx.wd, marker);
    if (cur.status === STATUS.ON && cur.run_id) {
      marker.stopped = await this.fenceStop(cur, err.message);
      await writeFenceMarker(ctx.wd, marker);
    }
    await log('warn', { jname: row.jname, generation: row.generation, current: marker.current, owner: marker.owner, stopped: marker.stopped, ms: Math.round(performance.now() - t0), reason: err.code },
      `fenced: this node no longer holds the lease of ${row.jname}; it will not be renewed or touched again`);
  }

  private async fenceStop(row: EnvRow, why: string): Promise<boolean> {
    const t0 = performance.now();
    try {
      const did = await fenceRun(this.ctx, row.jname, row.run_id!);
      if (did) await log('warn', { jname: row.jname, ms: Math.round(performance.now() - t0), why }, 'fenced env stopped (killed, torn down)');
      return did;
    } catch (e) {
      await log('error', { jname: row.jname, err: String(e) }, 'fencing teardown failed');
      return true;
    }
  }

  /** Starts every astart=1 env that is Off, only when this node holds its lease. */
  async autostart(): Promise<void> {
    const { ctx } = this;
    for (const row of ctx.inv.list()) {
      if (this.stopping) return;
      if (row.conf.astart !== '1' || row.status !== STATUS.OFF || isFenced(ctx, row.jname)) continue;
      try {
        await checkLease(ctx.wd.env(row.jname).lease, { node: ctx.nodename, generation: row.generation, uuid: row.uuid });
      } catch (e) {
        const err = toBerthError(e);
        if (err.code === 'E_LEASE_SUPERSEDED') { await this.fence(row, err); continue; }
        const hooked = effectiveHooks(ctx, row.conf).start !== '0';
        if (!(err.code === 'E_LEASE_MISSING' && hooked)) {
          await log('warn', { jname: row.jname, code: err.code, err: err.message }, 'autostart skipped: this node does not hold the lease');
          continue;
        }
        // the lease is on storage a hook mounts: startEnv checks it after mnt_start
      }
      try {
        const t0 = performance.now();
        await startEnv(ctx, row.jname);
        await log('info', { jname: row.jname, ms: Math.round(performance.now() - t0) }, 'autostarted');
      } catch (e) {
        const err = toBerthError(e);
        await log('warn', { jname: row.jname, code: err.code, err: err.message }, 'autostart failed');
        if (err.code === 'E_LEASE_SUPERSEDED') await this.fence(row, err);
      }
    }
  }

  /** Records heartbeat sightings of every lease on the storage (for cluster ls). */
  async observe(): Promise<void> {
    if (this.observing || this.stopping) return;
    this.observing = true;
    try {
      const own = this.renewed;
      this.renewed = new Map();
      await observeLeases(this.ctx, Date.now, own);
    } catch (e) {
      await log('debug', { err: String(e) }, 'lease observation failed');
    } finally {
      this.observing = false;
    }
  }

  private async closeServers(): Promise<void> {
    await Promise.all(this.servers.map(closeServer));
    this.servers = [];
  }

  private async removeSocket(): Promise<void> {
    try {
      if (statSync(this.ctx.wd.agentSocket).ino === this.socketIno) await unlink(this.ctx.wd.agentSocket);
    } catch { /* gone */ }
  }

  /** Stops rounds and serving, waits for work in progress, removes the socket, closes the node. Envs keep running. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    const closing = this.closeServers();
    const grace = (this.opts.shutdownGraceSec ?? 30) * 1000;
    const pending = Promise.allSettled([...this.inflight.values(), ...this.tasks, closing]);
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([pending.then(() => true), new Promise<boolean>((r) => { timer = setTimeout(() => r(false), grace); })]);
    clearTimeout(timer);
    await this.removeSocket();
    if (finished) this.ctx.close();
    await log('info', { node: this.ctx.nodename, clean: finished }, 'agent stopped');
  }
}

/**
 * Runs the agent until SIGTERM or SIGINT, then stops it (envs keep running).
 * @param onReady called once it listens
 */
export async function runAgent(opts: AgentOptions = {}, onReady?: (e: AgentEndpoints) => void): Promise<AgentEndpoints> {
  const agent = await Agent.open(opts);
  let endpoints: AgentEndpoints;
  try {
    endpoints = await agent.start();
  } catch (e) {
    await agent.stop().catch(() => undefined);
    throw e;
  }
  onReady?.(endpoints);
  await new Promise<void>((resolve) => {
    const onSignal = (sig: NodeJS.Signals) => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      void log('info', { signal: sig }, 'stopping');
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  await agent.stop();
  return endpoints;
}
