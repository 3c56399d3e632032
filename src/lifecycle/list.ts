/**
 * Listings of this node's envs (jls, the agent's GET /v1/envs): registered ones from the
 * inventory, descriptors waiting in jails-rcconf/; an On row whose process is gone shows as
 * Maintenance until its teardown ends.
 */
import { readDescriptor, type EnvConf } from '../descriptor.js';
import { engineEnv } from '../engines/types.js';
import { summaryOf } from '../inventory.js';
import { checkJnamePattern, jnameMatcher } from '../names.js';
import type { NodeCtx } from '../node.js';
import { envInfo, type EnvInfo } from './types.js';

/**
 * Lists registered envs (and, with `unregistered`, descriptors waiting in jails-rcconf/); an
 * On row whose process is gone shows as Maintenance until its teardown ends. With `summary`,
 * each env's conf holds only SUMMARY_KEYS (src/inventory.ts): what `jls` shows by default.
 */
export async function listEnvs(ctx: NodeCtx, opts: ListOptions & { summary?: boolean } = {}): Promise<EnvInfo[]> {
  const ok = jnameFilter(opts.patterns);
  const emu = emulatorFilter(opts.emulators);
  const gone = await goneRuns(ctx, ok);
  const out: EnvInfo[] = [];
  for (const row of opts.summary ? ctx.inv.listSummary() : ctx.inv.list()) {
    if (ok(row.jname) && emu(row.emulator)) out.push(envInfo(row, gone.has(row.jname) ? 'Maintenance' : undefined));
  }
  if (opts.unregistered) out.push(...waitingDescriptors(ctx, ok, !!opts.summary).filter((e) => emu(e.emulator)));
  return out;
}

/** What a listing selects: jnames by name or glob, and (jls: family j, bls: family b) emulators. */
export interface ListOptions {
  patterns?: string[];
  /** descriptors waiting in jails-rcconf/ too */
  unregistered?: boolean;
  /** only envs of these emulators (default: all) */
  emulators?: readonly string[];
}

function emulatorFilter(emulators: readonly string[] | undefined): (emulator: string) => boolean {
  return (e) => !emulators || emulators.includes(e);
}

/** A jname filter from `jls`-style patterns (names or globs); none = everything. @throws E_BAD_JNAME (2) */
function jnameFilter(patterns: string[] | undefined): (jname: string) => boolean {
  const match = patterns?.length ? patterns.map((p) => jnameMatcher(checkJnamePattern(p))) : undefined;
  return (n) => !match || match.some((m) => m(n));
}

/**
 * The On envs (among those `ok` accepts) whose main process is gone while their teardown
 * (monitor or agent) has not finished yet: listings show them as Maintenance.
 */
async function goneRuns(ctx: NodeCtx, ok: (jname: string) => boolean): Promise<Set<string>> {
  const gone = new Set<string>();
  for (const row of ctx.inv.running()) {
    if (!ok(row.jname)) continue;
    const engine = await ctx.engine(row.emulator);
    if (!(await engine.isRunning(engineEnv(ctx, row.jname, row.conf), row.jid))) gone.add(row.jname);
  }
  return gone;
}

/**
 * Descriptors waiting in jails-rcconf/ for a jregister, as EnvInfo (status Unregister); with
 * `summary`, conf holds only the SUMMARY_KEYS, like the registered envs of that listing.
 */
function waitingDescriptors(ctx: NodeCtx, ok: (jname: string) => boolean, summary: boolean): EnvInfo[] {
  const out: EnvInfo[] = [];
  for (const { jname, file } of ctx.wd.waitingDescriptors()) {
    if (!ok(jname) || ctx.inv.get(jname)) continue;
    try {
      const conf = readDescriptor(file, ctx.wd.root);
      const shown = summary ? JSON.parse(summaryOf(conf)) as EnvConf : conf;
      out.push({ jname, uuid: conf.uuid ?? '', emulator: conf.emulator ?? 'jail', status: 'Unregister', jid: 0, generation: 0, conf: shown });
    } catch { /* unreadable descriptor: berth doctor names it (src/doctor.ts checkWaitingDescriptors) */ }
  }
  return out;
}

/**
 * The summary listing, `listEnvs(ctx, { ...opts, summary: true })`, as the text of a JSON array,
 * serialised by SQLite (src/inventory.ts summaryJson): the same document without building an
 * object per env, for `jls --json` of thousands of envs (bench/lifecycle.ts (c)).
 * @returns JSON text of EnvInfo[]
 * @throws BerthError E_BAD_JNAME (2) for a bad pattern
 */
export async function listEnvsJson(ctx: NodeCtx, opts: ListOptions = {}): Promise<string> {
  const ok = jnameFilter(opts.patterns);
  const gone = await goneRuns(ctx, ok);
  const arr = ctx.inv.summaryJson([...gone], opts.patterns?.length ? ok : undefined, opts.emulators);
  const emu = emulatorFilter(opts.emulators);
  const extra = opts.unregistered ? waitingDescriptors(ctx, ok, true).filter((e) => emu(e.emulator)) : [];
  if (!extra.length) return arr;
  return arr.slice(0, -1) + (arr === '[]' ? '' : ',') + extra.map((e) => JSON.stringify(e)).join(',') + ']';
}
