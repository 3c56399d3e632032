/**
 * Test helpers: run the built CLI (bin/berth, after `npm run build`) as a real process and
 * make throw-away initialised workdirs. Every integration test drives berth this way.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const BIN = join(ROOT, 'bin', 'berth');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON when it is one JSON document, else undefined */
  json: any;
}

/**
 * Runs `berth ...args` with BERTH_WORKDIR=workdir (when given) and waits.
 * @param opts.env extra environment; opts.input stdin text
 */
export function berth(args: string[], opts: { workdir?: string; env?: Record<string, string>; input?: string; timeoutMs?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...(opts.workdir ? { BERTH_WORKDIR: opts.workdir } : {}), ...opts.env },
    input: opts.input ?? '',
    timeout: opts.timeoutMs ?? 120_000,
    maxBuffer: 1 << 28, // cluster ls --json of 10,000 envs is several MiB
  });
  let json: any;
  try { json = JSON.parse(r.stdout); } catch { json = undefined; }
  return { code: r.status ?? (r.signal ? 128 : -1), stdout: r.stdout, stderr: r.stderr, json };
}

/** Like {@link berth} but throws (with stderr) unless the exit code is 0. */
export function berthOk(args: string[], opts: Parameters<typeof berth>[1] = {}): CliResult {
  const r = berth(args, opts);
  if (r.code !== 0) throw new Error(`berth ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** A fresh temp dir under /tmp (local disk). */
export function tempDir(prefix = 'berth-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(d);
  return d;
}

const tempDirs: string[] = [];
// The temp dirs of a test file are removed when its process exits, except one that still has
// something mounted inside (a failed test's leftovers: never delete through a mount).
process.on('exit', () => {
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '');
  for (const d of tempDirs) {
    if (mounts.some((m) => m === d || m.startsWith(d + '/'))) continue;
    try { rmSync(d, { recursive: true, force: true }); } catch { /* best effort */ }
  }
});

/** A fresh initialised workdir with the given nodename. */
export function newNode(nodename = 'node1', extra: string[] = []): string {
  const wd = join(tempDir(), 'wd');
  berthOk(['initenv', `workdir=${wd}`, `nodename=${nodename}`, ...extra]);
  return wd;
}

/**
 * The host mount table (/proc/self/mountinfo target column, sorted), for before/after
 * comparisons. With `scope`, mounts under /tmp that are not under `scope` are left out, so
 * that other test files' temporary mounts (run in parallel during development) do not
 * disturb the comparison; everything outside /tmp is always compared.
 */
export function mountTable(scope?: string): string[] {
  const all = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ')[4]!);
  return all.filter((t) => !scope || !t.startsWith('/tmp/') || t === scope || t.startsWith(scope + '/')).sort();
}

/** True when running as root (integration tests need it; CI runs as root). */
export const isRoot = process.getuid?.() === 0;
