/**
 * The one error type of berth. Every failure the library reports is a {@link BerthError}
 * carrying a stable `code` (for scripts and `--json`), a message that says what to do,
 * and the process exit code from design/product.md "Exit codes and output".
 */
import type { ErrorCode } from './error-codes.js';

export type { ErrorCode } from './error-codes.js';

/** Exit codes of design/product.md. 128+N (killed by signal N) is computed, not listed. */
export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  NOT_FOUND: 3,
  OWNED: 4,
  ENGINE: 5,
  HOOK_TIMEOUT: 124,
} as const;

export type ExitCode = number;

/** Optional extras of a {@link BerthError}. */
export interface BerthErrorOptions {
  /** One line telling the administrator what to do next. */
  hint?: string;
  /** Machine-readable details (shown under `error.details` with `--json`). */
  details?: Record<string, unknown>;
  /** The underlying error. */
  cause?: unknown;
}

/**
 * A failure with a stable code and the exit code the CLI must return.
 * @example throw new BerthError('E_NO_SUCH_ENV', "no env 'web1' on this node", EXIT.NOT_FOUND)
 */
export class BerthError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: ExitCode;
  readonly hint?: string;
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, exitCode: ExitCode = EXIT.FAILURE, opts: BerthErrorOptions = {}) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'BerthError';
    this.code = code;
    this.exitCode = exitCode;
    this.hint = opts.hint;
    this.details = opts.details;
  }

  /** The JSON shape printed with `--json`: `{code, message, hint?, details?}`. */
  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, exitCode: this.exitCode, hint: this.hint, details: this.details };
  }
}

/** Usage error (exit 2): a bad argument value, named in the message. */
export function usageError(code: ErrorCode, message: string, opts?: BerthErrorOptions): BerthError {
  return new BerthError(code, message, EXIT.USAGE, opts);
}

/** No such env, base or node (exit 3). */
export function notFound(code: ErrorCode, message: string, opts?: BerthErrorOptions): BerthError {
  return new BerthError(code, message, EXIT.NOT_FOUND, opts);
}

/** Owned by another node, superseded, or locked (exit 4). */
export function ownedError(code: ErrorCode, message: string, opts?: BerthErrorOptions): BerthError {
  return new BerthError(code, message, EXIT.OWNED, opts);
}

/** Engine or mount failure (exit 5). */
export function engineError(code: ErrorCode, message: string, opts?: BerthErrorOptions): BerthError {
  return new BerthError(code, message, EXIT.ENGINE, opts);
}

/** Wraps any thrown value into a BerthError (unknown errors become E_INTERNAL, exit 1). */
export function toBerthError(e: unknown): BerthError {
  if (e instanceof BerthError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new BerthError('E_INTERNAL', msg, EXIT.FAILURE, { cause: e });
}

/**
 * The lines the CLI prints on stderr for a failed command (`berth <cmd>: <message>`, then
 * `hint: <hint>` when there is one). Here, on the library side, so that the web console
 * (src/agent/console/) shows a refusal exactly as the CLI prints it (src/cli/render.ts uses it).
 */
export function cliErrorLines(cmd: string, err: { message: string; hint?: string }): string {
  return `berth ${cmd}: ${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ''}`;
}
