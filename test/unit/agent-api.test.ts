/**
 * The agent's HTTP API (src/agent/api.ts) with fake operations: bearer token (401 without or
 * with a wrong one, constant-time compare), routes, error mapping (3→404, 4→409, 2→400,
 * else 500), body validation; and the client (src/agent/client.ts) against the API served on a
 * real unix socket: URL validation, errors carried over, 401, unreachable nodes.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createAdaptorServer } from '@hono/node-server';
import { bearerToken, createApi, httpStatusFor, tokenMatches, type AgentOps } from '../../src/agent/api.js';
import { AgentClient, parseNodeUrl } from '../../src/nodes/client.js';
import { BerthError, EXIT, notFound, ownedError, usageError } from '../../src/errors.js';
import { setWarningSink, warn } from '../../src/log.js';

const TOKEN = 'a'.repeat(64);
const calls: string[] = [];

const fake: AgentOps = {
  nodename: 'n1',
  async info() { return { version: 'x', leaseTtl: 30, pid: 1 }; },
  async list({ unregistered }) { calls.push(`list:${unregistered}`); return [{ jname: 'web1', status: 'On' }]; },
  async status(j) {
    calls.push(`status:${j}`);
    if (j === 'gone') throw notFound('E_NO_SUCH_ENV', 'no env gone');
    return { jname: j, status: 'On' };
  },
  async storage(j) { return { jname: j, registered: false }; },
  async start(j) {
    calls.push(`start:${j}`);
    if (j === 'owned') throw ownedError('E_LEASE_HELD', 'owned by node2', { hint: 'ask node2' });
    if (j === 'broken') throw new BerthError('E_ENGINE', 'runc failed', EXIT.ENGINE);
    if (j === 'oops') throw new Error('plain error');
    if (j.startsWith('warns')) {
      // two operations at once: each answer carries its own warnings only
      await warn({ jname: j, n: 1 }, `first of ${j}`);
      await new Promise((r) => setTimeout(r, j === 'warns1' ? 30 : 5));
      await warn({ jname: j, n: 2 }, `second of ${j}`);
      if (j === 'warnsfail') throw new BerthError('E_ENGINE', 'runc failed after warning', EXIT.ENGINE);
    }
    return { jname: j, status: 'On' };
  },
  async stop(j, body) { calls.push(`stop:${j}${body?.family ? `:${body.family}` : ''}`); return { jname: j, status: 'Off' }; },
  async register(j, body) { calls.push(`register:${j}:${JSON.stringify(body)}`); return { jname: j, generation: 7 }; },
  async unregister(j) { calls.push(`unregister:${j}`); return { jname: j }; },
  async prepare(j, body) { calls.push(`prepare:${j}:${JSON.stringify(body)}`); return { jname: j, mounted: !!body.mount }; },
  async cancel(j) { calls.push(`cancel:${j}`); return {}; },
  async adopt(j, body) { calls.push(`adopt:${j}:${JSON.stringify(body)}`); return { jname: j, generation: body.generation }; },
  async incoming(j) { calls.push(`incoming:${j}`); return { jid: 1, uri: 'tcp:127.0.0.1:1' }; },
  async resume(j) { calls.push(`resume:${j}`); return {}; },
  async probe(node, id) { calls.push(`probe:${node}:${id}`); return node === 'n2' ? `n2:${id}\n` : ''; },
};

const app = createApi({ token: TOKEN, ops: fake });
const auth = { Authorization: `Bearer ${TOKEN}` };
const req = (path: string, init: RequestInit = {}) => app.request(`http://agent${path}`, init);

describe('token', () => {
  test('tokenMatches: equal only; empty never matches', () => {
    assert.equal(tokenMatches(TOKEN, TOKEN), true);
    assert.equal(tokenMatches(TOKEN.slice(1), TOKEN), false);
    assert.equal(tokenMatches(TOKEN + 'a', TOKEN), false);
    assert.equal(tokenMatches('', TOKEN), false);
    assert.equal(tokenMatches(undefined, TOKEN), false);
    assert.equal(tokenMatches('x', ''), false);
  });
  test('bearerToken parses the header', () => {
    assert.equal(bearerToken('Bearer abc'), 'abc');
    assert.equal(bearerToken('bearer   abc '), 'abc');
    assert.equal(bearerToken('Basic abc'), undefined);
    assert.equal(bearerToken('Bearer a b'), undefined);
    assert.equal(bearerToken(undefined), undefined);
  });
});

describe('API over app.request', () => {
  test('401 without a token, with a wrong one, with another scheme; nothing is called', async () => {
    calls.length = 0;
    const variants: Record<string, string>[] = [{}, { Authorization: 'Bearer wrong' }, { Authorization: `Basic ${TOKEN}` }, { Authorization: `Bearer ${TOKEN}x` }];
    for (const headers of variants) {
      for (const [path, method] of [['/v1/envs', 'GET'], ['/v1/envs/web1/start', 'POST'], ['/v1/nothing', 'GET']] as const) {
        const r = await req(path, { method, headers });
        assert.equal(r.status, 401, `${method} ${path} with ${JSON.stringify(headers)}`);
        assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
        const b = await r.json() as any;
        assert.equal(b.ok, false);
        assert.equal(b.error.code, 'E_UNAUTHORIZED');
      }
    }
    assert.deepEqual(calls, []);
  });

  test('list, status, start, stop, unregister answer {ok:true, node, ...}', async () => {
    calls.length = 0;
    let r = await req('/v1/envs', { headers: auth });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { ok: true, node: 'n1', envs: [{ jname: 'web1', status: 'On' }] });
    r = await req('/v1/envs?unregistered=1', { headers: auth });
    assert.equal(r.status, 200);
    r = await req('/v1/envs/web1', { headers: auth });
    assert.deepEqual(await r.json(), { ok: true, node: 'n1', env: { jname: 'web1', status: 'On' } });
    r = await req('/v1/envs/web1/start', { method: 'POST', headers: auth });
    assert.equal(((await r.json()) as any).env.status, 'On');
    r = await req('/v1/envs/web1/stop', { method: 'POST', headers: auth });
    assert.equal(((await r.json()) as any).env.status, 'Off');
    r = await req('/v1/envs/web1/unregister', { method: 'POST', headers: auth });
    assert.equal(r.status, 200);
    r = await req('/v1/node', { headers: auth });
    assert.equal(((await r.json()) as any).leaseTtl, 30);
    assert.deepEqual(calls, ['list:false', 'list:true', 'status:web1', 'start:web1', 'stop:web1', 'unregister:web1']);
  });

  test('errors: {ok:false, error} with the status of the exit code', async () => {
    const cases: Array<[string, string, number, string, number]> = [
      ['GET', '/v1/envs/gone', 404, 'E_NO_SUCH_ENV', 3],
      ['POST', '/v1/envs/owned/start', 409, 'E_LEASE_HELD', 4],
      ['POST', '/v1/envs/broken/start', 500, 'E_ENGINE', 5],
      ['POST', '/v1/envs/oops/start', 500, 'E_INTERNAL', 1],
      ['GET', '/v1/envs/bad.name', 400, 'E_BAD_JNAME', 2],
      ['GET', '/v1/nothing', 404, 'E_NO_ROUTE', 2],
      ['DELETE', '/v1/envs/web1', 404, 'E_NO_ROUTE', 2],
    ];
    for (const [method, path, status, code, exitCode] of cases) {
      const r = await req(path, { method, headers: auth });
      assert.equal(r.status, status, `${method} ${path}`);
      const b = await r.json() as any;
      assert.equal(b.ok, false);
      assert.equal(b.error.code, code);
      assert.equal(b.error.exitCode, exitCode);
      assert.equal(typeof b.error.message, 'string');
    }
    const b = await (await req('/v1/envs/owned/start', { method: 'POST', headers: auth })).json() as any;
    assert.equal(b.error.hint, 'ask node2');
  });

  test('register: body validated (JSON, known keys, types); empty body allowed', async () => {
    calls.length = 0;
    const post = (body?: string) => req('/v1/envs/web1/register', { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body });
    assert.equal((await post()).status, 200);
    assert.equal((await post('{"force":true,"mnt_start":"/h/s"}')).status, 200);
    for (const bad of ['{', '{"forc":true}', '{"force":"yes"}', '[]', '{"mnt_start":1}']) {
      const r = await post(bad);
      assert.equal(r.status, 400, bad);
      assert.equal(((await r.json()) as any).error.code, 'E_BAD_REQUEST');
    }
    assert.deepEqual(calls, ['register:web1:{}', 'register:web1:{"force":true,"mnt_start":"/h/s"}']);
  });

  test('start, stop: the body names the command family (the CLI fast path sends it); validated like register\'s', async () => {
    calls.length = 0;
    const post = (body?: string) => req('/v1/envs/vm1/stop', { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body });
    assert.equal((await post('{"family":"b"}')).status, 200);
    assert.equal((await post('{}')).status, 200);
    for (const bad of ['{"family":"x"}', '{"family":"j","more":1}']) {
      const r = await post(bad);
      assert.equal(r.status, 400, bad);
      assert.equal(((await r.json()) as any).error.code, 'E_BAD_REQUEST');
    }
    assert.deepEqual(calls, ['stop:vm1:b', 'stop:vm1']);
  });

  test('prepare, cancel, adopt (jmigrate destination): bodies validated like register\'s', async () => {
    calls.length = 0;
    const post = (path: string, body?: string) => req(`/v1/envs/web1/${path}`, { method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body });
    let r = await post('prepare', '{"uuid":"u","mount":true}');
    assert.equal(r.status, 200);
    assert.equal(((await r.json()) as any).plan.mounted, true);
    assert.equal((await post('cancel')).status, 200);
    r = await post('adopt', '{"generation":4,"start":true,"mounted":true,"return_to":"n2"}');
    assert.equal(r.status, 200);
    assert.equal(((await r.json()) as any).result.generation, 4);
    for (const [path, bad] of [['prepare', '{"mount":"yes"}'], ['adopt', '{}'], ['adopt', '{"generation":0}'], ['adopt', '{"generation":1.5}'], ['adopt', '{"generation":2,"x":1}']] as const) {
      const b = await post(path, bad);
      assert.equal(b.status, 400, `${path} ${bad}`);
      assert.equal(((await b.json()) as any).error.code, 'E_BAD_REQUEST');
    }
    assert.deepEqual(calls, ['prepare:web1:{"uuid":"u","mount":true}', 'cancel:web1', 'adopt:web1:{"generation":4,"start":true,"mounted":true,"return_to":"n2"}']);
  });

  test('ownership probe: what this node reads of another node\'s marker; a bad node name is 400', async () => {
    calls.length = 0;
    let r = await req('/v1/ownership/probe?node=n2&id=0123abcd', { headers: auth });
    assert.equal(((await r.json()) as any).probe, 'n2:0123abcd\n');
    r = await req('/v1/ownership/probe?node=n3&id=0123abcd', { headers: auth });
    assert.equal(((await r.json()) as any).probe, '');
    for (const bad of ['node=..%2Fx&id=0123abcd', 'node=n2&id=..%2F..', 'node=n2']) {
      r = await req(`/v1/ownership/probe?${bad}`, { headers: auth });
      assert.equal(r.status, 400, bad);
    }
    assert.deepEqual(calls, ['probe:n2:0123abcd', 'probe:n3:0123abcd']);
  });

  test('httpStatusFor', () => {
    assert.equal(httpStatusFor(3), 404);
    assert.equal(httpStatusFor(4), 409);
    assert.equal(httpStatusFor(2), 400);
    for (const c of [1, 5, 124, 137]) assert.equal(httpStatusFor(c), 500);
  });
});

describe('client', () => {
  let dir: string;
  let server: Server;
  let sock: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'berth-agent-unit-'));
    sock = join(dir, 'agent.sock');
    server = createAdaptorServer({ fetch: app.fetch }) as Server;
    await new Promise<void>((r) => server.listen(sock, r));
  });
  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  test('parseNodeUrl accepts http://host:port and unix:/abs; refuses the rest (exit 2)', () => {
    assert.deepEqual(parseNodeUrl('http://127.0.0.1:8080'), { kind: 'tcp', host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseNodeUrl('http://127.0.0.1:8080/'), { kind: 'tcp', host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseNodeUrl('http://[::1]:81'), { kind: 'tcp', host: '::1', port: 81 });
    assert.deepEqual(parseNodeUrl('unix:/var/lib/berth/var/run/agent.sock'), { kind: 'unix', socketPath: '/var/lib/berth/var/run/agent.sock' });
    for (const bad of ['', 'http://127.0.0.1', 'https://127.0.0.1:1', 'ftp://x:1', 'http://u:p@h:1', 'http://h:1/v1', 'http://h:1?x=1', 'unix:rel/agent.sock',
      `unix:/${'x'.repeat(120)}`, 'http://h:99999', '127.0.0.1:8080', 'http://h :1']) {
      assert.throws(() => parseNodeUrl(bad), (e: unknown) => e instanceof BerthError && e.code === 'E_BAD_URL' && e.exitCode === 2, bad);
    }
  });

  test('calls over the unix socket; remote errors keep code, exit code and hint', async () => {
    const c = new AgentClient('n1', `unix:${sock}`, TOKEN);
    const l = await c.list();
    assert.equal(l.node, 'n1');
    assert.deepEqual(l.envs, [{ jname: 'web1', status: 'On' }]);
    assert.equal(((await c.register('web1', { force: true })).result as any).generation, 7);
    await assert.rejects(c.start('owned'), (e: unknown) => e instanceof BerthError && e.code === 'E_LEASE_HELD' && e.exitCode === 4 && e.hint === 'ask node2' && e.details?.node === 'n1');
    await assert.rejects(c.status('gone'), (e: unknown) => e instanceof BerthError && e.exitCode === 3);
  });

  test("a remote node's errors name it; this node's own agent (local) passes the message as it is, with the warnings", async () => {
    setWarningSink(() => undefined);
    try {
      await assert.rejects(new AgentClient('n1', `unix:${sock}`, TOKEN).start('owned'), (e: unknown) => e instanceof BerthError && e.message === "node 'n1': owned by node2");
      await assert.rejects(new AgentClient('n1', `unix:${sock}`, TOKEN, { local: true }).start('warnsfail'), (e: any) =>
        e instanceof BerthError && e.message === 'runc failed after warning' && e.exitCode === 5 && e.details?.node === 'n1'
        && JSON.stringify((e as any).warnings.map((w: any) => w.message)) === '["first of warnsfail","second of warnsfail"]');
    } finally {
      setWarningSink(undefined);
    }
  });

  test('a wrong token gives E_UNAUTHORIZED; no agent gives E_NODE_UNREACHABLE (exit 1)', async () => {
    await assert.rejects(new AgentClient('n1', `unix:${sock}`, 'wrong').list(), (e: unknown) => e instanceof BerthError && e.code === 'E_UNAUTHORIZED' && e.exitCode === 1);
    await assert.rejects(new AgentClient('n9', `unix:${join(dir, 'none.sock')}`, TOKEN).list(), (e: unknown) => e instanceof BerthError && e.code === 'E_NODE_UNREACHABLE' && e.exitCode === 1);
    await assert.rejects(new AgentClient('n9', 'http://127.0.0.1:1', TOKEN).list(), (e: unknown) => e instanceof BerthError && e.code === 'E_NODE_UNREACHABLE');
  });

  test('usageError from a handler arrives as exit 2', async () => {
    const c = new AgentClient('n1', `unix:${sock}`, TOKEN);
    await assert.rejects(c.call('GET', '/v1/envs/bad.name'), (e: unknown) => e instanceof BerthError && e.code === 'E_BAD_JNAME' && e.exitCode === 2);
    assert.ok(usageError('E_USAGE', 'y').exitCode === 2);
  });
});

describe('warnings of an operation', () => {
  test('start and stop answers carry the warnings the operation logged, its own only; an error answer too', async () => {
    setWarningSink(() => undefined);
    try {
      const [a, b] = await Promise.all(['warns1', 'warns2'].map(async (j) => (await req(`/v1/envs/${j}/start`, { method: 'POST', headers: auth })).json() as Promise<any>));
      for (const [doc, j] of [[a, 'warns1'], [b, 'warns2']] as const) {
        assert.equal(doc.ok, true);
        assert.deepEqual(doc.warnings, [{ message: `first of ${j}`, fields: { jname: j, n: 1 } }, { message: `second of ${j}`, fields: { jname: j, n: 2 } }]);
      }
      assert.deepEqual(((await (await req('/v1/envs/web1/stop', { method: 'POST', headers: auth })).json()) as any).warnings, []);
      const r = await req('/v1/envs/warnsfail/start', { method: 'POST', headers: auth });
      assert.equal(r.status, 500);
      const doc = await r.json() as any;
      assert.equal(doc.error.code, 'E_ENGINE');
      assert.deepEqual(doc.warnings.map((w: any) => w.message), ['first of warnsfail', 'second of warnsfail']);
    } finally {
      setWarningSink(undefined);
    }
  });
});
