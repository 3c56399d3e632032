/**
 * Running external commands. Every command berth runs goes through {@link run}: argv only,
 * never a shell; logged at debug level with argv, exit status and duration (ms).
 * Hooks (which need process-group timeouts) use src/hooks.ts, which logs the same way.
 */
import { readFileSync } from 'node:fs';
import { x } from 'tinyexec';
import { BerthError, EXIT, type ErrorCode } from './errors.js';
import { debug } from './log.js';

/** The result of one external command. `durationMs` in milliseconds. */
export interface RunResult {
  argv: string[];
  exitCode: number;
  /** Signal name when the command was killed by a signal. */
  signal?: string;
  stdout: string;
  stderr: string;
  durationMs: number;
}

/** Options of {@link run}. */
export interface RunOptions {
  /** Throw a BerthError on a non-zero exit (default true). */
  check?: boolean;
  /** Exit code of the thrown BerthError (default 5, engine or mount failure). */
  errorExit?: number;
  /** Error code of the thrown BerthError (default E_COMMAND_FAILED). */
  errorCode?: ErrorCode;
  /** Extra environment variables (merged over process.env). */
  env?: Record<string, string>;
  /** Written to the command's stdin. Without it, stdin is /dev/null. */
  input?: string;
  /** Kill the command after this many seconds (SIGKILL); 0 or undefined = none. */
  timeoutSec?: number;
  cwd?: string;
  /** Aborting it kills the command (SIGTERM); run() then returns or throws as for any exit. */
  signal?: AbortSignal;
}

/**
 * Runs `argv[0]` with `argv.slice(1)` (no shell) and waits for it.
 * @returns exit code, stdout and stderr (as text) and the duration.
 * @throws BerthError (exit 5 by default) when the command cannot be run or, with check, fails.
 */
export async function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const t0 = performance.now();
  const proc = x(argv[0]!, argv.slice(1), {
    throwOnError: false,
    // never prepend node_modules/.bin dirs or node's own dir to PATH: berth runs as root and
    // must find mount/umount/runc where the administrator's PATH says, nowhere else
    nodePath: false,
    timeout: opts.timeoutSec ? opts.timeoutSec * 1000 : undefined,
    ...(opts.signal ? { signal: opts.signal } : {}),
    nodeOptions: {
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      cwd: opts.cwd,
      stdio: [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    },
  });
  if (opts.input !== undefined) {
    proc.process?.stdin?.end(opts.input);
  }
  let out: { stdout: string; stderr: string; exitCode?: number };
  try {
    out = await proc;
  } catch (e) {
    throw new BerthError('E_EXEC', `cannot run ${argv[0]}: ${(e as Error).message}`, opts.errorExit ?? EXIT.ENGINE, { cause: e });
  }
  const signal = proc.process?.signalCode ?? undefined;
  const res: RunResult = {
    argv,
    exitCode: out.exitCode ?? (signal ? 128 : 1),
    signal: signal ?? undefined,
    stdout: out.stdout,
    stderr: out.stderr,
    durationMs: Math.round((performance.now() - t0) * 10) / 10,
  };
  await debug({ argv, exitCode: res.exitCode, signal: res.signal, durationMs: res.durationMs }, 'exec');
  if ((opts.check ?? true) && res.exitCode !== 0) {
    const tail = (res.stderr || res.stdout).trim().split('\n').slice(-5).join('\n');
    throw new BerthError(
      opts.errorCode ?? 'E_COMMAND_FAILED',
      `${argv.join(' ')} failed with exit code ${res.exitCode}${tail ? `: ${tail}` : ''}`,
      opts.errorExit ?? EXIT.ENGINE,
      { details: { argv, exitCode: res.exitCode } },
    );
  }
  return res;
}

/** Like {@link run} with check=false: returns true when the command exits 0. */
export async function succeeds(argv: string[], opts: Omit<RunOptions, 'check'> = {}): Promise<boolean> {
  return (await run(argv, { ...opts, check: false })).exitCode === 0;
}

