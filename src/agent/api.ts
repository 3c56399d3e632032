/**
 * The agent's JSON HTTP API (hono 4), served by `berth agent` (src/agent/daemon.ts) on the unix
 * socket `var/run/agent.sock` and optionally on `127.0.0.1:<api_port>`.
 *
 * Every request needs `Authorization: Bearer <token>` with the node's token (`etc/api.token`,
 * mode 0600, written by initenv); the comparison takes constant time (SHA-256 of both sides,
 * then crypto.timingSafeEqual). Without it, or with a wrong one: 401 and
 * `{ok:false, error:{code:"E_UNAUTHORIZED", ...}}`.
 *
 * Routes (jname: the env name; every answer is one JSON document):
 *
 * | method, path                        | does                                   | answer (`ok:true` plus)          |
 * |-------------------------------------|----------------------------------------|----------------------------------|
 * | GET  /v1/node                       | who answers                            | `node, version, leaseTtl, pid`   |
 * | GET  /v1/envs[?unregistered=1]      | list (jls)                             | `node, envs: EnvStatus[]`        |
 * | GET  /v1/envs/:jname                | status of one env                      | `node, env: EnvStatus`           |
 * | GET  /v1/envs/:jname/storage        | what this node sees of the env on the shared storage | `node, storage: StorageView` |
 * | POST /v1/envs/:jname/start          | jstart; body `{family?}` (`j`/`b`: a jstart of a VM, a bstart of a jail refused as the CLI refuses it) | `node, env, warnings` |
 * | POST /v1/envs/:jname/stop           | jstop; body `{family?}`                | `node, env, warnings`            |
 * | POST /v1/envs/:jname/register       | jregister; body `{force?, mnt_start?, mnt_stop?, keep_storage?}` | `node, result` |
 * | POST /v1/envs/:jname/unregister     | junregister                            | `node, result`                   |
 * | POST /v1/envs/:jname/prepare        | jmigrate preflight at the destination; body `{uuid?, mount?}`: can this node start it (record, base, engine, hooks); with mount, its storage mounted ahead | `node, plan` |
 * | POST /v1/envs/:jname/cancel         | undo a prepare's mount                 | `node`                           |
 * | POST /v1/envs/:jname/incoming       | jmigrate live=1 destination: start it paused, waiting for the state | `node, incoming: {jid, channel}` |
 * | GET /v1/envs/:jname/migration (Upgrade: berth-migration) | jmigrate live=1: the state's byte stream, relayed to the paused env (src/agent/stream.ts), once per incoming | `101 Switching Protocols` |
 * | POST /v1/envs/:jname/resume         | jmigrate live=1 destination: resume the adopted env | `node` |
 * | POST /v1/envs/:jname/adopt          | jmigrate destination; body `{generation, start?, mounted?, return_to?}`: adopt an env whose lease was handed to this node | `node, result` |
 * | GET  /v1/ownership/probe?node=<n>&id=<hex> | the content of `<lease_dir>/nodes/<n>/probe.<id>` as this node reads it (berth doctor) | `node, probe` |
 *
 * `warnings`: what the operation warned about, `[{message, fields}]` (src/log.ts
 * collectWarnings); the CLI prints them as it prints its own (src/cli/fast.ts).
 *
 * Errors: `{ok:false, error:{code, message, exitCode, hint, details?}, warnings?}` (the BerthError of the
 * operation, as `--json` prints it), with the HTTP status mapped from the exit code by
 * {@link httpStatusFor}: 3→404, 4→409, 2→400, anything else 500; 401 for a missing or wrong token.
 * A body that is not JSON, or has unknown keys or wrong types, is a 400 (E_BAD_REQUEST).
 *
 * The routes call an {@link AgentOps} implementation (src/agent/ops.ts over a NodeCtx), so the
 * API itself is tested without runc (test/unit/agent-api.test.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { BerthError, EXIT, toBerthError, usageError } from '../errors.js';
import { checkJname, checkNodename } from '../names.js';
import { collectWarnings, type Warning } from '../log.js';
import { AdoptBody, PrepareBody, RegisterBody, RunBody } from '../nodes/protocol.js';

export { AdoptBody, PrepareBody, RegisterBody, RunBody };

/** What the routes need from the node. Every method throws BerthError on failure. */
export interface AgentOps {
  /** this node's name (put in every answer as `node`) */
  readonly nodename: string;
  info(): Promise<Record<string, unknown>>;
  list(opts: { unregistered: boolean }): Promise<unknown[]>;
  status(jname: string): Promise<unknown>;
  storage(jname: string): Promise<unknown>;
  /** `body.family`: refuse an env of the other command family (E_BAD_EMULATOR, exit 2), as the CLI does */
  start(jname: string, body?: RunBody): Promise<unknown>;
  stop(jname: string, body?: RunBody): Promise<unknown>;
  register(jname: string, body: RegisterBody): Promise<unknown>;
  unregister(jname: string): Promise<unknown>;
  prepare(jname: string, body: PrepareBody): Promise<unknown>;
  cancel(jname: string): Promise<unknown>;
  adopt(jname: string, body: AdoptBody): Promise<unknown>;
  /** live migration destination: start it paused, waiting for the state (after a prepare with mount) */
  incoming(jname: string): Promise<unknown>;
  /** live migration destination: resume the adopted env once its state is complete */
  resume(jname: string): Promise<unknown>;
  /** the probe file `id` another node wrote in the ownership directory, as this node reads it ('' when missing) */
  probe(node: string, id: string): Promise<string>;
}

