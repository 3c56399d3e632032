/**
 * jstart (design/product.md "Start order", the same on every engine): inside the storage
 * bracket (mnt_start, identity check, lease check), the root assembled (tree engines; a disk
 * engine boots the disks in its data dir: no root tree),
 * master_prestart.d (non-zero vetoes), the engine, master_poststart.d. A failure at any step
 * tears down what was set up (mount table and inventory as before).
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { BerthError, EXIT, ownedError } from '../errors.js';
import { engineEnv } from '../engines/types.js';
import { runHookDir } from '../hooks.js';
import { STATUS } from '../inventory.js';
import { warn } from '../log.js';
import type { NodeCtx } from '../node.js';
import { getEnv } from './envs.js';
import { assembleRoot } from './root.js';
import { ensureMonitor } from './run-monitor.js';
import { hookEnv, withStorage } from './storage.js';
import { reconcileEnv, recoverStaleClaim, teardownRun } from './teardown.js';
import { envInfo, timed, type EnvInfo, type OpOptions } from './types.js';

/**
 * jstart: mnt_start, identity check, lease check, root assembly, master_prestart.d (non-zero
 * vetoes), engine start, master_poststart.d. A failure at any step tears down what was set up.
 * With `opts.mounted` the storage is already mounted (no mnt_start); with `opts.rootReady` the
 * root too (no root assembly).
 * @throws BerthError E_RUNNING (1), E_BUSY (4), lease errors (4), hook errors, E_MOUNT/E_ENGINE (5)
 */
export async function startEnv(ctx: NodeCtx, jname: string, opts: OpOptions = {}): Promise<EnvInfo> {
  let row = getEnv(ctx, jname);
  const engine = await ctx.engine(row.emulator);
  if (row.status === STATUS.ON) {
    if (await engine.isRunning(engineEnv(ctx, jname, row.conf), row.jid)) {
      throw new BerthError('E_RUNNING', `${jname} is already running (jid ${row.jid})`, EXIT.FAILURE);
    }
    await reconcileEnv(ctx, row);
    row = getEnv(ctx, jname);
  }
  if (await recoverStaleClaim(ctx, row, opts)) row = getEnv(ctx, jname);
  const runId = randomUUID();
  if (!ctx.inv.claimStart(jname, runId)) {
    throw ownedError('E_BUSY', `${jname} is busy (a start, stop or remove is in progress on this node)`, { hint: 'wait and retry; berth jls shows Maintenance meanwhile' });
  }
  const conf = row.conf;
  const eenv = engineEnv(ctx, jname, conf);
  const t = opts.timings;
  let engineStarted = false;
  try {
    // the storage stays mounted while the env runs; a failure's teardown unmounts it
    await withStorage(ctx, jname, conf, { action: 'start', uuid: row.uuid, lease: { generation: row.generation, uuid: row.uuid }, mounted: opts.mounted, keep: true, undoUnmounts: true }, opts, async () => {
      if (engine.info.root === 'tree' && !opts.rootReady) await timed(t, 'root', () => assembleRoot(ctx, jname, conf));
      const henv = hookEnv(ctx, jname, conf, opts);
      await timed(t, 'master_prestart.d', () => runHookDir(join(eenv.paths.sysdir, 'master_prestart.d'), 'start', henv, { stopOnError: true }));
      engineStarted = true;
      const res = await timed(t, `engine ${engine.name}`, () => engine.start(eenv));
      ctx.inv.setRunning(jname, runId, res.jid);
      await timed(t, 'monitor', () => ensureMonitor(ctx));
      await timed(t, 'master_poststart.d', () => runHookDir(join(eenv.paths.sysdir, 'master_poststart.d'), 'start', henv, { stopOnError: false }));
    });
  } catch (e) {
    await teardownRun(ctx, jname, runId, { ...opts, engineStarted, reason: 'failed-start' }).catch((err) => warn({ err: String(err) }, 'teardown after a failed start'));
    throw e;
  }
  return envInfo(ctx.inv.get(jname)!);
}
