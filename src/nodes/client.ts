/**
 * Client of another node's agent API (src/agent/api.ts), used by `node add`, `jmigrate` and
 * `cluster ls`. Speaks HTTP/1.1 through node:http, either over TCP (`http://host:port`) or
 * over the agent's unix socket (`unix:/path/agent.sock`), with `Authorization: Bearer <token>`.
 *
 * Errors are BerthErrors: the remote error as the agent sent it (same code, message, hint and
 * exit code, with `details.node` naming the node), E_UNAUTHORIZED (exit 1) for a 401,
 * E_NODE_UNREACHABLE (exit 1) when the connection fails or times out, E_BAD_ANSWER (exit 1)
 * for an answer that is not the API's JSON.
 */
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { BerthError, EXIT, usageError, type ErrorCode } from '../errors.js';
import type { RegisterBody } from './protocol.js';

/** Where an agent listens. */
export type NodeAddress = { kind: 'unix'; socketPath: string } | { kind: 'tcp'; host: string; port: number };

/**
 * Parses and validates a node URL: `http://<host>:<port>` (port required; no path other than
 * `/`, no query, no user info; https is not supported: the agent serves plain HTTP on
 * loopback) or `unix:<absolute path>`.
 * @throws BerthError E_BAD_URL (exit 2) naming the value
 */
export function parseNodeUrl(url: string): NodeAddress {
  const bad = (why: string) => usageError('E_BAD_URL', `bad url=${JSON.stringify(url)}: ${why}`, {
    hint: 'use http://127.0.0.1:<api_port> or unix:<workdir>/var/run/agent.sock of that node',
  });
  if (/[\s\0]/.test(url)) throw bad('it contains white space');
  if (url.startsWith('unix:')) {
    const p = url.slice(5);
    if (!p.startsWith('/')) throw bad('a unix socket path must be absolute (unix:/path/agent.sock)');
    if (Buffer.byteLength(p) > 107) throw bad('a unix socket path may have at most 107 bytes');
    return { kind: 'unix', socketPath: p };
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw bad('not a URL');
  }
  if (u.protocol !== 'http:') throw bad(`scheme ${u.protocol} is not supported (http: or unix:)`);
  if (!u.port) throw bad('the port is missing (http://host:PORT)');
  if (u.username || u.password) throw bad('user info is not allowed (the token goes in token=)');
  if ((u.pathname && u.pathname !== '/') || u.search || u.hash) throw bad('no path, query or fragment allowed');
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return { kind: 'tcp', host, port: Number(u.port) };
}

/** Default timeouts in ms: reads, and operations (a forced register waits lease_ttl; a start runs hooks). */
export const GET_TIMEOUT_MS = 15_000;
export const OP_TIMEOUT_MS = 15 * 60_000;

/** A JSON answer of the API (`ok: true` plus fields). */
export type ApiAnswer = Record<string, unknown> & { ok: true; node: string };

/** The API of one remote node. */
export class AgentClient {
  readonly address: NodeAddress;

  /**
   * @param name the node's name (for messages)
   * @param url its agent URL (see {@link parseNodeUrl})
   * @param token its API token
   * @param opts.local the agent of this very node (src/cli/fast.ts): its error messages are
   *   passed on as they are, without the `node '<name>': ` prefix of a remote node's
   */
  constructor(readonly name: string, readonly url: string, private readonly token: string, private readonly opts: { local?: boolean } = {}) {
    this.address = parseNodeUrl(url);
  }

