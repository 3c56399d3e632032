/**
 * Engines: what runs an env once its root is assembled. runc (Linux, src/engines/runc.ts)
 * and jail(8) (FreeBSD, src/engines/jail.ts) implement this; qemu/bhyve later. The
 * lifecycle (src/lifecycle.ts) is written once over this interface.
 */
import type { EnvConf } from '../descriptor.js';
import type { EnvPaths, Workdir } from '../paths.js';
import type { NodeCtx } from '../node.js';

/** What an engine is told about the env it runs. */
export interface EngineEnv {
  jname: string;
  nodename: string;
  wd: Workdir;
  paths: EnvPaths;
  conf: EnvConf;
}

/** Result of a start: `jid` is the jail id (jail) or the init pid (runc). */
export interface StartResult {
  jid: number;
}

export interface Engine {
  /** the emulator name: 'runc' | 'jail' */
  readonly name: string;
  /**
   * How often (ms) the node's run monitor asks {@link Engine.isRunning} (default 250). An engine
   * whose check spawns a process (jail: `jls`) sets a longer interval.
   */
  readonly monitorIntervalMs?: number;
  /**
   * Checks engine-specific settings at jcreate/jset time (e.g. vnet needs ip4_addr=A/N).
   * @throws BerthError E_BAD_VALUE (exit 2) naming key and value
   */
  validate(conf: EnvConf): void;
  /**
   * Sets up the env's network (vnet), writes the engine config (OCI bundle / jail.conf),
   * and starts the env's main process on the assembled root `paths.path`.
   * Cleans up its own partial state on failure, then throws.
   * @throws BerthError E_ENGINE (exit 5)
   */
  start(env: EngineEnv): Promise<StartResult>;
  /**
   * Stops the env: polite signal/exec.stop, then force after `timeoutSec` seconds.
   * Returns when no process of the env is left. Idempotent.
   */
  stop(env: EngineEnv, timeoutSec: number): Promise<void>;
  /** True while the env (started with `jid`) still has processes. */
  isRunning(env: EngineEnv, jid: number): Promise<boolean>;
  /** Removes engine state (runc container record, netns/veth, jail.conf). Idempotent. */
  cleanup(env: EngineEnv): Promise<void>;
  /**
   * Runs `argv` inside the running env with the caller's stdio.
   * @returns the command's exit code
   */
  exec(env: EngineEnv, argv: string[], opts: { tty?: boolean }): Promise<number>;
}

/** The EngineEnv of env `jname` with settings `conf` on this node. */
export function engineEnv(ctx: Pick<NodeCtx, 'nodename' | 'wd'>, jname: string, conf: EnvConf): EngineEnv {
  return { jname, nodename: ctx.nodename, wd: ctx.wd, paths: ctx.wd.env(jname), conf };
}
