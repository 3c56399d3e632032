/**
 * Looking envs up in this node's inventory: one by name, several by names and globs.
 */
import { existsSync } from 'node:fs';
import { notFound, usageError } from '../errors.js';
import { familyOfEmulator } from '../engines/registry.js';
import type { EnvRow } from '../inventory.js';
import { checkJname, checkJnamePattern, isGlob, jnameMatcher } from '../names.js';
import type { NodeCtx } from '../node.js';
import type { EnvPaths } from '../paths.js';

/** Looks an env up. @throws BerthError E_NO_SUCH_ENV (exit 3) */
export function getEnv(ctx: NodeCtx, jname: string): EnvRow {
  checkJname(jname);
  const row = ctx.inv.get(jname);
  if (!row) {
    const unreg = existsSync(ctx.wd.env(jname).rcconfFile);
    throw notFound('E_NO_SUCH_ENV', `no env ${JSON.stringify(jname)} is registered on node ${ctx.nodename}${unreg ? ' (it is unregistered: jails-rcconf holds its descriptor)' : ''}`,
      { hint: unreg ? `adopt it first: berth jregister jname=${jname}` : 'see: berth jls' });
  }
  return row;
}

/**
 * Resolves names and globs to registered envs, in name order, without duplicates.
 * @throws BerthError E_NO_SUCH_ENV (exit 3) for a plain name that is not registered or a glob matching nothing
 */
export function selectEnvs(ctx: NodeCtx, patterns: string[]): EnvRow[] {
  if (patterns.length === 0) throw usageError('E_NO_JNAME', 'no env named: give jname=<name or glob>');
  const out = new Map<string, EnvRow>();
  for (const p of patterns) {
    checkJnamePattern(p);
    if (!isGlob(p)) { out.set(p, getEnv(ctx, p)); continue; }
    const m = jnameMatcher(p);
    const hits = ctx.inv.list().filter((r) => m(r.jname));
    if (hits.length === 0) throw notFound('E_NO_SUCH_ENV', `no env matches ${JSON.stringify(p)} on node ${ctx.nodename}`);
    for (const r of hits) out.set(r.jname, r);
  }
  return [...out.values()].sort((a, b) => a.jname.localeCompare(b.jname));
}

/** Paths of an env (for display). */
export function envPaths(ctx: NodeCtx, jname: string): EnvPaths {
  return ctx.wd.env(jname);
}

/**
 * The command that stops `row`, by its engine's family (EngineInfo.family; CBSD's names):
 * `berth jstop jname=<jname>` for jails and containers, `berth bstop jname=<jname>` for VMs.
 */
export function stopCommand(row: Pick<EnvRow, 'jname' | 'emulator'>): string {
  return `berth ${familyOfEmulator(row.emulator)}stop jname=${row.jname}`;
}
