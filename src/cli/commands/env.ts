/**
 * Env commands: jcreate jstart jstop jrestart jremove jls jexec jset jget. Thin: parse,
 * call src/lifecycle.ts, render.
 */
import { existsSync } from 'node:fs';
import { BerthError, notFound, usageError } from '../../errors.js';
import { readDescriptor } from '../../descriptor.js';
import { openNode, type NodeCtx } from '../../node.js';
import { SETTABLE_KEYS } from '../../lifecycle/settings.js';
import { createEnv } from '../../lifecycle/create.js';
import { execInEnv } from '../../lifecycle/exec.js';
import { getEnv, selectEnvs } from '../../lifecycle/envs.js';
import { listEnvs, listEnvsJson } from '../../lifecycle/list.js';
import { removeEnv } from '../../lifecycle/remove.js';
import { watchIfNeeded } from '../../lifecycle/run-monitor.js';
import { setEnv } from '../../lifecycle/set.js';
import { startEnv } from '../../lifecycle/start.js';
import { stopEnv } from '../../lifecycle/stop.js';
import { type EnvInfo } from '../../lifecycle/types.js';
import { renderTable } from '../table.js';
import { forEachEnv } from '../each.js';
import { SUMMARY_KEYS } from '../../inventory.js';
import { isGlob } from '../../names.js';
import type { CmdOutput, Handler, Opts } from '../types.js';

/** Runs `fn` with an opened node, closing it after. */
export async function withNode<T>(opts: Opts, fn: (ctx: NodeCtx) => Promise<T>): Promise<T> {
  const ctx = openNode(opts.workdir);
  try {
    return await fn(ctx);
  } finally {
    ctx.close();
  }
}

/** The env names a command got: jname= (may be a glob) and positional names. */
export function names(opts: Opts, args: string[]): string[] {
  const out = [...(typeof opts.jname === 'string' ? [opts.jname] : []), ...args];
  if (out.length === 0) throw usageError('E_NO_JNAME', 'no env named: give jname=<name or glob> (or the name as an argument)');
  return out;
}

/** Settings given on the command line (CBSD keys only). */
function settingsOf(opts: Opts): Record<string, string> {
  const s: Record<string, string> = {};
  for (const k of SETTABLE_KEYS) if (typeof opts[k] === 'string') s[k] = opts[k] as string;
  return s;
}

/** selectEnvs, but an env another known node owns is reported as such (exit 4, src/owner.ts). */
async function select(ctx: NodeCtx, patterns: string[]) {
  try {
    return selectEnvs(ctx, patterns);
  } catch (e) {
    if (e instanceof BerthError && patterns.length === 1) throw await (await import('../../nodes/owner.js')).explainNotFound(ctx, patterns[0]!, e);
    throw e;
  }
}

/**
 * Runs an operation over several envs in order; one env's failure does not stop the rest.
 * A single named env's error is thrown as is; for several, the exit code is the first failure's.
 */
async function each(ctx: NodeCtx, opts: Opts, args: string[], verb: string, fn: (jname: string) => Promise<object>, already: string[] = []): Promise<CmdOutput> {
  const given = names(opts, args);
  const jnames = (await select(ctx, given)).map((r) => r.jname);
  const explicit = new Set(given.filter((p) => !isGlob(p)));
  return forEachEnv(jnames, verb, fn, 1, { globbed: new Set(jnames.filter((j) => !explicit.has(j))), codes: already });
}

export const jcreate: Handler = async (opts, args) => withNode(opts, async (ctx) => {
  let settings = settingsOf(opts);
  let jname = (opts.jname as string | undefined) ?? args[0];
  let emulator = opts.emulator as string | undefined;
  if (typeof opts.jconf === 'string') {
    if (!existsSync(opts.jconf)) throw notFound('E_NO_JCONF', `jconf=${opts.jconf} does not exist`, { hint: 'give the path of a descriptor (key="value"; lines), e.g. one written by junregister' });
    const c = readDescriptor(opts.jconf, ctx.wd.root);
    jname ??= c.jname;
    emulator ??= c.emulator;
    const fromFile: Record<string, string> = {};
    for (const k of SETTABLE_KEYS) if (c[k] !== undefined) fromFile[k] = c[k]!;
    settings = { ...fromFile, ...settings };
  }
  if (!jname) throw usageError('E_NO_JNAME', 'jcreate needs jname=<name>');
  const env = await createEnv(ctx, { jname, emulator, settings }, { verbose: !!opts.verbose });
  return { data: { env }, text: `created: ${env.jname} (uuid ${env.uuid}, emulator ${env.emulator}, base ${env.conf.base}, baserw=${env.conf.baserw})` };
});

export const jstart: Handler = async (opts, args) => withNode(opts, (ctx) =>
  each(ctx, opts, args, 'started', async (j) => { const e = await startEnv(ctx, j, { verbose: !!opts.verbose }); return { jid: e.jid, status: e.status }; }, ['E_RUNNING']));

export const jstop: Handler = async (opts, args) => withNode(opts, (ctx) =>
  each(ctx, opts, args, 'stopped', async (j) => { const e = await stopEnv(ctx, j, { verbose: !!opts.verbose }); return { status: e.status }; }, ['E_NOT_RUNNING']));

export const jrestart: Handler = async (opts, args) => withNode(opts, (ctx) =>
  each(ctx, opts, args, 'restarted', async (j) => {
    if (getEnv(ctx, j).status !== 0) await stopEnv(ctx, j, { verbose: !!opts.verbose });
    const e = await startEnv(ctx, j, { verbose: !!opts.verbose });
    return { jid: e.jid, status: e.status };
  }));

