/**
 * The berth CLI entry: parses argv (CBSD `key=value` and `--key value`), lazily loads the
 * command module, calls it, and prints: data to stdout (text or one JSON document with
 * --json), everything else to stderr; exit code per design/product.md.
 */
import { berthVersion } from '../pkg.js';
import { setWarningSink } from '../log.js';
import { COMMANDS } from './registry.js';
import { ENGINE_MODULES } from '../engines/registry.js';
import { errorLines, ignoreClosedStdout, warningLine } from './render.js';
import type { CmdDef, CmdIO, Opts } from './types.js';

const COMMON = ['json', 'verbose', 'workdir', 'debug'];

/** Finds the command an argv names: one word (`jstart`) or two (`base import`). */
function findCommand(argv: string[]): { def: CmdDef; at: number; words: number } | undefined {
  const i = argv.findIndex((a) => !a.startsWith('-'));
  if (i < 0) return undefined;
  const two = `${argv[i]} ${argv[i + 1] ?? ''}`;
  for (const d of COMMANDS) {
    if (d.name === two) return { def: d, at: i, words: 2 };
  }
  for (const d of COMMANDS) {
    if (d.name === argv[i] || d.aliases?.includes(argv[i]!)) return { def: d, at: i, words: 1 };
  }
  return undefined;
}

/** True for an option that takes no value: the command's flags and json, verbose, debug. */
function isFlag(def: CmdDef, key: string): boolean {
  return !!def.options.find((o) => o.key === key)?.flag || key === 'json' || key === 'verbose' || key === 'debug';
}

/**
 * Rewrites CBSD-style `key=value` words after the command into `--key=value` when `key` is
 * one of the command's options (or a common one). Stops at `--` and, for commands taking a
 * trailing command line (jexec), at the first word that is not an option.
 */
export function rewriteKeyValues(argv: string[], def: CmdDef, from: number): string[] {
  const keys = new Set([...def.options.map((o) => o.key), ...COMMON]);
  const out = argv.slice(0, from);
  const unknown: string[] = [];
  let passthrough = false;
  // commander would keep the last one silently: `jstop jname=web1 jname=web2` would stop web2 only
  const seen = new Set<string>();
  const twice = (k: string) => {
    if (seen.has(k)) throw new UsageProblem(`${k}= is given twice${k === 'jname' ? `; for several envs give a glob (jname='web*') or the names as arguments (berth ${def.name} web1 web2)` : ''}`);
    seen.add(k);
  };
  for (let i = from; i < argv.length; i++) {
    const a = argv[i]!;
    if (passthrough) { out.push(a); continue; }
    if (a === '--') { out.push(a); passthrough = true; continue; }
    const dashed = /^--([A-Za-z_][A-Za-z0-9_]*)(=|$)/.exec(a);
    if (dashed && keys.has(dashed[1]!) && !isFlag(def, dashed[1]!)) twice(dashed[1]!);
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=([\s\S]*)$/.exec(a);
    if (m && keys.has(m[1]!)) {
      twice(m[1]!);
      if (isFlag(def, m[1]!)) {
        if (m[2] === '1' || m[2] === 'true') out.push(`--${m[1]}`);
        else if (m[2] !== '0' && m[2] !== 'false') throw new UsageProblem(`bad ${m[1]}=${JSON.stringify(m[2])}: use ${m[1]}=1 or ${m[1]}=0`);
      }
      else out.push(`--${m[1]}=${m[2]}`);
      continue;
    }
    if (m && def.keyPatterns?.some((p) => p.test(m[1]!))) {
      // a numbered row setting (dsk_type2=rbd): commander declares no option per row
      twice(m[1]!);
      out.push(`--row=${m[1]}=${m[2]}`);
      continue;
    }
    if (m && !passthrough) { unknown.push(m[1]!); continue; }
    if (!a.startsWith('-') && def.positional?.startsWith('[command')) {
      // the rest is the command line to run inside the env: never parse its options
      out.push('--');
      passthrough = true;
    }
    out.push(a);
  }
  if (unknown.length) {
    throw new UsageProblem(`unknown setting${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => JSON.stringify(k)).join(', ')} for ${def.name}; known: ${[...def.options.map((o) => o.key)].join(' ')}`);
  }
  return out;
}

/** A usage error found before commander parses (exit 2). */
export class UsageProblem extends Error {}

