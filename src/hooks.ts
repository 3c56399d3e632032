/**
 * Running administrator hooks: the storage hooks `mnt_start` / `mnt_stop` and the host hook
 * directories of an env (`jails-system/<jname>/master_prestart.d` ...), following
 * design/product.md "Storage hook contract" and, where it is silent, CBSD
 * (cbsd-behaviour.md §7; `external_exec_master_script` in CBSD's subr/jcreate.subr).
 *
 * Where berth deliberately differs from CBSD (cbsd-behaviour.md §12):
 * - hooks are refused unless owned by root and not writable by group or others
 *   ({@link checkHookSafe}): they run as root on every node that adopts the env;
 * - every run is bounded by a timeout enforced on the hook's whole process group;
 * - a non-zero exit of a hook-dir script can veto (the caller chooses, `stopOnError`);
 * - hook-dir scripts run in name order (CBSD: directory order of find(1));
 * - output goes to the node log `var/log/<jname>.log`, never to a pipe berth waits on.
 *
 * Why node:child_process and not tinyexec/execa (which src/proc.ts uses for every other
 * command): a hook needs process-group control that those wrappers do not offer.
 * - `spawn(..., {detached: true})` makes the hook the leader of a new session and process
 *   group, so a timeout can signal the whole group (`process.kill(-pid)`): a grandchild such
 *   as `(sleep 999; mount ...) &` dies with it. execa's `timeout` kills only the direct child
 *   (execa issue #96; verified in /work/shared/reference/typescript-anchors.md).
 * - stdout/stderr are the log file's descriptor, not pipes, and we wait for the child's
 *   'exit' event, not 'close': a hook that leaves a background process holding its stdout
 *   (a FUSE daemon, `sleep 999 &`) does not keep berth waiting for end-of-file. The wrappers
 *   always pipe output and resolve on 'close'.
 */
import { spawn } from 'node:child_process';
import { closeSync, constants as FS, accessSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, realpathSync, statSync, writeSync } from 'node:fs';
import { constants as OS } from 'node:os';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { BerthError, EXIT } from './errors.js';
import { debug, logEnabled, warn } from './log.js';
import { sleep } from './proc.js';

/** The lifecycle operation a hook runs for; exported to the hook as `BERTH_ACTION`. */
export type HookAction = 'create' | 'start' | 'stop' | 'set' | 'register' | 'unregister' | 'remove' | 'clone' | 'rename';

/**
 * The host hook dirs of an env, in its sysdir (CBSD's jails-system/<jname>/master_*.d, remove.d,
 * cbsd-behaviour.md §4.2), that berth runs: jcreate makes them, doctor checks their scripts.
 */
export const HOOK_DIRS = ['master_create.d', 'master_prestart.d', 'master_poststart.d', 'master_prestop.d', 'master_poststop.d', 'remove.d', 'clone-local.d'] as const;

/** Everything a hook run needs to know about the env and the node. */
export interface HookEnv {
  jname: string;
  nodename: string;
  /** the env's data dir (`-d`), jails-data/<jname>-data */
  data: string;
  /** the env's fstab dir (`-f`), jails-fstab/<jname> */
  fstabDir: string;
  /** the whole jails-rcconf directory (`-r`; CBSD passes the directory, not a file) */
  rcconfDir: string;
  /** the env's system dir (`-s`), jails-system/<jname> */
  sysdir: string;
  /** node log the hook's stdout and stderr are appended to: var/log/<jname>.log */
  logFile: string;
  /** also copy the hook's output to stderr once it has ended */
  verbose?: boolean;
  /** seconds; 0 = no timeout */
  timeoutSec: number;
  /** more environment variables for the hook (win over everything else, `PATH` included) */
  extraEnv?: Record<string, string>;
}

/** Seconds between SIGTERM and SIGKILL of a timed-out hook's process group. */
export const KILL_GRACE_SEC = 5;
/** Lines of the hook's output quoted in a failure message. */
export const TAIL_LINES = 10;
/**
 * PATH given to every hook (the one CBSD resets to before running hooks, so that a hook never
 * picks up a same-named berth/cbsd helper). `extraEnv.PATH` overrides it.
 */
