/**
 * The node's run monitor: one small detached process per workdir
 * (`node monitor.cjs <workdir>`, bundled), started by jstart when none is alive (src/lifecycle.ts
 * ensureMonitor). Every 250 ms (or the engine's Engine.monitorIntervalMs) it checks the main
 * process of each env the inventory says is On; when one is gone (it exited, crashed or was
 * killed with -9) it runs the teardown (src/lifecycle.ts teardownRun), which is claimed
 * exactly once across the stop command, this monitor and the agent. A VM whose engine holds
 * its powered-off or crashed guest (Engine.guestEnded: qemu with on_poweroff=restart or
 * on_crash=restart) goes to src/lifecycle/guest-end.ts: restarted in the same run (bounded), or
 * torn down. It also recovers a
 * Maintenance claim whose process died (recoverStaleClaim). If the monitor itself is killed,
 * the next jstart or jls starts a new one, which then catches up; the agent does the same.
 *
 * One monitor per node rather than one per run: 100 running envs cost one Node process,
 * not 100, and a jstart does not pay for starting one (about 100 ms of CPU each).
 *
 * Liveness: it holds var/run/monitor.pid (created with O_EXCL) and touches it every second;
 * jstart trusts only a pid file younger than 5 s whose process exists. A monitor whose pid
 * file names another process exits (two monitors are harmless meanwhile: teardown is claimed
 * once). It exits 15 s after the last env stopped, giving up its pid file first and then
 * looking once more, so a run started in between is never left unwatched; and it exits when
 * the workdir's inventory is gone. Output: var/log/monitor.log, one line per event
 * (`<ISO time> berth monitor[<pid>]: <text>`), the library's warnings included.
 */
import { closeSync, existsSync, openSync, readFileSync, unlinkSync, utimesSync, writeSync } from 'node:fs';
import { openNode, type NodeCtx } from './node.js';
import { engineEnv } from './engines/types.js';
import { liveMonitorPid, MONITOR_BEAT_MS, monitorPidFile } from './lifecycle/run-monitor.js';
import { recoverStaleClaim, teardownRun } from './lifecycle/teardown.js';
import { handleGuestEnd } from './lifecycle/guest-end.js';
import { sleep } from './proc.js';
import { setWarningSink } from './log.js';

/** How often the inventory is read (ms). */
const TICK_MS = 250;
/** How long the monitor stays after the last env stopped (ms). */
const LINGER_MS = 15_000;

const workdir = process.argv[2];

function log(msg: string): void {
  // one line per event: a hook's output quoted in a message is joined with ' | '
  const line = msg.split('\n').map((s) => s.trim()).filter(Boolean).join(' | ');
  process.stderr.write(`${new Date().toISOString()} berth monitor[${process.pid}]: ${line}\n`);
}

// the library's warnings (a teardown step that failed ...) in the same line format as the
// monitor's own lines: one format in var/log/monitor.log, not pino's JSON between them
setWarningSink((msg, fields) => {
  const kv = Object.entries(fields).map(([k, v]) => `${k}=${JSON.stringify(v) ?? String(v)}`).join(' ');
  log(`warning: ${msg}${kv ? ` (${kv})` : ''}`);
});

function pidIn(file: string): number {
  try {
    return Number(readFileSync(file, 'utf8').trim());
  } catch {
    return 0;
  }
}

