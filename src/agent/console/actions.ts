/**
 * The console's actions: the same library calls as the CLI commands (src/cli/commands/j*.ts)
 * and, for start and stop, the same operations as the agent API (src/agent/ops.ts, which the
 * CLI's fast path uses while an agent runs). Each answers what the CLI would print: its exit
 * code, its stdout line (`started: web1`) and, on failure, its stderr lines
 * (`berth jstart: <message>` / `hint: ...`, src/errors.ts cliErrorLines).
 */
import { cliErrorLines, EXIT, toBerthError } from '../../errors.js';
import { getEnv } from '../../lifecycle/envs.js';
import { startEnv } from '../../lifecycle/start.js';
import { stopEnv } from '../../lifecycle/stop.js';
import { downtimeLine, migrateEnv, migratedLine } from '../../lifecycle/migrate.js';
import { STATUS } from '../../inventory.js';
import type { NodeCtx } from '../../node.js';
import { ENGINE_MODULES, engineModule } from '../../engines/registry.js';
import type { AgentOps } from '../api.js';

/** The actions of the console, and the CLI command each one is. */
export const ACTIONS = {
  start: 'jstart', stop: 'jstop', restart: 'jrestart', migrate: 'jmigrate', register: 'jregister', unregister: 'junregister',
} as const;
export type Action = keyof typeof ACTIONS;

/** The CLI commands of a VM's actions (the b family: `berth bstart`); migrate is jmigrate for every env. */
const VM_COMMANDS: Partial<Record<Action, string>> = { start: 'bstart', stop: 'bstop', restart: 'brestart', register: 'bregister', unregister: 'bunregister' };

/** The CLI command of `action` on `jname`: bstart for a VM (an emulator of the b family), else jstart. */
export function commandOf(ctx: NodeCtx, action: Action, jname: string): string {
  const emulator = ctx.inv.get(jname)?.emulator;
  const family = ENGINE_MODULES.find((m) => m.info.name === emulator)?.info.family;
  return (family === 'b' && VM_COMMANDS[action]) || ACTIONS[action];
}

/**
 * Whether the migrate form offers live (jmigrate live=1): `jname` runs on this node and its
 * engine can move a running env without stopping it (EngineInfo.liveMigration).
 */
export function liveOffered(ctx: NodeCtx, jname: string): boolean {
  const row = ctx.inv.get(jname);
  return !!row && row.status === STATUS.ON && !!engineModule(row.emulator)?.info.liveMigration;
}

/** What the CLI would have printed and exited with. */
export interface Outcome {
  action: Action;
  jname: string;
  command: string;
  exitCode: number;
  stdout: string;
  stderr: string;
  code?: string;
}

export function isAction(a: string): a is Action {
  return Object.prototype.hasOwnProperty.call(ACTIONS, a);
}

/**
 * Runs `action` on `jname` (`opts.dst`, `opts.live`: migrate's destination and jmigrate live=1). Never throws: a failure is an Outcome with the CLI's exit code and lines.
 * @param track the agent's tracker of work in progress (waited for on shutdown)
 */
export async function runAction(ctx: NodeCtx, ops: AgentOps, action: Action, jname: string, opts: { dst?: string; live?: boolean }, track: <T>(p: Promise<T>) => Promise<T>): Promise<Outcome> {
  let command: string = ACTIONS[action];
  try {
    command = commandOf(ctx, action, jname);
    let stdout: string;
    switch (action) {
      case 'start': await ops.start(jname); stdout = `started: ${jname}`; break;
      case 'stop': await ops.stop(jname); stdout = `stopped: ${jname}`; break;
      case 'restart':
        await track((async () => {
          if (getEnv(ctx, jname).status !== 0) await stopEnv(ctx, jname);
          await startEnv(ctx, jname);
        })());
        stdout = `restarted: ${jname}`;
        break;
      case 'migrate': {
        // live: jmigrate live=1 (refused, as by the CLI, for an engine without live migration)
        const r = await track(migrateEnv(ctx, jname, opts.dst ?? '', { live: !!opts.live }));
        stdout = `${downtimeLine(r)}\n${migratedLine(r)}`;
        break;
      }
      case 'register': {
        const r = await ops.register(jname, {}) as { jname: string; generation: number; tookOver?: boolean; previousOwner?: string };
        stdout = `registered: ${r.jname} (generation ${r.generation}${r.tookOver ? `, taken over from ${r.previousOwner}` : ''})`;
        break;
      }
      case 'unregister': await ops.unregister(jname); stdout = `unregistered: ${jname}`; break;
    }
    return { action, jname, command, exitCode: EXIT.OK, stdout, stderr: '' };
  } catch (e) {
    const err = toBerthError(e);
    return { action, jname, command, exitCode: err.exitCode, stdout: '', stderr: cliErrorLines(command, err), code: err.code };
  }
}
