/**
 * A QMP client (QEMU Machine Protocol, docs/interop/qmp-spec.rst): one JSON object per line
 * over a unix socket. On connect the server sends its greeting (`{"QMP": {...}}`); the
 * client must send `qmp_capabilities` before any other command. Each command carries an
 * `id` that the server echoes in its `return` or `error` reply, which is how replies are
 * matched to commands; asynchronous events (`{"event": ..., "data": ..., "timestamp": ...}`)
 * arrive at any time and are handed to listeners and waiters.
 *
 * Errors are BerthErrors, exit 5 (engine failure): E_QMP (QEMU answered with an error; its
 * class and description are in the message and `details`), E_QMP_TIMEOUT (no reply or event
 * in time), E_QMP_CLOSED (the socket closed: qemu exited), E_QMP_CONNECT (cannot connect).
 */
import { EventEmitter } from 'node:events';
import { createConnection, type Socket } from 'node:net';
import { BerthError, EXIT } from '../../errors.js';
import { debug } from '../../log.js';

/** One QMP event. `time` is the event's timestamp in ms since the epoch (QEMU's clock). */
export interface QmpEvent {
  event: string;
  data: Record<string, any>;
  time: number;
  /** when this process received it (performance.now(), ms) */
  receivedAt: number;
}

/** Options of {@link QmpClient.connect}. */
export interface QmpConnectOptions {
  /** give up connecting (and negotiating) after this many ms (default 5000) */
  timeoutMs?: number;
  /** retry a missing or refusing socket until the timeout (default false: fail at once) */
  retry?: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A connected, negotiated QMP session. */
export class QmpClient extends EventEmitter {
  /** QEMU's version from the greeting, e.g. `7.2.22` */
  readonly version: string;
  private buf = '';
  private nextId = 1;
  private readonly pending = new Map<string, { resolve: (v: any) => void; reject: (e: Error) => void; timer: NodeJS.Timeout; cmd: string }>();
  private readonly recent: QmpEvent[] = [];
  private closedError?: BerthError;

  private constructor(private readonly sock: Socket, readonly path: string, greeting: any) {
    super();
    const v = greeting?.QMP?.version?.qemu;
    this.version = v ? `${v.major}.${v.minor}.${v.micro}` : 'unknown';
    sock.on('data', (d) => this.onData(d.toString('utf8')));
    sock.on('close', () => this.onClose());
    sock.on('error', () => { /* close follows */ });
  }

  /**
   * Connects to a QMP socket, reads the greeting and negotiates capabilities.
   * @throws BerthError E_QMP_CONNECT, E_QMP_TIMEOUT, E_QMP (exit 5)
   */
  static async connect(path: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      try {
        return await QmpClient.tryConnect(path, Math.max(1, deadline - performance.now()));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (opts.retry && (code === 'ENOENT' || code === 'ECONNREFUSED') && performance.now() < deadline) { await sleep(20); continue; }
        if (e instanceof BerthError) throw e;
        throw new BerthError('E_QMP_CONNECT', `cannot connect to QMP socket ${path}: ${(e as Error).message}`, EXIT.ENGINE, { cause: e, hint: 'is the VM running? (its qemu may have exited)' });
      }
    }
  }

  private static tryConnect(path: string, timeoutMs: number): Promise<QmpClient> {
    return new Promise((resolve, reject) => {
      const sock = createConnection(path);
      let buf = '';
      const timer = setTimeout(() => { sock.destroy(); reject(new BerthError('E_QMP_TIMEOUT', `no QMP greeting on ${path} within ${Math.round(timeoutMs)} ms`, EXIT.ENGINE)); }, timeoutMs);
      const fail = (e: Error) => { clearTimeout(timer); sock.destroy(); reject(e); };
      sock.once('error', fail);
      const onData = (d: Buffer) => {
        buf += d.toString('utf8');
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        sock.off('data', onData);
        sock.off('error', fail);
        let greeting: any;
        try { greeting = JSON.parse(buf.slice(0, nl)); } catch { fail(new BerthError('E_QMP', `${path} is not a QMP socket (bad greeting)`, EXIT.ENGINE)); return; }
        if (!greeting?.QMP) { fail(new BerthError('E_QMP', `${path} is not a QMP socket (no QMP greeting)`, EXIT.ENGINE)); return; }
        const c = new QmpClient(sock, path, greeting);
        c.onData(buf.slice(nl + 1));
        c.execute('qmp_capabilities', undefined, { timeoutMs: Math.max(1, timeoutMs) })
          .then(() => { clearTimeout(timer); resolve(c); }, (e) => { clearTimeout(timer); c.close(); reject(e); });
      };
      sock.on('data', onData);
    });
  }

