/**
 * The bhyve engine's plans: the exact commands of a start, a stop and a teardown, as argv
 * arrays and small executors over src/proc.ts `run`, for the engine class to call. Nothing
 * here keeps state between calls; the caller persists {@link BhyveState}.
 *
 * Start (CBSD sudoexec/bstart and share/bhyverun.sh, with berth's safety rules):
 * 1. {@link createTaps}: per NIC `ifconfig <bridge>` (the bridge exists; its MTU),
 *    `ifconfig tap create`, `ifconfig <tap> description berth/<node>/<vm> [mtu <n>] up`,
 *    `ifconfig <bridge> addm <tap>`; on failure the taps made so far are destroyed.
 * 2. the config file (src/engines/bhyve/config.ts) written to {@link bhyveFiles}.config.
 * 3. {@link clearStaleVm}: `bhyvectl --vm=<vm> --get-stats`; a vmm instance of that name that
 *    this node's last run left behind is destroyed (`bhyvectl --destroy --vm=<vm>`, as
 *    bhyverun.sh does before every run); one that is not this node's is refused (vmm names
 *    are host-wide: it may be another workdir's running VM).
 * 4. vm_efi=none: {@link loaderArgv} `bhyveload -c <nmdm A> -m <ram> -d <disk> <vm>`
 *    (CBSD: `bhyveload -m ${vm_ram} -d ${data}/dsk1.vhd`; berth points the loader's console
 *    at the VM's nmdm pair instead of a tmux terminal), bounded by {@link LOADER_TIMEOUT_SEC}:
 *    a loader that finds no kernel waits at its prompt forever.
 * 5. {@link bhyveArgv} `bhyve -k <config> <vm>`, run in the background by the engine.
 *
 * Stop ({@link stopBhyve}, CBSD sudoexec/bstop): SIGTERM (bhyve(8): "Trigger ACPI poweroff
 * for a VM"), then each second for up to stop_timeout seconds wait for bhyve to exit and, with
 * double_acpi=1, press again; then SIGKILL. Teardown ({@link teardownBhyve}, exactly once
 * however bhyve ended): `bhyvectl --destroy --vm=<vm>` (the vmm instance outlives bhyve), then
 * each tap berth made, after `ifconfig <tap>` shows berth's description for this VM.
 *
 * Exit statuses (bhyve(8) EXIT STATUS; CBSD bhyverun.sh exit_action_mode):
 * {@link exitAction}. Live migration: {@link refuseLiveMigration}.
 */
import { join } from 'node:path';
import { engineError, usageError, BerthError, EXIT } from '../../errors.js';
import { debug } from '../../log.js';
import type { Workdir } from '../../paths.js';
import { run as defaultRun, type RunOptions, type RunResult } from '../../proc.js';
import { diskFile, vncSetting, type VmNic, type VmSpec } from '../vm/spec.js';
import { VNC_AUTO_RANGE } from '../vm/settings.js';
import { memsizeArg, type BhyveFirmware } from './config.js';
import type { BhyveSettings } from './settings.js';

/** A command runner with src/proc.ts `run`'s shape (injectable for tests). */
export type Runner = (argv: string[], opts?: RunOptions) => Promise<RunResult>;

/** Where the FreeBSD ports install the bhyve UEFI firmware (sysutils/edk2 bhyve flavour, sysutils/uefi-edk2-bhyve-csm). */
export const UEFI_FIRMWARE_DIR = '/usr/local/share/uefi-firmware';
/** The ports' UEFI variables template; copy it to `<sysdir>/BHYVE_UEFI_VARS.fd` to keep a VM's boot entries (CBSD does at bcreate). */
export const UEFI_VARS_TEMPLATE = `${UEFI_FIRMWARE_DIR}/BHYVE_UEFI_VARS.fd`;
/** The per-VM UEFI variables file in the env's system dir (CBSD's name). */
export const UEFI_VARS_FILE = 'BHYVE_UEFI_VARS.fd';
/** Seconds bhyveload may take (its autoboot countdown is 10 s; a loader with no kernel waits for ever). */
export const LOADER_TIMEOUT_SEC = 120;
/** vmm's VM_MAX_NAMELEN is 32 with the NUL (FreeBSD sys/amd64/include/vmm.h): names of at most 31 characters. */
export const VM_NAME_MAX = 31;