  /**
   * Sends one request and returns the parsed answer.
   * @throws BerthError as described in the module header
   */
  call(method: 'GET' | 'POST', path: string, body?: unknown, timeoutMs = method === 'GET' ? GET_TIMEOUT_MS : OP_TIMEOUT_MS): Promise<ApiAnswer> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { Authorization: `Bearer ${this.token}`, Accept: 'application/json' };
    if (payload) { headers['Content-Type'] = 'application/json'; headers['Content-Length'] = String(payload.length); }
    const where = this.where();
    return new Promise<ApiAnswer>((resolve, reject) => {
      const req = request({ ...where, method, path, headers, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => reject(this.unreachable(e)));
        res.on('end', () => {
          const r = this.answer(method, path, res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'));
          if (r instanceof BerthError) reject(r); else resolve(r);
        });
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${Math.round(timeoutMs / 1000)} s`), { code: 'ETIMEDOUT' })));
      req.on('error', (e) => reject(this.unreachable(e)));
      if (payload) req.write(payload);
      req.end();
    });
  }

  /**
   * node:http request options for this agent's address. A unix socket is connected directly,
   * without node:http's Agent: the Agent checks the host name with node's IPv6 pattern, whose
   * first use costs a fresh process about 12 ms (the CLI's fast path, src/cli/fast.ts).
   */
  private where(): { createConnection: () => Socket } | { host: string; port: number } {
    const a = this.address;
    return a.kind === 'unix' ? { createConnection: () => connect(a.socketPath) } : { host: a.host, port: a.port };
  }

  /** The API answer in `text`, or the BerthError it stands for (see the module header). */
  private answer(method: string, path: string, status: number, text: string): ApiAnswer | BerthError {
    let doc: any;
    try {
      doc = JSON.parse(text);
    } catch {
      return new BerthError('E_BAD_ANSWER', `node '${this.name}' (${this.url}) answered ${method} ${path} with HTTP ${status} and no JSON: ${JSON.stringify(text.slice(0, 120))}`, EXIT.FAILURE,
        { hint: 'is that URL a berth agent?' });
    }
    if (status === 200 && doc?.ok === true) return doc as ApiAnswer;
    const e = doc?.error ?? {};
    if (status === 401) {
      return new BerthError('E_UNAUTHORIZED', `node '${this.name}' (${this.url}) refused the token`, EXIT.FAILURE,
        { hint: `use the token in etc/api.token of node '${this.name}': berth node add name=${this.name} url=${this.url} token_file=<a copy of it>`, details: { node: this.name, status: 401 } });
    }
    const message = String(e.message ?? `HTTP ${status}`);
    // the code as the remote agent gave it: another berth version's code is passed on unchanged
    const err = new BerthError(String(e.code ?? 'E_REMOTE') as ErrorCode, this.opts.local ? message : `node '${this.name}': ${message}`,
      typeof e.exitCode === 'number' ? e.exitCode : EXIT.FAILURE,
      { hint: e.hint, details: { ...(e.details ?? {}), node: this.name, status } });
    // what the operation warned about before it failed (src/agent/api.ts)
    if (Array.isArray(doc?.warnings)) Object.assign(err, { warnings: doc.warnings });
    return err;
  }

  /**
   * Opens a byte stream to the agent: `GET <path>` with `Connection: Upgrade`,
   * `Upgrade: <protocol>` and the bearer token; resolves with the connection once the agent
   * answered `101 Switching Protocols` (the live migration channel, src/nodes/stream.ts).
   * @param timeoutMs how long to wait for the 101 (the stream itself has no timeout)
   * @throws BerthError as {@link call} for any other answer (E_UNAUTHORIZED for a 401, the
   *   agent's error otherwise), E_NODE_UNREACHABLE
   */
  upgrade(path: string, protocol: string, timeoutMs = GET_TIMEOUT_MS): Promise<Socket> {
    const headers = { Authorization: `Bearer ${this.token}`, Connection: 'Upgrade', Upgrade: protocol };
    const where = this.where();
    return new Promise<Socket>((resolve, reject) => {
      const req = request({ ...where, method: 'GET', path, headers, timeout: timeoutMs });
      req.on('upgrade', (res, socket, head) => {
        socket.setTimeout(0);
        if (res.headers.upgrade?.toLowerCase() !== protocol) { socket.destroy(); reject(this.answer('GET', path, res.statusCode ?? 0, '')); return; }
        if (head.length) socket.unshift(head);
        resolve(socket);
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const r = this.answer('GET', path, res.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'));
          reject(r instanceof BerthError ? r : new BerthError('E_BAD_ANSWER', `node '${this.name}' (${this.url}) did not switch ${path} to ${protocol}`, EXIT.FAILURE, { hint: 'is that agent an older berth? update it' }));
        });
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${Math.round(timeoutMs / 1000)} s`), { code: 'ETIMEDOUT' })));
      req.on('error', (e) => reject(this.unreachable(e)));
      req.end();
    });
  }

  private unreachable(e: Error): BerthError {
    const code = (e as NodeJS.ErrnoException).code;
    return new BerthError('E_NODE_UNREACHABLE', `cannot reach node '${this.name}' at ${this.url}: ${code ? `${code}: ` : ''}${e.message}`, EXIT.FAILURE, {
      hint: `is 'berth agent' running on node '${this.name}' (listening on that ${this.address.kind === 'unix' ? 'socket' : 'port'})?`,
      details: { node: this.name, errno: code },
    });
  }

  /** GET /v1/node */
  info(): Promise<ApiAnswer> { return this.call('GET', '/v1/node'); }
  /** GET /v1/envs */
  list(unregistered = false): Promise<ApiAnswer> { return this.call('GET', `/v1/envs${unregistered ? '?unregistered=1' : ''}`); }
  /** GET /v1/envs/:jname */
  status(jname: string): Promise<ApiAnswer> { return this.call('GET', `/v1/envs/${encodeURIComponent(jname)}`); }
  /** GET /v1/envs/:jname/storage */
  storage(jname: string): Promise<ApiAnswer> { return this.call('GET', `/v1/envs/${encodeURIComponent(jname)}/storage`); }
  /** POST /v1/envs/:jname/start */
  start(jname: string): Promise<ApiAnswer> { return this.call('POST', `/v1/envs/${encodeURIComponent(jname)}/start`, {}); }
  /** POST /v1/envs/:jname/stop */
  stop(jname: string): Promise<ApiAnswer> { return this.call('POST', `/v1/envs/${encodeURIComponent(jname)}/stop`, {}); }
  /** POST /v1/envs/:jname/register */
  register(jname: string, body: RegisterBody = {}): Promise<ApiAnswer> { return this.call('POST', `/v1/envs/${encodeURIComponent(jname)}/register`, body); }
  /** POST /v1/envs/:jname/unregister */
  unregister(jname: string): Promise<ApiAnswer> { return this.call('POST', `/v1/envs/${encodeURIComponent(jname)}/unregister`, {}); }
}