export const HOOK_PATH = '/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin';

/** Process groups of hooks running now (leader pids), for {@link killRunningHooks}. */
const running = new Set<number>();

/**
 * Sends `signal` to the process group of every hook still running (for berth's own SIGINT /
 * SIGTERM handler: hooks lead their own session, so a terminal ^C does not reach them).
 * @returns the leader pids signalled
 */
export function killRunningHooks(signal: NodeJS.Signals = 'SIGTERM'): number[] {
  const out: number[] = [];
  for (const pid of running) {
    try { process.kill(-pid, signal); out.push(pid); } catch { /* already gone */ }
  }
  return out;
}

function octal(mode: number): string {
  return '0' + (mode & 0o7777).toString(8).padStart(3, '0');
}

/**
 * Why a file someone other than root can change (owned by another uid, or writable by group
 * or others), as in `it is owned by uid 1000, not root` or `mode 0664 lets group change it`;
 * undefined when only root can. The rule for every file berth runs, or takes commands from, as
 * root: hooks (checkHookSafe) and adopted descriptors with host commands (src/register.ts).
 */
export function notRootOnly(st: { uid: number; mode: number }): { why: string } | undefined {
  if (st.uid !== 0) return { why: `it is owned by uid ${st.uid}, not root` };
  if (st.mode & 0o022) {
    const who = [st.mode & 0o020 ? 'group' : '', st.mode & 0o002 ? 'others' : ''].filter(Boolean).join(' and ');
    return { why: `mode ${octal(st.mode)} lets ${who} change it` };
  }
  return undefined;
}

/** The directories above absolute path `p`, nearest first, `/` last. */
function dirsAbove(p: string): string[] {
  const out: string[] = [];
  for (let d = dirname(p); ; d = dirname(d)) {
    out.push(d);
    if (d === dirname(d)) return out;
  }
}

/**
 * Safety check of one hook file, run before every execution and by `berth doctor`. The file
 * (after following symlinks) must be a regular file, executable, owned by root (uid 0) and
 * not writable by group or others: hooks run as root on every node that adopts the env, so a
 * file someone else can change is a way to root on all of them (cbsd-behaviour.md §12.8).
 * Every directory above it (of the path as given and of the file it resolves to) must be
 * root's and not writable by group or others, unless sticky (as /tmp: others cannot rename a
 * file they do not own there): in a directory someone else can write, a root-owned hook can be
 * swapped for another file between the check and the run. CBSD creates its hook dirs 0775:
 * `chmod g-w` them for berth.
 * @throws BerthError E_HOOK_MISSING (exit 1): not an absolute path, missing, not a regular
 *   file, or not executable
 * @throws BerthError E_HOOK_UNSAFE (exit 1): the file or a directory above it not owned by
 *   root, or group/other writable; the message names it and says why and how to fix it
 */