/** What the engine keeps between start and teardown (node-local: var/run/bhyve/<vm>.state.json). */
export interface BhyveState {
  /** the bhyve process */
  pid?: number;
  /** the taps this start made, in NIC order */
  taps: string[];
  /** the VNC port of this start */
  vncPort?: number;
  /** the nmdm A side of COM1 */
  console: string;
}

/** The node-local files of a bhyve VM. */
export interface BhyveFiles {
  /** var/run/bhyve */
  dir: string;
  /** var/run/bhyve/<vm>.conf: the bhyve_config(5) file, written at every start (mode 0600: it holds the VNC password) */
  config: string;
  /** var/run/bhyve/<vm>.state.json: {@link BhyveState} */
  state: string;
  /** var/log/<vm>.bhyve.log: bhyve's stdout and stderr */
  log: string;
}

/** The files of `jname` under `wd`. */
export function bhyveFiles(wd: Workdir, jname: string): BhyveFiles {
  const dir = join(wd.runDir, 'bhyve');
  return { dir, config: join(dir, `${jname}.conf`), state: join(dir, `${jname}.state.json`), log: join(wd.logDir, `${jname}.bhyve.log`) };
}

/** The serial console of a VM: an nmdm(4) pair named after it (FreeBSD 12+ clones any `nmdm<name>A|B`). */
export interface BhyveConsole {
  /** bhyve's side (lpc.com1.path; bhyveload -c) */
  a: string;
  /** the user's side */
  b: string;
  /** the command that attaches a terminal to it (bconsole) */
  attach: string[];
}

/** The nmdm pair of `vmname`: /dev/nmdm-<vm>-1A and -1B (pairs vanish when both sides are closed). */
export function consoleOf(vmname: string): BhyveConsole {
  const b = `/dev/nmdm-${vmname}-1B`;
  return { a: `/dev/nmdm-${vmname}-1A`, b, attach: ['cu', '-l', b, '-s', '115200'] };
}

/**
 * The bhyve-specific rules on top of the shared model's (parseVmSpec).
 * @throws BerthError E_BAD_VALUE (exit 2) naming the key
 */
export function validateBhyveSpec(spec: VmSpec): void {
  const bad = (key: string, value: string, why: string, hint?: string): never => {
    throw usageError('E_BAD_VALUE', `bad ${key}=${JSON.stringify(value)}: ${why}`, hint ? { hint } : undefined);
  };
  if (spec.jname.length > VM_NAME_MAX) bad('jname', spec.jname, `bhyve VM names have at most ${VM_NAME_MAX} characters (vmm VM_MAX_NAMELEN)`);
  if (spec.kernel) bad('vm_kernel', spec.kernel, 'direct kernel boot is qemu\'s; bhyve boots with bhyveload (vm_efi=none) or UEFI firmware', 'set vm_kernel=0');
  if (spec.efi === 'none' && spec.osType !== 'freebsd') bad('vm_efi', 'none', `bhyveload boots FreeBSD guests only (bhyveload(8)), and vm_os_type is ${spec.osType}`, 'set vm_efi=uefi');
  if (spec.efi === 'none' && spec.boot === 'net') bad('vm_boot', 'net', 'network boot needs UEFI firmware', 'set vm_efi=uefi');
  if (spec.ram % 4096 !== 0) bad('vm_ram', String(spec.ram), 'bhyve needs whole 4 KiB pages', 'e.g. vm_ram=512m');
  for (const d of spec.disks) if (d.format !== 'raw') bad(`dsk_format${d.index}`, d.format, 'bhyve reads raw images only');
}

/**
 * The boot ROM of a UEFI VM, or undefined for vm_efi=none.
 * - uefi: efi_firmware, else `<dir>/BHYVE_UEFI.fd`; when the VM has its own variables file
 *   (`<sysdir>/BHYVE_UEFI_VARS.fd`), the code-only `BHYVE_UEFI_CODE.fd` with it and
 *   `fwcfg=qemu` (bhyve(8) EXAMPLES; CBSD compile_efi_args);
 * - uefi_csm: `<dir>/BHYVE_UEFI_CSM.fd` (sysutils/uefi-edk2-bhyve-csm; newer bhyve-firmware
 *   packages no longer ship it), without variables.
 * @param opts.varsFile the VM's variables file when it exists
 */
