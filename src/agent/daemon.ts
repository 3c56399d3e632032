/**
 * `berth agent`: the per-node daemon (design/product.md "Ownership: leases and fencing").
 * Runs in the foreground (systemd unit share/systemd/berth-agent.service, FreeBSD rc.d script
 * share/rc.d/berth_agent) and does, with one opened node:
 *
 * 1. **Heartbeat.** Every lease_ttl/3 seconds it rewrites this node's heartbeat
 *    `<lease_dir>/nodes/<node>/hb` (src/ownership/heartbeat.ts): one write, whatever the number
 *    of envs; it keeps every env this node owns alive, running or stopped, mounted or not. The
 *    heartbeat runs on its own timer, so no slow check or hook delays it.
 * 2. **Fencing.** In the same period it lists its fence notices (`nodes/<node>/notices/`, left by
 *    a node that took an env over: src/ownership/notices.ts) and checks the record of each env
 *    named there; it also checks a few of its own records in turn every period, and all of them
 *    when it starts and after any gap in its own heartbeat longer than lease_ttl/2 (as measured
 *    by its own clock: then another node may have seen it silent). An env whose generation was
 *    superseded is fenced (src/ownership/fence.ts): its running copy is killed at once with a
 *    full teardown, a marker is written, the row is kept (status Off, stale generation: every
 *    lease-checked operation refuses it with exit 4), and the agent never touches its storage
 *    again. Not a fence: a release or a handover made by this node itself (junregister,
 *    jremove, jmigrate in progress). E_LEASE_MISSING (no record of this node's generation)
 *    does not fence: nothing proves another owner; it is logged.
 * 3. **Reconcile.** In the same period, an env the inventory says On whose process is gone (its
 *    monitor died too) is torn down (src/lifecycle.ts reconcileEnv; the teardown is claimed
 *    exactly once across monitor, jstop and agent); a claim left by a dead berth command is
 *    recovered.
 * 4. **Autostart.** Once at start, after the first full check (so fencing is decided first),
 *    every `astart=1` env that is Off is started, only if this node holds its lease.
 * 5. **Journal snapshots.** When this node's ownership journal grew by COMPACT_EVERY entries,
 *    it writes a snapshot of what it owns from its inventory (src/ownership/journal.ts), so that
 *    `cluster ls` on any node reads a few records per node, not one per env.
 * 6. **Heartbeat observations** for `cluster ls`: every lease_ttl seconds it reads every node's
 *    heartbeat and records when this node saw it change (var/run/heartbeats.json).
 * 7. **API** (src/agent/api.ts) on the unix socket `var/run/agent.sock` (mode 0600) and, when
 *    api_port (setting or --api_port) is not 0, on 127.0.0.1:<api_port>. Bearer token from
 *    etc/api.token (must not be readable by group or others). The same servers carry the live
 *    migration channel (src/agent/stream.ts): an authenticated HTTP Upgrade relayed to the
 *    paused destination of `jmigrate live=1`.
 *
 * SIGTERM/SIGINT: stop the periods, stop serving, wait (at most 30 s) for operations in
 * progress, remove the socket, exit 0. Envs are NOT stopped: they keep running, and their
 * node's run monitor (src/monitor.ts) tears each down when it ends; the heartbeat stops, so
 * after lease_ttl other nodes may take this node's envs over with --force.
 * A second agent on the same workdir is refused (E_AGENT_RUNNING, exit 4): the socket answers.
 */
import { existsSync, lstatSync, statSync } from 'node:fs';
import { chmod, mkdir, unlink } from 'node:fs/promises';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import { BerthError, EXIT, ownedError, toBerthError, usageError } from '../errors.js';
import { readApiToken } from '../initenv.js';
import { STATUS, type EnvRow } from '../inventory.js';
import { readLeaseState } from '../ownership/record.js';
import { compactJournal, journal, requireLease } from '../ownership/leases.js';
import { newBootId, writeNodeBeat } from '../ownership/heartbeat.js';
import { clearNotice, listNotices } from '../ownership/notices.js';
import { readNodeIndex } from '../ownership/journal.js';
import { reconcileEnv } from '../lifecycle/teardown.js';
import { startEnv } from '../lifecycle/start.js';
import { getLogger } from '../log.js';
import { openNode, type NodeCtx } from '../node.js';
import { berthVersion } from '../pkg.js';
import { observeNodes } from '../nodes/cluster.js';
import { createApi } from './api.js';
import { serveMigrationStreams } from './stream.js';
import { fenceRun } from '../lifecycle/teardown.js';
import { forgetFencedEnv, isFenced, writeFenceMarker, type FenceMarker } from '../ownership/fence.js';
import { nodeOps } from './ops.js';

