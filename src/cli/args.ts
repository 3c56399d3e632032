/**
 * What env command handlers share: reading options, opening the node, selecting envs by name
 * or glob, and running an operation over several envs. The library is imported lazily here
 * too (see src/cli/types.ts CmdDef).
 */
import { usageError } from '../errors.js';
import type { NodeCtx } from '../node.js';
import { isGlob } from '../names.js';
import { forEachEnv } from './each.js';
import type { CmdOutput, Opts } from './types.js';

/**
 * The command family a handler runs for: `b` when it was reached as a VM command (bstart ...,
 * src/cli/family.ts sets the `_family` option), else `j`.
 */
export const familyOf = (opts: Opts): 'j' | 'b' => (opts._family === 'b' ? 'b' : 'j');

/** The string value of option `key`, or undefined (a flag or absent). */
export const str = (opts: Opts, key: string): string | undefined => (typeof opts[key] === 'string' ? (opts[key] as string) : undefined);

/** Runs `fn` with an opened node (workdir= or the default), closing it after. */
export async function withNode<T>(opts: Opts, fn: (ctx: NodeCtx) => Promise<T>): Promise<T> {
  const { openNode } = await import('../node.js');
  const ctx = openNode(opts.workdir);
  try {
    return await fn(ctx);
  } finally {
    ctx.close();
  }
}

/**
 * The env names a command got: jname= (may be a glob) and positional names.
 * @throws BerthError E_NO_JNAME (exit 2) when there is none
 */
export function names(opts: Opts, args: string[]): string[] {
  const out = [...(typeof opts.jname === 'string' ? [opts.jname] : []), ...args];
  if (out.length === 0) throw usageError('E_NO_JNAME', 'no env named: give jname=<name or glob> (or the name as an argument)');
  return out;
}

/**
 * Settings given on the command line: the settable keys (src/lifecycle/settings.ts) and the
 * numbered row settings of `opts.row` (CmdDef.keyPatterns: `key=value` lines); which of them
 * the env's engine takes is checked later (validateSettings).
 * @throws BerthError E_BAD_VALUE (exit 2) for a row setting that is not key=value
 */
export async function settingsOf(opts: Opts): Promise<Record<string, string>> {
  const { SETTABLE_KEYS } = await import('../lifecycle/settings.js');
  const s: Record<string, string> = {};
  for (const k of SETTABLE_KEYS) if (typeof opts[k] === 'string') s[k] = opts[k] as string;
  if (typeof opts.row === 'string') {
    for (const kv of opts.row.split('\n')) {
      const m = /^([A-Za-z_][A-Za-z0-9_]*)=([\s\S]*)$/.exec(kv);
      if (!m) throw usageError('E_BAD_VALUE', `bad row setting ${JSON.stringify(kv)}: expected key=value (e.g. dsk_type2=rbd)`);
      s[m[1]!] = m[2]!;
    }
  }
  return s;
}

/** selectEnvs, but an env another known node owns is reported as such (exit 4, src/nodes/owner.ts). */
export async function select(ctx: NodeCtx, patterns: string[]) {
  const { selectEnvs } = await import('../lifecycle/envs.js');
  const { BerthError } = await import('../errors.js');
  try {
    return selectEnvs(ctx, patterns);
  } catch (e) {
    if (e instanceof BerthError && patterns.length === 1) throw await (await import('../nodes/owner.js')).explainNotFound(ctx, patterns[0]!, e);
    throw e;
  }
}

/**
 * Runs an operation over the envs named (globs too) in order; one env's failure does not stop
 * the rest. A single named env's error is thrown as is; for several, the exit code is the
 * first failure's. `already`: error codes that mean "already so" (skipped for globbed envs).
 */
export async function each(ctx: NodeCtx, opts: Opts, args: string[], verb: string, fn: (jname: string) => Promise<object>, already: string[] = []): Promise<CmdOutput> {
  const given = names(opts, args);
  const explicit = new Set(given.filter((p) => !isGlob(p)));
  // a j command acts on jails and containers, a b command on VMs: a glob picks those of the
  // family; an env of the other family named explicitly is refused (CBSD's bstart of a jail)
  const family = familyOf(opts);
  const { checkFamily, familyOfEmulator } = await import('../engines/registry.js');
  const rows = (await select(ctx, given)).filter((r) => {
    if (familyOfEmulator(r.emulator) === family) return true;
    if (explicit.has(r.jname)) checkFamily(r.jname, r.emulator, family, verb === 'started' ? 'start' : verb === 'stopped' ? 'stop' : verb === 'restarted' ? 'restart' : 'remove');
    return false;
  });
  if (!rows.length) throw (await import('../errors.js')).notFound('E_NO_SUCH_ENV', `no ${family === 'b' ? 'VM' : 'jail or container'} matches ${given.map((g) => JSON.stringify(g)).join(' ')} on node ${ctx.nodename}`);
  const jnames = rows.map((r) => r.jname);
  return forEachEnv(jnames, verb, fn, 1, { globbed: new Set(jnames.filter((j) => !explicit.has(j))), codes: already });
}
