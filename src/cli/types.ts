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

/** One command (or `group verb` pair such as `base import`). */
export interface CmdDef {
  name: string;
  aliases?: string[];
  summary: string;
  options: OptDef[];
  /** commander argument spec, e.g. '[jname...]' or '[command...]' */
  positional?: string;
  /** extra help text (examples) */
  help?: string;
  load: () => Promise<Handler>;
}
