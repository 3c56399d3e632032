/**
 * CPU and memory of the running runc envs of this node over the last hour, for the console's
 * small plots: every `console_stats_sec` seconds (default 10) the agent reads each env's
 * cgroup v1 counters, `/sys/fs/cgroup/cpuacct/<cgroupsPath>/cpuacct.usage` (ns of CPU time)
 * and `/sys/fs/cgroup/memory/<cgroupsPath>/memory.usage_in_bytes`, where cgroupsPath is
 * `/berth/<node>/<jname>` (src/engines/runc/oci.ts). CPU is shown as the share of one CPU
 * between two samples (0..N for N CPUs). Kept in memory: an hour's samples per env.
 * A VM's counters (QMP) are not sampled yet.
 */
import { readFile } from 'node:fs/promises';
import { STATUS } from '../../inventory.js';
import type { NodeCtx } from '../../node.js';
import { cgroupsPath } from '../../engines/runc/oci.js';

/** One sample: unix seconds, CPU (share of one CPU since the previous sample), memory bytes. */
export interface Sample { t: number; cpu: number; mem: number }

const HOUR_SEC = 3600;

async function readNumber(file: string): Promise<number | undefined> {
  try {
    const n = Number((await readFile(file, 'utf8')).trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** The sampler: call {@link sample} every period; {@link series} gives an env's last hour. */
export class Stats {
  private readonly data = new Map<string, Sample[]>();
  private readonly last = new Map<string, { t: number; ns: number }>();

  constructor(private readonly ctx: NodeCtx, private readonly root = '/sys/fs/cgroup') {}

  /** Reads the counters of every running runc env once. Never throws. */
  async sample(nowMs = Date.now()): Promise<void> {
    const t = nowMs / 1000;
    const running = this.ctx.inv.running().filter((r) => r.emulator === 'runc' && r.status === STATUS.ON);
    const seen = new Set<string>();
    for (const r of running) {
      const cg = cgroupsPath(this.ctx.nodename, r.jname);
      const [ns, mem] = await Promise.all([readNumber(`${this.root}/cpuacct${cg}/cpuacct.usage`), readNumber(`${this.root}/memory${cg}/memory.usage_in_bytes`)]);
      if (ns === undefined || mem === undefined) continue;
      seen.add(r.jname);
      const prev = this.last.get(r.jname);
      this.last.set(r.jname, { t, ns });
      if (!prev || t <= prev.t || ns < prev.ns) continue;
      const list = this.data.get(r.jname) ?? [];
      list.push({ t: Math.round(t), cpu: (ns - prev.ns) / 1e9 / (t - prev.t), mem });
      while (list.length && list[0]!.t < t - HOUR_SEC) list.shift();
      this.data.set(r.jname, list);
    }
    for (const j of [...this.last.keys()]) if (!seen.has(j)) this.last.delete(j);
  }

  /** The samples of `jname` over the last hour, oldest first (empty when none). */
  series(jname: string): Sample[] {
    return this.data.get(jname) ?? [];
  }
}
