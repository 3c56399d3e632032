/**
 * The contract between the CLI (src/cli/main.ts) and command modules (src/cli/commands/*).
 * A handler parses nothing itself: it gets the parsed options, calls the library, and
 * returns data (for --json) and text (for humans). Only main.ts prints.
 */

/** Parsed options: `key=value` and `--key value` both land here under `key`. */
export type Opts = Record<string, string | boolean | undefined> & { json?: boolean; verbose?: boolean; workdir?: string };

/** What a handler returns. */
export interface CmdOutput {
  /** The JSON document printed with --json (wrapped as {ok:true, ...}). */
  data: Record<string, unknown>;
  /** Human output for stdout (a table or lines). */
  text?: string;
  /** The whole --json document, already serialised (replaces `data` with --json; jls of many envs). */
  json?: string;
  /** Exit code when not 0 (e.g. doctor with a failed check). */
  exitCode?: number;
}

/** Where a handler may send progress and hook output (stderr; only main.ts wires it). */
export interface CmdIO {
  /** true when stderr is a terminal and --json is off: progress bars allowed */
  interactive: boolean;
  verbose: boolean;
  /** writes one line to stderr */
  note(line: string): void;
}

export type Handler = (opts: Opts, args: string[], io: CmdIO) => Promise<CmdOutput>;

/** One option of a command. `key` is the CBSD name (also the --long name). */
export interface OptDef {
  key: string;
  desc: string;
  /** a boolean flag (--force) instead of a value */
  flag?: boolean;
  /** placeholder in help, default 'value' */
  arg?: string;
}

/**
 * The agent fast path of a command (src/cli/fast.ts): the API route it is handed to, POST
 * /v1/envs/<jname>/<route>, and the verb of its success line (`started: web1`).
 */
export interface FastPath {
  route: string;
  verb: string;
}

/**
 * One command module (src/cli/commands/<name>.ts; `group verb` pairs such as `base import`
 * in <group>-<verb>.ts): its names, options, help and handler, the one place a command is
 * declared. src/cli/registry.ts lists the modules; help, option parsing, the man pages and
 * the agent fast path are derived from them. Handlers import the library lazily (inside the
 * handler), so that loading every module for the command table costs next to nothing.
 */
export interface CmdDef {
  name: string;
  aliases?: string[];
  summary: string;
  options: OptDef[];
  /** commander argument spec, e.g. '[jname...]' or '[command...]' */
  positional?: string;
  /** extra help text (examples) */
  help?: string;
  /** set when the command may be handed to this node's agent (jstart, jstop) */
  fast?: FastPath;
  /**
   * Settings named by pattern, beside `options` (numbered rows: `dsk_type2=rbd`, `nic_parent2=br0`;
   * the engines' settingPatterns): such `key=value` words reach the handler as `opts.row`, the
   * `key=value` pairs joined by newlines (src/cli/args.ts settingsOf reads them).
   */
  keyPatterns?: readonly RegExp[];
  /** a command derived from another module's (bstart from jstart: src/cli/family.ts): that command's name */
  derivedFrom?: string;
  handler: Handler;
}