/** Runs the CLI with `argv` (without node and script). Sets process.exitCode. */
export async function main(argv: string[]): Promise<void> {
  ignoreClosedStdout();
  if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
    process.stdout.write(berthVersion() + '\n');
    return;
  }
  const found = findCommand(argv);
  if (found) {
    try {
      argv = rewriteKeyValues(argv, found.def, found.at + found.words);
    } catch (e) {
      if (!(e instanceof UsageProblem)) throw e;
      if (argv.includes('--json')) process.stdout.write(JSON.stringify({ ok: false, error: { code: 'E_USAGE', message: e.message, exitCode: 2 } }) + '\n');
      process.stderr.write(`berth ${found.def.name}: ${e.message}\n`);
      process.exitCode = 2;
      return;
    }
  }
  const { Command, CommanderError, Option } = await import('commander');
  const program = new Command('berth')
    .description('berth: jails, containers and VMs on any storage, moved between nodes without copying')
    .version(berthVersion(), '-V, --version')
    .exitOverride()
    .configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s) })
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText('after', helpAfter());
  const groups = new Map<string, InstanceType<typeof Command>>();
  let chosen: { def: CmdDef; opts: Opts; args: string[] } | undefined;
  // With a known command only that one is declared (start-up time); otherwise all, for help.
  for (const def of found ? [found.def] : COMMANDS) {
    const [g, v] = def.name.split(' ');
    let parent = program;
    let name = def.name;
    if (v) {
      if (!groups.has(g!)) groups.set(g!, program.command(g!).description(`${g} commands`).exitOverride());
      parent = groups.get(g!)!;
      name = v;
    }
    const c = parent.command(name).description(def.summary).exitOverride().allowExcessArguments(false);
    for (const a of def.aliases ?? []) c.alias(a);
    if (def.positional) c.arguments(def.positional);
    for (const o of def.options) {
      c.addOption(new Option(o.flag ? `--${o.key}` : `--${o.key} <${o.arg ?? 'value'}>`, o.desc));
    }
    if (def.keyPatterns) {
      c.addOption(new Option('--row <key=value>', 'a numbered row setting, also given as key=value (dsk_type2=rbd dsk_path2=rbd/vm1-dsk2 dsk_size2=10g)')
        .argParser((v: string, prev?: string) => (prev ? `${prev}\n${v}` : v)));
    }
    c.option('--json', 'print one JSON document on stdout')
      .option('-v, --verbose', 'show hook output and progress on stderr')
      .option('--debug', 'log every external command (argv, exit status, duration) to stderr')
      .option('--workdir <dir>', 'berth workdir (default $BERTH_WORKDIR, /var/lib/berth on Linux, /usr/jails on FreeBSD)');
    c.addHelpText('after', `\nArguments may be given CBSD style as key=value (e.g. jname='web*') or as --key value.${def.help ? '\n\n' + def.help : ''}`);
    c.action((...params: unknown[]) => {
      const cmd = params[params.length - 1] as InstanceType<typeof Command>;
      const opts = cmd.opts() as Opts;
      const args = (params.slice(0, -2).flat() as unknown[]).filter((x): x is string => typeof x === 'string');
      chosen = { def, opts, args };
    });
  }
  const wantsJson = argv.includes('--json');
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) {
      // help asked for (--help, help): exit 0; help shown because a command is missing
      // (`berth`, `berth base`: commander's exitCode 1, help on stderr): a usage error, exit 2
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') { process.exitCode = e.exitCode === 0 ? 0 : 2; return; }
      if (wantsJson) process.stdout.write(JSON.stringify({ ok: false, error: { code: 'E_USAGE', message: e.message, exitCode: 2 } }) + '\n');
      process.exitCode = 2;
      return;
    }
    throw e;
  }
  if (!chosen) {
    if (argv.length === 0) { program.outputHelp(); process.exitCode = 2; }
    return;
  }
  await runChosen(chosen.def, chosen.opts, chosen.args);
}

/**
 * SIGINT/SIGTERM: hooks lead their own process group (a terminal ^C does not reach them),
 * so pass the signal on to them, run the library's interrupt clean-ups (src/proc.ts
 * onInterrupt: e.g. a half-made debootstrap base is removed), then exit 128+N.
 */
function onSignals(): void {
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      import('../hooks.js').then((h) => h.killRunningHooks(sig)).catch(() => undefined)
        .then(() => import('../proc.js')).then((p) => p.runInterruptHandlers()).catch(() => undefined).finally(() => {
        process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
      });
    });
  }
}

async function runChosen(def: CmdDef, opts: Opts, args: string[]): Promise<void> {
  if (opts.debug) process.env.BERTH_LOG_LEVEL = 'debug';
  if (def.name !== 'agent') {
    onSignals();
    // a command's warnings are for the person who ran it: text lines, not pino's JSON (the
    // agent logs JSON, for its log file)
    setWarningSink((msg, fields) => process.stderr.write(warningLine(def.name, msg, fields)));
  }
  const io: CmdIO = {
    interactive: !!process.stderr.isTTY && !opts.json,
    verbose: !!opts.verbose,
    note: (line) => process.stderr.write(line + '\n'),
  };
  try {
    const out = await def.handler(opts, args, io);
    if (opts.json) process.stdout.write((out.json ?? JSON.stringify({ ok: (out.exitCode ?? 0) === 0, ...out.data })) + '\n');
    else if (out.text) process.stdout.write(out.text.endsWith('\n') ? out.text : out.text + '\n');
    process.exitCode = out.exitCode ?? 0;
  } catch (e) {
    const { toBerthError } = await import('../errors.js');
    const err = toBerthError(e);
    if (opts.json) process.stdout.write(JSON.stringify({ ok: false, error: err.toJSON() }) + '\n');
    process.stderr.write(errorLines(def.name, err));
    if (err.code === 'E_INTERNAL' && process.env.BERTH_LOG_LEVEL === 'debug') process.stderr.write(String((e as Error).stack) + '\n');
    process.exitCode = err.exitCode;
  }
}

function helpAfter(): string {
  const engines = ENGINE_MODULES.map((m) => `  ${m.info.name.padEnd(6)} ${m.info.summary}`).join('\n');
  return `
Engines:
${engines}

Exit codes: 0 ok, 1 failure, 2 usage error, 3 no such env/base/node, 4 owned by another
node or locked, 5 engine or mount failure, 124 hook timeout, 128+N killed by signal N.`;
}
