/**
 * jrename old= new= (CBSD jrename, cbsd-behaviour.md §4.2 rename.d): a stopped env owned by this
 * node gets a new jname. What carries the name moves: the data, sysdir and fstab dirs
 * (jails-data/<jname>-data, jails-system/<jname>, jails-fstab/<jname>), the descriptor
 * (jails-system/<jname>/rc.conf_<jname>, its jname/path/data/mount_fstab/rcconf keys), the
 * inventory row, the ownership record (<lease_dir>/envs/<jname>/), the entries of fstab and
 * fstab.local whose device is one of the env's own dirs (Bastille's rename lost them:
 * bastille#748), the node log. With per-env storage hooks, the hooks move the env on the volume:
 * mnt_start runs for the NEW name with `BERTH_ACTION=rename`, `BERTH_OLD_JNAME=<old>`,
 * `BERTH_NEW_JNAME=<new>` and must rename the env's sub-directories from the old name to the new
 * one (idempotently: those already renamed are left as they are) before it mounts them.
 *
 * ## Order, and why a crash leaves one name working
 *
 * Several directories cannot be renamed in one atomic step, so the rename has ONE commit point,
 * the inventory row's UPDATE of its jname (one SQLite transaction), and every step before it can
 * be undone, every step after it redone. Throughout, the row is in Maintenance with
 * `run_id = rename:<old>:<new>` and the pid of the command (claim_pid), so whoever finds that
 * claim with a dead pid (any later command on the env through recoverStaleClaim, the run monitor,
 * the agent) knows what was going on and finishes it ({@link recoverRename}):
 *
 * 1. checks, changing nothing: both names valid and different, `old` registered here, Off and
 *    leased by this node at the generation the row says; `new` nowhere (no row, no ownership
 *    record, no jails-rcconf descriptor, none of its dirs non-empty); then the Maintenance claim.
 * 2. reserve: acquire the lease of `new` (exclusive create of <lease_dir>/envs/<new>/gen.1): of
 *    two nodes renaming to the same name, one wins, and no node can create or adopt `new` now.
 * 3. move: mnt_start(new, rename) (the hook moves the env on its volume and mounts it under the
 *    new name), each of data/sysdir/fstab dir not mounted by the hook renamed locally (rename(2),
 *    skipped when already done), rc.conf_<old> rewritten as rc.conf_<new>, fstab and fstab.local
 *    rewritten, the identity check under the new name, mnt_stop(new, rename). Every piece is
 *    idempotent and has an inverse, the same move the other way.
 * 4. commit: the row renamed (jname, conf, the new lease's generation).
 * 5. publish: the descriptor copy into the new record.
 * 6. release: the old record withdrawn (its descriptor copy first, then the directory), the
 *    journal told.
 * 7. finish: the old name's empty mount point dirs removed, the log renamed, the row Off.
 *
 * Before 4 a failure (or a crash, found later) is rolled back: the move the other way
 * (mnt_start(old, rename) with BERTH_OLD_JNAME=<new>), the reserved record deleted, the row Off:
 * the old name works. From 4 on it is rolled forward (5-7): the new name works. test/unit/
 * rename.test.ts fails and "crashes" the rename at each step and checks that.
 */
