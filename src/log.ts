/**
 * Logging. The library never prints: it logs through this pino logger, which writes JSON
 * lines to stderr. Level: `BERTH_LOG_LEVEL` (trace|debug|info|warn|error), or `debug` when
 * `BERTH_DEBUG=1`; default `warn`. Every external command is logged at debug level by
 * src/proc.ts with its argv, exit status and duration (ms).
 */
import type { Logger } from 'pino';

let logger: Logger | undefined;

function level(): string {
  if (process.env.BERTH_LOG_LEVEL) return process.env.BERTH_LOG_LEVEL;
  if (process.env.BERTH_DEBUG === '1') return 'debug';
  return 'warn';
}

/** Returns true when `lvl` would be emitted; lets hot paths skip building log objects. */
export function logEnabled(lvl: 'debug' | 'info' | 'warn'): boolean {
  const order = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
  return order.indexOf(lvl) >= order.indexOf(level());
}

/** The process-wide logger (created on first use, so `berth --version` never loads pino). */
export async function getLogger(): Promise<Logger> {
  if (!logger) {
    const { pino } = await import('pino');
    logger = pino({ level: level(), base: { pid: process.pid } }, pino.destination(2));
  }
  return logger;
}

/** Logs at debug level without forcing pino to load when debug is off. */
export async function debug(obj: Record<string, unknown>, msg: string): Promise<void> {
  if (!logEnabled('debug')) return;
  (await getLogger()).debug(obj, msg);
}

/** Logs at warn level. */
export async function warn(obj: Record<string, unknown>, msg: string): Promise<void> {
  if (!logEnabled('warn')) return;
  (await getLogger()).warn(obj, msg);
}