export const jremove: Handler = async (opts, args) => withNode(opts, (ctx) =>
  each(ctx, opts, args, 'removed', async (j) => removeEnv(ctx, j, { verbose: !!opts.verbose })));

/** jls columns: CBSD's default, `display=` picks others (any descriptor key too). */
const DEFAULT_COLUMNS = ['jname', 'jid', 'ip4_addr', 'host_hostname', 'path', 'status'];

function column(e: EnvInfo, c: string): string | number {
  switch (c) {
    case 'jname': return e.jname;
    case 'jid': return e.jid;
    case 'status': return e.status;
    case 'uuid': return e.uuid;
    case 'emulator': return e.emulator;
    case 'generation': return e.generation;
    case 'path': return e.conf.baserw === '1' ? (e.conf.data ?? '') : (e.conf.path ?? '');
    case 'ip4_addr': return (e.conf.ip4_addr ?? '').replace(/(^|,)[^,#]*#/g, '$1');
    default: return e.conf[c] ?? '';
  }
}

export const jls: Handler = async (opts, args) => withNode(opts, async (ctx) => {
  // an env that ended while the node's run monitor was dead (killed) gets its teardown now
  watchIfNeeded(ctx);
  const patterns = [...(typeof opts.jname === 'string' ? [opts.jname] : []), ...args];
  const cols = typeof opts.display === 'string' ? opts.display.split(',').map((s) => s.trim()).filter(Boolean) : DEFAULT_COLUMNS;
  // the default columns come from the summary (fast for thousands of envs); other display= keys need the whole conf
  const summary = cols.every((c) => ['jname', 'jid', 'status', 'uuid', 'emulator', 'generation', ...SUMMARY_KEYS].includes(c));
  if (opts.json && summary) {
    // serialised by SQLite: no object per env (10,000 envs, bench/lifecycle.ts (c))
    const envs = await listEnvsJson(ctx, { patterns, unregistered: true });
    return { data: {}, json: `{"ok":true,"node":${JSON.stringify(ctx.nodename)},"envs":${envs}}` };
  }
  const envs = await listEnvs(ctx, { patterns, unregistered: true, summary });
  if (opts.json) return { data: { node: ctx.nodename, envs } };
  return { data: {}, text: renderTable(cols, envs.map((e) => cols.map((c) => column(e, c))), opts.header !== '0') };
});

export const jexec: Handler = async (opts, args) => withNode(opts, async (ctx) => {
  let jname = opts.jname as string | undefined;
  let argv = args;
  if (!jname) { jname = args[0]; argv = args.slice(1); }
  if (!jname) throw usageError('E_NO_JNAME', 'jexec needs jname=<name> and a command');
  const code = await execInEnv(ctx, jname, argv, { tty: !!process.stdin.isTTY && !!process.stdout.isTTY });
  return { data: { jname, exitCode: code }, exitCode: code };
});

export const jset: Handler = async (opts, args) => withNode(opts, async (ctx) => {
  const jname = (opts.jname as string | undefined) ?? args[0];
  if (!jname) throw usageError('E_NO_JNAME', 'jset needs jname=<name>');
  const r = await setEnv(ctx, jname, settingsOf(opts), { verbose: !!opts.verbose });
  return { data: r, text: `${jname}: ${r.changed.length ? `changed ${r.changed.join(', ')}` : 'nothing changed'}${r.restartNeeded ? ' (restart to apply: berth jrestart jname=' + jname + ')' : ''}` };
});

/**
 * jget: every setting of an env (`key: value` lines, sorted), or the keys named after it
 * (CBSD style: `jget jname=web1 ip4_addr host_hostname`), or with key= one bare value.
 * A key the env does not have is E_NO_SUCH_KEY (exit 3), naming it.
 */
export const jget: Handler = async (opts, args) => withNode(opts, async (ctx) => {
  const rest = [...args];
  const jname = (opts.jname as string | undefined) ?? rest.shift();
  if (!jname) throw usageError('E_NO_JNAME', 'jget needs jname=<name>');
  const row = getEnv(ctx, jname);
  const noSuchKey = (keys: string[]) => new BerthError('E_NO_SUCH_KEY', `${jname} has no setting ${keys.map((k) => JSON.stringify(k)).join(', ')}`, 3,
    { hint: `see every setting: berth jget jname=${jname}` });
  if (typeof opts.key === 'string') {
    if (!opts.key) throw usageError('E_USAGE', 'key= needs a setting name, e.g. key=ip4_addr');
    if (rest.length) throw usageError('E_USAGE', `give either key=${opts.key} or key names (${rest.join(' ')}), not both`);
    if (!Object.hasOwn(row.conf, opts.key)) throw noSuchKey([opts.key]);
    return { data: { jname, [opts.key]: row.conf[opts.key] }, text: row.conf[opts.key] };
  }
  const missing = rest.filter((k) => !Object.hasOwn(row.conf, k));
  if (missing.length) throw noSuchKey(missing);
  const keys = rest.length ? rest : Object.keys(row.conf).sort();
  const conf = rest.length ? Object.fromEntries(keys.map((k) => [k, row.conf[k]])) : row.conf;
  return { data: { jname, conf }, text: keys.map((k) => `${k}: ${row.conf[k]}`).join('\n') };
});