export function firmwareFor(spec: Pick<VmSpec, 'efi'>, bhyve: Pick<BhyveSettings, 'efiFirmware'>, opts: { firmwareDir?: string; varsFile?: string } = {}): BhyveFirmware | undefined {
  const dir = opts.firmwareDir ?? UEFI_FIRMWARE_DIR;
  if (spec.efi === 'none') return undefined;
  if (spec.efi === 'uefi_csm') return { bootrom: join(dir, 'BHYVE_UEFI_CSM.fd') };
  if (opts.varsFile) return { bootrom: bhyve.efiFirmware ?? join(dir, 'BHYVE_UEFI_CODE.fd'), bootvars: opts.varsFile, fwcfg: 'qemu' };
  return { bootrom: bhyve.efiFirmware ?? join(dir, 'BHYVE_UEFI.fd') };
}

/**
 * `bhyveload` for vm_efi=none, else undefined: the guest's kernel is loaded from the first
 * disk, or from the ISO with vm_boot=cd (CBSD bstart). Same memory size as memory.size
 * (bhyve(8) -m: "This must be the same size that was given to bhyveload(8)").
 */
export function loaderArgv(spec: VmSpec, dataDir: string, console: BhyveConsole): string[] | undefined {
  if (spec.efi !== 'none') return undefined;
  const from = spec.boot === 'cd' ? spec.isoPath! : diskFile(spec.disks[0]!, dataDir);
  return ['bhyveload', '-c', console.a, '-m', memsizeArg(spec.ram), '-d', from, spec.jname];
}

/** `bhyve -k <config> <vm>`. */
export function bhyveArgv(configFile: string, vmname: string): string[] {
  return ['bhyve', '-k', configFile, vmname];
}

/** `bhyvectl --destroy --vm=<vm>` (CBSD sudoexec/bstop's order). */
export function destroyArgv(vmname: string): string[] {
  return ['bhyvectl', '--destroy', `--vm=${vmname}`];
}

/** `bhyvectl --vm=<vm> --get-stats`: exit 0 while the vmm instance exists. */
export function vmExistsArgv(vmname: string): string[] {
  return ['bhyvectl', `--vm=${vmname}`, '--get-stats'];
}

/** True for bhyvectl's message about a VM that does not exist (bhyvectl.c vm_open failure). */
export function isNoSuchVm(r: Pick<RunResult, 'exitCode' | 'stderr'>): boolean {
  return r.exitCode !== 0 && /could not be opened: No such file or directory/.test(r.stderr);
}

/** The description berth puts on its taps (the same as on its epairs: src/engines/jail.ts). */
export function tapDescription(nodename: string, jname: string): string {
  return `berth/${nodename}/${jname}`;
}

/** The bridge of a NIC: nic_parent, the node's default for `auto`, none for `0`. @throws BerthError E_BAD_VALUE */
export function bridgeOf(nic: VmNic, defaultBridge?: string): string | undefined {
  if (nic.parent === '0') return undefined;
  if (nic.parent !== 'auto') return nic.parent;
  if (!defaultBridge) throw usageError('E_BAD_VALUE', `nic_parent${nic.index}=auto, but this node has no default bridge`, { hint: `set nic_parent${nic.index}=bridge0 (the bridge the VM's tap joins)` });
  return defaultBridge;
}

/** The MTU of `ifconfig <if>` output (its first line: `... mtu 1500`). */
export function parseIfconfigMtu(text: string): number | undefined {
  const m = /\smtu (\d+)/.exec(text.split('\n')[0] ?? '');
  return m ? Number(m[1]) : undefined;
}

/**
 * Makes the taps of `nics` (step 1 of a start). A NIC with nic_mtu 0 gets its bridge's MTU
 * (if_bridge refuses members of another MTU; CBSD compile_nic_args does the same).
 * @returns the taps, in NIC order
 * @throws BerthError E_BAD_VALUE (exit 2) before any command for an unresolvable bridge;
 *   E_VNET (exit 5) when a command fails, after destroying the taps made so far
 */