/** Own records checked in turn every period, besides notices and full checks (a constant cost per node). */
export const SWEEP_PER_ROUND = 4;
/** Records checked at once during a full check. */
const CHECK_CONCURRENCY = 8;

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
  /** the web console's URL, when console_port is set (docs/console.md) */
  console?: string;
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
  /** heartbeat (and fencing, reconcile) period in ms: lease_ttl/3 */
  readonly periodMs: number;
  private servers: Server[] = [];
  private console?: { url: string; poke(): void; close(): Promise<void> };
  private timers: NodeJS.Timeout[] = [];
  /** work to wait for on shutdown (rounds, API operations, autostart) */
  private tasks = new Set<Promise<unknown>>();
  private stopping = false;
  private observing = false;
  private rounding = false;
  private beating = false;
  private lastError = new Map<string, string>();
  private socketIno?: number;
  /** this agent run's heartbeat identity and counter */
  private readonly boot = newBootId();
  private counter = 0;
  /** performance.now() of the last heartbeat written (0: none yet) */
  private lastBeatOk = 0;
  /** check every own record in the next round (start, and after a gap in the heartbeat) */
  private fullCheck = true;
  private sweepAt = 0;
  private roundsSinceCompactCheck = Infinity;
  /** the last heartbeat written (tests, cluster ls of this node) */
  lastBeat?: { counter: number; at: string };
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
   * Starts serving and the periods; runs the first heartbeat and full check, then autostart,
   * in the background. @returns where it listens
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
      onRequest: (r) => {
        void log(r.status >= 500 ? 'warn' : 'info', r, 'api');
        // an operation (a CLI's jstart handed over, another node's migration step): the console's open pages look now
        if (r.method !== 'GET') this.console?.poke();
      },
    });
    const unixServer = createAdaptorServer({ fetch: app.fetch }) as Server;
    const onStream = (r: Record<string, unknown>) => { void log('info', r, 'migration channel'); };
    serveMigrationStreams(unixServer, this.token, onStream);
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
      serveMigrationStreams(tcp, this.token, onStream);
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
    if (ctx.settings.console_port) {
      try {
        const { startConsole } = await import('./console/server.js');
        this.console = await startConsole(ctx, nodeOps(ctx, (p) => this.track(p)), (p) => this.track(p));
        endpoints.console = this.console.url;
      } catch (e) {
        await this.closeServers();
        await this.removeSocket();
        throw e;
      }
    }
    this.endpoints = endpoints;
    await ctx.own.ensureNode().catch((e) => log('error', { err: String(e), leaseDir: ctx.wd.leaseDir }, 'cannot make this node\'s directory in the ownership directory (is lease_dir mounted? berth doctor)'));
    await log('info', { node: ctx.nodename, workdir: ctx.wd.root, leaseDir: ctx.wd.leaseDir, socket: sock, port: endpoints.port, console: endpoints.console, leaseTtl: ctx.settings.lease_ttl, periodMs: this.periodMs }, 'agent started');
    // the heartbeat first and on its own timer (a long first check must not delay it); the
    // periodic rounds only once the first full check has decided what is fenced, then autostart
    this.timers.push(setInterval(() => void this.beat(), this.periodMs));
    void this.track((async () => {
      await this.beat();
      await this.round();
      if (this.stopping) return;
      this.timers.push(setInterval(() => void this.track(this.round()), this.periodMs));
      this.timers.push(setInterval(() => void this.observe(), this.ctx.settings.lease_ttl * 1000));
      await this.autostart();
      await this.observe();
      await this.syncIndex();
      await this.compactRound(true);
    })().catch((e) => log('error', { err: String(e) }, 'first round failed')));
    return endpoints;
  }

  /**
   * Writes this node's heartbeat. A write after a gap longer than lease_ttl/2 since the last
   * one (by this process's monotonic clock: an agent that was stopped, swapped out, or cut off
   * from the storage) asks the next round for a full check of every own record: another node
   * may have seen this node silent and taken envs over.
   */
  async beat(): Promise<void> {
    if (this.stopping || this.beating) return;
    this.beating = true;
    const { ctx } = this;
    try {
      const b = await writeNodeBeat(ctx.own.beatFile(), { node: ctx.nodename, boot: this.boot, counter: ++this.counter, leaseTtl: ctx.settings.lease_ttl, version: berthVersion() });
      const now = performance.now();
      if (this.lastBeatOk && now - this.lastBeatOk > (ctx.settings.lease_ttl * 1000) / 2) {
        this.fullCheck = true;
        await log('warn', { gapMs: Math.round(now - this.lastBeatOk), leaseTtl: ctx.settings.lease_ttl }, 'heartbeat gap: checking every own record');
      }
      this.lastBeatOk = now;
      this.lastBeat = { counter: b.counter, at: b.at };
      this.lastError.delete('heartbeat');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      if (code === 'ENOENT') await ctx.own.ensureNode().catch(() => undefined);
      if (this.lastError.get('heartbeat') !== code) {
        this.lastError.set('heartbeat', code);
        await log('error', { err: String(e), file: ctx.own.beatFile() }, 'cannot write this node\'s heartbeat; other nodes will see it silent after lease_ttl');
      }
    } finally {
      this.beating = false;
    }
  }

  /**
   * One period: fence notices, own record checks (all of them when a full check is due, else a
   * few in turn), reconcile, journal snapshot. Overlapping rounds are skipped.
   */
  async round(): Promise<void> {
    if (this.stopping || this.rounding) return;
    this.rounding = true;
    try {
      await this.noticesRound();
      await this.checksRound();
      await this.reconcileRound();
      await this.compactRound();
    } catch (e) {
      await log('error', { err: String(e) }, 'round failed');
    } finally {
      this.rounding = false;
    }
  }

  private async noticesRound(): Promise<void> {
    const { ctx } = this;
    for (const n of await listNotices(ctx.own)) {
      const row = ctx.inv.get(n.jname);
      if (row && row.generation === n.generation && row.generation > 0) {
        await log('info', { jname: n.jname, generation: n.generation, by: n.by, newGeneration: n.newGeneration }, 'fence notice: checking the record');
        await this.checkRow(row);
        const now = ctx.inv.get(n.jname);
        // keep a notice whose check could not decide (I/O): look again next period
        if (now && now.generation === n.generation && !isFenced(ctx, n.jname) && this.lastError.has(n.jname)) continue;
      }
      await clearNotice(ctx.own, n.jname, n.generation);
    }
  }

  private async checksRound(): Promise<void> {
    const { ctx } = this;
    const rows = ctx.inv.list().filter((r) => r.generation > 0);
    let batch: EnvRow[];
    if (this.fullCheck) {
      this.fullCheck = false; // a gap during the pass asks for another one
      batch = rows;
    } else {
      batch = [];
      for (let i = 0; i < Math.min(SWEEP_PER_ROUND, rows.length); i++) batch.push(rows[(this.sweepAt + i) % rows.length]!);
      this.sweepAt = rows.length ? (this.sweepAt + batch.length) % rows.length : 0;
    }
    for (let i = 0; i < batch.length; i += CHECK_CONCURRENCY) {
      if (this.stopping) return;
      await Promise.all(batch.slice(i, i + CHECK_CONCURRENCY).map((r) => this.checkRow(r)));
    }
    // a fenced row that is On: a start that passed its lease check just before the takeover
    for (const r of ctx.inv.running()) if (r.run_id && isFenced(ctx, r.jname)) await this.fenceStop(r, 'still running after fencing');
  }

  /** Checks one own record; fences on E_LEASE_SUPERSEDED. Never throws. */
  private async checkRow(row: EnvRow): Promise<void> {
    const { ctx } = this;
    if (isFenced(ctx, row.jname)) {
      // its new owner removed it since: the stale row goes (forgetFencedEnv checks the record is gone)
      if (!existsSync(ctx.wd.env(row.jname).lease) && await forgetFencedEnv(ctx, row.jname)) {
        await log('info', { jname: row.jname, generation: row.generation }, 'dropped the stale row of a fenced env: its new owner removed it');
      }
      return;
    }
    try {
      await requireLease(ctx, row);
      this.lastError.delete(row.jname);
    } catch (e) {
      const err = toBerthError(e);
      if (err.code === 'E_LEASE_SUPERSEDED') {
        this.lastError.delete(row.jname);
        await this.fence(row, err);
        return;
      }
      if (this.lastError.get(row.jname) !== err.code) {
        this.lastError.set(row.jname, err.code);
        await log('warn', { jname: row.jname, code: err.code, err: err.message, status: row.status }, 'cannot check the lease; checking again later');
      }
    }
  }

  private async reconcileRound(): Promise<void> {
    const { ctx } = this;
    for (const row of [...ctx.inv.running(), ...ctx.inv.claimed()]) {
      if (this.stopping) return;
      try {
        if (row.status === STATUS.ON && row.run_id) {
          if (isFenced(ctx, row.jname)) continue;
          if (await reconcileEnv(ctx, row)) await log('info', { jname: row.jname }, 'reconciled: the env had ended without a teardown; torn down');
        } else if (row.status === STATUS.MAINTENANCE) {
          // a claim left by a berth command that died mid-operation (kill -9, SIGINT)
          if (await reconcileEnv(ctx, row)) await log('info', { jname: row.jname }, 'recovered: a berth command died mid-operation; its leftovers were torn down');
        }
      } catch (e) {
        await log('error', { jname: row.jname, err: String(e) }, 'reconcile failed');
      }
    }
  }

  /**
   * Once at start: makes this node's journal say what its inventory holds (an upgrade from
   * berth 0.1, which had no journal; entries lost when a command died between its transition
   * and its journal entry): an `own` entry for each row the journal lacks or has at another
   * generation, a `drop` for each entry without a row. Nothing when they agree.
   */
  private async syncIndex(): Promise<void> {
    const { ctx } = this;
    try {
      const idx = await readNodeIndex(ctx.own, ctx.nodename);
      const rows = ctx.inv.list().filter((r) => r.generation > 0 && !isFenced(ctx, r.jname));
      let n = 0;
      for (const r of rows) {
        const e = idx.envs[r.jname];
        if (!e || e.generation !== r.generation || e.uuid !== r.uuid) { await journal(ctx, 'own', r, 'sync'); n++; }
      }
      const have = new Set(rows.map((r) => r.jname));
      for (const e of Object.values(idx.envs)) if (!have.has(e.jname)) { await journal(ctx, 'drop', e, 'sync'); n++; }
      if (n) await log('info', { entries: n }, 'journal brought in line with the inventory');
    } catch (e) {
      await log('warn', { err: String(e) }, 'cannot read this node\'s journal');
    }
  }

  /** Writes a journal snapshot when the journal grew by COMPACT_EVERY entries (looked at every 10 periods). */
  private async compactRound(force = false): Promise<void> {
    if (!force && ++this.roundsSinceCompactCheck < 10) return;
    this.roundsSinceCompactCheck = 0;
    const { ctx } = this;
    const snap = await compactJournal(ctx, { force });
    if (snap) await log('debug', snap, 'journal snapshot written');
  }

  /** Fences `row` (see src/ownership/fence.ts): marker first, then the running copy is killed. */
  private async fence(row: EnvRow, err: BerthError): Promise<void> {
    const { ctx } = this;
    const cur = ctx.inv.get(row.jname);
    if (!cur || cur.generation !== row.generation || cur.uuid !== row.uuid) return; // unregistered or re-registered meanwhile
    const t0 = performance.now();
    const st = await readLeaseState(ctx.wd.env(row.jname).lease).catch(() => undefined);
    if (st?.released && st.released.node === ctx.nodename && st.released.released === row.generation) {
      // this node let it go itself (junregister, jremove in progress): not a fence
      return;
    }
    if (st?.holder?.handoverFrom && st.holder.handoverFrom.node === ctx.nodename && st.holder.handoverFrom.generation === row.generation) {
      // this node handed it over itself (jmigrate in progress): not a fence
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
    await journal(ctx, 'drop', row, 'fenced');
    await log('warn', { jname: row.jname, generation: row.generation, current: marker.current, owner: marker.owner, stopped: marker.stopped, ms: Math.round(performance.now() - t0), reason: err.code },
      `fenced: this node no longer holds the lease of ${row.jname}; it will not be touched again`);
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
        await requireLease(ctx, row);
      } catch (e) {
        const err = toBerthError(e);
        if (err.code === 'E_LEASE_SUPERSEDED') { await this.fence(row, err); continue; }
        await log('warn', { jname: row.jname, code: err.code, err: err.message }, 'autostart skipped: this node does not hold the lease');
        continue;
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

  /** Records the sightings of every node's heartbeat (for cluster ls). */
  async observe(): Promise<void> {
    if (this.observing || this.stopping) return;
    this.observing = true;
    try {
      await observeNodes(this.ctx);
    } catch (e) {
      await log('debug', { err: String(e) }, 'heartbeat observation failed');
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
    const closing = Promise.all([this.closeServers(), this.console?.close()]);
    const grace = (this.opts.shutdownGraceSec ?? 30) * 1000;
    const pending = Promise.allSettled([...this.tasks, closing]);
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
