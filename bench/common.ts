/**
 * Shared helpers of the benchmarks (run on demand: `make bench` or `node --import tsx bench/<x>.ts`).
 * Benchmarks print ratios against a baseline measured in the same run; nothing here asserts.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnSyncOptions } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..');
export const BIN = join(ROOT, 'bin', 'berth');

/** Runs a command; throws with its output when it fails. */
export function sh(argv: string[], opts: SpawnSyncOptions = {}): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', maxBuffer: 1 << 28, ...opts });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${String(r.stderr).slice(0, 2000)}`);
  return String(r.stdout);
}

/** Runs the berth CLI against a workdir. */
export function berth(wd: string, args: string[]): string {
  return sh([process.execPath, BIN, ...args], { env: { ...process.env, BERTH_WORKDIR: wd } });
}

const tempRoots: string[] = [];
// The temp nodes are removed when the benchmark exits (BENCH_KEEP=1 keeps them), except one
// that still has something mounted inside: never delete through a mount.
process.on('exit', () => {
  if (process.env.BENCH_KEEP === '1') return;
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '');
  for (const d of tempRoots) {
    if (mounts.some((m) => m === d || m.startsWith(d + '/'))) process.stderr.write(`bench: ${d} has mounts inside; left in place\n`);
    else rmSync(d, { recursive: true, force: true });
  }
});

/** A fresh initialised node in a temp dir (removed at exit). */
export function freshNode(name = 'bench1', extra: string[] = []): string {
  const root = mkdtempSync(join(tmpdir(), 'berth-bench-'));
  tempRoots.push(root);
  const wd = join(root, 'wd');
  berth(wd, ['initenv', `workdir=${wd}`, `nodename=${name}`, ...extra]);
  return wd;
}

/** Times `fn` `n` times after one warm-up run; returns the median in milliseconds. */
export async function median(n: number, fn: () => unknown | Promise<unknown>): Promise<number> {
  return (await medians(n, [fn]))[0]!;
}

/**
 * Times several measures in turns (one run of each per round, after one warm-up round), so
 * that a machine whose speed drifts during the benchmark slows them all alike; returns each
 * one's median in milliseconds, in the order given.
 */
export async function medians(n: number, fns: (() => unknown | Promise<unknown>)[]): Promise<number[]> {
  for (const fn of fns) await fn();
  const t: number[][] = fns.map(() => []);
  for (let i = 0; i < n; i++) {
    for (const [k, fn] of fns.entries()) {
      const t0 = performance.now();
      await fn();
      t[k]!.push(performance.now() - t0);
    }
  }
  return t.map((x) => { x.sort((a, b) => a - b); return x[Math.floor(x.length / 2)]!; });
}

/** Prints one result line: name, value with unit, and the target verdict. */
export function report(name: string, value: string, target: string, ok: boolean): void {
  console.log(`${ok ? 'PASS' : 'MISS'}  ${name.padEnd(58)} ${value.padEnd(34)} target ${target}`);
}

/**
 * Starts `berth agent` for a workdir and waits until its unix socket accepts connections.
 * @returns a function that stops it (SIGTERM) and waits for it to exit
 */
export async function startAgent(wd: string): Promise<() => Promise<void>> {
  const child: ChildProcess = spawn(process.execPath, [BIN, 'agent'], { env: { ...process.env, BERTH_WORKDIR: wd }, stdio: 'ignore' });
  const sock = join(wd, 'var/run/agent.sock');
  const end = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`berth agent exited ${child.exitCode}`);
    const up = await new Promise<boolean>((res) => {
      const c = connect(sock, () => { c.end(); res(true); });
      c.on('error', () => res(false));
    });
    if (up) break;
    if (Date.now() > end) throw new Error('berth agent did not listen within 30 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  return () => new Promise<void>((res) => {
    if (child.exitCode !== null) { res(); return; }
    child.once('exit', () => res());
    child.kill('SIGTERM');
  });
}
