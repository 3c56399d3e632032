/**
 * The bhyve engine's steps composed: start, restart, state, stop and teardown of one VM, over
 * the plans of src/engines/bhyve/plan.ts, for the engine class to call. Every command goes
 * through an injectable {@link Runner} (src/proc.ts `run` by default); bhyve itself, which
 * runs for as long as the guest does, is spawned with {@link spawnLogged}.
 *
 * Files (node-local, src/engines/bhyve/plan.ts bhyveFiles): `var/run/bhyve/<vm>.conf` (the
 * bhyve_config(5) file, mode 0600), `var/run/bhyve/<vm>.state.json` ({@link BhyveState}:
 * pid, taps, console, VNC port; written before bhyve starts, so a teardown after a crash
 * knows the taps), `var/log/<vm>.bhyve.log` (bhyve's output).
 *
 * Readiness: bhyve sets its process title to `bhyve: <vm>` when its devices are up (after
 * opening disks, taps and the console; CBSD check_for_bhyve_process tells a starting bhyve
 * from a running one by it). {@link startBhyve} waits for that title, or for bhyve to exit
 * (a failed start: its log tail is the error). With fbuf `wait` (vm_boot=cd, cd_vnc_wait=1)
 * bhyve waits for a VNC client before that point, so the start returns without waiting.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import type { EnvConf } from '../../descriptor.js';
import { BerthError, EXIT, engineError } from '../../errors.js';
import { debug } from '../../log.js';
import type { EnvPaths, Workdir } from '../../paths.js';
import { run as defaultRun } from '../../proc.js';
import { parseVmSpec, type VmSpec } from '../vm/spec.js';
import { bhyveConfig } from './config.js';
import {
  LOADER_TIMEOUT_SEC, UEFI_VARS_FILE, bhyveArgv, bhyveFiles, bhyvePidMatches, bhyveTitleIs, chooseVncPort, clearStaleVm, consoleOf,
  createTaps, destroyArgv, firmwareFor, loaderArgv, psArgv, stopBhyve, teardownBhyve, validateBhyveSpec,
  type BhyveFiles, type BhyveState, type Runner, type StopDeps, type StopResult, type TeardownResult,
} from './plan.js';
import { parseBhyveSettings, type BhyveSettings } from './settings.js';

/** One VM on this node: what every step needs. */
export interface BhyveVmContext {
  wd: Workdir;
  jname: string;
  nodename: string;
  /** the env's settings (its descriptor) */
  conf: EnvConf;
  /** the env's data dir (disks) and system dir (UEFI variables, cloud-init seed) */
  paths: Pick<EnvPaths, 'data' | 'sysdir'>;
  /** the bridge of NICs with nic_parent=auto */
  defaultBridge?: string;
  /** where the UEFI firmware is (default /usr/local/share/uefi-firmware) */
  firmwareDir?: string;
  /** the cloud-init seed ISO made for this start (NoCloud, volume id cidata), if any */
  seedIso?: string;
}

/** Injectable parts of {@link startBhyve} (all default to the real ones). */
export interface BhyveRunDeps {
  run?: Runner;
  /** spawns bhyve in the background (default {@link spawnLogged}) */
  spawn?: (argv: string[], logFile: string) => SpawnedProcess;
  /** seconds bhyveload may take (default {@link LOADER_TIMEOUT_SEC}) */
  loaderTimeoutSec?: number;
  /** milliseconds to wait for bhyve's title (default 60000) */
  readyTimeoutMs?: number;
  /** is a VNC port free (default: try to listen on it) */
  isPortFree?: (port: number, bind: string) => Promise<boolean>;
  /** waits (default setTimeout) */
  sleep?: (ms: number) => Promise<void>;
}

/** A process started by {@link spawnLogged}. */
export interface SpawnedProcess {
  pid: number;
  /**
   * Waits for its exit status (128+N when killed by signal N), keeping this process alive
   * meanwhile (the child is unreferenced otherwise, so that `berth bstart` can exit).
   */
  wait(): Promise<number>;
  /** its exit status once it has ended (without waiting), else undefined */
  status(): number | undefined;
  child?: ChildProcess;
}