export function checkHookSafe(path: string): void {
  if (!isAbsolute(path)) {
    throw new BerthError('E_HOOK_MISSING', `hook ${JSON.stringify(path)} is not an absolute path`, EXIT.FAILURE, {
      hint: 'set the hook to the absolute path of an executable, or 0 for none', details: { hook: path },
    });
  }
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new BerthError('E_HOOK_MISSING', `hook ${path} does not exist or cannot be read (${code})`, EXIT.FAILURE, {
      hint: 'install the hook (the storage may not be mounted yet), or set it to 0', details: { hook: path, errno: code }, cause: e,
    });
  }
  let real = path;
  try { real = realpathSync(path); } catch { /* keep path */ }
  const what = real === path ? path : `${path} (-> ${real})`;
  if (!st.isFile()) {
    throw new BerthError('E_HOOK_MISSING', `hook ${what} is not a regular file`, EXIT.FAILURE, {
      hint: 'point the hook at an executable file', details: { hook: path, real },
    });
  }
  const unsafe = notRootOnly(st);
  if (unsafe) {
    throw new BerthError('E_HOOK_UNSAFE', `refusing to run hook ${what}: ${unsafe.why}; hooks run as root on every node that adopts the env`, EXIT.FAILURE, {
      hint: st.uid !== 0 ? `if you trust it: chown root ${real}` : `chmod go-w ${real}`, details: { hook: path, real, uid: st.uid, mode: octal(st.mode) },
    });
  }
  for (const dir of new Set([...dirsAbove(path), ...dirsAbove(real)])) {
    let ds;
    try { ds = statSync(dir); } catch { continue; }
    const bad = ds.uid !== 0 ? `it is owned by uid ${ds.uid}, not root` : (ds.mode & 0o022) && !(ds.mode & 0o1000) ? notRootOnly(ds)!.why : undefined;
    if (bad) {
      throw new BerthError('E_HOOK_UNSAFE', `refusing to run hook ${what}: its directory ${dir} is unsafe (${bad}), so the hook can be swapped; hooks run as root on every node that adopts the env`, EXIT.FAILURE, {
        hint: ds.uid !== 0 ? `chown root ${dir}, or move the hook` : `chmod go-w ${dir}`, details: { hook: path, real, dir, uid: ds.uid, mode: octal(ds.mode) },
      });
    }
  }
  let exec = (st.mode & 0o111) !== 0;
  if (exec) {
    try { accessSync(path, FS.X_OK); } catch { exec = false; }
  }
  if (!exec) {
    throw new BerthError('E_HOOK_MISSING', `hook ${what} is not executable (mode ${octal(st.mode)})`, EXIT.FAILURE, {
      hint: `chmod 0755 ${real}`, details: { hook: path, real, mode: octal(st.mode) },
    });
  }
}

/** Outcome of one hook process. */
interface ExecResult {
  exitCode: number;
  signal?: string;
  timedOut: boolean;
  /** the leader did not exit even after SIGKILL (e.g. stuck in an NFS mount, state D) */
  unkillable: boolean;
  /** up to TAIL_LINES last lines of what this run appended to the log */
  tail: string[];
  durationMs: number;
}

/** What `file` holds from byte `offset` on (at most its last MiB). */
function readFrom(file: string, offset: number): string {
  let fd: number;
  try { fd = openSync(file, 'r'); } catch { return ''; }
  try { return readFromFd(fd, offset); } finally { closeSync(fd); }
}

function readFromFd(fd: number, offset: number): string {
  const size = fstatSync(fd).size;
  if (size <= offset) return '';
  const max = 1 << 20; // read at most the last MiB of this run's output
  const start = Math.max(offset, size - max);
  const buf = Buffer.alloc(size - start);
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, start + got);
    if (n <= 0) break;
    got += n;
  }
  return buf.subarray(0, got).toString('utf8');
}

function tailLines(text: string, n: number): string[] {
  return text.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.trim() !== '').slice(-n)
    .map((l) => (l.length > 300 ? l.slice(0, 300) + '...' : l));
}

/**
 * True while process group `pgid` has a live (non-zombie) member. On Linux /proc is scanned,
 * because an orphaned zombie may wait a while for its reaper and still counts for kill(2);
 * elsewhere `kill(-pgid, 0)` decides.
 */