/**
 * Runs a command whose stdout and stderr go straight to `logFile` (opened for append and
 * passed as a file descriptor, not a pipe) with stdin from /dev/null, and waits for it to
 * exit. Used for commands that leave long-lived children holding their stdio (`runc run -d`
 * hands its stdio to the container): waiting on a pipe would never end.
 * node:child_process is used directly because tinyexec always pipes stdio.
 * @returns exit code (128+N when killed by signal N) and duration in ms
 */
export async function runToFile(argv: string[], logFile: string, opts: { env?: Record<string, string> } = {}): Promise<{ exitCode: number; durationMs: number }> {
  const { spawn } = await import('node:child_process');
  const { openSync, closeSync } = await import('node:fs');
  const { constants } = await import('node:os');
  const t0 = performance.now();
  const fd = openSync(logFile, 'a', 0o640);
  try {
    const exitCode = await new Promise<number>((resolve, reject) => {
      const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', fd, fd], env: opts.env ? { ...process.env, ...opts.env } : process.env });
      child.once('error', reject);
      child.once('exit', (code, sig) => resolve(code ?? 128 + ((sig && constants.signals[sig]) || 0)));
    });
    const durationMs = Math.round((performance.now() - t0) * 10) / 10;
    await debug({ argv, exitCode, durationMs, logFile }, 'exec');
    return { exitCode, durationMs };
  } catch (e) {
    throw new BerthError('E_EXEC', `cannot run ${argv[0]}: ${(e as Error).message}`, EXIT.ENGINE, { cause: e });
  } finally {
    closeSync(fd);
  }
}

/**
 * Runs a command with the caller's stdin/stdout/stderr (interactive: `berth jexec`).
 * @returns the command's exit code (128+N when killed by signal N)
 */
export async function runInteractive(argv: string[], io: { stdout?: number; stderr?: number } = {}): Promise<number> {
  const { spawn } = await import('node:child_process');
  const { constants } = await import('node:os');
  const t0 = performance.now();
  const exitCode = await new Promise<number>((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['inherit', io.stdout ?? 'inherit', io.stderr ?? 'inherit'] });
    child.once('error', (e) => reject(new BerthError('E_EXEC', `cannot run ${argv[0]}: ${e.message}`, EXIT.ENGINE, { cause: e })));
    child.once('exit', (code, sig) => resolve(code ?? 128 + ((sig && constants.signals[sig]) || 0)));
  });
  await debug({ argv, exitCode, durationMs: Math.round(performance.now() - t0) }, 'exec');
  return exitCode;
}

/** Waits `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * True while process `pid` exists and is not a zombie (a killed child its parent never reaped);
 * on FreeBSD, without /proc, kill(pid, 0) decides alone.
 */
export function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return true; // no /proc (FreeBSD): kill(0) said it exists
  }
}

/** Clean-ups to run before berth exits on SIGINT/SIGTERM (see {@link onInterrupt}). */
const interruptHandlers = new Set<() => Promise<void>>();

/**
 * Registers `fn` to run when berth is interrupted (^C, SIGTERM) while long work is under way,
 * e.g. to kill debootstrap and remove a half-made base. The CLI's signal handler
 * (src/cli/main.ts) awaits every registered handler before it exits; the library only
 * registers. Call the returned function once the work is over (success or failure).
 */
export function onInterrupt(fn: () => Promise<void>): () => void {
  interruptHandlers.add(fn);
  return () => { interruptHandlers.delete(fn); };
}

/** Runs (and forgets) every {@link onInterrupt} handler, side by side; errors are swallowed. */
export async function runInterruptHandlers(): Promise<void> {
  const fns = [...interruptHandlers];
  interruptHandlers.clear();
  await Promise.all(fns.map((f) => f().catch(() => undefined)));
}
