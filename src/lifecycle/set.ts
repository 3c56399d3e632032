/**
 * jset: new settings of an env, written to the inventory and, atomically, to its descriptor in
 * the sysdir and in its ownership record, inside the storage bracket with the action `set`.
 */
import { existsSync } from 'node:fs';
import { writeDescriptor } from '../descriptor.js';
import { notFound, usageError } from '../errors.js';
import { STATUS } from '../inventory.js';
import type { NodeCtx } from '../node.js';
import { publishDescriptor } from '../ownership/leases.js';
import { getEnv } from './envs.js';
import { validateSettings } from './settings.js';
import { withStorage } from './storage.js';
import type { OpOptions } from './types.js';

/**
 * jset: validates, requires the lease, and writes the new settings to the inventory and,
 * atomically, to the descriptor in the sysdir and in the ownership record (storage mounted
 * around it when stopped, action `set`). The storage is mounted with the hooks as they will
 * be: `jset mnt_start=<fixed hook>` (or `mnt_start=0` when the storage is mounted otherwise)
 * repairs an env whose hook fails, instead of failing on that very hook. The identity check
 * still guards the write.
 * @returns the keys changed and whether a restart is needed to apply them
 * @throws BerthError E_NOTHING_TO_SET / E_BAD_VALUE / E_UNKNOWN_KEY (2), E_NO_SUCH_BASE (3), lease errors (4), hook errors
 */
export async function setEnv(ctx: NodeCtx, jname: string, changes: Record<string, string>, opts: OpOptions = {}): Promise<{ jname: string; changed: string[]; restartNeeded: boolean }> {
  const row = getEnv(ctx, jname);
  if (Object.keys(changes).length === 0) throw usageError('E_NOTHING_TO_SET', 'jset needs at least one key=value (see berth jset --help)');
  changes = validateSettings(changes, (await ctx.engine(row.emulator)).info);
  const conf = { ...row.conf, ...changes };
  (await ctx.engine(row.emulator)).validate(conf);
  if (changes.base && !existsSync(ctx.wd.base(changes.base))) throw notFound('E_NO_SUCH_BASE', `no base ${JSON.stringify(changes.base)} on this node`);
  if (changes.baserw && changes.baserw !== row.conf.baserw) throw usageError('E_BAD_VALUE', `baserw cannot change after jcreate (${jname} has baserw=${row.conf.baserw})`);
  const changed = Object.keys(changes).filter((k) => row.conf[k] !== changes[k]);
  const running = row.status === STATUS.ON;
  await withStorage(ctx, jname, conf, { action: 'set', uuid: row.uuid, lease: { generation: row.generation, uuid: row.uuid }, running }, opts, async () => {
    await writeDescriptor(ctx.wd.env(jname).descriptor, conf, ctx.wd.root);
    await publishDescriptor(ctx, jname, conf);
    ctx.inv.updateConf(jname, conf);
  });
  return { jname, changed, restartNeeded: running && changed.length > 0 };
}
