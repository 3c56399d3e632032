/**
 * The live migration channel (src/agent/stream.ts, src/nodes/stream.ts) over real sockets: an
 * HTTP server serving the channel as the agent does, a unix socket standing in for the
 * destination engine's incoming endpoint (it echoes), the source's relay socket in between.
 * Token, one stream per incoming, refusals that name the cause, all bytes relayed both ways.
 */
import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { connect, createServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { dropStream, expectStream, serveMigrationStreams } from '../../src/agent/stream.js';
import { BerthError } from '../../src/errors.js';
import { AgentClient } from '../../src/nodes/client.js';
import { openMigrationChannel } from '../../src/nodes/stream.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-channel-'));
const apiSock = join(dir, 'agent.sock');
const engineSock = join(dir, 'vm1.migrate');
const TOKEN = 'a'.repeat(43);
let api: Server;
let engine: NetServer;
const seen: Array<{ jname: string; status: number; bytesIn?: number }> = [];

const listen = (s: Server | NetServer, p: string) => new Promise<void>((r) => s.listen(p, () => r()));
const close = (s: Server | NetServer) => new Promise<void>((r) => s.close(() => r()));

before(async () => {
  api = createHttpServer((_req, res) => { res.statusCode = 404; res.end('{}'); });
  serveMigrationStreams(api, TOKEN, (r) => seen.push(r));
  await listen(api, apiSock);
  engine = createServer((c) => c.pipe(c)); // the destination engine: echoes what it receives
  await listen(engine, engineSock);
});

after(async () => {
  await close(engine).catch(() => undefined);
  api.closeAllConnections();
  await close(api);
  rmSync(dir, { recursive: true, force: true });
});

async function refusal(p: Promise<unknown>): Promise<BerthError> {
  try { await p; } catch (e) { assert.ok(e instanceof BerthError, String(e)); return e; }
  assert.fail('expected a refusal');
}

/** Sends `payload` through the relay at `uri` and returns what came back. */
function roundTrip(uri: string, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const c = connect(uri.slice('unix:'.length));
    const got: Buffer[] = [];
    let n = 0;
    c.on('data', (d: Buffer) => { got.push(d); n += d.length; if (n >= payload.length) { c.end(); resolve(Buffer.concat(got)); } });
    c.on('error', reject);
    c.write(payload);
  });
}

test('no incoming migration expected: the channel is refused with 409 naming the env, nothing relayed', async () => {
  const client = new AgentClient('node2', `unix:${apiSock}`, TOKEN);
  const e = await refusal(client.upgrade('/v1/envs/vm1/migration', 'berth-migration'));
  assert.equal(e.code, 'E_MIGRATE');
  assert.match(e.message, /no live migration of vm1 waits here/);
  assert.equal(e.details?.status, 409);
});

test('a wrong token is refused with 401 (E_UNAUTHORIZED), and the expected stream stays for the right one', async () => {
  expectStream('vm1', engineSock);
  const wrong = new AgentClient('node2', `unix:${apiSock}`, 'b'.repeat(43));
  const e = await refusal(openMigrationChannel(wrong, '/v1/envs/vm1/migration', join(dir, 'out-wrong.sock')));
  assert.equal(e.code, 'E_UNAUTHORIZED');
  assert.equal(existsSync(join(dir, 'out-wrong.sock')), false, 'no relay socket left');
  assert.equal(seen.at(-1)?.status, 401);
  dropStream('vm1');
});

test('the right token: the relay carries every byte both ways, its socket is 0600, the stream is accepted once', async () => {
  expectStream('vm1', engineSock);
  const client = new AgentClient('node2', `unix:${apiSock}`, TOKEN);
  const local = join(dir, 'out.sock');
  const ch = await openMigrationChannel(client, '/v1/envs/vm1/migration', local);
  assert.equal(ch.uri, `unix:${local}`);
  assert.equal(statSync(local).mode & 0o777, 0o600);
  const payload = Buffer.alloc(4 * 1048576);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
  const back = await roundTrip(ch.uri, payload);
  assert.equal(back.length, payload.length);
  assert.ok(back.equals(payload), 'the bytes came back unchanged');
  assert.equal(ch.bytesSent(), payload.length);
  // the same incoming cannot be streamed twice
  const again = await refusal(client.upgrade('/v1/envs/vm1/migration', 'berth-migration'));
  assert.equal(again.details?.status, 409);
  await ch.close();
  await ch.close(); // idempotent
  assert.equal(existsSync(local), false, 'the relay socket is removed');
  for (let i = 0; i < 100 && seen.at(-1)?.status !== 101; i++) await new Promise((r) => setTimeout(r, 10));
  const done = seen.filter((s) => s.status === 101).at(-1);
  assert.equal(done?.jname, 'vm1');
  assert.equal(done?.bytesIn, payload.length, 'the agent counted what it relayed');
});

test('the engine endpoint gone: 502 naming the env; a wrong route or protocol: 400-class refusal', async () => {
  expectStream('vm2', join(dir, 'nothing-listens-here'));
  const client = new AgentClient('node2', `unix:${apiSock}`, TOKEN);
  const e = await refusal(client.upgrade('/v1/envs/vm2/migration', 'berth-migration'));
  assert.equal(e.details?.status, 502);
  assert.match(e.message, /incoming endpoint of vm2 does not answer/);
  const wrongRoute = await refusal(client.upgrade('/v1/envs/vm2/other', 'berth-migration'));
  assert.equal(wrongRoute.details?.status, 404);
  const wrongProto = await refusal(client.upgrade('/v1/envs/vm2/migration', 'websocket'));
  assert.equal(wrongProto.details?.status, 404);
});
