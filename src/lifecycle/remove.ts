/**
 * jremove: an env's data, sysdir and fstab dir contents, its ownership record and inventory row
 * deleted, inside the storage bracket with the action `remove`. Only the owner can remove an env.
 */
import { randomUUID } from 'node:crypto';
import { rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError, EXIT, engineError, ownedError } from '../errors.js';
import { runHookDir } from '../hooks.js';
import { engineEnv } from '../engines/types.js';
import { STATUS, statusWord } from '../inventory.js';
import { mountsUnder } from '../mounts/types.js';
import type { NodeCtx } from '../node.js';
import { journal, publishDescriptor, releaseEnvLease } from '../ownership/leases.js';
import { getEnv, stopCommand } from './envs.js';
import { emptyDir, noSymlinkBelow } from './files.js';
import { hookEnv, withStorage } from './storage.js';
import { recoverStaleClaim } from './teardown.js';
import type { OpOptions } from './types.js';

/**
 * jremove: refuses a running or protected env, or one this node does not own; with the
 * storage mounted, checks identity, runs remove.d, withdraws the descriptor copy from the
 * ownership record (no node can adopt the env from then on), releases the lease, deletes the
 * engine's disks outside the data dir (Engine.removeDisks: RBD images) before all that, and
 * inventory row, the data, sysdir and fstab dir contents, the ownership record, and the local
 * mount point dirs. Disks the engine leaves (not made for this env) are named in `notes`.
 * @throws BerthError E_RUNNING (1), E_PROTECTED (1), E_LEASE_* (4), E_IDENTITY (5)
 */
export async function removeEnv(ctx: NodeCtx, jname: string, opts: OpOptions = {}): Promise<{ jname: string; removed: string[]; notes?: string[] }> {
  let row = getEnv(ctx, jname);
  if (await recoverStaleClaim(ctx, row, opts)) row = getEnv(ctx, jname);
  if (row.status !== STATUS.OFF) throw new BerthError('E_RUNNING', `${jname} is ${statusWord(row.status)}; stop it first: ${stopCommand(row)}`, EXIT.FAILURE);
  if (row.conf.protected === '1') throw new BerthError('E_PROTECTED', `${jname} is protected (protected=1)`, EXIT.FAILURE, { hint: `berth jset jname=${jname} protected=0` });
  if (!ctx.inv.claimStart(jname, `remove-${randomUUID()}`)) throw ownedError('E_BUSY', `${jname} is busy`);
  const p = ctx.wd.env(jname);
  const removed: string[] = [];
  const notes: string[] = [];
  let deleted = false;
  let withdrawn = false;
  try {
    await withStorage(ctx, jname, row.conf, { action: 'remove', uuid: row.uuid, lease: { generation: row.generation, uuid: row.uuid } }, opts, async () => {
      const table = await (await ctx.mounts()).list();
      for (const d of [p.data, p.sysdir, p.fstabDir, p.path]) {
        noSymlinkBelow(ctx.wd.root, d, `${jname}'s ${d}`);
        const inner = mountsUnder(table, d).filter((m) => m.target !== d);
        if (inner.length) throw engineError('E_MOUNTED', `${inner[0]!.target} is mounted inside ${d}; refusing to delete through a mount`, { hint: `unmount it first: umount ${inner[0]!.target}` });
      }
      await runHookDir(join(p.sysdir, 'remove.d'), 'remove', hookEnv(ctx, jname, row.conf, opts), { stopOnError: true });
      // disks outside the data dir (RBD images) first: a refusal there changes nothing else
      const engine = await ctx.engine(row.emulator).catch(() => undefined);
      if (engine?.removeDisks) {
        const r = await engine.removeDisks(engineEnv(ctx, jname, row.conf));
        removed.push(...r.removed);
        notes.push(...r.notes);
      }
      await rm(p.recordDescriptor, { force: true });
      withdrawn = true;
      await releaseEnvLease(ctx, row);
      ctx.inv.delete(jname);
      deleted = true;
      for (const d of [p.data, p.sysdir, p.fstabDir]) { await emptyDir(d); removed.push(d); }
      await rm(p.lease, { recursive: true, force: true });
      await journal(ctx, 'drop', { jname, uuid: row.uuid, generation: row.generation, emulator: row.emulator }, 'remove');
    });
  } catch (e) {
    if (!deleted) {
      ctx.inv.finishTeardown(jname);
      if (withdrawn) await publishDescriptor(ctx, jname, row.conf).catch(() => undefined);
    }
    throw e;
  }
  const table = await (await ctx.mounts()).list();
  for (const d of [p.data, p.sysdir, p.fstabDir, p.path]) {
    if (!table.some((m) => m.target === d)) await rmdir(d).catch(() => undefined);
  }
  await rm(p.log, { force: true });
  return { jname, removed, ...(notes.length ? { notes } : {}) };
}
