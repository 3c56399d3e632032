/**
 * Types shared by the lifecycle's operations: their per-call options, step timings, and what
 * they report about an env.
 */
import type { EnvConf } from '../descriptor.js';
import { statusWord, type EnvRow } from '../inventory.js';

/** Per-call options of lifecycle operations. */
export interface OpOptions {
  /** copy hook output to stderr */
  verbose?: boolean;
  /**
   * Leave the env's storage mounted at the end (skip the final mnt_stop), because the next
   * step (jmigrate: stop → unregister; register → start) mounts it again at once. The hook's
   * next mnt_start then finds it mounted. Whoever passes it owns running mnt_stop later.
   */
  keepStorage?: boolean;
  /**
   * The env's storage is already mounted by this process (jregister start=1, jmigrate's
   * destination after its prepare): jstart skips mnt_start; its teardown runs mnt_stop as always.
   */
  mounted?: boolean;
  /**
   * The env's root is already assembled by this process (jmigrate's destination: its prepare
   * assembled it while the source still ran the env): jstart skips the root assembly; its
   * teardown unmounts the root as always.
   */
  rootReady?: boolean;
  /** when given, each step of a start or teardown appends its duration here (jmigrate, benches) */
  timings?: StepTiming[];
  /**
   * jstop only: called during the teardown once the env's processes are gone, its root is
   * unmounted and master_poststop.d ran, before the engine's own state (runc's container
   * record, a jail.conf) is cleaned up. jmigrate hands the lease over and starts the env at the
   * destination here, so that the downtime does not wait for that cleanup. A failure of it is
   * thrown after the teardown finished.
   */
  whileDown?: () => Promise<void>;
}

/** One timed step of a start or teardown: its name and its duration in milliseconds. */
export interface StepTiming {
  step: string;
  ms: number;
}

/** Runs `f` as step `name`, timing it into `timings` when given. */
export async function timed<T>(timings: StepTiming[] | undefined, name: string, f: () => Promise<T> | T): Promise<T> {
  if (!timings) return f();
  const t0 = performance.now();
  try {
    return await f();
  } finally {
    timings.push({ step: name, ms: Math.round((performance.now() - t0) * 10) / 10 });
  }
}

/** What list/start/stop report about one env. */
export interface EnvInfo {
  jname: string;
  uuid: string;
  emulator: string;
  /** 'On' | 'Off' | 'Maintenance' | 'Unregister' (CBSD status words) */
  status: string;
  /** jail id or init pid; 0 when stopped */
  jid: number;
  generation: number;
  conf: EnvConf;
}

/** The EnvInfo of an inventory row (`status` overrides the row's status word). */
export function envInfo(row: EnvRow, status?: string): EnvInfo {
  return { jname: row.jname, uuid: row.uuid, emulator: row.emulator, status: status ?? statusWord(row.status), jid: row.jid, generation: row.generation, conf: row.conf };
}
