/**
 * Running one operation over several envs (globs, several names): one env's failure does not
 * stop the rest; results and lines keep the name order; the exit code is the first failure's.
 * A single env's error is thrown as is, so its message and exit code reach the CLI unchanged.
 */
import { toBerthError } from '../errors.js';
import type { CmdOutput } from './types.js';

/** Envs that a glob matched, and the error codes that mean "already in the state asked for". */
export interface SkipRule {
  /** names matched by a glob (not given explicitly) */
  globbed: ReadonlySet<string>;
  /** e.g. ['E_NOT_RUNNING'] for jstop, ['E_RUNNING'] for jstart */
  codes: readonly string[];
}

/** The `notes` of a result (e.g. jremove's disks it left), one indented line each. */
function noteLines(r: object): string {
  const n = (r as { notes?: unknown }).notes;
  return Array.isArray(n) ? n.map((x) => `\n  note: ${String(x)}`).join('') : '';
}

/**
 * @param concurrency how many envs run side by side (1: one after another)
 * @param skip an env matched by a glob that is already in the state asked for (jstop of a stopped
 *   env) is reported as skipped, not as a failure: `jstop jname='web*'` stops the ones that run.
 *   A name given explicitly still fails (exit 1).
 */
export async function forEachEnv(jnames: string[], verb: string, fn: (jname: string) => Promise<object>, concurrency = 1, skip?: SkipRule): Promise<CmdOutput> {
  if (jnames.length === 1 && !skip?.globbed.has(jnames[0]!)) {
    const r = await fn(jnames[0]!);
    return { data: { results: [{ jname: jnames[0], ok: true, ...r }] }, text: `${verb}: ${jnames[0]}${noteLines(r)}` };
  }
  const results: Record<string, unknown>[] = new Array(jnames.length);
  const lines: string[] = new Array(jnames.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < jnames.length; i = next++) {
      const j = jnames[i]!;
      try {
        const r = await fn(j);
        results[i] = { jname: j, ok: true, ...r };
        lines[i] = `${verb}: ${j}${noteLines(r)}`;
      } catch (e) {
        const err = toBerthError(e);
        if (skip?.globbed.has(j) && skip.codes.includes(err.code)) {
          results[i] = { jname: j, ok: true, skipped: err.message };
          lines[i] = `skipped: ${j}: ${err.message}`;
        } else {
          results[i] = { jname: j, ok: false, error: err.toJSON() };
          lines[i] = `failed: ${j}: ${err.message}`;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, concurrency), jnames.length) }, worker));
  const firstFail = results.find((r) => r.ok === false) as { error: { exitCode: number } } | undefined;
  return { data: { results }, text: lines.join('\n'), exitCode: firstFail?.error.exitCode ?? 0 };
}
