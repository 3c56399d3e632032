/**
 * jcreate: a new env from a base (design/product.md "Lifecycle"), inside the storage bracket
 * (src/lifecycle/storage.ts) with the action `create`.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeDescriptor, type EnvConf } from '../descriptor.js';
import { BerthError, EXIT, notFound, usageError } from '../errors.js';
import { HOOK_DIRS, runHookDir } from '../hooks.js';
import { checkJname } from '../names.js';
import { defaultEmulator } from '../engines/registry.js';
import { engineEnv } from '../engines/types.js';
import type { NodeCtx } from '../node.js';
import { acquireEnvLease, journal, publishDescriptor, releaseEnvLease } from '../ownership/leases.js';
import { emptyDir, isEmptyDir } from './files.js';
import { baseFstab, populateData } from './root.js';
import { validateSettings } from './settings.js';
import { hookEnv, withStorage } from './storage.js';
import { envInfo, type EnvInfo, type OpOptions } from './types.js';

/** Input of {@link createEnv}: jname plus CBSD settings (emulator, base, baserw, ...). */
export interface CreateInput {
  jname: string;
  emulator?: string;
  /** the command family (jcreate: j, bcreate: b): the default emulator, and a check that `emulator` is of it */
  family?: 'j' | 'b';
  settings: Record<string, string>;
}

/**
 * jcreate: validates everything first, then (storage mounted by mnt_start) refuses a
 * non-empty data dir or sysdir, takes the lease, fills the data dir from the base (tree
 * engines) or has the engine make its disks there (disk engines, EngineInfo.root = 'disk':
 * Engine.create, e.g. jails-data/<vm>-data/dsk1.vhd; the base, optional, is the tree the first
 * disk is made from), writes the fstab (tree engines), hook dirs, descriptor and inventory row,
 * runs master_create.d, and mnt_stop. Any failure undoes all of it (nothing deleted that was
 * there before).
 * @throws BerthError E_BAD_* (2), E_NO_SUCH_BASE (3), E_ENV_EXISTS (1), hook/lease errors
 */
