/**
 * The node-local inventory `var/db/local.sqlite` (better-sqlite3 12; CBSD's `jails` table,
 * cbsd-behaviour.md §3.4, reduced to what berth needs; the env's full settings are kept as
 * JSON in `conf`). Never on shared storage: SQLite WAL does not work over a network file
 * system (initenv refuses that). Schema changes are versioned migrations keyed by
 * `PRAGMA user_version`, add-only as CBSD's updatesql.
 */
import { createRequire } from 'node:module';
import Database from 'better-sqlite3';
import type { EnvConf } from './descriptor.js';

/** Env status, CBSD numbering (§9): 0 Off, 1 On, 3 Maintenance (a start/stop in progress). */
export const STATUS = { OFF: 0, ON: 1, MAINTENANCE: 3 } as const;

/** CBSD's status word of a status number: 'On' | 'Off' | 'Maintenance' ('Unknown' otherwise). */
export const statusWord = (s: number): string => (s === STATUS.ON ? 'On' : s === STATUS.OFF ? 'Off' : s === STATUS.MAINTENANCE ? 'Maintenance' : 'Unknown');

/** One registered env. */
export interface EnvRow {
  jname: string;
  uuid: string;
  emulator: string;
  /** 0 off, 1 on, 3 maintenance */
  status: number;
  /** runc: the container's init pid; jail: the jid; 0 when not running */
  jid: number;
  /** token of the current run; teardown claims it exactly once (null when not running) */
  run_id: string | null;
  /** lease generation this node holds (0 = no lease) */
  generation: number;
  conf: EnvConf;
  /** unix seconds of the last status change */
  state_time: number;
  /** pid of the berth process holding a Maintenance claim (0 = none) */
  claim_pid?: number;
}

/** A remote node known to this one (`node add`). */
export interface NodeRow {
  name: string;
  url: string;
  token: string;
  added_at: number;
}

/** A web console login token (`berth token add`): its id, role and the SHA-256 (hex) of the secret. */
export interface ConsoleTokenRow {
  id: string;
  role: 'admin' | 'viewer';
  hash: string;
  comment: string;
  created_at: number;
}

/** The settings {@link Inventory.listSummary} returns (CBSD's default jls columns and a few more). */
export const SUMMARY_KEYS = ['ip4_addr', 'host_hostname', 'path', 'data', 'baserw', 'base', 'astart', 'vnet'];

/** The JSON text of the SUMMARY_KEYS an env's conf has, in that order (the `summary` column). */
export function summaryOf(conf: EnvConf): string {
  const o: EnvConf = {};
  for (const k of SUMMARY_KEYS) if (conf[k] !== undefined) o[k] = conf[k]!;
  return JSON.stringify(o);
}

const MIGRATIONS: string[] = [
  // 1: initial schema
  `CREATE TABLE jails (
     jname TEXT PRIMARY KEY,
     uuid TEXT NOT NULL,
     emulator TEXT NOT NULL,
     status INTEGER NOT NULL DEFAULT 0,
     jid INTEGER NOT NULL DEFAULT 0,
     run_id TEXT,
     generation INTEGER NOT NULL DEFAULT 0,
     conf TEXT NOT NULL,
     state_time INTEGER NOT NULL DEFAULT 0
   );
   CREATE TABLE nodes (
     name TEXT PRIMARY KEY,
     url TEXT NOT NULL,
     token TEXT NOT NULL,
     added_at INTEGER NOT NULL
   );`,
  // 2: the pid of the berth process holding a Maintenance claim, so that a claim left by a
  //    killed command (kill -9, SIGINT mid-start) can be recognised and recovered
  `ALTER TABLE jails ADD COLUMN claim_pid INTEGER NOT NULL DEFAULT 0;`,
  // 3: the run monitor and jls find the running envs among thousands without a table scan
  `CREATE INDEX jails_status ON jails (status);`,
  // 4: what `jls` shows by default, kept next to the conf (summaryOf) and in a covering index,
  //    so that listing 10,000 envs reads one small index in jname order, not every conf
  `ALTER TABLE jails ADD COLUMN summary TEXT NOT NULL DEFAULT '{}';
   UPDATE jails SET summary = json_patch('{}', json_object(${SUMMARY_KEYS.map((k) => `'${k}', conf -> '$.${k}'`).join(', ')}));
   CREATE INDEX jails_list ON jails (jname, uuid, emulator, status, jid, generation, summary);`,
  // 5: web console login tokens (src/tokens.ts): only the SHA-256 of each token is kept
  `CREATE TABLE console_tokens (
     id TEXT PRIMARY KEY,
     role TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
     hash TEXT NOT NULL UNIQUE,
     comment TEXT NOT NULL DEFAULT '',
     created_at INTEGER NOT NULL
   );`,
];

