/**
 * The per-run monitor: a small detached process started by jstart
 * (`node monitor.js <workdir> <jname> <run_id> <jid>`). It polls (every 250 ms, or the
 * engine's monitorIntervalMs); when the
 * env's main process is gone (it exited, crashed or was killed with -9) it runs the
 * teardown (src/lifecycle.ts teardownRun), which is claimed exactly once across the stop
 * command, this monitor and the agent. It exits as soon as the run is no longer current
 * (someone else stopped it). Its output goes to var/log/<jname>.log.
 */
import { openNode } from './node.js';
import { engineEnv, teardownRun } from './lifecycle.js';

const [workdir, jname, runId, jidText] = process.argv.slice(2);

async function monitor(): Promise<void> {
  const ctx = openNode(workdir);
  const jid = Number(jidText);
  try {
    const first = ctx.inv.get(jname!);
    if (!first) return;
    const engine = await ctx.engine(first.emulator);
    const eenv = engineEnv(ctx, jname!, first.conf);
    for (;;) {
      const row = ctx.inv.get(jname!);
      if (!row || row.run_id !== runId) return;
      if (!(await engine.isRunning(eenv, jid))) {
        const did = await teardownRun(ctx, jname!, runId!, { engineStarted: true, reason: 'exited' });
        if (did) process.stderr.write(`${new Date().toISOString()} berth monitor: ${jname} exited; torn down\n`);
        return;
      }
      await new Promise((r) => setTimeout(r, engine.monitorIntervalMs ?? 250));
    }
  } finally {
    ctx.close();
  }
}

monitor().catch((e) => {
  process.stderr.write(`${new Date().toISOString()} berth monitor: ${jname}: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
