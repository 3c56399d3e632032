/**
 * The storage bracket: what every operation that needs an env's files does around its work
 * (design/product.md "Start order" and "Storage hook contract"):
 *
 *   mnt_start → identity check → lease check → the work → mnt_stop
 *
 * with mnt_stop also after a failure (a half-done mnt_start included), and nothing of it when
 * the env runs (its storage stays mounted from jstart's mnt_start until its teardown's
 * mnt_stop). Every operation on an env's files uses it: create, start, set, clone, register,
 * unregister, remove, adopt; stop is the teardown (src/lifecycle/teardown.ts).
 */
import { mkdir } from 'node:fs/promises';
import { parseDescriptor, readDescriptorAsync, type EnvConf } from '../descriptor.js';
import { BerthError, EXIT, engineError } from '../errors.js';
import { cbsdHookVars, runStorageHook, type HookAction, type HookEnv } from '../hooks.js';
import { warn } from '../log.js';
import type { NodeCtx } from '../node.js';
import { requireLease } from '../ownership/leases.js';
import { isEmptyDir } from './files.js';
import { timed, type OpOptions } from './types.js';

/** Effective storage hooks: the env's, else the node defaults (`''`/missing = default, `0` = none). */
export function effectiveHooks(ctx: NodeCtx, conf: EnvConf): { start: string; stop: string } {
  const pick = (own: string | undefined, def: string) => (own === undefined || own === '' ? def : own);
  return { start: pick(conf.mnt_start, ctx.settings.default_mnt_start), stop: pick(conf.mnt_stop, ctx.settings.default_mnt_stop) };
}

/** The HookEnv for an env's hooks. */
export function hookEnv(ctx: NodeCtx, jname: string, conf: EnvConf, opts: OpOptions, extraEnv?: Record<string, string>): HookEnv {
  const p = ctx.wd.env(jname, conf.data);
  const t = conf.mnt_timeout !== undefined && conf.mnt_timeout !== '' ? Number(conf.mnt_timeout) : ctx.settings.mnt_timeout;
  return { jname, nodename: ctx.nodename, data: p.data, fstabDir: p.fstabDir, rcconfDir: ctx.wd.jailsRcconf, sysdir: p.sysdir, logFile: p.log, verbose: opts.verbose, timeoutSec: t,
    extraEnv: { ...cbsdHookVars({ ...conf, jname, path: p.path, data: p.data }), ...extraEnv } };
}

/** Runs the env's mnt_start (the node default when it has none) with `action`. @throws hook errors */
export async function mntStart(ctx: NodeCtx, jname: string, conf: EnvConf, action: HookAction, opts: OpOptions): Promise<void> {
  await mkdir(ctx.wd.logDir, { recursive: true });
  await runStorageHook('mnt_start', effectiveHooks(ctx, conf).start, action, hookEnv(ctx, jname, conf, opts));
}

/** Runs the env's mnt_stop (the node default when it has none) with `action`. @throws hook errors */
export async function mntStop(ctx: NodeCtx, jname: string, conf: EnvConf, action: HookAction, opts: OpOptions): Promise<void> {
  await runStorageHook('mnt_stop', effectiveHooks(ctx, conf).stop, action, hookEnv(ctx, jname, conf, opts));
}

/**
 * The identity check after mnt_start (product.md start step 2): the sysdir holds this env's
 * descriptor with the same uuid, and the data dir (`conf.data` when it names its own dir) exists
 * and is not empty. `descriptorText`: the sysdir descriptor's text as the caller just read it
 * after mnt_start (jregister reads it anyway), else it is read here. Asynchronous (one lookup,
 * one read, one directory entry): on shared storage each is a network round trip, and jregister
 * of a glob checks many envs at once.
 * @throws BerthError E_IDENTITY (exit 5): the mount most likely failed; E_BAD_CONF (1): the
 *   descriptor has a bad line (its line number in the message)
 */