/** Latest schema version. */
export const SCHEMA_VERSION = MIGRATIONS.length;

type Raw = Omit<EnvRow, 'conf'> & { conf: string; summary?: string };
// (the summary column is for listings only: not part of an EnvRow)
const fromRaw = ({ summary: _summary, ...r }: Raw): EnvRow => ({ ...r, conf: JSON.parse(r.conf) as EnvConf });
const now = (): number => Math.floor(Date.now() / 1000);

let addonPath: string | undefined;

/**
 * better-sqlite3's compiled addon, found once by module resolution. Given to it as
 * `nativeBinding`, it spares better-sqlite3 the `bindings` package's search, which probes a
 * dozen candidate paths at every start of a command.
 */
function sqliteAddon(): string {
  return (addonPath ??= createRequire(import.meta.url).resolve('better-sqlite3/build/Release/better_sqlite3.node'));
}

/** The inventory. Open with {@link Inventory.open}; close when done. */
export class Inventory {
  readonly db: Database.Database;

  private constructor(db: Database.Database) {
    this.db = db;
  }

  /**
   * Opens (and migrates) the inventory file. WAL mode, busy timeout 10 s.
   * @param readonly open without migrating or writing
   */
  static open(file: string, opts: { readonly?: boolean; create?: boolean } = {}): Inventory {
    const db = new Database(file, { readonly: !!opts.readonly, fileMustExist: !opts.create, nativeBinding: sqliteAddon() });
    db.pragma('busy_timeout = 10000');
    if (!opts.readonly) {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      const inv = new Inventory(db);
      inv.migrate();
      return inv;
    }
    return new Inventory(db);
  }