export async function createEnv(ctx: NodeCtx, input: CreateInput, opts: OpOptions = {}): Promise<EnvInfo> {
  const jname = checkJname(input.jname);
  const emulator = input.emulator ?? defaultEmulator(ctx.platform, input.family);
  const engine = await ctx.engine(emulator);
  if (input.family && engine.info.family !== input.family) {
    throw usageError('E_BAD_EMULATOR', `emulator=${emulator} is ${engine.info.family === 'b' ? 'a VM engine: use bcreate' : 'not a VM engine: use jcreate'}`);
  }
  const disk = engine.info.root === 'disk';
  const settings = validateSettings(input.settings, engine.info);
  const p = ctx.wd.env(jname);
  const conf: EnvConf = disk
    ? { host_hostname: jname, astart: '0', ...settings, jname, emulator, path: p.path, data: p.data, rcconf: p.rcconfFile }
    : {
      baserw: '0', host_hostname: jname, ip4_addr: '0', vnet: '0', astart: '0', ...settings,
      jname, emulator, path: p.path, data: p.data, mount_fstab: p.fstab, rcconf: p.rcconfFile,
    };
  if (!conf.base && !disk) throw usageError('E_NO_BASE', 'jcreate needs base=<name> (see: berth base list)');
  engine.validate(conf);
  const baseDir = conf.base ? ctx.wd.base(conf.base) : undefined;
  if (baseDir && !existsSync(baseDir)) throw notFound('E_NO_SUCH_BASE', `no base ${JSON.stringify(conf.base)} in ${ctx.wd.bases}`, { hint: 'see: berth base list; make one with berth base busybox name=<name>' });
  if (disk && !engine.create) throw usageError('E_BAD_EMULATOR', `emulator=${emulator} has disk roots but makes no disks (Engine.create missing)`);
  if (ctx.inv.get(jname)) throw new BerthError('E_ENV_EXISTS', `env ${jname} already exists on node ${ctx.nodename}`, EXIT.FAILURE);
  if (existsSync(p.rcconfFile)) {
    throw new BerthError('E_ENV_EXISTS', `an unregistered env ${jname} exists (${p.rcconfFile})`, EXIT.FAILURE, { hint: `adopt it with: berth jregister jname=${jname}` });
  }
  const made: string[] = [];
  for (const d of [p.data, p.sysdir, p.fstabDir]) {
    if (!existsSync(d)) { await mkdir(d, { recursive: true }); made.push(d); }
  }
  try {
    await withStorage(ctx, jname, conf, { action: 'create', uuid: false, lease: false }, opts, async () => {
      let owned = false;
      let inserted = false;
      let leaseGen = 0;
      let engineMade = false;
      try {
        for (const d of [p.data, p.sysdir, p.fstabDir]) {
          if (!(await isEmptyDir(d))) {
            throw new BerthError('E_ENV_EXISTS', `${d} already holds files; refusing to create ${jname} over them (nothing was deleted)`, EXIT.FAILURE,
              { hint: `if this is an existing env, adopt it with berth jregister jname=${jname}` });
          }
        }
        conf.uuid = randomUUID();
        conf.created_by_node = ctx.nodename;
        leaseGen = (await acquireEnvLease(ctx, jname, conf.uuid)).generation;
        // Only now is what lands in these (empty) dirs ours: a concurrent jcreate of the same
        // name that lost the lease race must not empty the winner's dirs on rollback.
        owned = true;
        if (disk) {
          // the engine makes its disks in the data dir (it may add their rows to conf: they
          // are written into the descriptor below); no root tree, no fstab
          await engine.create!(engineEnv(ctx, jname, conf), { baseDir });
          engineMade = true;
        } else {
          await populateData(baseDir!, p.data, conf.baserw!);
          if (conf.baserw === '0') await writeFile(p.fstab, baseFstab(jname));
          await writeFile(p.fstabLocal, '', { flag: 'a' });
        }
        for (const d of HOOK_DIRS) await mkdir(join(p.sysdir, d), { recursive: true, mode: 0o755 });
        if (!disk && !existsSync(p.path)) { await mkdir(p.path, { recursive: true }); made.push(p.path); }
        await writeDescriptor(p.descriptor, conf, ctx.wd.root);
        await publishDescriptor(ctx, jname, conf);
        ctx.inv.insert({ jname, uuid: conf.uuid, emulator, generation: leaseGen, conf });
        inserted = true;
        await runHookDir(join(p.sysdir, 'master_create.d'), 'create', hookEnv(ctx, jname, conf, opts), { stopOnError: true });
        await journal(ctx, 'own', { jname, uuid: conf.uuid, generation: leaseGen, emulator }, 'create');
      } catch (e) {
        if (inserted) ctx.inv.delete(jname);
        // disks the engine made outside the data dir (RBD images: create refuses existing ones, so they are this run's)
        if (engineMade && engine.removeDisks) await engine.removeDisks(engineEnv(ctx, jname, conf)).catch(() => undefined);
        if (owned) {
          if (leaseGen) await releaseEnvLease(ctx, { jname, generation: leaseGen }).catch(() => undefined);
          // a record this create started (generation 1) goes with it; an older one keeps its history
          if (leaseGen === 1) await rm(p.lease, { recursive: true, force: true }).catch(() => undefined);
          else await rm(p.recordDescriptor, { force: true }).catch(() => undefined);
          for (const d of [p.data, p.sysdir, p.fstabDir]) await emptyDir(d);
        }
        throw e;
      }
    });
  } catch (e) {
    for (const d of made.reverse()) await rmdir(d).catch(() => undefined);
    throw e;
  }
  return envInfo(ctx.inv.get(jname)!);
}