export async function verifyIdentity(ctx: NodeCtx, jname: string, uuid: string, conf?: EnvConf, descriptorText?: string): Promise<void> {
  const p = ctx.wd.env(jname, conf?.data);
  let found: string | undefined;
  try {
    found = (descriptorText !== undefined ? parseDescriptor(descriptorText, ctx.wd.root, p.descriptor) : await readDescriptorAsync(p.descriptor, ctx.wd.root)).uuid;
  } catch (e) {
    // a descriptor that is there but has a bad line: say which line (it is not a mount problem)
    if (e instanceof BerthError && e.code === 'E_BAD_CONF') {
      throw new BerthError('E_BAD_CONF', `the descriptor of ${jname} in its system dir cannot be read: ${e.message}; refusing to touch ${jname}`, e.exitCode, {
        hint: `fix that line of ${p.descriptor} (berth never sources it), or write it again: berth jset jname=${jname} <key>=<value>`, cause: e,
      });
    }
    found = undefined;
  }
  const hint = 'the storage of this env is probably not mounted: check its mnt_start hook and the log var/log/' + jname + '.log';
  if (found !== uuid) {
    throw engineError('E_IDENTITY', `${p.descriptor} ${found ? `belongs to another env (uuid ${found}, expected ${uuid})` : 'is missing or unreadable'}; refusing to touch ${jname}`, {
      hint: found ? `the storage mounted at ${p.sysdir} holds another env's files (check mnt_start), or a descriptor's uuid was edited by hand` : hint,
    });
  }
  if (await isEmptyDir(p.data)) throw engineError('E_IDENTITY', `data dir ${p.data} is missing or empty; refusing to use ${jname}`, { hint });
}

/** How an operation brackets its work with the env's storage (see the module header). */
export interface StorageBracket {
  /** the hooks' BERTH_ACTION */
  action: HookAction;
  /** identity check after mnt_start: the env's uuid; false when the work checks (jcreate: the dirs must be empty) */
  uuid: string | false;
  /** lease check after the identity check: what this node holds; false when the work acquires or checks it */
  lease: { generation: number; uuid: string } | false;
  /** the env runs: its storage is mounted until its teardown (no mnt_start, no mnt_stop; the checks still run) */
  running?: boolean;
  /** already mounted by this process (jregister start=1, jmigrate's destination): no mnt_start */
  mounted?: boolean;
  /** leave the storage mounted once the work succeeded (jstart, jregister start=1, jmigrate) */
  keep?: boolean;
  /** when the work fails its own undo unmounts (jstart: its teardown runs mnt_stop) */
  undoUnmounts?: boolean;
}

/**
 * Runs `work` inside the storage bracket `b` of env `jname` (hooks from `conf`): mnt_start,
 * identity check, lease check, the work, mnt_stop (each timed into `opts.timings`). On a failure
 * anywhere, mnt_start included (a hook may have mounted part of its dirs), mnt_stop runs before
 * the error is thrown; a failing mnt_stop then is logged, and the first error wins.
 * @throws the work's error; hook errors (E_HOOK_FAILED, E_HOOK_TIMEOUT 124 ...), E_IDENTITY (5),
 *   E_BAD_CONF (1), lease errors (4); a failing mnt_stop after a successful work: its error, the
 *   message saying the work is done and `details.done` true
 */
export async function withStorage<T>(ctx: NodeCtx, jname: string, conf: EnvConf, b: StorageBracket, opts: OpOptions, work: () => Promise<T>): Promise<T> {
  const t = opts.timings;
  const hooks = !b.running;
  let r: T;
  try {
    if (hooks && !b.mounted) await timed(t, 'mnt_start', () => mntStart(ctx, jname, conf, b.action, opts));
    if (b.uuid !== false) { const uuid = b.uuid; await timed(t, 'identity', () => verifyIdentity(ctx, jname, uuid, conf)); }
    if (b.lease !== false) { const l = b.lease; await timed(t, 'lease', () => requireLease(ctx, { jname, ...l })); }
    r = await work();
  } catch (e) {
    if (hooks && !b.undoUnmounts) await mntStop(ctx, jname, conf, b.action, opts).catch((err) => warn({ jname, err: String(err) }, `mnt_stop after a failed ${b.action}`));
    throw e;
  }
  if (hooks && !b.keep) {
    try {
      await mntStop(ctx, jname, conf, b.action, opts);
    } catch (e) {
      // the work is done and stays done: say so, or a script retrying on exit 1 is misled
      const err = e instanceof BerthError ? e : new BerthError('E_HOOK_FAILED', String(e), EXIT.FAILURE);
      throw new BerthError(err.code, `${b.action} of ${jname} is done (its change is made); then ${err.message}`, err.exitCode, {
        hint: `the storage of ${jname} may still be mounted on this node: fix the hook (see var/log/${jname}.log), then unmount by hand or run the operation again`,
        details: { ...err.details, done: true }, cause: e,
      });
    }
  }
  return r;
}