  /** Applies pending migrations in one transaction each. @returns the schema version */
  migrate(): number {
    let v = this.db.pragma('user_version', { simple: true }) as number;
    while (v < MIGRATIONS.length) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
      v++;
    }
    return v;
  }

  close(): void {
    this.db.close();
  }

  get(jname: string): EnvRow | undefined {
    const r = this.db.prepare('SELECT * FROM jails WHERE jname = ?').get(jname) as Raw | undefined;
    return r ? fromRaw(r) : undefined;
  }

  /** Every env, ordered by jname. */
  list(): EnvRow[] {
    return (this.db.prepare('SELECT * FROM jails ORDER BY jname').all() as Raw[]).map(fromRaw);
  }

  /** The envs in Maintenance (a start, stop or remove claimed by some process), ordered by jname. */
  claimed(): EnvRow[] {
    return this.withStatus(STATUS.MAINTENANCE);
  }

  /** The envs whose status is On (what the run monitor watches), ordered by jname. */
  running(): EnvRow[] {
    return this.withStatus(STATUS.ON);
  }

  /** The envs with status `status`, ordered by jname (index jails_status). */
  private withStatus(status: number): EnvRow[] {
    return (this.db.prepare('SELECT * FROM jails WHERE status = ? ORDER BY jname').all(status) as Raw[]).map(fromRaw);
  }

  /**
   * Every env, ordered by jname, with only the settings `jls` shows by default (SUMMARY_KEYS):
   * read from the `summary` column through the covering index jails_list (migration 4), as
   * arrays: no conf is read or parsed. `run_id` and `state_time` are left out (null and 0).
   */
  listSummary(): EnvRow[] {
    const rows = this.db.prepare('SELECT jname, uuid, emulator, status, jid, generation, summary FROM jails INDEXED BY jails_list ORDER BY jname').raw().all() as [string, string, string, number, number, number, string][];
    const out: EnvRow[] = new Array(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i]!;
      out[i] = { jname: r[0], uuid: r[1], emulator: r[2], status: r[3], jid: r[4], run_id: null, generation: r[5], conf: JSON.parse(r[6]) as EnvConf, state_time: 0 };
    }
    return out;
  }


  /**
   * {@link listSummary} as EnvInfo (src/lifecycle.ts) serialised by SQLite: the text of a JSON
   * array of `{jname, uuid, emulator, status, jid, generation, conf}` ordered by jname, conf
   * holding the SUMMARY_KEYS an env has, in that order; equal to JSON.stringify of the objects
   * listEnvs builds (a unit test compares them).
   * @param gone jnames of On rows whose process is gone: their status is 'Maintenance'
   * @param match when given, only envs whose jname it accepts
   */
  summaryJson(gone: string[], match?: (jname: string) => boolean, emulators?: readonly string[]): string {
    const status = `CASE WHEN status = ${STATUS.ON} AND jname IN (SELECT value FROM json_each(?)) THEN 'Maintenance' ` +
      `WHEN status = ${STATUS.ON} THEN 'On' WHEN status = ${STATUS.OFF} THEN 'Off' WHEN status = ${STATUS.MAINTENANCE} THEN 'Maintenance' ELSE 'Unknown' END`;
    if (match) this.db.function('berth_jname_match', { deterministic: true }, (n: unknown) => (match(String(n)) ? 1 : 0));
    // One JSON text per row, from the covering index jails_list in jname order (no sort, no conf
    // read). Built by concatenation: `summary` is already JSON text (summaryOf), jid and
    // generation are NOT NULL integers, strings go through json_quote. json_object() with
    // json(summary) parses every summary again: measured slower, as is an ordered
    // json_group_array (it sorts every object first).
    const sql = `SELECT '{"jname":' || json_quote(jname) || ',"uuid":' || json_quote(uuid) || ',"emulator":' || json_quote(emulator) || ` +
      `',"status":"' || ${status} || '","jid":' || jid || ',"generation":' || generation || ',"conf":' || summary || '}' ` +
      `FROM jails INDEXED BY jails_list WHERE ${match ? 'berth_jname_match(jname)' : '1'}${emulators ? ' AND emulator IN (SELECT value FROM json_each(?))' : ''} ORDER BY jname`;
    const args = emulators ? [JSON.stringify(gone), JSON.stringify(emulators)] : [JSON.stringify(gone)];
    return '[' + (this.db.prepare(sql).pluck().all(...args) as string[]).join(',') + ']';
  }


  insert(row: { jname: string; uuid: string; emulator: string; generation: number; conf: EnvConf }): void {
    this.db.prepare('INSERT INTO jails (jname, uuid, emulator, status, jid, run_id, generation, conf, summary, state_time) VALUES (?, ?, ?, 0, 0, NULL, ?, ?, ?, ?)')
      .run(row.jname, row.uuid, row.emulator, row.generation, JSON.stringify(row.conf), summaryOf(row.conf), now());
  }

  updateConf(jname: string, conf: EnvConf): void {
    this.db.prepare('UPDATE jails SET conf = ?, summary = ? WHERE jname = ?').run(JSON.stringify(conf), summaryOf(conf), jname);
  }

  setGeneration(jname: string, generation: number): void {
    this.db.prepare('UPDATE jails SET generation = ? WHERE jname = ?').run(generation, jname);
  }

  /**
   * Atomically moves an env from Off to Maintenance for a start, recording `runId`.
   * @returns false when it was not Off (already starting, running or stopping)
   */
  claimStart(jname: string, runId: string): boolean {
    return this.db.prepare(`UPDATE jails SET status = ${STATUS.MAINTENANCE}, run_id = ?, jid = 0, claim_pid = ?, state_time = ? WHERE jname = ? AND status = ${STATUS.OFF}`)
      .run(runId, process.pid, now(), jname).changes === 1;
  }

  /** Marks the run as up with its jid/pid. */
  setRunning(jname: string, runId: string, jid: number): void {
    this.db.prepare(`UPDATE jails SET status = ${STATUS.ON}, jid = ?, claim_pid = 0, state_time = ? WHERE jname = ? AND run_id = ?`).run(jid, now(), jname, runId);
  }

  /**
   * Claims run `runId` of a running env for a restart of its guest inside the run (the run
   * monitor, src/lifecycle/guest-end.ts): On → Maintenance, run_id kept, so that a stop
   * meanwhile still claims the teardown and a claim left by a dead monitor is recovered.
   * {@link setRunning} ends it. @returns false when the run is not On any more
   */
  claimRestart(jname: string, runId: string): boolean {
    return this.db.prepare(`UPDATE jails SET status = ${STATUS.MAINTENANCE}, claim_pid = ?, state_time = ? WHERE jname = ? AND run_id = ? AND status = ${STATUS.ON}`)
      .run(process.pid, now(), jname, runId).changes === 1;
  }

  /**
   * Claims the teardown of run `runId`: succeeds for exactly one caller (the stop command,
   * the monitor that saw the process exit, a failed start, or the agent), whichever is first.
   * The env stays in Maintenance (run_id cleared) until {@link finishTeardown}.
   */
  claimTeardown(jname: string, runId: string): boolean {
    return this.db.prepare(`UPDATE jails SET run_id = NULL, status = ${STATUS.MAINTENANCE}, claim_pid = ?, state_time = ? WHERE jname = ? AND run_id = ?`)
      .run(process.pid, now(), jname, runId).changes === 1;
  }

  /**
   * Takes over a Maintenance claim whose holder `deadPid` is gone (atomic: only if it is still
   * that holder's claim). `keepRunId`: the claim's run_id stays (a rename's, which says what
   * to finish). @returns true when this process now holds the claim
   */
  takeStaleClaim(jname: string, deadPid: number, keepRunId = false): boolean {
    return this.db.prepare(`UPDATE jails SET claim_pid = ?, ${keepRunId ? '' : 'run_id = NULL, '}state_time = ? WHERE jname = ? AND status = ${STATUS.MAINTENANCE} AND claim_pid = ?`)
      .run(process.pid, now(), jname, deadPid).changes === 1;
  }

  /** Marks the env Off after a teardown. */
  finishTeardown(jname: string): void {
    this.db.prepare(`UPDATE jails SET status = ${STATUS.OFF}, jid = 0, run_id = NULL, claim_pid = 0, state_time = ? WHERE jname = ?`).run(now(), jname);
  }

  delete(jname: string): void {
    this.db.prepare('DELETE FROM jails WHERE jname = ?').run(jname);
  }

  /** jnames of envs whose conf names `base`. */
  envsUsingBase(base: string): string[] {
    return (this.db.prepare("SELECT jname FROM jails WHERE json_extract(conf, '$.base') = ? ORDER BY jname").all(base) as { jname: string }[]).map((r) => r.jname);
  }

  listNodes(): NodeRow[] {
    return this.db.prepare('SELECT * FROM nodes ORDER BY name').all() as NodeRow[];
  }
  getNode(name: string): NodeRow | undefined {
    return this.db.prepare('SELECT * FROM nodes WHERE name = ?').get(name) as NodeRow | undefined;
  }
  upsertNode(n: Omit<NodeRow, 'added_at'>): void {
    this.db.prepare('INSERT INTO nodes (name, url, token, added_at) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET url = excluded.url, token = excluded.token')
      .run(n.name, n.url, n.token, now());
  }
  deleteNode(name: string): boolean {
    return this.db.prepare('DELETE FROM nodes WHERE name = ?').run(name).changes === 1;
  }

  listConsoleTokens(): ConsoleTokenRow[] {
    return this.db.prepare('SELECT * FROM console_tokens ORDER BY created_at, id').all() as ConsoleTokenRow[];
  }
  consoleTokenByHash(hash: string): ConsoleTokenRow | undefined {
    return this.db.prepare('SELECT * FROM console_tokens WHERE hash = ?').get(hash) as ConsoleTokenRow | undefined;
  }
  addConsoleToken(t: Omit<ConsoleTokenRow, 'created_at'>): void {
    this.db.prepare('INSERT INTO console_tokens (id, role, hash, comment, created_at) VALUES (?, ?, ?, ?, ?)').run(t.id, t.role, t.hash, t.comment, now());
  }
  deleteConsoleToken(id: string): boolean {
    return this.db.prepare('DELETE FROM console_tokens WHERE id = ?').run(id).changes === 1;
  }
}