import { existsSync, readdirSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { BerthError, EXIT, ownedError, usageError } from '../errors.js';
import { STATUS, statusWord } from '../inventory.js';
import { warn } from '../log.js';
import { checkJname } from '../names.js';
import type { NodeCtx } from '../node.js';
import { acquireEnvLease, requireLease } from '../ownership/leases.js';
import { getEnv, stopCommand } from './envs.js';
import { recoverStaleClaim } from './teardown.js';
import { envInfo, type EnvInfo } from './types.js';
import { confAs, moveFiles, renameClaim, rollBack, rollForward, type RenameOptions, type RenameStep } from './rename-steps.js';

export { RENAME_STEPS, parseRenameClaim, recoverRename, renameClaim, renameFstabText, type EnvPathsPair, type RenameOptions, type RenameStep } from './rename-steps.js';

/**
 * jrename of one env (see the module header for the order).
 * @throws BerthError E_BAD_JNAME (2) for a bad new name, E_SAME_NAME (2), E_NO_SUCH_ENV (3),
 *   E_RUNNING (1), E_LEASE_* (4: not owned by this node), E_NAME_TAKEN (1: the new name is in
 *   use here or in the ownership directory), hook errors, E_IDENTITY (5); a refusal changes nothing
 */
export async function renameEnv(ctx: NodeCtx, oldName: string, newName: string, opts: RenameOptions = {}): Promise<EnvInfo & { oldJname: string }> {
  checkJname(oldName);
  checkJname(newName);
  if (oldName === newName) throw usageError('E_SAME_NAME', `old and new name are both ${JSON.stringify(oldName)}`);
  let row = getEnv(ctx, oldName);
  if (await recoverStaleClaim(ctx, row, opts)) row = getEnv(ctx, oldName);
  if (row.status !== STATUS.OFF) throw new BerthError('E_RUNNING', `${oldName} is ${statusWord(row.status)}; stop it first: ${stopCommand(row)}`, EXIT.FAILURE);
  await requireLease(ctx, row);
  const np = ctx.wd.env(newName);
  const taken = (why: string) => new BerthError('E_NAME_TAKEN', `cannot rename ${oldName} to ${newName}: ${why}`, EXIT.FAILURE, { hint: 'choose another name (see berth jls and berth cluster ls)' });
  if (ctx.inv.get(newName)) throw taken(`an env ${newName} is registered on node ${ctx.nodename}`);
  if (existsSync(np.lease)) throw taken(`${np.lease} exists (an env of that name is known to the cluster)`);
  if (existsSync(np.rcconfFile)) throw taken(`${np.rcconfFile} exists (an unregistered env of that name)`);
  for (const d of [np.data, np.sysdir, np.fstabDir, np.path]) {
    if (existsSync(d) && readdirSync(d).length > 0) throw taken(`${d} exists and is not empty`);
  }
  if (!ctx.inv.claimStart(oldName, renameClaim(oldName, newName))) throw ownedError('E_BUSY', `${oldName} is busy`);
  const step = async (s: RenameStep) => { await opts.onStep?.(s); };
  const newConf = confAs(ctx, row.conf, oldName, newName);
  let committed = false;
  try {
    await step('reserve');
    const lease = await acquireEnvLease(ctx, newName, row.uuid);
    await step('move');
    await moveFiles(ctx, oldName, newName, newConf, row.uuid, opts);
    await step('commit');
    ctx.inv.db.prepare('UPDATE jails SET jname = ?, conf = ?, generation = ? WHERE jname = ? AND run_id = ?')
      .run(newName, JSON.stringify(newConf), lease.generation, oldName, renameClaim(oldName, newName));
    ctx.inv.updateConf(newName, newConf); // (the summary column)
    committed = true;
    await rollForward(ctx, ctx.inv.get(newName)!, oldName, newName, step);
  } catch (e) {
    if (committed) {
      // from the commit on the new name is the env's: finish what is left, then report the failure
      await rollForward(ctx, ctx.inv.get(newName)!, oldName, newName, async () => undefined)
        .catch((err) => warn({ jname: newName, err: String(err) }, `renamed ${oldName} to ${newName}, but finishing it failed; the next command on ${newName} retries`));
    } else {
      await rollBack(ctx, ctx.inv.get(oldName)!, newName, opts)
        .catch((err) => warn({ jname: oldName, err: String(err) }, `undoing the rename of ${oldName} failed; the next command on ${oldName} retries`));
    }
    throw e;
  }
  return { ...envInfo(ctx.inv.get(newName)!), oldJname: oldName };
}