function groupAlive(pgid: number): boolean {
  if (process.platform === 'linux') {
    let pids: string[];
    try { pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n)); } catch { pids = []; }
    if (pids.length) {
      for (const p of pids) {
        let stat: string;
        try { stat = readFileSync(`/proc/${p}/stat`, 'utf8'); } catch { continue; }
        // fields after "(comm)": state ppid pgrp ...
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        if (Number(f[2]) === pgid && f[0] !== 'Z' && f[0] !== 'X') return true;
      }
      return false;
    }
  }
  try { process.kill(-pgid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

const osSignals = OS.signals as Record<string, number>;

/**
 * Runs one hook process with the rules of the contract and returns how it ended; throws only
 * when it could not be started at all. `label` names it in the log header.
 */
async function execHook(argv: string[], label: string, childEnv: NodeJS.ProcessEnv, env: HookEnv): Promise<ExecResult> {
  mkdirSync(dirname(env.logFile), { recursive: true });
  const fd = openSync(env.logFile, 'a', 0o640);
  const t0 = performance.now();
  let offset = 0;
  try {
    writeSync(fd, `--- ${new Date().toISOString()} berth ${label} (action=${childEnv.BERTH_ACTION} env=${env.jname} node=${env.nodename}): ${argv.map(shq).join(' ')}\n`);
    offset = fstatSync(fd).size;
    const child = spawn(argv[0]!, argv.slice(1), {
      detached: true, // new session + process group: the timeout signals the whole group
      stdio: ['ignore', fd, fd], // stdin /dev/null; output straight into the log, no pipe
      env: childEnv,
      cwd: '/',
    });
    const res = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; timedOut: boolean; unkillable: boolean; spawnError?: Error }>((resolve) => {
      let timedOut = false;
      let done = false;
      let timer: NodeJS.Timeout | undefined;
      let unkillTimer: NodeJS.Timeout | undefined;
      const finish = (v: { code: number | null; signal: NodeJS.Signals | null; unkillable: boolean; spawnError?: Error }) => {
        if (done) return;
        done = true;
        if (timer) clearTimeout(timer);
        if (unkillTimer) clearTimeout(unkillTimer);
        if (child.pid) running.delete(child.pid);
        resolve({ ...v, timedOut });
      };
      child.once('error', (e) => finish({ code: null, signal: null, unkillable: false, spawnError: e }));
      if (child.pid === undefined) return; // 'error' follows
      const pid = child.pid;
      running.add(pid);
      let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
      let killed = false; // SIGKILL stage of a timeout reached
      const onTimeout = async () => {
        timedOut = true;
        try { process.kill(-pid, 'SIGTERM'); } catch { /* gone */ }
        // Wait up to the grace period for the leader to exit and its group to empty.
        const deadline = performance.now() + KILL_GRACE_SEC * 1000;
        while (performance.now() < deadline && (!exited || groupAlive(pid))) await sleep(100);
        if (!exited || groupAlive(pid)) {
          try { process.kill(-pid, 'SIGKILL'); } catch { /* gone */ }
          // SIGKILL is delivered asynchronously: give the group a moment to be gone
          for (let i = 0; i < 40 && groupAlive(pid); i++) await sleep(25);
        }
        killed = true;
        if (exited) { finish({ ...exited, unkillable: false }); return; }
        // The leader should die from SIGKILL at once; if it is stuck in the kernel (state D,
        // a hung NFS mount), give up waiting rather than hang berth.
        unkillTimer = setTimeout(() => { child.unref(); finish({ code: null, signal: null, unkillable: true }); }, KILL_GRACE_SEC * 1000);
      };
      child.once('exit', (code, signal) => {
        exited = { code, signal };
        // timed out: onTimeout finishes once the group is gone or SIGKILLed
        if (!timedOut || killed) finish({ code, signal, unkillable: false });
      });
      if (env.timeoutSec > 0) timer = setTimeout(() => { void onTimeout(); }, env.timeoutSec * 1000);
    });
    const durationMs = Math.round((performance.now() - t0) * 10) / 10;
    if (res.spawnError) {
      const e = res.spawnError as NodeJS.ErrnoException;
      writeSync(fd, `--- ${label}: cannot execute: ${e.message}\n`);
      throw new BerthError('E_HOOK_FAILED', `cannot execute ${label} ${argv[0]}: ${e.message}`, EXIT.FAILURE, {
        hint: 'a script needs a #! line naming its interpreter', details: { hook: argv[0], errno: e.code }, cause: e,
      });
    }
    const exitCode = res.timedOut ? EXIT.HOOK_TIMEOUT
      : res.code !== null ? res.code
        : 128 + (res.signal ? (osSignals[res.signal] ?? 0) : 0);
    const text = readFrom(env.logFile, offset);
    const ended = res.timedOut ? `timed out after ${env.timeoutSec} s${res.unkillable ? ' (still running: unkillable)' : ''}`
      : res.signal ? `killed by ${res.signal}` : `exit ${exitCode}`;
    writeSync(fd, `--- ${label}: ${ended} after ${(durationMs / 1000).toFixed(2)} s\n`);
    if (env.verbose && text) process.stderr.write(text.endsWith('\n') ? text : text + '\n');
    if (logEnabled('debug') && !res.timedOut && child.pid && groupAlive(child.pid)) {
      // Allowed (a FUSE daemon of a mount helper); noted so a leak can be traced.
      await debug({ hook: argv[0], pgid: child.pid }, 'hook exited leaving processes in its group');
    }
    await debug({ argv, hook: label, action: childEnv.BERTH_ACTION, jname: env.jname, exitCode, signal: res.signal ?? undefined, timedOut: res.timedOut, durationMs }, 'hook');
    return { exitCode, signal: res.signal ?? undefined, timedOut: res.timedOut, unkillable: res.unkillable, tail: tailLines(text, TAIL_LINES), durationMs };
  } finally {
    closeSync(fd);
  }
}

/** Shell-quotes one word for the log header (display only; hooks never run through a shell). */
function shq(s: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function baseEnv(env: HookEnv, action: HookAction, hookName: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PATH: HOOK_PATH,
    BERTH_ACTION: action,
    BERTH_JNAME: env.jname,
    BERTH_NODE: env.nodename,
    BERTH_HOOK: hookName,
  };
}

function failure(label: string, hook: string, action: HookAction, env: HookEnv, r: ExecResult): BerthError {
  const lines = r.tail.length ? `; last lines of its output:\n${r.tail.map((l) => '  ' + l).join('\n')}` : '; it printed nothing';
  // The hook's own status goes in details.hookExitCode / details.hookSignal, never in berth's
  // exit code: a hook exiting 4 must not read as "owned by another node" (design/product.md
  // "Exit codes and output"; issue 15).
  const details: Record<string, unknown> = { hook, action, jname: env.jname, log: env.logFile, tail: r.tail, durationMs: r.durationMs };
  if (r.timedOut) details.timeoutSec = env.timeoutSec;
  else if (r.signal) details.hookSignal = r.signal;
  else details.hookExitCode = r.exitCode;
  if (r.timedOut) {
    return new BerthError('E_HOOK_TIMEOUT',
      `${label} ${hook} (action ${action}, env ${env.jname}) timed out after ${env.timeoutSec} s and was killed with its process group${r.unkillable ? '; it did not die even from SIGKILL (stuck in the kernel?)' : ''}${lines}`,
      EXIT.HOOK_TIMEOUT, { hint: `see ${env.logFile}; raise mnt_timeout (0 = none) if the hook is just slow`, details });
  }
  const how = r.signal ? `was killed by signal ${r.signal}` : `failed with exit code ${r.exitCode}`;
  return new BerthError('E_HOOK_FAILED', `${label} ${hook} (action ${action}, env ${env.jname}) ${how}${lines}`, EXIT.FAILURE, {
    hint: `full output: ${env.logFile}`, details,
  });
}

/**
 * Runs a storage hook as design/product.md "Storage hook contract" says:
 * `<hook> -d <data> -f <fstab dir> -j <jname> -r <rcconf dir> -s <sysdir>` (for every
 * emulator; CBSD drops `-f` for VMs, berth does not), with environment
 * `BERTH_ACTION`, `BERTH_JNAME`, `BERTH_NODE` and `BERTH_HOOK` (`mnt_start` or `mnt_stop`),
 * `PATH` = {@link HOOK_PATH}, the rest of berth's environment, and `env.extraEnv` last.
 *
 * Execution: stdin /dev/null; stdout and stderr appended to `env.logFile` (a header line
 * before and a result line after each run); with `env.verbose`, what the run wrote is copied
 * to stderr after it ends; the hook leads its own process group; berth waits for the hook
 * itself to exit, not for its output to close, so a background child holding stdout does
 * not hang berth. On a normal exit the group is NOT killed: a mount helper may leave a
 * daemon behind (GlusterFS FUSE). On timeout (`env.timeoutSec`, 0 = none) the whole group
 * gets SIGTERM, then SIGKILL after {@link KILL_GRACE_SEC} s.
 * Runs the safety check ({@link checkHookSafe}) first. No-op when `hook` is '' or '0'.
 * @throws BerthError E_HOOK_FAILED (exit 1, berth's "failure"): the hook's own exit code is in
 *   `details.hookExitCode`, or the signal that killed it in `details.hookSignal` (never berth's
 *   exit code, which keeps to its own table); its last lines of output are in the message
 * @throws BerthError E_HOOK_TIMEOUT (exit 124)
 * @throws BerthError E_HOOK_UNSAFE / E_HOOK_MISSING (exit 1), see {@link checkHookSafe}
 */
export async function runStorageHook(which: 'mnt_start' | 'mnt_stop', hook: string, action: HookAction, env: HookEnv): Promise<void> {
  if (hook === '' || hook === '0') return;
  checkHookSafe(hook);
  const argv = [hook, '-d', env.data, '-f', env.fstabDir, '-j', env.jname, '-r', env.rcconfDir, '-s', env.sysdir];
  const childEnv = { ...baseEnv(env, action, which), ...env.extraEnv };
  const r = await execHook(argv, which, childEnv, env);
  if (r.exitCode !== 0) throw failure(which, hook, action, env, r);
}

/**
 * Runs every executable in `dir` (a host hook dir such as `jails-system/<jname>/master_prestart.d`)
 * in name order (byte order of the file names), one at a time, with no arguments. Entries
 * whose name starts with '.', sub-directories and files with no execute bit are skipped
 * (CBSD runs files and symlinks with any x bit). Each script first passes
 * {@link checkHookSafe}; the rules of {@link runStorageHook} apply to each run (log, timeout
 * `env.timeoutSec` per script, process group).
 *
 * Environment of each script:
 * - `BERTH_ACTION`, `BERTH_JNAME`, `BERTH_NODE`; `BERTH_HOOK` = the dir's name
 *   (`master_prestart.d`); `BERTH_DATA`, `BERTH_SYSDIR`, `BERTH_FSTAB_DIR`,
 *   `BERTH_RCCONF_DIR`, `BERTH_LOG`;
 * - CBSD compatible (CBSD's `export_jail_data_for_external_hook` exports the env's settings
 *   under their own names): `jname`, `data`; the caller adds the rest of the env's settings
 *   (`path`, `host_hostname`, `ip4_addr`, `ipv4_first` ...) through `env.extraEnv`, e.g. with
 *   {@link cbsdHookVars};
 * - `PATH` = {@link HOOK_PATH}; `env.extraEnv` wins over all of the above.
 *
 * A missing dir is a no-op.
 * With `opts.stopOnError` (a veto dir such as `master_prestart.d`): every script is
 * safety-checked before the first one runs, and the first failure throws (later scripts do
 * not run). Without it: all run; a script that fails, times out or is refused as unsafe is
 * listed in `failed` (unsafe/missing as exit code 1, with `error`) and logged at warn level.
 * @returns the scripts run (full paths, in order) and those that failed
 * @throws BerthError (stopOnError only) E_HOOK_FAILED / E_HOOK_TIMEOUT / E_HOOK_UNSAFE as
 *   {@link runStorageHook}
 * @throws BerthError E_HOOK_MISSING when `dir` exists but is not a directory or cannot be read
 */
export async function runHookDir(dir: string, action: HookAction, env: HookEnv, opts: { stopOnError: boolean }):
  Promise<{ ran: string[]; failed: { script: string; exitCode: number; error?: string }[] }> {
  const scripts = listHookDir(dir);
  const ran: string[] = [];
  const failed: { script: string; exitCode: number; error?: string }[] = [];
  if (opts.stopOnError) for (const s of scripts) checkHookSafe(s);
  const dirName = basename(dir);
  for (const script of scripts) {
    try {
      if (!opts.stopOnError) checkHookSafe(script);
    } catch (e) {
      const be = e as BerthError;
      failed.push({ script, exitCode: EXIT.FAILURE, error: be.message });
      await warn({ script, code: be.code }, be.message);
      continue;
    }
    const childEnv: NodeJS.ProcessEnv = {
      ...baseEnv(env, action, dirName),
      BERTH_DATA: env.data, BERTH_SYSDIR: env.sysdir, BERTH_FSTAB_DIR: env.fstabDir, BERTH_RCCONF_DIR: env.rcconfDir,
      BERTH_LOG: env.logFile,
      jname: env.jname, data: env.data,
      ...env.extraEnv,
    };
    const r = await execHook([script], `${dirName}/${basename(script)}`, childEnv, env);
    ran.push(script);
    if (r.exitCode !== 0) {
      const err = failure(`${dirName} script`, script, action, env, r);
      if (opts.stopOnError) throw err;
      failed.push({ script, exitCode: r.exitCode, error: err.message });
      await warn({ script, exitCode: r.exitCode, action, jname: env.jname }, err.message);
    }
  }
  return { ran, failed };
}

/**
 * The scripts {@link runHookDir} would consider in `dir`, in run order (full paths): entries
 * not starting with '.', that are (or link to) regular files with an execute bit. [] when
 * `dir` does not exist. Used by `berth doctor`.
 * @throws BerthError E_HOOK_MISSING when `dir` is not a directory or cannot be read
 */
export function listHookDir(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return [];
    throw new BerthError('E_HOOK_MISSING', `hook dir ${dir} cannot be read (${code})`, EXIT.FAILURE, { details: { dir, errno: code }, cause: e });
  }
  const out: string[] = [];
  for (const n of names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (n.startsWith('.')) continue;
    const p = join(dir, n);
    let st;
    try { st = statSync(p); } catch { continue; } // dangling symlink
    if (!st.isFile() || (st.mode & 0o111) === 0) continue;
    out.push(p);
  }
  return out;
}