/** Creates the pid file (O_EXCL); replaces a stale one once. @returns false when another monitor is alive */
function takePidFile(ctx: NodeCtx, file: string): boolean {
  for (let i = 0; i < 2; i++) {
    try {
      const fd = openSync(file, 'wx', 0o644);
      try { writeSync(fd, `${process.pid}\n`); } finally { closeSync(fd); }
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (liveMonitorPid(ctx)) return false;
    try { unlinkSync(file); } catch { /* another new monitor removed it first */ }
  }
  return false;
}

function dropPidFile(file: string): void {
  if (pidIn(file) === process.pid) {
    try { unlinkSync(file); } catch { /* gone */ }
  }
}

async function monitor(): Promise<void> {
  if (!workdir) throw new Error('usage: monitor.js <workdir>');
  const ctx = openNode(workdir);
  const file = monitorPidFile(ctx);
  const inflight = new Map<string, Promise<void>>();
  const lastCheck = new Map<string, number>();
  // run_id → times of its guest's restarts (the bound of src/lifecycle/guest-end.ts)
  const restarts = new Map<string, number[]>();
  try {
    if (!takePidFile(ctx, file)) return;
    let idleSince = Date.now();
    let lastBeat = Date.now();
    for (;;) {
      if (!existsSync(ctx.wd.dbFile)) return; // the workdir was removed
      const now = Date.now();
      if (now - lastBeat >= MONITOR_BEAT_MS) {
        if (pidIn(file) !== process.pid) return; // another monitor took over
        utimesSync(file, new Date(), new Date());
        lastBeat = now;
      }
      const rows = ctx.inv.running();
      if (rows.length || inflight.size) idleSince = now;
      else if (now - idleSince >= LINGER_MS) {
        dropPidFile(file);
        // a jstart that found the pid file just before it went relies on this last look
        if (!ctx.inv.running().length || !takePidFile(ctx, file)) return;
        idleSince = now;
      }
      for (const row of rows) {
        if (!row.run_id || inflight.has(row.jname)) continue;
        const engine = await ctx.engine(row.emulator);
        if (now - (lastCheck.get(row.jname) ?? 0) < (engine.monitorIntervalMs ?? TICK_MS)) continue;
        lastCheck.set(row.jname, now);
        const eenv = engineEnv(ctx, row.jname, row.conf);
        if (await engine.isRunning(eenv, row.jid)) {
          const how = engine.guestEnded ? await engine.guestEnded(eenv) : undefined;
          if (!how) continue;
          const jname = row.jname;
          const runId = row.run_id;
          const history = restarts.get(runId) ?? [];
          restarts.set(runId, history);
          const what = how === 'poweroff' ? 'powered off' : 'crashed';
          inflight.set(jname, handleGuestEnd(ctx, jname, runId, how, history)
            .then((r) => { if (r.action !== 'none') log(`${jname}: the guest ${what}; ${r.action === 'restarted' ? 'restarted' : 'torn down'} (${r.why})`); })
            .catch((e: Error) => log(`${jname}: after the guest ${what}: ${e.message}`))
            .finally(() => { inflight.delete(jname); lastCheck.delete(jname); }));
          continue;
        }
        const jname = row.jname;
        inflight.set(jname, teardownRun(ctx, jname, row.run_id, { engineStarted: true, reason: 'exited' })
          .then((did) => { if (did) log(`${jname} exited; torn down`); })
          .catch((e: Error) => log(`${jname}: teardown failed: ${e.message}`))
          .finally(() => { inflight.delete(jname); lastCheck.delete(jname); }));
      }
      const claimed = ctx.inv.claimed();
      // a restart's history goes with its run (a run being restarted is claimed meanwhile)
      for (const id of restarts.keys()) if (!rows.some((r) => r.run_id === id) && !claimed.some((r) => r.run_id === id)) restarts.delete(id);
      // a claim whose process died mid-operation (a berth command, or a monitor killed during
      // a teardown): recovered (torn down, Off) as the next command or the agent would
      for (const row of claimed) {
        if (inflight.has(row.jname)) continue;
        const jname = row.jname;
        inflight.set(jname, recoverStaleClaim(ctx, row)
          .then((did) => { if (did) log(`${jname}: recovered a claim left by process ${row.claim_pid}`); })
          .catch((e: Error) => log(`${jname}: recovery failed: ${e.message}`))
          .finally(() => { inflight.delete(jname); }));
      }
      await sleep(TICK_MS);
    }
  } finally {
    await Promise.all(inflight.values());
    dropPidFile(file);
    ctx.close();
  }
}

monitor().catch((e) => {
  log(`${workdir}: ${(e as Error).message}`);
  process.exitCode = 1;
});