export async function createTaps(nics: readonly VmNic[], ctx: { jname: string; nodename: string; defaultBridge?: string }, run: Runner = defaultRun): Promise<string[]> {
  const bridges = nics.map((n) => bridgeOf(n, ctx.defaultBridge));
  const made: string[] = [];
  try {
    for (const [i, nic] of nics.entries()) {
      const bridge = bridges[i];
      let mtu = nic.mtu;
      if (bridge) {
        const show = await run(['ifconfig', bridge], { check: false });
        if (show.exitCode !== 0) throw engineError('E_VNET', `nic_parent${nic.index}=${bridge}: no such interface on this node`, { hint: `create it (ifconfig bridge create, then rename it ${bridge}) or set nic_parent${nic.index} to an existing bridge` });
        if (!mtu) mtu = parseIfconfigMtu(show.stdout) ?? 0;
      }
      const r = await run(['ifconfig', 'tap', 'create'], { errorCode: 'E_VNET' });
      const tap = r.stdout.trim();
      if (!/^tap\d+$/.test(tap)) throw engineError('E_VNET', `ifconfig tap create printed ${JSON.stringify(tap)}, not tapN`);
      made.push(tap);
      await run(['ifconfig', tap, 'description', tapDescription(ctx.nodename, ctx.jname), ...(mtu && mtu !== 1500 ? ['mtu', String(mtu)] : []), 'up'], { errorCode: 'E_VNET' });
      if (bridge) await run(['ifconfig', bridge, 'addm', tap], { errorCode: 'E_VNET' });
    }
    return made;
  } catch (e) {
    for (const tap of made.reverse()) await run(['ifconfig', tap, 'destroy'], { check: false });
    throw e;
  }
}

/**
 * Clears a vmm instance of this VM's name before a start (step 3).
 * @param ownStale true when this node's state says its last bhyve for this env is dead (the
 *   instance, if any, is that run's leftover)
 * @throws BerthError E_VM_EXISTS (exit 5) when an instance exists that is not this node's leftover
 */
export async function clearStaleVm(vmname: string, ownStale: boolean, run: Runner = defaultRun): Promise<'none' | 'destroyed'> {
  const r = await run(vmExistsArgv(vmname), { check: false });
  if (r.exitCode !== 0) {
    if (isNoSuchVm(r)) return 'none';
    throw engineError('E_BHYVECTL', `${vmExistsArgv(vmname).join(' ')} failed with exit code ${r.exitCode}: ${(r.stderr || r.stdout).trim()}`);
  }
  if (!ownStale) {
    throw engineError('E_VM_EXISTS', `a bhyve VM named ${vmname} already exists on this host, and this node did not leave it`, {
      hint: `VM names are host-wide: another workdir may run it. If it is a leftover, remove it with: bhyvectl --destroy --vm=${vmname}`,
    });
  }
  await run(destroyArgv(vmname), { errorCode: 'E_BHYVECTL' });
  return 'destroyed';
}

/**
 * The VNC port of a start: none (vm_vnc_port=1, fbuf=0, or no UEFI: the frame buffer is a
 * UEFI GOP display), the fixed port, or the first free port of 5900-6900 (CBSD's auto range).
 * @param isFree tells whether `port` is free on `bind` (default: try to listen there)
 * @throws BerthError E_VNC_PORT (exit 5) when no port of the range is free
 */
export async function chooseVncPort(spec: Pick<VmSpec, 'vncPort' | 'efi'>, bhyve: Pick<BhyveSettings, 'fbuf' | 'vncBind'>, isFree: (port: number, bind: string) => Promise<boolean> = portIsFree): Promise<number | undefined> {
  const s = vncSetting(spec);
  if (s.kind === 'off' || !bhyve.fbuf || spec.efi === 'none') return undefined;
  if (s.kind === 'port') return s.port;
  for (let p = VNC_AUTO_RANGE[0]; p <= VNC_AUTO_RANGE[1]; p++) if (await isFree(p, bhyve.vncBind)) return p;
  throw engineError('E_VNC_PORT', `no free VNC port in ${VNC_AUTO_RANGE[0]}-${VNC_AUTO_RANGE[1]} on ${bhyve.vncBind}`, { hint: 'set vm_vnc_port to a free port, or 1 (no VNC)' });
}