/** The result of {@link startBhyve}. */
export interface StartedBhyve {
  pid: number;
  state: BhyveState;
  files: BhyveFiles;
  spec: VmSpec;
  bhyve: BhyveSettings;
  /** bhyve waits for a VNC client before booting (fbuf wait): not up yet */
  waitingForVnc: boolean;
  /** waits for bhyve's exit status, for a caller that stays (the run monitor: exitAction decides a restart) */
  wait(): Promise<number>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Spawns `argv` detached from berth (its own session, so berth's terminal signals do not
 * reach it), stdout and stderr appended to `logFile`, stdin /dev/null; logged at debug like
 * src/proc.ts. (Long-running, so not src/proc.ts `run`, which waits.)
 * @throws BerthError E_EXEC (exit 5) when it cannot be started
 */
export function spawnLogged(argv: string[], logFile: string): SpawnedProcess {
  const fd = openSync(logFile, 'a', 0o640);
  try {
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', fd, fd] });
    if (child.pid === undefined) throw new BerthError('E_EXEC', `cannot run ${argv[0]}`, EXIT.ENGINE);
    let status: number | undefined;
    const exited = new Promise<number>((resolve) => {
      child.once('exit', (code, sig) => resolve(status = code ?? 128 + ((sig && constants.signals[sig]) || 0)));
      child.once('error', () => resolve(status = 127));
    });
    child.unref();
    void debug({ argv, pid: child.pid, logFile }, 'spawn');
    const wait = () => { child.ref(); return exited.finally(() => child.unref()); };
    return { pid: child.pid, wait, status: () => status, child };
  } finally {
    closeSync(fd);
  }
}

/** The process command of `pid` (`ps -o command=`), or undefined when there is no such process. */
async function commandOf(pid: number, run: Runner): Promise<string | undefined> {
  const r = await run(psArgv(pid), { check: false });
  return r.exitCode === 0 && r.stdout.trim() ? r.stdout.trim() : undefined;
}

/** Reads the node's state of this VM, if any. */
export async function readBhyveState(ctx: Pick<BhyveVmContext, 'wd' | 'jname'>): Promise<BhyveState | undefined> {
  try { return JSON.parse(await readFile(bhyveFiles(ctx.wd, ctx.jname).state, 'utf8')) as BhyveState; } catch { return undefined; }
}

async function writeState(files: BhyveFiles, state: BhyveState): Promise<void> {
  await writeFile(files.state, JSON.stringify(state) + '\n', { mode: 0o600 });
}

/** The last lines of bhyve's log, for an error message. */
function logTail(file: string, lines = 5): string {
  try { return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n'); } catch { return ''; }
}

/**
 * True while this node's bhyve of the VM runs: the state's pid exists and is that bhyve
 * (`ps`: its title or command line), so a reused pid is not taken for it.
 */
export async function bhyveIsRunning(ctx: Pick<BhyveVmContext, 'wd' | 'jname'>, run: Runner = defaultRun): Promise<boolean> {
  const st = await readBhyveState(ctx);
  if (!st?.pid) return false;
  const cmd = await commandOf(st.pid, run);
  return cmd !== undefined && bhyvePidMatches(cmd, ctx.jname);
}

/** Runs the loader (vm_efi=none) and spawns bhyve; waits until it is up. Shared by start and restart. */
async function boot(ctx: BhyveVmContext, spec: VmSpec, bhyve: BhyveSettings, files: BhyveFiles, state: BhyveState, deps: BhyveRunDeps): Promise<{ pid: number; wait: () => Promise<number>; waitingForVnc: boolean }> {
  const run = deps.run ?? defaultRun;
  const loader = loaderArgv(spec, ctx.paths.data, consoleOf(spec.jname));
  if (loader) {
    const timeoutSec = deps.loaderTimeoutSec ?? LOADER_TIMEOUT_SEC;
    // src/proc.ts reports a command it killed at its timeout as E_EXEC ("aborted")
    const r = await run(loader, { check: false, timeoutSec }).catch((e: unknown) => {
      if (e instanceof BerthError && e.code === 'E_EXEC' && /abort/i.test(e.message)) return { exitCode: 124, signal: 'SIGTERM', stdout: '', stderr: '', durationMs: timeoutSec * 1000 };
      throw e;
    });
    if (r.exitCode !== 0) {
      const why = r.signal || r.durationMs >= timeoutSec * 1000 ? `did not load a kernel within ${timeoutSec} s (a loader that finds none waits at its prompt)` : `failed with exit code ${r.exitCode}`;
      throw engineError('E_BHYVELOAD', `${loader.join(' ')} ${why}${(r.stderr || r.stdout).trim() ? `: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join('\n')}` : ''}`, {
        hint: 'bhyveload boots FreeBSD from the first disk (or the ISO with vm_boot=cd); for other guests set vm_efi=uefi',
      });
    }
  }
  await mkdir(ctx.wd.logDir, { recursive: true });
  const p = (deps.spawn ?? spawnLogged)(bhyveArgv(files.config, spec.jname), files.log);
  state.pid = p.pid;
  await writeState(files, state);
  const waitingForVnc = spec.boot === 'cd' && bhyve.cdVncWait && state.vncPort !== undefined;
  if (waitingForVnc) return { pid: p.pid, wait: p.wait, waitingForVnc };
  const deadline = Date.now() + (deps.readyTimeoutMs ?? 60_000);
  for (;;) {
    const cmd = p.status() === undefined ? await commandOf(p.pid, run) : undefined;
    if (cmd !== undefined && bhyveTitleIs(cmd, spec.jname)) return { pid: p.pid, wait: p.wait, waitingForVnc };
    if (cmd === undefined) {
      // gone (or a zombie ps does not list): its status, as soon as the exit is seen
      for (let i = 0; i < 20 && p.status() === undefined; i++) await (deps.sleep ?? sleep)(50);
      const status = p.status();
      const tail = logTail(files.log);
      throw engineError('E_BHYVE_START', `bhyve ${spec.jname} exited during start${status === undefined ? '' : ` with status ${status}`}${tail ? `: ${tail}` : ''}`, { hint: `see ${files.log} and ${files.config}` });
    }
    if (Date.now() > deadline) throw engineError('E_BHYVE_START', `bhyve ${spec.jname} is not up ${Math.round((deps.readyTimeoutMs ?? 60_000) / 1000)} s after its start`, { hint: `see ${files.log}` });
    await (deps.sleep ?? sleep)(100);
  }
}

/**
 * Starts the VM (see plan.ts for the steps): a leftover of this node's last run torn down,
 * taps, config file, no other vmm instance of the name, loader, bhyve.
 * On failure everything this start made is undone (bhyve killed, vmm instance destroyed,
 * taps destroyed, config and state removed) and the error thrown.
 * @throws BerthError E_BAD_VALUE (exit 2) for settings bhyve cannot take (nothing done);
 *   E_BHYVE_RUNNING (exit 5) when this node's bhyve of the VM runs; E_VM_EXISTS, E_VNET,
 *   E_BHYVELOAD, E_BHYVE_START (exit 5)
 */
export async function startBhyve(ctx: BhyveVmContext, deps: BhyveRunDeps = {}): Promise<StartedBhyve> {
  const run = deps.run ?? defaultRun;
  const spec = parseVmSpec({ ...ctx.conf, jname: ctx.jname, emulator: 'bhyve' });
  const bhyve = parseBhyveSettings(ctx.conf);
  validateBhyveSpec(spec);
  const files = bhyveFiles(ctx.wd, ctx.jname);
  const old = await readBhyveState(ctx);
  if (old?.pid && (await bhyveIsRunning(ctx, run))) throw engineError('E_BHYVE_RUNNING', `bhyve ${ctx.jname} is already running (pid ${old.pid})`);
  // a run of this node that was never torn down (the node or berth died): its vmm instance
  // and taps go first, so nothing leaks and the new start begins clean
  if (old) await teardownBhyveVm(ctx, run);
  const vncPort = await chooseVncPort(spec, bhyve, deps.isPortFree);
  const varsFile = join(ctx.paths.sysdir, UEFI_VARS_FILE);
  const firmware = firmwareFor(spec, bhyve, { firmwareDir: ctx.firmwareDir, varsFile: existsSync(varsFile) ? varsFile : undefined });
  const console = consoleOf(spec.jname);
  // what a teardown after a failure here must undo
  const state: BhyveState = { taps: [], console: console.a, vncPort };
  let spawned: number | undefined;
  // from the moment no other vmm instance of the name exists, any instance of it is this start's
  let vmOurs = false;
  try {
    state.taps = await createTaps(spec.nics, { jname: ctx.jname, nodename: ctx.nodename, defaultBridge: ctx.defaultBridge }, run);
    const text = bhyveConfig({
      spec, bhyve, dataDir: ctx.paths.data, taps: state.taps, console: console.a, vncPort, firmware, seedIso: ctx.seedIso,
      header: [`bhyve_config(5) of ${ctx.jname}, written by berth on node ${ctx.nodename} at every start`],
    });
    await mkdir(files.dir, { recursive: true });
    await writeFile(files.config, text, { mode: 0o600 });
    await writeState(files, state);
    await clearStaleVm(spec.jname, false, run);
    vmOurs = true;
    const b = await boot(ctx, spec, bhyve, files, state, { ...deps, spawn: (argv, log) => { const p = (deps.spawn ?? spawnLogged)(argv, log); spawned = p.pid; return p; } });
    return { pid: b.pid, state, files, spec, bhyve, waitingForVnc: b.waitingForVnc, wait: b.wait };
  } catch (e) {
    if (spawned !== undefined) await stopBhyve(spawned, { timeoutSec: 0, doubleAcpi: false }).catch(() => undefined);
    await teardownBhyve(state, ctx, run, { destroyVm: vmOurs }).catch((t) => debug({ jname: ctx.jname, err: String(t) }, 'teardown after a failed start left something'));
    await rm(files.config, { force: true });
    await rm(files.state, { force: true });
    throw e;
  }
}

/**
 * Runs the VM again after its guest rebooted (exitAction `restart`), as bhyverun.sh's loop:
 * `bhyvectl --destroy`, then the loader (vm_efi=none) and bhyve, with the same taps and config.
 * @throws BerthError as {@link startBhyve}; nothing is undone (the caller tears down)
 */
export async function restartBhyve(ctx: BhyveVmContext, deps: BhyveRunDeps = {}): Promise<StartedBhyve> {
  const run = deps.run ?? defaultRun;
  const spec = parseVmSpec({ ...ctx.conf, jname: ctx.jname, emulator: 'bhyve' });
  const bhyve = parseBhyveSettings(ctx.conf);
  const files = bhyveFiles(ctx.wd, ctx.jname);
  const state = await readBhyveState(ctx);
  if (!state) throw engineError('E_BHYVE_STATE', `no state of ${ctx.jname} on this node to restart from (${files.state})`);
  const d = await run(destroyArgv(spec.jname), { check: false });
  if (d.exitCode !== 0 && !/could not be opened/.test(d.stderr)) throw engineError('E_BHYVECTL', `${destroyArgv(spec.jname).join(' ')} failed: ${d.stderr.trim()}`);
  const b = await boot(ctx, spec, bhyve, files, state, deps);
  return { pid: b.pid, state, files, spec, bhyve, waitingForVnc: b.waitingForVnc, wait: b.wait };
}

/**
 * Stops the VM's bhyve (ACPI, double_acpi, then SIGKILL after `timeoutSec`; plan.ts stopBhyve)
 * when the state's pid is still its bhyve. The vmm instance and taps stay for {@link teardownBhyveVm}.
 */
export async function stopBhyveVm(ctx: BhyveVmContext, timeoutSec: number, deps: { run?: Runner; stop?: StopDeps } = {}): Promise<StopResult> {
  const run = deps.run ?? defaultRun;
  const st = await readBhyveState(ctx);
  if (!st?.pid) return { how: 'gone', presses: 0 };
  const cmd = await commandOf(st.pid, run);
  if (cmd === undefined || !bhyvePidMatches(cmd, ctx.jname)) {
    if (cmd !== undefined) await debug({ jname: ctx.jname, pid: st.pid, cmd }, 'the recorded pid is not this VM\'s bhyve any more: not signalled');
    return { how: 'gone', presses: 0 };
  }
  const bhyve = parseBhyveSettings(ctx.conf);
  return stopBhyve(st.pid, { timeoutSec, doubleAcpi: bhyve.doubleAcpi }, deps.stop);
}

/**
 * Tears the VM down once its bhyve is gone (plan.ts teardownBhyve) and removes the config and
 * state files. Without a state file this node did not start the VM: nothing is destroyed
 * (a vmm instance of that name may be another workdir's). Idempotent.
 * @throws BerthError E_BHYVE_TEARDOWN (exit 5); the files are kept then, for another try
 */
export async function teardownBhyveVm(ctx: BhyveVmContext, run: Runner = defaultRun): Promise<TeardownResult | undefined> {
  const files = bhyveFiles(ctx.wd, ctx.jname);
  const st = await readBhyveState(ctx);
  let out: TeardownResult | undefined;
  if (st) out = await teardownBhyve(st, ctx, run);
  await rm(files.config, { force: true });
  await rm(files.state, { force: true });
  return out;
}
