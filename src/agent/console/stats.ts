/**
 * CPU and memory of the running envs of this node over the last hour, for the console's small
 * plots: every `console_stats_sec` seconds (default 10) the agent asks each running env's engine
 * for its use (Engine.usage: a container's cgroup counters, a VM's vCPU threads and qemu's
 * resident memory through QMP and /proc; an engine without it is not plotted). CPU is shown as
 * the share of one CPU between two samples (0..N for N CPUs). Kept in memory: an hour's samples
 * per env; an env that stops loses its counter (its next run starts a new line).
 */
import { STATUS } from '../../inventory.js';
import type { NodeCtx } from '../../node.js';
import { engineEnv } from '../../engines/types.js';

/**
 * One sample: unix seconds, CPU (share of one CPU since the previous sample), memory bytes in
 * use, and the most the env may use when its engine knows (a VM's RAM).
 */
export interface Sample { t: number; cpu: number; mem: number; memMax?: number }

const HOUR_SEC = 3600;

/** The sampler: call {@link sample} every period; {@link series} gives an env's last hour. */
export class Stats {
  private readonly data = new Map<string, Sample[]>();
  private readonly last = new Map<string, { t: number; cpuSec: number; jid: number }>();
  private busy = false;

  constructor(private readonly ctx: NodeCtx) {}

  /** Reads the use of every running env once (all side by side). Never throws. */
  async sample(nowMs = Date.now()): Promise<void> {
    if (this.busy) return; // a slow engine: skip this period rather than pile up
    this.busy = true;
    try {
      const t = nowMs / 1000;
      const running = this.ctx.inv.running().filter((r) => r.status === STATUS.ON);
      const seen = new Set<string>();
      await Promise.all(running.map(async (r) => {
        const engine = await this.ctx.engine(r.emulator).catch(() => undefined);
        const u = await engine?.usage?.(engineEnv(this.ctx, r.jname, r.conf), r.jid).catch(() => undefined);
        if (!u) return;
        seen.add(r.jname);
        const prev = this.last.get(r.jname);
        this.last.set(r.jname, { t, cpuSec: u.cpuSec, jid: r.jid });
        if (!prev || prev.jid !== r.jid || t <= prev.t || u.cpuSec < prev.cpuSec) return;
        const list = this.data.get(r.jname) ?? [];
        list.push({ t: Math.round(t), cpu: (u.cpuSec - prev.cpuSec) / (t - prev.t), mem: u.memBytes, ...(u.memMaxBytes ? { memMax: u.memMaxBytes } : {}) });
        while (list.length && list[0]!.t < t - HOUR_SEC) list.shift();
        this.data.set(r.jname, list);
      }));
      for (const j of [...this.last.keys()]) if (!seen.has(j)) this.last.delete(j);
    } finally {
      this.busy = false;
    }
  }

  /** The samples of `jname` over the last hour, oldest first (empty when none). */
  series(jname: string): Sample[] {
    return this.data.get(jname) ?? [];
  }
}