/** True when a TCP listener can be opened on `bind:port` (and is closed again). */
export async function portIsFree(port: number, bind: string): Promise<boolean> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: bind, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** How a bhyve run ended and what CBSD's on_* settings say to do next. */
export interface ExitAction {
  /** bhyve(8) EXIT STATUS: 0 reboot, 1 poweroff, 2 halt, 3 triplefault, 4 error; 128+N killed */
  event: 'reboot' | 'poweroff' | 'halt' | 'triplefault' | 'error' | 'killed' | 'unknown';
  /** restart: run the VM again (bhyveload and bhyve); destroy: stop and tear down */
  action: 'restart' | 'destroy';
}

/**
 * What to do after bhyve exited with `code` (CBSD share/bhyverun.sh exit_action_mode):
 * 0 → on_reboot, 1 → on_poweroff, 2, 3, 4 and anything else → on_crash. An exit that berth
 * caused (bstop) is never restarted: the caller checks that first.
 */
export function exitAction(code: number, spec: Pick<VmSpec, 'onReboot' | 'onPoweroff' | 'onCrash'>): ExitAction {
  const events: ExitAction['event'][] = ['reboot', 'poweroff', 'halt', 'triplefault', 'error'];
  const event: ExitAction['event'] = events[code] ?? (code >= 128 ? 'killed' : 'unknown');
  const action = code === 0 ? spec.onReboot : code === 1 ? spec.onPoweroff : spec.onCrash;
  return { event, action };
}

/** Process operations of {@link stopBhyve} (injectable for tests). */
export interface StopDeps {
  /** sends `signal` to `pid` (default process.kill; a missing process is not an error) */
  signal(pid: number, signal: 'SIGTERM' | 'SIGKILL'): void;
  /** true while `pid` exists */
  alive(pid: number): boolean;
  /** waits `ms` milliseconds */
  sleep(ms: number): Promise<void>;
}

const processDeps: StopDeps = {
  signal(pid, sig) { try { process.kill(pid, sig); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e; } },
  alive(pid) { try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; } },
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

/** What {@link stopBhyve} did. */
export interface StopResult {
  /** gone: bhyve was not running; acpi: the guest powered off; killed: SIGKILL after the timeout */
  how: 'gone' | 'acpi' | 'killed';
  /** SIGTERMs sent (power button presses) */
  presses: number;
}

/**
 * Stops the bhyve process `pid` as CBSD's bstop does: SIGTERM, then up to `timeoutSec` times
 * wait one second for it to exit, pressing again each time with `doubleAcpi`; then SIGKILL
 * and wait for it to go. The vmm instance stays: {@link teardownBhyve} destroys it.
 * The caller must know `pid` is its bhyve (see {@link bhyvePidMatches}).
 * @throws BerthError E_BHYVE_STOP (exit 5) when the process survives SIGKILL for 10 s
 */
export async function stopBhyve(pid: number, opts: { timeoutSec: number; doubleAcpi: boolean }, deps: StopDeps = processDeps): Promise<StopResult> {
  if (!deps.alive(pid)) return { how: 'gone', presses: 0 };
  const gone = async (ms: number) => {
    for (let t = 0; t < ms; t += 50) {
      if (!deps.alive(pid)) return true;
      await deps.sleep(50);
    }
    return !deps.alive(pid);
  };
  deps.signal(pid, 'SIGTERM');
  let presses = 1;
  for (let i = 0; i < opts.timeoutSec; i++) {
    if (await gone(1000)) return { how: 'acpi', presses };
    if (opts.doubleAcpi && i < opts.timeoutSec - 1) { deps.signal(pid, 'SIGTERM'); presses++; }
  }
  if (!deps.alive(pid)) return { how: 'acpi', presses };
  await debug({ pid, timeoutSec: opts.timeoutSec, presses }, 'bhyve did not power off via ACPI: SIGKILL');
  deps.signal(pid, 'SIGKILL');
  if (!(await gone(10_000))) throw engineError('E_BHYVE_STOP', `bhyve (pid ${pid}) is still running 10 s after SIGKILL`);
  return { how: 'killed', presses };
}

/** `ps` arguments that print the command of `pid` (FreeBSD: bhyve's title is `bhyve: <vm>`). */
export function psArgv(pid: number): string[] {
  return ['ps', '-ww', '-o', 'command=', '-p', String(pid)];
}

/**
 * True when a `ps -o command=` line shows the title bhyve sets once its devices are up
 * (bhyverun.c setproctitle: `bhyve: <vm>`; CBSD check_for_bhyve_process looks for it).
 */