  private onData(s: string): void {
    this.buf += s;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (!line) continue;
      let msg: any;
      try { msg = JSON.parse(line); } catch { continue; }
      if (msg.event) {
        const ev: QmpEvent = { event: msg.event, data: msg.data ?? {}, time: (msg.timestamp?.seconds ?? 0) * 1000 + (msg.timestamp?.microseconds ?? 0) / 1000, receivedAt: performance.now() };
        this.recent.push(ev);
        if (this.recent.length > 200) this.recent.shift();
        this.emit('event', ev);
        continue;
      }
      const p = msg.id !== undefined ? this.pending.get(String(msg.id)) : undefined;
      if (!p) continue;
      this.pending.delete(String(msg.id));
      clearTimeout(p.timer);
      if (msg.error) {
        p.reject(new BerthError('E_QMP', `qemu refused ${p.cmd}: ${msg.error.desc ?? 'error'} (${msg.error.class ?? 'GenericError'})`, EXIT.ENGINE, {
          details: { command: p.cmd, class: msg.error.class, desc: msg.error.desc },
        }));
      } else {
        p.resolve(msg.return);
      }
    }
  }

  private onClose(): void {
    this.closedError ??= new BerthError('E_QMP_CLOSED', `the QMP connection ${this.path} closed (qemu exited)`, EXIT.ENGINE);
    for (const p of this.pending.values()) { clearTimeout(p.timer); p.reject(this.closedError); }
    this.pending.clear();
    this.emit('close');
  }

  /** True once the connection is closed (by {@link close} or because qemu exited). */
  get closed(): boolean {
    return this.closedError !== undefined;
  }

  /**
   * Sends a command and waits for its reply.
   * @returns the command's `return` value
   * @throws BerthError E_QMP (QEMU's error), E_QMP_TIMEOUT (default 10 s), E_QMP_CLOSED
   */
  execute<T = any>(cmd: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = String(this.nextId++);
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const p = new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new BerthError('E_QMP_TIMEOUT', `qemu did not answer ${cmd} within ${timeoutMs} ms`, EXIT.ENGINE, { details: { command: cmd } }));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, cmd });
    });
    void debug({ qmp: this.path, cmd, args: cmd.includes('password') ? '(hidden)' : args }, 'qmp');
    this.sock.write(JSON.stringify(args === undefined ? { execute: cmd, id } : { execute: cmd, arguments: args, id }) + '\n');
    return p;
  }

  /**
   * Waits for an event (`name`) for which `filter` holds. With `since` (a performance.now()
   * value), an event received at or after that moment and before this call counts too, so
   * that an event racing the call is not missed.
   * @throws BerthError E_QMP_TIMEOUT, E_QMP_CLOSED
   */
  waitEvent(name: string, opts: { timeoutMs?: number; filter?: (e: QmpEvent) => boolean; since?: number } = {}): Promise<QmpEvent> {
    const ok = (e: QmpEvent) => e.event === name && (!opts.filter || opts.filter(e));
    if (opts.since !== undefined) {
      const hit = this.recent.find((e) => e.receivedAt >= opts.since! && ok(e));
      if (hit) return Promise.resolve(hit);
    }
    if (this.closedError) return Promise.reject(this.closedError);
    const timeoutMs = opts.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const done = () => { clearTimeout(timer); this.off('event', onEvent); this.off('close', onClose); };
      const onEvent = (e: QmpEvent) => { if (ok(e)) { done(); resolve(e); } };
      const onClose = () => { done(); reject(this.closedError); };
      const timer = setTimeout(() => { done(); reject(new BerthError('E_QMP_TIMEOUT', `no ${name} event from qemu within ${timeoutMs} ms`, EXIT.ENGINE)); }, timeoutMs);
      this.on('event', onEvent);
      this.once('close', onClose);
    });
  }

  /** Resolves when the connection closes (qemu exited), or after `timeoutMs` with false. */
  waitClosed(timeoutMs: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.off('close', onClose); resolve(false); }, timeoutMs);
      const onClose = () => { clearTimeout(timer); resolve(true); };
      this.once('close', onClose);
    });
  }

  /** Closes the connection (qemu keeps running). Idempotent. */
  close(): void {
    this.closedError ??= new BerthError('E_QMP_CLOSED', `the QMP connection ${this.path} was closed`, EXIT.ENGINE);
    this.sock.destroy();
  }
}
