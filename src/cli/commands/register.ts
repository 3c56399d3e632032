/** jregister / junregister commands: thin wrappers over src/register.ts. */
import { usageError } from '../../errors.js';
import { registerEnv, registerTargets, unregisterEnv } from '../../lifecycle/register.js';
import { selectEnvs } from '../../lifecycle/envs.js';
import { withNode } from './env.js';
import { forEachEnv } from '../each.js';
import type { Handler, Opts } from '../types.js';

/**
 * Envs registered (or unregistered) at once by one glob command. Each env's work is mostly
 * waiting on the shared storage (lease create, descriptor fsync), so a few run side by side,
 * as CBSD queues one task per env (§6.1); results keep the name order.
 */
export const REGISTER_CONCURRENCY = 8;

const str = (o: Opts, k: string) => (typeof o[k] === 'string' ? (o[k] as string) : undefined);

/** `f`, called the first time only (the takeover's wait note; the library calls it every second). */
function once<A extends unknown[]>(f: (...a: A) => void): (...a: A) => void {
  let done = false;
  return (...a) => { if (!done) { done = true; f(...a); } };
}

export const jregister: Handler = async (opts, args, io) => withNode(opts, async (ctx) => {
  const patterns = [...(str(opts, 'jname') ? [str(opts, 'jname')!] : []), ...args];
  const rcfile = str(opts, 'rcfile');
  if (!patterns.length && !rcfile) throw usageError('E_NO_JNAME', 'jregister needs jname=<name or glob> or rcfile=<file>');
  const ropts = {
    verbose: !!opts.verbose, rcfile, mntStart: str(opts, 'mnt_start'), mntStop: str(opts, 'mnt_stop'), force: !!opts.force, start: !!opts.start,
    onWait: once((sec: number) => io.note(`waiting ${Math.round(sec)} s to prove the current owner node is silent (its heartbeat must not move)...`)),
  };
  if (rcfile && patterns.length <= 1) {
    const r = await registerEnv(ctx, patterns[0], ropts);
    return { data: { results: [{ ok: true, ...r }] }, text: `registered: ${r.jname} (generation ${r.generation}${r.tookOver ? `, taken over from ${r.previousOwner}` : ''})${r.started ? `\nstarted: ${r.jname}` : ''}` };
  }
  return forEachEnv(registerTargets(ctx, patterns), 'registered', (j) => registerEnv(ctx, j, ropts), REGISTER_CONCURRENCY);
});

export const junregister: Handler = async (opts, args) => withNode(opts, async (ctx) => {
  const patterns = [...(str(opts, 'jname') ? [str(opts, 'jname')!] : []), ...args];
  const rows = selectEnvs(ctx, patterns);
  return forEachEnv(rows.map((r) => r.jname), 'unregistered', (j) => unregisterEnv(ctx, j, { verbose: !!opts.verbose, rcfile: rows.length === 1 ? str(opts, 'rcfile') : undefined }), REGISTER_CONCURRENCY);
});