/**
 * The HTTP status of an error answer, from the BerthError exit code (design/product.md "Exit
 * codes"): 3 (no such env/node) → 404, 4 (owned by another node, locked) → 409, 2 (usage) →
 * 400, anything else (1 failure, 5 engine, 124 hook timeout ...) → 500.
 */
export function httpStatusFor(exitCode: number): 400 | 404 | 409 | 500 {
  if (exitCode === EXIT.NOT_FOUND) return 404;
  if (exitCode === EXIT.OWNED) return 409;
  if (exitCode === EXIT.USAGE) return 400;
  return 500;
}

/**
 * Compares a presented token with the node's in constant time (independent of where they
 * differ and of their lengths: both are hashed to 32 bytes first). Empty tokens never match.
 */
export function tokenMatches(presented: string | undefined, expected: string): boolean {
  if (!presented || !expected) return false;
  const a = createHash('sha256').update(presented, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer <token>` header value (scheme case-insensitive), or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  return m ? m[1] : undefined;
}

/** Options of {@link createApi}. */
export interface ApiOptions {
  /** the node's API token (etc/api.token) */
  token: string;
  ops: AgentOps;
  /** called after each request (logging): method, path, status, duration in ms */
  onRequest?: (r: { method: string; path: string; status: number; ms: number }) => void;
}

function errorBody(err: BerthError): Record<string, unknown> {
  return { ok: false, error: err.toJSON() };
}

/**
 * Parses a request body: empty = {}; JSON checked against `schema` (strict: unknown keys refused).
 * @throws BerthError E_BAD_REQUEST (exit 2, HTTP 400) naming what is wrong
 */
async function body<T>(c: Context, schema: z.ZodType<T>, what: string, shape: string): Promise<T> {
  const text = await c.req.text();
  let raw: unknown = {};
  if (text.trim() !== '') {
    try {
      raw = JSON.parse(text);
    } catch {
      throw usageError('E_BAD_REQUEST', 'the request body is not JSON');
    }
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ');
    throw usageError('E_BAD_REQUEST', `bad ${what} body: ${issues}`, { hint: `body: ${shape}` });
  }
  return parsed.data;
}

/** Builds the hono app. Serve it with @hono/node-server (src/agent/daemon.ts). */
export function createApi(opts: ApiOptions): Hono {
  const { ops } = opts;
  const app = new Hono();

  app.use('*', async (c, next) => {
    const t0 = performance.now();
    await next();
    opts.onRequest?.({ method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(performance.now() - t0) });
  });
  app.use('*', async (c, next) => {
    if (!tokenMatches(bearerToken(c.req.header('Authorization')), opts.token)) {
      const err = new BerthError('E_UNAUTHORIZED', 'missing or wrong API token (Authorization: Bearer <token>)', EXIT.FAILURE, {
        hint: 'use the token in etc/api.token of that node (berth node add ... token_file=<a copy of it>)',
      });
      c.header('WWW-Authenticate', 'Bearer realm="berth"');
      return c.json(errorBody(err), 401);
    }
    await next();
  });

  app.onError((e, c) => {
    const err = toBerthError(e);
    const warnings = (e as { warnings?: Warning[] }).warnings;
    return c.json({ ...errorBody(err), ...(warnings?.length ? { warnings } : {}) }, httpStatusFor(err.exitCode));
  });
  app.notFound((c) => c.json(errorBody(usageError('E_NO_ROUTE', `no such API route: ${c.req.method} ${c.req.path}`, {
    hint: 'routes: GET /v1/node, GET /v1/envs, GET /v1/envs/:jname, GET /v1/envs/:jname/storage, POST /v1/envs/:jname/{start,stop,register,unregister,prepare,cancel,adopt,incoming,resume}, GET /v1/ownership/probe?node=&id=',
  })), 404));

  const jname = (c: Context): string => checkJname(c.req.param('jname') ?? '');
  const ok = (c: Context, body: Record<string, unknown>) => c.json({ ok: true, node: ops.nodename, ...body }, 200);

  app.get('/v1/node', async (c) => ok(c, await ops.info()));
  app.get('/v1/envs', async (c) => {
    const u = c.req.query('unregistered');
    return ok(c, { envs: await ops.list({ unregistered: u === '1' || u === 'true' }) });
  });
  app.get('/v1/envs/:jname', async (c) => ok(c, { env: await ops.status(jname(c)) }));
  app.get('/v1/envs/:jname/storage', async (c) => ok(c, { storage: await ops.storage(jname(c)) }));
  const RUN_SHAPE = '{"family"?: "j" | "b"}';
  app.post('/v1/envs/:jname/start', async (c) => {
    const name = jname(c);
    const b = await body(c, RunBody, 'start', RUN_SHAPE);
    const { result, warnings } = await collectWarnings(() => ops.start(name, b));
    return ok(c, { env: result, warnings });
  });
  app.post('/v1/envs/:jname/stop', async (c) => {
    const name = jname(c);
    const b = await body(c, RunBody, 'stop', RUN_SHAPE);
    const { result, warnings } = await collectWarnings(() => ops.stop(name, b));
    return ok(c, { env: result, warnings });
  });
  app.post('/v1/envs/:jname/register', async (c) => {
    const name = jname(c);
    return ok(c, { result: await ops.register(name, await body(c, RegisterBody, 'register', '{"force"?: boolean, "mnt_start"?: string, "mnt_stop"?: string, "keep_storage"?: boolean}')) });
  });
  app.post('/v1/envs/:jname/prepare', async (c) => {
    const name = jname(c);
    return ok(c, { plan: await ops.prepare(name, await body(c, PrepareBody, 'prepare', '{"uuid"?: string, "mount"?: boolean}')) });
  });
  app.post('/v1/envs/:jname/cancel', async (c) => { await ops.cancel(jname(c)); return ok(c, {}); });
  app.post('/v1/envs/:jname/adopt', async (c) => {
    const name = jname(c);
    return ok(c, { result: await ops.adopt(name, await body(c, AdoptBody, 'adopt', '{"generation": number, "start"?: boolean, "mounted"?: boolean, "return_to"?: string}')) });
  });
  app.post('/v1/envs/:jname/incoming', async (c) => ok(c, { incoming: await ops.incoming(jname(c)) }));
  app.post('/v1/envs/:jname/resume', async (c) => { await ops.resume(jname(c)); return ok(c, {}); });
  app.get('/v1/ownership/probe', async (c) => {
    const id = c.req.query('id') ?? '';
    if (!/^[0-9a-f]{8,64}$/.test(id)) throw usageError('E_BAD_REQUEST', `bad probe id=${JSON.stringify(id)}: expected 8 to 64 hex digits`);
    return ok(c, { probe: await ops.probe(checkNodename(c.req.query('node') ?? ''), id) });
  });
  app.post('/v1/envs/:jname/unregister', async (c) => ok(c, { result: await ops.unregister(jname(c)) }));
  return app;
}
