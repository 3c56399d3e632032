/**
 * The CLI's lines for people, shared by the CLI (src/cli/main.ts) and its agent fast path
 * (src/cli/fast.ts), so that a command prints the same whether it ran here or in the node's
 * agent: warnings as `berth <cmd>: warning: ...`, errors as `berth <cmd>: <message>` and
 * `hint: <hint>`, on stderr; and how a closed stdout is taken.
 */
import { cliErrorLines } from '../errors.js';

/**
 * ` (jname=web1, errors=[...])` for a warning's fields, leaving out empty ones and those whose
 * value the message already says; empty when none is left.
 */
function formatFields(msg: string, fields: Record<string, unknown>): string {
  const parts = Object.entries(fields)
    .filter(([, v]) => v !== undefined && !(Array.isArray(v) && v.length === 0))
    .filter(([, v]) => !((typeof v === 'string' || typeof v === 'number') && msg.includes(String(v))))
    .map(([k, v]) => `${k}=${typeof v === 'string' && /^[\w./:@-]+$/.test(v) ? v : JSON.stringify(v)}`);
  return parts.length ? ` (${parts.join(', ')})` : '';
}

/** The stderr line of a warning of command `cmd` (with its newline). */
export function warningLine(cmd: string, msg: string, fields: Record<string, unknown>): string {
  return `berth ${cmd}: warning: ${msg}${formatFields(msg, fields)}\n`;
}

/** The stderr lines of a failed command `cmd` (with their newlines). */
export const errorLines: (cmd: string, err: { message: string; hint?: string }) => string = cliErrorLines;

/** `berth jls | head`: a closed stdout ends the command quietly, with its exit code so far. */
export function ignoreClosedStdout(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0); else throw e; });
}
