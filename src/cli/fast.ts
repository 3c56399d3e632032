/**
 * The CLI's fast path for `berth jstart <jname>` and `berth jstop <jname>` (and bstart, bstop
 * of a VM): when this node's
 * agent runs (`berth agent`, listening on `var/run/agent.sock`), the command is handed to it
 * over that socket (POST /v1/envs/<jname>/start|stop, src/agent/api.ts) instead of being run
 * in this process. The agent runs the same lifecycle code (src/lifecycle/start.ts, stop.ts)
 * and already has the inventory open, so the command skips loading the CLI and the library
 * (bench/lifecycle.ts (a)). Docker and Incus hand every command to their daemon; berth hands
 * only these, and only when the daemon is there. The request names the command's family (j
 * or b), so that the agent refuses a jstop of a VM (`use bstop`) as the CLI does.
 *
 * Only the plain forms are handed over: exactly one env name (`jname=web1` or `web1`, no
 * glob) and no other argument, so `-v` (hook output on the terminal), `--debug`, `--json`,
 * `workdir=` and globs always run in this process; so does a command whose environment sets
 * any BERTH_* variable but BERTH_WORKDIR (BERTH_DEBUG, BERTH_LOG_LEVEL ... would change what
 * it prints or does, and the agent has its own environment). `BERTH_AGENT=0` turns the fast
 * path off.
 *
 * The command runs here instead when the request cannot have reached the agent: no socket or
 * token file, a token that cannot go in an HTTP header, a socket that does not accept the
 * connection (nothing listens: an agent that died; no permission; backlog full), or a token
 * the agent refuses. Once the request was sent, it is never run a second time here: an agent
 * that vanishes mid-way is reported as a failure (exit 1). The answer is waited for as long
 * as the operation takes, as in-process (hooks are bounded by mnt_timeout); on a terminal a
 * note after 10 s says what is being waited for, in case the agent is wedged.
 *
 * Differences from running here: external commands (hooks, runc, mount) run in the agent's
 * process environment (its PATH), and an interrupt (^C) ends this command but not the
 * operation, which the agent completes.
 *
 * Bundled on its own (dist/bundle/fast.cjs, scripts/bundle.mjs) and loaded by bin/berth
 * before the CLI bundle; it prints exactly what the CLI prints for the same outcome.
 */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { AgentClient } from '../nodes/client.js';
import { toBerthError } from '../errors.js';
import { JNAME } from '../names.js';
import { resolveWorkdir } from '../paths.js';
import { errorLines, ignoreClosedStdout, warningLine } from './render.js';
import { command as jstart } from './commands/jstart.js';
import { command as jstop } from './commands/jstop.js';
import type { FastPath } from './types.js';

/**
 * The commands the fast path takes: the command modules that declare a `fast` route (their
 * route and success verb come from the module) and their VM forms (bstart, bstop:
 * src/cli/family.ts keeps the route). Named here, not found through the registry, so that
 * this bundle holds these two modules only; test/unit/command-modules.test.ts checks that
 * they are exactly the registry's commands with a `fast` route.
 */
export const FAST_COMMANDS: ReadonlyMap<string, FastPath> = new Map([jstart, jstop].flatMap((c) => [[c.name, c.fast!], [`b${c.name.slice(1)}`, c.fast!]]));

/** Errors of connect(2) on a unix socket: the request was not sent. */
const NOT_SENT = new Set(['ENOENT', 'ECONNREFUSED', 'EACCES', 'EPERM', 'EAGAIN', 'ENOTDIR', 'ELOOP', 'ENAMETOOLONG', 'ENOTSOCK']);

/** What the fast path would send for `argv`, or undefined when the full CLI must run it. */
export function fastRequest(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): { cmd: string; fast: FastPath; jname: string; family: 'j' | 'b' } | undefined {
  if (env.BERTH_AGENT === '0' || argv.length !== 2) return undefined;
  if (Object.keys(env).some((k) => k.startsWith('BERTH_') && k !== 'BERTH_WORKDIR' && k !== 'BERTH_AGENT')) return undefined;
  const cmd = argv[0]!;
  const fast = FAST_COMMANDS.get(cmd);
  if (!fast) return undefined;
  const jname = argv[1]!.startsWith('jname=') ? argv[1]!.slice(6) : argv[1]!;
  // a glob or a bad name goes to the full CLI (globs select from the inventory; it names bad ones)
  // the family goes with the request: the agent refuses a jstop of a VM as the CLI does (use bstop)
  return JNAME.test(jname) ? { cmd, fast, jname, family: cmd.startsWith('b') ? 'b' : 'j' } : undefined;
}

/**
 * Hands `argv` to this node's agent when it can (see the module header), printing what the
 * CLI would print and setting process.exitCode.
 * @returns false when the full CLI must run the command (nothing was printed or done)
 */
export async function viaAgent(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const req = fastRequest(argv, env);
  if (!req) return false;
  const wd = resolveWorkdir(undefined, env);
  const socket = join(wd, 'var', 'run', 'agent.sock');
  let client: AgentClient;
  try {
    if (!existsSync(socket)) return false;
    const token = readFileSync(join(wd, 'etc', 'api.token'), 'utf8').trim();
    if (!/^[\x21-\x7e]+$/.test(token)) return false; // not a header value: the agent cannot have it either
    client = new AgentClient('this node', `unix:${socket}`, token, { local: true });
  } catch {
    return false; // not root, not a node, or a socket path the client cannot take: the full CLI runs it
  }
  ignoreClosedStdout();
  const waiting = process.stderr.isTTY ? setTimeout(() => process.stderr.write(
    `berth ${req.cmd}: waiting for this node's agent (${socket}) to finish ${req.cmd} ${req.jname}; if it hangs, ^C and run it without the agent: BERTH_AGENT=0 berth ${req.cmd} ${req.jname}\n`), 10_000) : undefined;
  try {
    // no time limit, as in-process: the operation's hooks are bounded by mnt_timeout
    const answer = await client.call('POST', `/v1/envs/${req.jname}/${req.fast.route}`, { family: req.family }, 0);
    printWarnings(req.cmd, answer.warnings);
    process.stdout.write(`${req.fast.verb}: ${req.jname}\n`);
    process.exitCode = 0;
  } catch (e) {
    const err = toBerthError(e);
    const errno = (err.details as { errno?: string } | undefined)?.errno;
    // the request did not reach the agent (or was refused before anything ran): run it here
    if (err.code === 'E_UNAUTHORIZED' || (err.code === 'E_NODE_UNREACHABLE' && NOT_SENT.has(errno ?? ''))) return false;
    printWarnings(req.cmd, (e as { warnings?: unknown }).warnings);
    const lost = err.code === 'E_NODE_UNREACHABLE' || err.code === 'E_BAD_ANSWER';
    process.stderr.write(errorLines(req.cmd, lost ? {
      message: `this node's agent took ${req.cmd} ${req.jname} and gave no answer${errno ? ` (${errno})` : ''}: the operation may have run in part or in full`,
      hint: `see the agent's log and \`berth jls jname=${req.jname}\`; BERTH_AGENT=0 runs ${req.cmd} without the agent`,
    } : err));
    process.exitCode = err.exitCode;
  } finally {
    clearTimeout(waiting);
  }
  return true;
}

function printWarnings(cmd: string, warnings: unknown): void {
  if (!Array.isArray(warnings)) return;
  for (const w of warnings as { message?: unknown; fields?: unknown }[]) {
    process.stderr.write(warningLine(cmd, String(w.message), w.fields && typeof w.fields === 'object' ? w.fields as Record<string, unknown> : {}));
  }
}