export function bhyveTitleIs(command: string, vmname: string): boolean {
  const c = command.trim();
  return c === `bhyve: ${vmname}` || c.startsWith(`bhyve: ${vmname} `);
}

/** True when a `ps -o command=` line is the bhyve of `vmname`: its title, or (still starting) a bhyve command line ending in the name. */
export function bhyvePidMatches(command: string, vmname: string): boolean {
  const c = command.trim();
  if (bhyveTitleIs(c, vmname)) return true;
  const argv = c.split(/\s+/);
  return argv.some((a) => /(^|\/)bhyve$/.test(a)) && argv[argv.length - 1] === vmname;
}

/** What {@link teardownBhyve} did. */
export interface TeardownResult {
  /** the vmm instance was destroyed now (false: it was already gone) */
  destroyed: boolean;
  /** taps destroyed */
  taps: string[];
  /** taps left alone: gone already, or not berth's for this VM any more */
  skipped: string[];
}

/**
 * Tears a VM down after its bhyve ended (or never started): destroys the vmm instance and
 * the taps of `state` that still carry berth's description for this VM (a tap number reused
 * by someone else is left alone). Idempotent.
 * @param opts.destroyVm false when the vmm instance of that name is not this node's (a start
 *   that failed before it checked: the instance may be another workdir's VM)
 * @throws BerthError E_BHYVE_TEARDOWN (exit 5) listing what failed, after trying everything
 */
export async function teardownBhyve(state: Pick<BhyveState, 'taps'>, ctx: { jname: string; nodename: string }, run: Runner = defaultRun, opts: { destroyVm?: boolean } = {}): Promise<TeardownResult> {
  const problems: string[] = [];
  const out: TeardownResult = { destroyed: false, taps: [], skipped: [] };
  if (opts.destroyVm ?? true) {
    const d = await run(destroyArgv(ctx.jname), { check: false });
    if (d.exitCode === 0) out.destroyed = true;
    else if (!isNoSuchVm(d)) problems.push(`${destroyArgv(ctx.jname).join(' ')}: exit ${d.exitCode}: ${(d.stderr || d.stdout).trim()}`);
  }
  const desc = `description: ${tapDescription(ctx.nodename, ctx.jname)}`;
  for (const tap of state.taps) {
    const show = await run(['ifconfig', tap], { check: false });
    if (show.exitCode !== 0 || !show.stdout.split('\n').some((l) => l.trim() === desc)) {
      out.skipped.push(tap);
      continue;
    }
    const r = await run(['ifconfig', tap, 'destroy'], { check: false });
    if (r.exitCode === 0) out.taps.push(tap);
    else problems.push(`ifconfig ${tap} destroy: exit ${r.exitCode}: ${(r.stderr || r.stdout).trim()}`);
  }
  if (problems.length) throw engineError('E_BHYVE_TEARDOWN', `teardown of ${ctx.jname} left: ${problems.join('; ')}`, { details: { ...out } });
  return out;
}

/**
 * The cloud-init seed ISO from a NoCloud directory (user-data, meta-data, network-config) on
 * FreeBSD, as CBSD bstart makes it: `makefs -t cd9660 -o label=cidata -o isolevel=2 -o rockridge`.
 */
export function seedIsoArgv(dir: string, iso: string): string[] {
  return ['makefs', '-t', 'cd9660', '-o', 'label=cidata', '-o', 'isolevel=2', '-o', 'rockridge', iso, dir];
}

/**
 * Refuses a live migration of a bhyve VM: upstream FreeBSD bhyve cannot send a running guest
 * (CBSD's bmigrate needs out-of-tree "warm migration" patches: bhyve -R, bhyvectl --migrate).
 * @throws BerthError E_NO_LIVE_MIGRATION (exit 2), always
 */
export function refuseLiveMigration(jname: string): never {
  throw new BerthError('E_NO_LIVE_MIGRATION', `${jname} is a bhyve VM, and bhyve has no live migration (FreeBSD's bhyve cannot move a running guest)`, EXIT.USAGE, {
    hint: `move it stopped: berth jmigrate jname=${jname} dst=<node> (without live=1: the disk stays on the shared storage, nothing is copied)`,
  });
}