const PRIVATE4 = [/^10\./, /^192\.168\./, /^172\.(1[6-9]|2\d|3[01])\./, /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./, /^127\./];

/**
 * The CBSD hook variables of an env (cbsd-behaviour.md; CBSD `export_jail_data_for_external_hook`):
 * every descriptor key whose name is a shell identifier, under its own name, plus
 * `ipv4_first`, `ipv4_first_public`, `ipv4_first_private`, `ipv6_first`,
 * `ipv6_first_public`, `ipv6_first_private` taken from `ip4_addr` / `ip6_addr`
 * (comma or space separated; `iface|addr/mask` forms accepted; '0' when there is none).
 * Pass the result as `HookEnv.extraEnv` to {@link runHookDir}.
 */
export function cbsdHookVars(conf: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(conf)) if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) out[k] = v;
  const addrs = `${conf.ip4_addr ?? ''},${conf.ip6_addr ?? ''}`.split(/[,\s]+/)
    .map((a) => a.replace(/^.*\|/, '').replace(/\/\d+$/, '')).filter((a) => a && a !== '0' && a !== 'DHCP' && a !== 'REALDHCP');
  const v4 = addrs.filter((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a));
  const v6 = addrs.filter((a) => a.includes(':'));
  const priv6 = (a: string) => /^f[cd]/i.test(a) || /^fe80/i.test(a) || a === '::1';
  out.ipv4_first = v4[0] ?? '0';
  out.ipv4_first_private = v4.find((a) => PRIVATE4.some((r) => r.test(a))) ?? '0';
  out.ipv4_first_public = v4.find((a) => !PRIVATE4.some((r) => r.test(a))) ?? '0';
  out.ipv6_first = v6[0] ?? '0';
  out.ipv6_first_private = v6.find(priv6) ?? '0';
  out.ipv6_first_public = v6.find((a) => !priv6(a)) ?? '0';
  return out;
}
