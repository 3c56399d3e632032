/**
 * Logging. The library never prints: it logs through this pino logger, which writes JSON
 * lines to stderr. Level: `BERTH_LOG_LEVEL` (trace|debug|info|warn|error), or `debug` when
 * `BERTH_DEBUG=1`; default `warn`. Every external command is logged at debug level by
 * src/proc.ts with its argv, exit status and duration (ms).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
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

/** Renders a warning for a person (see {@link setWarningSink}). */
export type WarningSink = (msg: string, fields: Record<string, unknown>) => void;
let warningSink: WarningSink | undefined;

/**
 * Lets the CLI show warnings as text lines on a terminal instead of pino's JSON lines (which
 * the agent and the run monitor keep, in their logs). Debug logs stay JSON.
 */
export function setWarningSink(sink: WarningSink | undefined): void {
  warningSink = sink;
}

/** One warning as an operation collected it (see {@link collectWarnings}). */
export interface Warning {
  message: string;
  fields: Record<string, unknown>;
}

const collecting = new AsyncLocalStorage<Warning[]>();

/**
 * Runs `fn` and collects the warnings logged inside it (its async calls included, and not
 * those of other operations running at the same time), so that the agent can hand a
 * delegated command's warnings back to the CLI that asked (src/agent/api.ts). The warnings
 * are still logged as usual too. Whatever `fn` throws is thrown, with `warnings` set on it.
 * @returns fn's result and the warnings, in order
 */
export async function collectWarnings<T>(fn: () => Promise<T>): Promise<{ result: T; warnings: Warning[] }> {
  const warnings: Warning[] = [];
  try {
    return { result: await collecting.run(warnings, fn), warnings };
  } catch (e) {
    if (e && typeof e === 'object') Object.assign(e, { warnings });
    throw e;
  }
}

/** Logs at warn level (through the warning sink when the CLI set one). */
export async function warn(obj: Record<string, unknown>, msg: string): Promise<void> {
  collecting.getStore()?.push({ message: msg, fields: obj });
  if (!logEnabled('warn')) return;
  if (warningSink) { warningSink(msg, obj); return; }
  (await getLogger()).warn(obj, msg);
}
