/**
 * Serving the web console (src/agent/console/app.ts) from `berth agent`: on
 * `console_bind:console_port` (127.0.0.1 unless console_bind says otherwise), HTTPS when both
 * `tls_cert` and `tls_key` are set (node:https through @hono/node-server's createServer
 * option), plain HTTP otherwise; the websockets on the same server. The audit log is
 * `var/log/audit.log`; the CPU/memory sampler runs every `console_stats_sec` seconds.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { createAdaptorServer } from '@hono/node-server';
import { BerthError, EXIT, usageError } from '../../errors.js';
import type { NodeCtx } from '../../node.js';
import type { AgentOps } from '../api.js';
import { createConsole } from './app.js';
import { AuditLog } from './audit.js';
import { Stats } from './stats.js';

/** A running console. */
export interface ConsoleServer {
  server: Server;
  url: string;
  /** something may have changed (the agent's API ran an operation): the open pages look now */
  poke(): void;
  close(): Promise<void>;
}

/**
 * Starts the console. @throws BerthError E_TLS (1: unreadable cert/key, or only one of them set),
 * E_LISTEN (1)
 */
export async function startConsole(ctx: NodeCtx, ops: AgentOps, track: <T>(p: Promise<T>) => Promise<T>): Promise<ConsoleServer> {
  const s = ctx.settings;
  if (!!s.tls_cert !== !!s.tls_key) throw usageError('E_TLS', `set both tls_cert= and tls_key= in berth.conf (only ${s.tls_cert ? 'tls_cert' : 'tls_key'} is set)`);
  let tls: { cert: Buffer; key: Buffer } | undefined;
  if (s.tls_cert) {
    try {
      tls = { cert: readFileSync(s.tls_cert), key: readFileSync(s.tls_key) };
    } catch (e) {
      throw new BerthError('E_TLS', `cannot read the console's TLS files: ${(e as Error).message}`, EXIT.FAILURE, { hint: 'tls_cert and tls_key are PEM files readable by root' });
    }
  }
  const audit = await AuditLog.open(join(ctx.wd.logDir, 'audit.log'));
  const stats = new Stats(ctx);
  const con = createConsole({ ctx, ops, track, audit, stats, secure: !!tls });
  const server = (tls
    ? createAdaptorServer({ fetch: con.app.fetch, createServer: createHttpsServer, serverOptions: tls })
    : createAdaptorServer({ fetch: con.app.fetch })) as Server;
  con.injectWebSocket(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new BerthError('E_LISTEN', `cannot listen on ${s.console_bind}:${s.console_port}: ${e.message}`, EXIT.FAILURE, { hint: 'choose another console_port', cause: e })));
    server.listen(s.console_port, s.console_bind, () => resolve());
  });
  void stats.sample();
  const timer = setInterval(() => void stats.sample(), s.console_stats_sec * 1000);
  const host = s.console_bind.includes(':') ? `[${s.console_bind}]` : s.console_bind;
  return {
    server,
    url: `${tls ? 'https' : 'http'}://${host}:${s.console_port}/`,
    poke: () => con.poke(),
    async close() {
      clearInterval(timer);
      con.close();
      server.closeAllConnections?.();
      await new Promise<void>((r) => server.close(() => r()));
      audit.close();
    },
  };
}
