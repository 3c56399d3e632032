/**
 * Shared helpers of the benchmarks (run on demand: `make bench` or `node --import tsx bench/<x>.ts`).
 * Benchmarks print ratios against a baseline measured in the same run; nothing here asserts.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnSyncOptions } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { formatDescriptor } from '../src/descriptor.js';

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

/** Runs `berth ...` on the node of workdir `n.wd` without blocking this process (several nodes at once); rejects with its stderr when it fails. */
export function berthAsync(n: { name: string; wd: string }, args: string[]): Promise<void> {
  return new Promise((res, rej) => {
    const c = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, BERTH_WORKDIR: n.wd }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    c.on('exit', (code) => (code === 0 ? res() : rej(new Error(`berth ${args.join(' ')} on ${n.name} exited ${code}: ${err.slice(0, 500)}`))));
  });
}

/** Runs `fn` over `items`, `n` at a time. */
export async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: n }, async () => { while (i < items.length) await fn(items[i++]!); }));
}

/** What junregister leaves for a runc env `jname` in workdir `wd` (data dir, sysdir with the descriptor, jails-rcconf), ready for `jregister`. */
export async function writeUnregistered(wd: string, jname: string): Promise<void> {
  const conf = { jname, uuid: randomUUID(), emulator: 'runc', base: 'bb', baserw: '0', host_hostname: jname, ip4_addr: '0', vnet: '0', astart: '0', mnt_start: '0', mnt_stop: '0' };
  const text = formatDescriptor(conf, wd);
  await mkdir(join(wd, 'jails-data', `${jname}-data`, 'etc'), { recursive: true });
  await writeFile(join(wd, 'jails-data', `${jname}-data`, 'etc', 'hostname'), jname + '\n');
  await mkdir(join(wd, 'jails-system', jname), { recursive: true });
  await writeFile(join(wd, 'jails-system', jname, `rc.conf_${jname}`), text);
  await writeFile(join(wd, 'jails-rcconf', `rc.conf_${jname}`), text);
}
