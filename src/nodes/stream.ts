/**
 * The live migration channel, source side (jmigrate live=1, src/lifecycle/migrate.ts): opens
 * the destination agent's authenticated byte stream (src/agent/stream.ts, through
 * {@link AgentClient.upgrade}) and offers it to the local engine as a node-local unix socket,
 * so that the engine (qemu `migrate unix:<path>`) never talks to the network itself and the
 * state travels only over a connection authenticated with the destination's node token.
 *
 *   source qemu ─unix─▶ this relay ─HTTP Upgrade, Bearer token─▶ destination agent ─unix─▶ destination qemu
 *
 * The relay accepts one connection (the engine's); a second one is refused.
 */
import { chmod, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { BerthError, EXIT } from '../errors.js';
import type { AgentClient } from './client.js';
import { STREAM_PROTOCOL } from './protocol.js';

/** An open migration channel. */
export interface MigrationChannel {
  /** what the engine sends to: `unix:<localSocket>` */
  uri: string;
  /** bytes relayed from the engine to the destination so far */
  bytesSent(): number;
  /** closes both ends and removes the local socket. Idempotent; never throws. */
  close(): Promise<void>;
}

const UNIX_PATH_MAX = 107;

/**
 * Opens the channel `path` (the destination's answer to POST /v1/envs/:jname/incoming) on
 * `client`'s agent and listens for the engine on the unix socket `localSocket` (mode 0600;
 * an old file there is replaced).
 * @throws BerthError E_SOCKET_PATH (1) for a socket path over 107 bytes; the agent's refusal
 *   (E_UNAUTHORIZED 1, E_MIGRATE ...) or E_NODE_UNREACHABLE (1) from {@link AgentClient.upgrade}
 */
export async function openMigrationChannel(client: AgentClient, path: string, localSocket: string): Promise<MigrationChannel> {
  if (Buffer.byteLength(localSocket) > UNIX_PATH_MAX) {
    throw new BerthError('E_SOCKET_PATH', `the socket path ${localSocket} is longer than ${UNIX_PATH_MAX} bytes (the unix socket limit)`, EXIT.FAILURE, { hint: 'use a shorter workdir path or a shorter jname' });
  }
  const remote = await client.upgrade(path, STREAM_PROTOCOL);
  let sent = 0;
  let local: Socket | undefined;
  const server: Server = createServer((conn) => {
    if (local) { conn.destroy(); return; }
    local = conn;
    conn.on('data', (c: Buffer) => { sent += c.length; });
    conn.pipe(remote);
    remote.pipe(conn);
    conn.on('error', () => remote.destroy());
    remote.on('error', () => conn.destroy());
    // the channel gone (the destination's agent died, or it closed after the end): the engine's
    // side is closed at once, so a migration still sending fails now, not at its timeout
    remote.once('close', () => conn.destroy());
    conn.once('close', () => remote.end());
  });
  try {
    await rm(localSocket, { force: true });
    const oldMask = process.umask(0o077);
    try {
      await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(localSocket, () => resolve()); });
    } finally {
      process.umask(oldMask);
    }
    await chmod(localSocket, 0o600);
  } catch (e) {
    remote.destroy();
    server.close();
    await rm(localSocket, { force: true }).catch(() => undefined);
    throw new BerthError('E_LISTEN', `cannot listen on ${localSocket}: ${(e as Error).message}`, EXIT.FAILURE, { cause: e });
  }
  let closed = false;
  return {
    uri: `unix:${localSocket}`,
    bytesSent: () => sent,
    async close() {
      if (closed) return;
      closed = true;
      local?.destroy();
      remote.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await rm(localSocket, { force: true }).catch(() => undefined);
    },
  };
}
