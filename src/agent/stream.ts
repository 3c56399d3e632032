/**
 * The migration channel of a live migration (jmigrate live=1), destination side: the node
 * that sends an env's running state connects to this agent's API port (or socket) and asks,
 * with the node's API token, to switch the connection to a byte stream:
 *
 *     GET /v1/envs/<jname>/migration HTTP/1.1
 *     Connection: Upgrade
 *     Upgrade: berth-migration
 *     Authorization: Bearer <token>
 *
 * The agent answers `101 Switching Protocols` and relays the stream to the local endpoint the
 * engine listens on for that env (Engine.liveIncoming: qemu's `migrate-incoming unix:<path>`),
 * so that the engine itself never listens on a network port. A stream is accepted once per
 * incoming migration ({@link expectStream}); anything else is answered with the API's JSON
 * error (401 wrong token, 404 unknown route, 409 no incoming migration of that env here,
 * 502 the engine's endpoint is gone) and the connection closed.
 */
import type { IncomingMessage, Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { BerthError, EXIT } from '../errors.js';
import { STREAM_PROTOCOL } from '../nodes/protocol.js';
import { bearerToken, tokenMatches } from './api.js';

/** env name → the unix socket its incoming engine listens on (one per agent process). */
const pending = new Map<string, string>();

/**
 * Accepts one migration stream for `jname`, relayed to the unix socket `path` (the engine's
 * incoming endpoint). Replaces an earlier expectation for the same env.
 */
export function expectStream(jname: string, path: string): void {
  pending.set(jname, path);
}

/** Forgets the expected stream of `jname` (the incoming migration was cancelled). */
export function dropStream(jname: string): void {
  pending.delete(jname);
}

function refuse(socket: Duplex, status: number, reason: string, err: BerthError): void {
  const body = JSON.stringify({ ok: false, error: err.toJSON() });
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/**
 * Serves migration streams on `server` (an API server: unix socket or TCP), authenticated
 * with `token` (compared in constant time, src/agent/api.ts tokenMatches).
 * @param onStream called once per stream with its env and outcome (for the agent's log)
 */
export function serveMigrationStreams(server: Server, token: string, onStream: (r: { jname: string; status: number; bytesIn?: number; message?: string }) => void): void {
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const m = /^\/v1\/envs\/([^/?#]+)\/migration$/.exec(req.url ?? '');
    const jname = m ? decodeURIComponent(m[1]!) : '';
    if (!m || String(req.headers.upgrade ?? '').toLowerCase() !== STREAM_PROTOCOL) {
      refuse(socket, 404, 'Not Found', new BerthError('E_BAD_REQUEST', `no upgrade route ${req.url} (the migration channel is GET /v1/envs/:jname/migration with Upgrade: ${STREAM_PROTOCOL})`, EXIT.USAGE));
      return;
    }
    if (!tokenMatches(bearerToken(req.headers.authorization), token)) {
      refuse(socket, 401, 'Unauthorized', new BerthError('E_UNAUTHORIZED', 'missing or wrong API token (Authorization: Bearer <token>)', EXIT.FAILURE));
      onStream({ jname, status: 401 });
      return;
    }
    const path = pending.get(jname);
    if (!path) {
      refuse(socket, 409, 'Conflict', new BerthError('E_MIGRATE', `no live migration of ${jname} waits here (POST /v1/envs/${jname}/incoming first)`, EXIT.FAILURE));
      onStream({ jname, status: 409 });
      return;
    }
    pending.delete(jname);
    const engineSide: Socket = connect(path);
    let bytesIn = 0;
    let connected = false;
    engineSide.once('error', (e) => {
      if (!connected) {
        refuse(socket, 502, 'Bad Gateway', new BerthError('E_MIGRATE', `the incoming endpoint of ${jname} does not answer: ${e.message}`, EXIT.ENGINE));
      } else socket.destroy();
      onStream({ jname, status: 502, bytesIn, message: e.message });
    });
    engineSide.once('connect', () => {
      connected = true;
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${STREAM_PROTOCOL}\r\n\r\n`);
      if (head.length) { bytesIn += head.length; engineSide.write(head); }
      socket.on('data', (c: Buffer) => { bytesIn += c.length; });
      socket.pipe(engineSide);
      engineSide.pipe(socket);
      socket.once('close', () => { engineSide.end(); onStream({ jname, status: 101, bytesIn }); });
      engineSide.once('close', () => socket.end());
      socket.on('error', () => engineSide.destroy());
    });
  });
}
