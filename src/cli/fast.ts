/**
 * The CLI's fast path for `berth jstart <jname>` and `berth jstop <jname>`: when this node's
 * agent runs (`berth agent`, listening on `var/run/agent.sock`), the command is handed to it
 * over that socket (POST /v1/envs/<jname>/start|stop, src/agent/api.ts) instead of being run
 * in this process. The agent runs the same lifecycle code (src/lifecycle.ts startEnv/stopEnv)
 * and already has the inventory open, so the command skips loading the CLI and the library
 * (bench/lifecycle.ts (a)). Docker and Incus hand every command to their daemon; berth hands
 * only these two, and only when the daemon is there.
 *
 * Only the plain forms are handed over: exactly one env name (`jname=web1` or `web1`, no
 * glob) and no other argument, so `-v` (hook output on the terminal), `--debug` (or
 * BERTH_DEBUG=1, BERTH_LOG_LEVEL=debug), `--json`, `workdir=` and globs always run in this
 * process. `BERTH_AGENT=0` turns the fast path off.
 *
 * The command runs here instead (the request never reached the agent) when the socket or the
 * token file is missing, when nothing listens on the socket (an agent that died), or when the
 * agent refuses the token. Once the request was sent, it is never run a second time here: an
 * agent that fails or vanishes mid-way is reported as a failure (exit 1).
 *
 * Differences from running here: hooks run in the agent's process environment, and an
 * interrupt (^C) ends this command but not the operation, which the agent completes.
 *
 * Bundled on its own (dist/bundle/fast.cjs, scripts/bundle.mjs) and loaded by bin/berth
 * before the CLI bundle; it prints exactly what the CLI prints for the same outcome.
 */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { AgentClient } from '../agent/client.js';
import { toBerthError } from '../errors.js';
import { JNAME } from '../names.js';
import { resolveWorkdir } from '../paths.js';
import { errorLines, warningLine } from './render.js';

/** The commands the fast path takes, with the verb of their success line (src/cli/each.ts). */
const VERBS = { jstart: 'started', jstop: 'stopped' } as const;

/** What the fast path would send for `argv`, or undefined when the full CLI must run it. */
export function fastRequest(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): { cmd: keyof typeof VERBS; jname: string } | undefined {
  if (env.BERTH_AGENT === '0' || argv.length !== 2) return undefined;
  // debug logs of the external commands are asked for on this terminal: run here
  if (env.BERTH_DEBUG === '1' || env.BERTH_LOG_LEVEL === 'debug' || env.BERTH_LOG_LEVEL === 'trace') return undefined;
  const cmd = argv[0]!;
  if (cmd !== 'jstart' && cmd !== 'jstop') return undefined;
  const jname = argv[1]!.startsWith('jname=') ? argv[1]!.slice(6) : argv[1]!;
  // a glob or a bad name goes to the full CLI (globs select from the inventory; it names bad ones)
  return JNAME.test(jname) ? { cmd, jname } : undefined;
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
  let token: string;
  try {
    if (!existsSync(socket)) return false;
    token = readFileSync(join(wd, 'etc', 'api.token'), 'utf8').trim();
  } catch {
    return false; // not root, or not a node: the full CLI says why
  }
  const client = new AgentClient('local', `unix:${socket}`, token, { local: true });
  try {
    const answer = await (req.cmd === 'jstart' ? client.start(req.jname) : client.stop(req.jname));
    printWarnings(req.cmd, answer.warnings);
    process.stdout.write(`${VERBS[req.cmd]}: ${req.jname}\n`);
    process.exitCode = 0;
  } catch (e) {
    const err = toBerthError(e);
    const errno = (err.details as { errno?: string } | undefined)?.errno;
    // the request did not reach the agent (or was refused before anything ran): run it here
    if (err.code === 'E_UNAUTHORIZED' || (err.code === 'E_NODE_UNREACHABLE' && (errno === 'ENOENT' || errno === 'ECONNREFUSED'))) return false;
    printWarnings(req.cmd, (e as { warnings?: unknown }).warnings);
    const lost = err.code === 'E_NODE_UNREACHABLE' || err.code === 'E_BAD_ANSWER';
    process.stderr.write(errorLines(req.cmd, lost ? {
      message: `this node's agent took the command and gave no answer: ${err.message}`,
      hint: `see the agent's log and \`berth jls jname=${req.jname}\`; BERTH_AGENT=0 runs ${req.cmd} without the agent`,
    } : err));
    process.exitCode = err.exitCode;
  }
  return true;
}

function printWarnings(cmd: string, warnings: unknown): void {
  if (!Array.isArray(warnings)) return;
  for (const w of warnings as { message?: unknown; fields?: unknown }[]) {
    process.stderr.write(warningLine(cmd, String(w.message), w.fields && typeof w.fields === 'object' ? w.fields as Record<string, unknown> : {}));
  }
}
