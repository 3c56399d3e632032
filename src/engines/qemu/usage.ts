/**
 * What a running VM uses of the node (Engine.usage, the web console's plots), read through QMP
 * and /proc:
 * - CPU: QMP `query-cpus-fast` names the thread of each vCPU (`thread-id`); their utime+stime
 *   in `/proc/<qemu pid>/task/<tid>/stat` (clock ticks, USER_HZ = 100 on Linux) is the CPU
 *   time the guest got. qemu's own I/O and main-loop threads are not counted;
 * - memory: the qemu process's resident set (`VmRSS` of /proc/<pid>/status: what the guest
 *   touched plus qemu itself), and the guest's RAM as the most it may use: QMP
 *   `query-balloon` (`actual`, when the VM has a balloon device), else
 *   `query-memory-size-summary` (`base-memory` + `plugged-memory`).
 */
import { readFile } from 'node:fs/promises';
import type { EngineUsage } from '../types.js';
import { QmpClient } from './qmp.js';

/** Linux USER_HZ: the unit of the times in /proc/<pid>/stat. */
const CLK_TCK = 100;

/** utime+stime of one thread, in seconds (undefined when it cannot be read). */
export async function threadCpuSec(pid: number, tid: number): Promise<number | undefined> {
  try {
    const st = await readFile(`/proc/${pid}/task/${tid}/stat`, 'latin1');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    const t = Number(f[11]) + Number(f[12]); // fields 14 and 15: utime, stime
    return Number.isFinite(t) ? t / CLK_TCK : undefined;
  } catch {
    return undefined;
  }
}

/** VmRSS of a process in bytes (undefined when it cannot be read). */
export async function residentBytes(pid: number): Promise<number | undefined> {
  const st = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(st);
  return m ? Number(m[1]) * 1024 : undefined;
}

/**
 * The usage of the VM whose qemu runs as `pid` with its QMP socket at `qmpSocket`.
 * @returns undefined when QMP does not answer or the vCPU threads cannot be read
 */
export async function qemuUsage(pid: number, qmpSocket: string): Promise<EngineUsage | undefined> {
  let qmp: QmpClient | undefined;
  try {
    qmp = await QmpClient.connect(qmpSocket, { timeoutMs: 2000 });
    const cpus = await qmp.execute<{ 'thread-id': number }[]>('query-cpus-fast', undefined, { timeoutMs: 2000 });
    const balloon = await qmp.execute<{ actual: number }>('query-balloon', undefined, { timeoutMs: 2000 }).catch(() => undefined);
    const size = balloon ? undefined : await qmp.execute<{ 'base-memory': number; 'plugged-memory'?: number }>('query-memory-size-summary', undefined, { timeoutMs: 2000 }).catch(() => undefined);
    const times = await Promise.all(cpus.map((c) => threadCpuSec(pid, c['thread-id'])));
    const rss = await residentBytes(pid);
    if (!times.length || times.some((t) => t === undefined) || rss === undefined) return undefined;
    const max = balloon?.actual ?? (size ? size['base-memory'] + (size['plugged-memory'] ?? 0) : undefined);
    return { cpuSec: times.reduce<number>((a, b) => a + b!, 0), memBytes: rss, ...(max ? { memMaxBytes: max } : {}) };
  } catch {
    return undefined;
  } finally {
    qmp?.close();
  }
}
