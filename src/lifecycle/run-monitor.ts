/**
 * The node's run monitor (src/monitor.ts): one small detached process per node that sees a
 * running env's main process exit and tears the run down. This module finds it and starts it.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NodeCtx } from '../node.js';
import { pidAlive } from '../proc.js';

/**
 * The monitor's entry script: dist/bundle/monitor.cjs next to the bundled CLI, dist/src/monitor.js
 * (tsc output, one level up from this module), or under tsx the .ts source.
 */
function monitorCommand(): string[] {
  for (const name of ['./monitor.cjs', '../monitor.js']) {
    const file = fileURLToPath(new URL(name, import.meta.url));
    if (existsSync(file)) return [process.execPath, file];
  }
  return [process.execPath, '--import', 'tsx', fileURLToPath(new URL('../monitor.ts', import.meta.url))];
}

/** The run monitor's pid file: var/run/monitor.pid (its mtime is the monitor's heartbeat). */
export function monitorPidFile(ctx: NodeCtx): string {
  return join(ctx.wd.runDir, 'monitor.pid');
}

/** The monitor touches its pid file every MONITOR_BEAT_MS; older than MONITOR_STALE_MS = dead. */
export const MONITOR_BEAT_MS = 1000;
const MONITOR_STALE_MS = 5000;

/**
 * The pid of this node's live run monitor, or 0. Alive means: the pid file names a process
 * that exists (and, where /proc is, is not a zombie) and the file was touched in the last
 * 5 s, so a pid reused by another process after the monitor died is not mistaken for it.
 */
export function liveMonitorPid(ctx: NodeCtx): number {
  const f = monitorPidFile(ctx);
  try {
    const st = statSync(f);
    if (Date.now() - st.mtimeMs > MONITOR_STALE_MS) return 0;
    const pid = Number(readFileSync(f, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) return 0;
    // (a monitor killed with -9 whose parent never reaps it is a zombie: not alive)
    return pidAlive(pid) ? pid : 0;
  } catch {
    return 0;
  }
}

/**
 * Makes sure this node's run monitor (src/monitor.ts) is alive, starting it detached when it
 * is not. Called after the env's row says On, so a monitor that is just deciding to exit sees
 * the new run (it re-scans after giving up its pid file). One monitor per node, not one per
 * run: N running envs cost one Node process. Its output goes to var/log/monitor.log.
 * @returns true when a monitor was started
 */
export function ensureMonitor(ctx: NodeCtx): boolean {
  if (!ctx.runMonitor || liveMonitorPid(ctx)) return false;
  const fd = openSync(join(ctx.wd.logDir, 'monitor.log'), 'a', 0o640);
  try {
    const [cmd, ...args] = monitorCommand();
    const child = spawn(cmd!, [...args, ctx.wd.root], { detached: true, stdio: ['ignore', fd, fd], env: { ...process.env, BERTH_WORKDIR: ctx.wd.root } });
    child.unref();
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Starts the node's run monitor when envs are On or claimed (Maintenance) and none is alive:
 * after the monitor was killed, the new one tears down what ended meanwhile and recovers
 * claims of dead processes. `jls` calls this (the agent reconciles on its own).
 * @returns true when a monitor had to be started
 */
export function watchIfNeeded(ctx: NodeCtx): boolean {
  if (!ctx.inv.running().length && !ctx.inv.claimed().length) return false;
  return ensureMonitor(ctx);
}
