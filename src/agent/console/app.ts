/**
 * The web console (docs/console.md): a hono app served by `berth agent` on `console_port`.
 *
 * | method, path                         | who      | does                                              |
 * |--------------------------------------|----------|---------------------------------------------------|
 * | GET  /login, POST /login, POST /logout | anybody | the login form (posts the token), the session     |
 * | GET  /                               | session  | the cluster page                                  |
 * | GET  /env/:jname                     | session  | the env page                                      |
 * | GET  /partials/cluster, /partials/env/:jname | session | the parts refreshed on a server-sent event |
 * | GET  /partials/rows?j=a,b            | session  | those rows of the cluster table and the nodes table (a live update of what changed) |
 * | GET  /env/:jname/confirm/:action     | admin    | the confirmation step of an action                |
 * | POST /env/:jname/:action             | admin + CSRF + Origin | start stop restart migrate (dst=, live=1) register unregister |
 * | GET  /env/:jname/stats               | session  | the last hour of CPU/memory samples (JSON)         |
 * | GET  /events                         | session  | server-sent events: `change` (which rows) when the view changes |
 * | GET  /ws/shell/:jname                | admin + Origin | websocket: a shell in a running container (jexec under a pty) |
 * | GET  /ws/console/:jname              | admin + Origin | websocket: a VM's serial console (the engine's console socket) |
 * | GET  /ws/vnc/:jname                  | admin + Origin | websocket: a VM's screen, RFB relayed to its VNC server on 127.0.0.1 |
 * | GET  /assets/*                       | anybody  | the bundled client files                          |
 *
 * Every answer carries a Content-Security-Policy without inline script (script-src 'self'),
 * X-Frame-Options DENY, nosniff, no-referrer and Cache-Control no-store (pages).
 * A viewer's action, a POST without the session's CSRF token or from another Origin: 403,
 * nothing done, an audit line written.
 */
import { existsSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join, normalize } from 'node:path';
import { Hono, type Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { createNodeWebSocket, type NodeWebSocket } from '@hono/node-ws';
import { checkJname } from '../../names.js';
import type { NodeCtx } from '../../node.js';
import { clusterView, type ClusterView } from '../../nodes/cluster.js';
import { readLeaseHistory } from '../../ownership/record.js';
import { STATUS } from '../../inventory.js';
import { engineEnv } from '../../engines/types.js';
import { packageRoot } from '../../pkg.js';
import { findToken, type Role } from '../../tokens.js';
import type { AgentOps } from '../api.js';
import { isAction, liveOffered, runAction } from './actions.js';
import type { AuditEntry, AuditLog } from './audit.js';
import { COOKIE, cookieValue, refuseChange, sessionCookie, Sessions, type Session } from './auth.js';
import { clusterPage, clusterRows, clusterTable, confirmForm, envPage, envState, errorPage, html, loginPage, outcomeBox, type EnvView, type PageCtx } from './html.js';
import type { Stats } from './stats.js';

/** The Content-Security-Policy of every answer: scripts only from the console itself, never inline. */
export const CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** What the console needs from the agent. */
export interface ConsoleDeps {
  ctx: NodeCtx;
  ops: AgentOps;
  track: <T>(p: Promise<T>) => Promise<T>;
  audit: AuditLog;
  stats: Stats;
  /** served over TLS (the cookie is Secure, the Origin https) */
  secure: boolean;
  /** seconds between looks at the cluster view for server-sent events (default 1) */
  watchSec?: number;
}

type Vars = { Variables: { session?: Session; client: string } };

/**
 * The cluster view shared by every request and the change watcher: one computation serves all
 * who ask within its freshness window, and concurrent askers wait for the same computation.
 */
export class SharedView<V> {
  private last?: { startedAt: number; v: V };
  private inflight?: { startedAt: number; p: Promise<V> };
  /** how many times the view was computed (tests, bench) */
  computed = 0;

  constructor(private readonly compute: () => Promise<V>, private readonly now: () => number = Date.now) {}

  /** The last view computed, whatever its age (undefined: none yet). */
  peek(): V | undefined {
    return this.last?.v;
  }

  /**
   * A view whose computation started at or after `since` (ms, the `now` clock): the last one,
   * the one being computed, or a new one. @throws what the computation throws
   */
  since(since: number): Promise<V> {
    if (this.last && this.last.startedAt >= since) return Promise.resolve(this.last.v);
    if (this.inflight && this.inflight.startedAt >= since) return this.inflight.p;
    const startedAt = this.now();
    this.computed++;
    const p = this.compute().then((v) => {
      if (!this.last || this.last.startedAt <= startedAt) this.last = { startedAt, v };
      return v;
    }).finally(() => { if (this.inflight?.p === p) this.inflight = undefined; });
    this.inflight = { startedAt, p };
    return p;
  }

  /** A view at most `maxAgeMs` old. */
  fresh(maxAgeMs: number): Promise<V> {
    return this.since(this.now() - maxAgeMs);
  }
}

/**
 * What changed between two looks: the jnames whose row changed, or null when the set of envs
 * changed (the pages then redraw the whole table). The nodes table is always redrawn.
 */
export interface ViewChange { rows: string[] | null }

/** What one look remembers: each env's row key, and the nodes'. */
export interface Seen { rows: Map<string, string>; nodes: string }

/** What a row shows (the heartbeat as its counter: its age alone moves at every look). */
export function viewKeys(v: ClusterView): Seen {
  return {
    rows: new Map(v.envs.map((e) => [e.jname, JSON.stringify([e.emulator, e.state, e.owner, e.generation, e.heartbeat?.counter, e.heartbeat?.silent, e.ip4_addr])])),
    nodes: JSON.stringify(v.nodes.map((n) => [n.name, n.answering, n.problem, n.heartbeat?.counter, n.heartbeat?.silent, n.envs])),
  };
}

/** The change from `a` to `b`, or undefined when the pages would show the same. */
export function viewChange(a: Seen | undefined, b: Seen): ViewChange | undefined {
  if (!a || a.rows.size !== b.rows.size) return { rows: null };
  const rows: string[] = [];
  for (const [j, k] of b.rows) {
    const was = a.rows.get(j);
    if (was === undefined) return { rows: null };
    if (was !== k) rows.push(j);
  }
  return rows.length || a.nodes !== b.nodes ? { rows } : undefined;
}

/**
 * Watches the cluster view while pages listen (one look per period for all of them, none while
 * no page listens), and tells them what changed.
 */
export class ChangeHub {
  private listeners = new Set<(c: ViewChange) => void>();
  private timer?: NodeJS.Timeout;
  private last?: Seen;
  private busy = false;
  private again = false;

  constructor(private readonly shared: SharedView<ClusterView>, private readonly periodMs: number) {}

  listen(fn: (c: ViewChange) => void): () => void {
    this.listeners.add(fn);
    if (!this.timer) {
      // the pages were rendered from the shared view: a change is a difference from it
      const v = this.shared.peek();
      if (v) this.last = viewKeys(v);
      this.timer = setInterval(() => void this.tick(), this.periodMs);
    }
    return () => {
      this.listeners.delete(fn);
      if (!this.listeners.size && this.timer) { clearInterval(this.timer); this.timer = undefined; }
    };
  }

  /**
   * Looks now, at a view computed from now on (every period; and after an action ran here).
   * A call during a look makes one more look after it (the one running may predate a change).
   */
  async tick(): Promise<void> {
    if (!this.listeners.size) return; // nobody looks: nothing to compute
    if (this.busy) { this.again = true; return; }
    this.busy = true;
    try {
      do {
        this.again = false;
        try {
          const now = viewKeys(await this.shared.fresh(0));
          const c = viewChange(this.last, now);
          this.last = now;
          if (c) for (const l of this.listeners) l(c);
        } catch { /* next time */ }
      } while (this.again && this.listeners.size);
    } finally {
      this.busy = false;
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.listeners.clear();
  }
}

const ASSET_TYPES: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

/** The last `max` bytes of file `f` (empty when it cannot be read). */
async function readTail(f: string, max: number): Promise<Buffer> {
  try {
    const h = await open(f, 'r');
    try {
      const size = (await h.stat()).size;
      const n = Math.min(size, max);
      const b = Buffer.alloc(n);
      await h.read(b, 0, n, size - n);
      return b;
    } finally { await h.close(); }
  } catch { return Buffer.alloc(0); }
}

/** The console app and what the server must do with it (websockets). */
export interface ConsoleApp {
  app: Hono<Vars>;
  sessions: Sessions;
  injectWebSocket: NodeWebSocket['injectWebSocket'];
  /** the shared cluster view (how often it was computed: tests) */
  views: SharedView<ClusterView>;
  /** looks at the view now when pages listen (after an operation of the agent's API) */
  poke(): void;
  close(): void;
}

/** Builds the console. */
export function createConsole(deps: ConsoleDeps): ConsoleApp {
  const { ctx, ops, audit, secure } = deps;
  const app = new Hono<Vars>();
  const ws = createNodeWebSocket({ app });
  const sessions = new Sessions();
  const assets = join(packageRoot(), 'dist', 'console');
  const periodMs = (deps.watchSec ?? 1) * 1000;
  // one computation of the cluster view per period, whoever asks: the watcher, every page
  // refreshed by its event, every page loaded meanwhile
  const shared = new SharedView(() => clusterView(ctx, { agentTimeoutMs: 1500 }));
  const view = () => shared.fresh(periodMs);
  const hub = new ChangeHub(shared, periodMs);
  const tokenRole = (id: string): Role | undefined => ctx.inv.listConsoleTokens().find((t) => t.id === id)?.role;
  const pctx = (c: Context<Vars>): PageCtx => {
    const s = c.get('session');
    return { node: ctx.nodename, role: s?.role, tokenId: s?.tokenId, csrf: s?.csrf };
  };
  const who = (s?: Session): AuditEntry['who'] => (s ? { token: s.tokenId, role: s.role } : null);
  const write = (c: Context<Vars>, e: Omit<AuditEntry, 'client' | 'who'>) => audit.write({ who: who(c.get('session')), client: c.get('client'), ...e });

  app.use('*', async (c, next) => {
    const env = c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined;
    c.set('client', env?.incoming?.socket?.remoteAddress ?? '');
    c.set('session', sessions.get(cookieValue(c.req.header('Cookie'), COOKIE), tokenRole));
    await next();
    if (c.res.status === 101) return;
    c.res.headers.set('Content-Security-Policy', CSP);
    c.res.headers.set('X-Content-Type-Options', 'nosniff');
    c.res.headers.set('X-Frame-Options', 'DENY');
    // same-origin, not no-referrer: under no-referrer a browser posts a form with `Origin: null`
    c.res.headers.set('Referrer-Policy', 'same-origin');
    if (!c.res.headers.has('Cache-Control')) c.res.headers.set('Cache-Control', 'no-store');
  });

  app.get('/assets/:file', async (c) => {
    const f = c.req.param('file');
    const ext = /\.[a-z]+$/.exec(f)?.[0] ?? '';
    if (!/^[a-z0-9._-]+$/.test(f) || !ASSET_TYPES[ext]) return c.text('not found', 404);
    const file = normalize(join(assets, f));
    if (!file.startsWith(assets + '/') || !existsSync(file)) return c.text('not found', 404);
    return c.body(await readFile(file), 200, { 'Content-Type': ASSET_TYPES[ext]!, 'Cache-Control': 'private, max-age=300' });
  });

  app.get('/login', (c) => c.html(loginPage(ctx.nodename)));
  app.post('/login', async (c) => {
    const origin = c.req.header('Origin');
    const form = await c.req.parseBody();
    const token = typeof form.token === 'string' ? form.token : '';
    if (!origin || origin !== `${secure ? 'https' : 'http'}://${c.req.header('Host')}`) {
      write(c, { what: 'login', result: 'refused', message: 'bad Origin' });
      return c.html(loginPage(ctx.nodename, 'refused: this form must be posted from the console itself'), 403);
    }
    const t = findToken(ctx.inv, token);
    if (!t) {
      write(c, { what: 'login', result: 'refused', message: 'wrong token' });
      return c.html(loginPage(ctx.nodename, 'wrong token'), 401);
    }
    const s = sessions.create(t.id, t.role);
    audit.write({ who: { token: t.id, role: t.role }, client: c.get('client'), what: 'login', result: 'ok' });
    c.header('Set-Cookie', sessionCookie(s.id, secure));
    return c.redirect('/', 303);
  });
  app.post('/logout', async (c) => {
    const s = c.get('session');
    const form = await c.req.parseBody();
    const why = refuseChange(s, typeof form._csrf === 'string' ? form._csrf : undefined, c.req.header('Origin'), c.req.header('Host'), secure, false);
    if (why) return c.text(`403: ${why}`, 403);
    sessions.destroy(s!.id);
    write(c, { what: 'logout', result: 'ok' });
    c.header('Set-Cookie', sessionCookie('', secure));
    return c.redirect('/login', 303);
  });

  // everything else needs a session
  app.use('*', async (c, next) => {
    if (c.get('session')) return next();
    if (c.req.method === 'GET' && !c.req.path.startsWith('/ws/') && !c.req.path.startsWith('/partials/') && c.req.path !== '/events') return c.redirect('/login', 303);
    return c.text('401: log in first', 401);
  });

  app.get('/', async (c) => c.html(clusterPage(await view(), pctx(c))));
  app.get('/partials/cluster', async (c) => c.html(clusterTable(await view(), pctx(c)).s));
  // ?j=a,b,c: those rows (and the nodes table), for a live update of only what changed
  app.get('/partials/rows', async (c) => {
    const js = (c.req.query('j') ?? '').split(',').filter(Boolean);
    if (js.length > 10_000) return c.text('400: too many rows', 400);
    return c.html(clusterRows(await view(), new Set(js.map((j) => checkJname(j))), pctx(c)).s);
  });
  app.get('/partials/empty', (c) => c.html(''));

  const envView = async (jname: string): Promise<EnvView> => {
    const v = await view();
    const row = ctx.inv.get(jname);
    const p = ctx.wd.env(jname);
    const readText = async (f: string) => { try { return await readFile(f, 'utf8'); } catch { return null; } };
    const log = (await readText(p.log)) ?? '';
    const history = await readLeaseHistory(p.lease).catch(() => []);
    let running = false;
    let consoleKind = 'none';
    const emulator = row?.emulator ?? v.envs.find((e) => e.jname === jname)?.emulator ?? '';
    if (row && row.status === STATUS.ON) {
      const engine = await ctx.engine(row.emulator);
      running = await engine.isRunning(engineEnv(ctx, jname, row.conf), row.jid).catch(() => false);
      consoleKind = engine.info.console;
    }
    return {
      jname, cluster: v.envs.find((e) => e.jname === jname), settings: row ? row.conf as Record<string, string> : null,
      // a vnc_password is never shown, only that it is set
      descriptor: ((await readText(p.descriptor)) ?? (await readText(p.recordDescriptor)))?.replace(/^(vnc_password=)"[^"\n]+"/m, '$1"(set)"') ?? null,
      hooks: { mnt_start: row?.conf.mnt_start ?? ctx.settings.default_mnt_start, mnt_stop: row?.conf.mnt_stop ?? ctx.settings.default_mnt_stop },
      log: log.split('\n').slice(-40).join('\n'), running, emulator, consoleKind,
      history: history.map((h) => ({ generation: h.generation, kind: h.kind, node: h.node, at: h.at, from: h.takeoverFrom ? `takeover from ${h.takeoverFrom.node}` : h.handoverFrom ? `handover from ${h.handoverFrom.node}` : undefined })),
    };
  };
  const jnameOf = (c: Context<Vars>) => checkJname(c.req.param('jname') ?? '');
  app.get('/env/:jname', async (c) => {
    const jname = jnameOf(c);
    const v = await envView(jname);
    if (!v.cluster && !v.settings) return c.html(errorPage(pctx(c), 404, `no env ${jname} on the shared storage`), 404);
    return c.html(envPage(v, pctx(c)));
  });
  app.get('/partials/env/:jname', async (c) => c.html(envState(await envView(jnameOf(c)), pctx(c), ctx.nodename).s));
  app.get('/env/:jname/stats', (c) => c.json({ jname: jnameOf(c), samples: deps.stats.series(jnameOf(c)) }));

  app.get('/env/:jname/confirm/:action', async (c) => {
    const s = c.get('session')!;
    const action = c.req.param('action');
    if (!isAction(action)) return c.text('404: no such action', 404);
    if (s.role !== 'admin') return c.text(`403: role ${s.role} may not act (admin only)`, 403);
    const nodes = (await view()).nodes.filter((n) => !n.self).map((n) => n.name);
    return c.html(confirmForm(jnameOf(c), action, pctx(c), nodes, action === 'migrate' && liveOffered(ctx, jnameOf(c))).s);
  });

  app.post('/env/:jname/:action', async (c) => {
    const s = c.get('session');
    const action = c.req.param('action');
    const jname = jnameOf(c);
    const form = await c.req.parseBody();
    const csrf = c.req.header('X-CSRF-Token') ?? (typeof form._csrf === 'string' ? form._csrf : undefined);
    const dst = typeof form.dst === 'string' ? form.dst : undefined;
    // live=1: jmigrate live=1 (the form's checkbox)
    const live = action === 'migrate' && form.live === '1';
    const detail = dst ? { dst, ...(live ? { live: true } : {}) } : undefined;
    if (!isAction(action)) return c.text('404: no such action', 404);
    const why = refuseChange(s, csrf, c.req.header('Origin'), c.req.header('Host'), secure);
    if (why) {
      write(c, { what: action, jname, result: 'refused', message: why, detail });
      return c.html(html`<div class="outcome refused" data-exit="403"><p>403 Forbidden: ${why}; nothing was done</p></div>`.s, 403);
    }
    const o = await runAction(ctx, ops, action, jname, { dst, live }, deps.track);
    write(c, { what: action, jname, detail, result: o.exitCode === 0 ? 'ok' : 'failed', exitCode: o.exitCode, code: o.code, message: (o.stdout || o.stderr).trim() });
    void hub.tick();
    return c.html(outcomeBox(o).s);
  });

  app.get('/events', (c) => streamSSE(c, async (stream) => {
    let n = 0;
    // data: {"n": <count on this stream>, "rows": [the jnames whose row changed] | null (redraw all)}
    const off = hub.listen((ch) => { void stream.writeSSE({ event: 'change', data: JSON.stringify({ n: ++n, rows: ch.rows }) }); });
    await stream.writeSSE({ event: 'hello', data: ctx.nodename });
    const ping = setInterval(() => { void stream.writeSSE({ event: 'ping', data: '' }); }, 15000);
    await new Promise<void>((resolve) => stream.onAbort(() => resolve()));
    clearInterval(ping);
    off();
  }));

  // websockets: the session cookie, the console's Origin and the admin role, checked before the upgrade
  const wsGate = async (c: Context<Vars>, next: () => Promise<void>) => {
    const s = c.get('session');
    const origin = c.req.header('Origin');
    const why = !s ? 'not logged in' : origin !== `${secure ? 'https' : 'http'}://${c.req.header('Host')}` ? `Origin ${JSON.stringify(origin ?? '')} is not this console` : s.role !== 'admin' ? `role ${s.role} may not open a shell, console or screen (admin only)` : undefined;
    if (why) {
      write(c, { what: c.req.path.startsWith('/ws/shell/') ? 'shell' : c.req.path.startsWith('/ws/vnc/') ? 'screen' : 'console', jname: c.req.param('jname'), result: 'refused', message: why });
      return c.text(`403: ${why}`, 403);
    }
    await next();
  };

  app.get('/ws/shell/:jname', wsGate, ws.upgradeWebSocket((c) => {
    const jname = checkJname(c.req.param('jname') ?? '');
    type Pty = { write(d: string): void; resize(c: number, r: number): void; kill(): void; onData(f: (d: string) => void): void; onExit(f: (e: { exitCode: number }) => void): void };
    let term: Pty | undefined;
    const started = Date.now();
    return {
      async onOpen(_evt, sock) {
        write(c as Context<Vars>, { what: 'shell', jname, result: 'ok', message: 'opened' });
        const pty = (await import('node-pty')).default ?? (await import('node-pty'));
        // the CLI's own jexec, so that the shell is exactly `berth jexec jname=<jname> /bin/sh`
        term = (pty as typeof import('node-pty')).spawn(process.execPath, [join(packageRoot(), 'bin', 'berth'), 'jexec', `--workdir=${ctx.wd.root}`, `jname=${jname}`, '/bin/sh'], {
          name: 'xterm-256color', cols: 80, rows: 24, cwd: '/', env: { ...process.env, TERM: 'xterm-256color' } as Record<string, string>,
        }) as unknown as Pty;
        term.onData((d) => { try { sock.send(d); } catch { /* closed */ } });
        term.onExit((e) => {
          try { sock.send(`\r\n[exit ${e.exitCode}]\r\n`); sock.close(1000, `exit ${e.exitCode}`); } catch { /* closed */ }
        });
      },
      onMessage(evt) {
        const m = typeof evt.data === 'string' ? evt.data : Buffer.from(evt.data as ArrayBuffer).toString('utf8');
        if (m.startsWith('0')) term?.write(m.slice(1));
        else if (m.startsWith('1')) {
          const r = /^1(\d{1,4})x(\d{1,4})$/.exec(m);
          if (r) term?.resize(Math.max(2, Number(r[1])), Math.max(2, Number(r[2])));
        }
      },
      onClose() {
        term?.kill();
        audit.write({ who: who((c as Context<Vars>).get('session')), what: 'shell', jname, result: 'ok', message: `closed after ${Math.round((Date.now() - started) / 1000)} s` });
      },
    };
  }));

  // a VM's serial console: a thin adapter between the websocket and the engine's console socket
  // (Engine.console: a unix socket path, one client at a time); first the last 16 KiB of the
  // console log (what the guest printed before anybody looked: the boot lines), then bytes both
  // ways, nothing interpreted
  app.get('/ws/console/:jname', wsGate, ws.upgradeWebSocket((c) => {
    const jname = checkJname(c.req.param('jname') ?? '');
    let sock: ReturnType<typeof connect> | undefined;
    let closed = false;
    const typed: string[] = []; // keys typed before the socket is there
    return {
      async onOpen(_evt, wsock) {
        const row = ctx.inv.get(jname);
        const engine = row ? await ctx.engine(row.emulator) : undefined;
        if (!row || !engine?.console) { wsock.close(1011, `${jname} has no console on this node`); return; }
        const ep = await engine.console(engineEnv(ctx, jname, row.conf));
        // a unix socket (qemu's serial chardev); a terminal device (bhyve's nmdm) is not bridged yet
        if (ep.kind !== 'unix') { wsock.close(1011, `${jname}'s console is a ${ep.kind} (${ep.path}): use berth bconsole`); return; }
        write(c as Context<Vars>, { what: 'console', jname, result: 'ok', message: 'opened' });
        const early: Buffer[] = [];
        let live = false;
        const send = (d: Buffer) => { try { wsock.send(new Uint8Array(d)); } catch { /* closed */ } };
        sock = connect(ep.path);
        for (const t of typed.splice(0)) sock.write(t);
        sock.on('data', (d) => { if (live) send(d); else early.push(d); });
        sock.on('close', () => { try { wsock.close(1000, 'console closed'); } catch { /* closed */ } });
        sock.on('error', () => undefined);
        if (ep.log) {
          const tail = await readTail(ep.log, 16384);
          if (tail.length) send(tail);
        }
        if (closed) { sock.destroy(); return; }
        live = true;
        for (const d of early) send(d);
      },
      onMessage(evt) {
        const m = typeof evt.data === 'string' ? evt.data : Buffer.from(evt.data as ArrayBuffer).toString('utf8');
        if (!m.startsWith('0')) return;
        if (sock) sock.write(m.slice(1));
        else typed.push(m.slice(1));
      },
      onClose() { closed = true; sock?.destroy(); },
    };
  }));

  // a VM's screen: noVNC in the page speaks RFB over this websocket, the agent relays the bytes
  // to the VNC server the engine reports on 127.0.0.1 (Engine.screen); the browser never reaches
  // qemu itself. A vnc_password is asked by noVNC in the page and travels inside RFB only.
  app.get('/ws/vnc/:jname', wsGate, ws.upgradeWebSocket((c) => {
    const jname = checkJname(c.req.param('jname') ?? '');
    let sock: ReturnType<typeof connect> | undefined;
    let closed = false;
    const pending: Buffer[] = [];
    return {
      async onOpen(_evt, wsock) {
        const row = ctx.inv.get(jname);
        const engine = row ? await ctx.engine(row.emulator) : undefined;
        const ep = row && engine?.screen ? await engine.screen(engineEnv(ctx, jname, row.conf)).catch(() => undefined) : undefined;
        if (!row || !ep) { wsock.close(1011, `${jname} has no screen on this node`); return; }
        if (closed) return;
        write(c as Context<Vars>, { what: 'screen', jname, result: 'ok', message: `opened (VNC ${ep.host}:${ep.port})` });
        sock = connect({ host: ep.host, port: ep.port });
        sock.setNoDelay(true);
        for (const b of pending.splice(0)) sock.write(b);
        sock.on('data', (d) => { try { wsock.send(new Uint8Array(d)); } catch { /* closed */ } });
        sock.on('close', () => { try { wsock.close(1000, 'screen closed'); } catch { /* closed */ } });
        sock.on('error', () => undefined);
      },
      onMessage(evt) {
        const d = evt.data;
        if (typeof d === 'string') return; // RFB is binary (@hono/node-ws hands an ArrayBuffer)
        const b = Buffer.from(d as ArrayBuffer);
        if (sock) sock.write(b);
        else pending.push(b);
      },
      onClose() { closed = true; sock?.destroy(); },
    };
  }));

  app.onError((e, c) => {
    const msg = (e as Error).message;
    const code = (e as { exitCode?: number }).exitCode === 2 ? 400 : 500;
    return c.html(errorPage(pctx(c), code, msg), code);
  });
  app.notFound((c) => c.html(errorPage(pctx(c), 404, `no page ${c.req.path}`), 404));

  return { app, sessions, injectWebSocket: ws.injectWebSocket, views: shared, poke: () => { void hub.tick(); }, close: () => hub.close() };
}
