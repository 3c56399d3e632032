/**
 * The qemu process of a VM: start it daemonized, find it again by its pid file, tell whether
 * it runs, and clean its node-local files once it is gone.
 *
 * `startQemu` runs qemu with `-daemonize` and its stdout/stderr on `var/log/<vm>.qemu.log`
 * (src/proc.ts runToFile): qemu's parent exits 0 once the VM runs (QMP socket listening,
 * disks open and locked), or non-zero with QEMU's message (bad ISO path, disk missing,
 * `Failed to get "write" lock`, port taken), which becomes the error's message. Before it
 * starts, a VM whose qemu still runs is refused: QEMU unlinks and rebinds an existing socket
 * path, so a second qemu would cut the first one off its QMP socket before failing on the
 * image lock.
 *
 * A pid is trusted only while `/proc/<pid>/cmdline` names this VM's pid file (pid reuse),
 * and a zombie counts as gone.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { BerthError, EXIT, ownedError } from '../../errors.js';
import { runToFile } from '../../proc.js';
import type { QemuRunPaths } from './argv.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** True while process `pid` exists and is not a zombie. */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/**
 * The pid of this VM's running qemu: the pid file's pid, when that process runs and its
 * command line holds `-pidfile <pidFile>`; else undefined.
 */
export function qemuPid(run: Pick<QemuRunPaths, 'pidFile'>): number | undefined {
  let pid: number;
  try { pid = Number(readFileSync(run.pidFile, 'utf8').trim()); } catch { return undefined; }
  if (!Number.isInteger(pid) || pid <= 1 || !pidAlive(pid)) return undefined;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const i = argv.indexOf('-pidfile');
    return i >= 0 && argv[i + 1] === run.pidFile ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Waits until `pid` is gone. @returns true when it went within `timeoutMs` */
export async function waitPidGone(pid: number, timeoutMs: number): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  while (pidAlive(pid)) {
    if (performance.now() >= end) return false;
    await sleep(25);
  }
  return true;
}

function readFrom(file: string, offset: number): string {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const size = statSync(file).size;
    const buf = Buffer.alloc(Math.max(0, Math.min(size - offset, 64 * 1024)));
    readSync(fd, buf, 0, buf.length, Math.max(offset, size - buf.length));
    return buf.toString('utf8');
  } catch {
    return '';
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Result of {@link startQemu}. `durationMs` from exec to the VM running. */
export interface QemuStarted {
  pid: number;
  durationMs: number;
}

/**
 * Starts qemu daemonized (`argv` without `-daemonize`; it is added) and returns once the VM runs.
 * @throws BerthError E_VM_RUNNING (exit 4) when this VM's qemu already runs; E_QEMU_START
 *   (exit 5) with QEMU's own message when it fails to start (nothing of it is left running)
 */
export async function startQemu(argv: string[], run: QemuRunPaths): Promise<QemuStarted> {
  const running = qemuPid(run);
  if (running) throw ownedError('E_VM_RUNNING', `qemu of this VM already runs (pid ${running}, ${run.pidFile})`, { hint: 'stop it first' });
  for (const d of new Set([dirname(run.qmpSocket), dirname(run.consoleSocket), dirname(run.pidFile)])) await mkdir(d, { recursive: true, mode: 0o700 });
  for (const d of new Set([dirname(run.consoleLog), dirname(run.qemuLog)])) await mkdir(d, { recursive: true });
  await cleanupRunFiles(run);
  const offset = existsSync(run.qemuLog) ? statSync(run.qemuLog).size : 0;
  const full = argv.includes('-daemonize') ? argv : [...argv, '-daemonize'];
  const r = await runToFile(full, run.qemuLog);
  const pid = qemuPid(run);
  if (r.exitCode !== 0 || !pid) {
    if (pid) { process.kill(pid, 'SIGKILL'); await waitPidGone(pid, 5000); }
    await cleanupRunFiles(run);
    const msg = readFrom(run.qemuLog, offset).trim().split('\n').filter(Boolean).slice(-5).join('\n')
      .replace(/^qemu-system-x86_64: /gm, '');
    throw new BerthError('E_QEMU_START', `qemu failed to start (exit ${r.exitCode})${msg ? `: ${msg}` : ''}`, EXIT.ENGINE, {
      details: { exitCode: r.exitCode, log: run.qemuLog },
      hint: /lock/i.test(msg) ? 'another qemu has this disk open: is the VM running elsewhere?' : `see ${run.qemuLog}`,
    });
  }
  return { pid, durationMs: r.durationMs };
}

/**
 * Removes the VM's QMP, watch, console and migration sockets and pid file, unless its qemu runs. Idempotent.
 * @returns false (and removes nothing) when qemu still runs
 */
export async function cleanupRunFiles(run: QemuRunPaths): Promise<boolean> {
  if (qemuPid(run)) return false;
  for (const f of [run.qmpSocket, run.consoleSocket, run.watchSocket, run.migrateSocket, run.pidFile]) if (f) await rm(f, { force: true });
  return true;
}
