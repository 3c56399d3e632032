/**
 * The bhyve engine (FreeBSD; verified by command transcripts against the fakes of
 * test/helpers/fakebsd, never run on a FreeBSD host): engine contract v2
 * (src/engines/types.ts) over the steps of run.ts and the plans of plan.ts.
 *
 * - create (bcreate): the VM's disk images in its data dir, as CBSD's bcreate with
 *   imgtype=md (subr/virtual.subr virtual_create_dsk: `touch`, then `dd if=/dev/zero bs=1m
 *   count=0 seek=<MiB>`: a sparse file): berth runs `truncate -s <bytes>` (FreeBSD truncate(1),
 *   the same sparse file, any size in bytes) on a new mode-0600 file beside the target, then
 *   links it into place, so an existing disk is never overwritten (E_DISK_EXISTS). The first
 *   disk `dsk1.vhd` gets imgsize (10g when 0, CBSD's small1); further rows inside the data dir
 *   get their dsk_sizeN. UEFI VMs get their own variables file `<sysdir>/BHYVE_UEFI_VARS.fd`
 *   copied from the ports' template when it is installed (CBSD bcreate), so boot entries
 *   persist. A failed create removes the disks it made.
 * - start (bstart): with `ci_*` keys, the cloud-init NoCloud seed as CBSD's bstart makes it:
 *   `meta-data`, `user-data`, `network-config` (src/engines/qemu/cloudinit.ts cloudInitFiles:
 *   CBSD's templates) written to `<sysdir>/cloud-init/`, then `makefs -t cd9660 -o label=cidata
 *   -o isolevel=2 -o rockridge <sysdir>/.seed.iso.new <sysdir>/cloud-init` renamed to
 *   `<sysdir>/seed.iso`, attached as a read-only AHCI CD (made again at every start, as CBSD);
 *   then run.ts startBhyve: a leftover of this node's last run torn down
 *   (`bhyvectl --destroy`, taps), taps on the bridge, the bhyve_config(5) file,
 *   `bhyvectl --get-stats` (no other vmm instance of the name), `bhyveload` for vm_efi=none
 *   (else lpc.bootrom in the config), `bhyve -k <config> <vm>` in the background.
 * - stop (bstop): CBSD sudoexec/bstop: SIGTERM (the ACPI power button), each second up to
 *   the stop timeout, again with double_acpi=1, then SIGKILL. `bhyvectl --force-poweroff` is
 *   not used: it is a hard power-off, not a request the guest can honour.
 * - cleanup (the lifecycle's teardown, once however bhyve ended): `bhyvectl --destroy
 *   --vm=<vm>` (the vmm instance outlives bhyve), then the taps berth made for this VM.
 * - isRunning: the state's pid is still this VM's bhyve (`ps`).
 * - console: the user's side of the VM's nmdm(4) pair (`cu -l /dev/nmdm-<vm>-1B`).
 * - doctor: the tools on PATH, the vmm module (`kldstat -q -m vmm`), the UEFI firmware.
 * No exec (a VM has no jexec) and no live migration (see info.ts).
 *
 * A guest reboot makes bhyve exit 0; CBSD's bhyverun.sh loop then runs it again
 * (on_reboot=restart). That loop (run.ts restartBhyve) is not driven by the lifecycle's run
 * monitor yet: the VM ends and is torn down.
 */
import { accessSync, constants, lstatSync, statSync } from 'node:fs';
import { copyFile, link, mkdir, open, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { EnvConf } from '../../descriptor.js';
import { BerthError, EXIT, engineError, usageError } from '../../errors.js';
import { notRootOnly } from '../../hooks.js';
import { run as defaultRun } from '../../proc.js';
import type { Workdir } from '../../paths.js';
import type { ConsoleEndpoint, Engine, EngineCheck, EngineEnv, StartResult } from '../types.js';
import { DEFAULT_IMGSIZE, VM_SETTINGS } from '../vm/settings.js';
import { diskFile, freshHwaddrs, normalizeVmConf, parseVmSpec, type VmSpec } from '../vm/spec.js';
import { cloudInitFiles, resolvePubkeys } from '../qemu/cloudinit.js';
import { bhyveInfo } from './info.js';
import { UEFI_FIRMWARE_DIR, UEFI_VARS_FILE, consoleOf, seedIsoArgv, validateBhyveSpec, type Runner, type StopDeps } from './plan.js';
import { bhyveIsRunning, readBhyveState, startBhyve, stopBhyveVm, teardownBhyveVm, type BhyveRunDeps, type BhyveVmContext } from './run.js';
import { BHYVE_SETTINGS, parseBhyveSettings } from './settings.js';

/** Options of a {@link BhyveEngine} (all default to the real ones). */
export interface BhyveEngineOptions {
  /** where the ports install the UEFI firmware (default /usr/local/share/uefi-firmware) */
  firmwareDir?: string;
  /** the bridge of NICs with nic_parent=auto (default: none: such a NIC is refused at start) */
  defaultBridge?: string;
  /** the command runner (default src/proc.ts run) */
  run?: Runner;
  /** the start's injectable parts (run.ts) */
  startDeps?: BhyveRunDeps;
  /** the stop's process operations (plan.ts stopBhyve) */
  stopDeps?: StopDeps;
}

/** Keys whose values name files on the host that bhyve opens as root. */
function hostPathKeys(conf: EnvConf): string[] {
  return Object.keys(conf).filter((k) => {
    const v = conf[k] ?? '';
    if (/^dsk_path[1-9]\d*$/.test(k)) return v.startsWith('/');
    return (k === 'vm_iso_path' || k === 'efi_firmware') && v.startsWith('/');
  });
}

export class BhyveEngine implements Engine {
  readonly info = bhyveInfo;
  readonly name = 'bhyve';
  /** the monitor's check runs `ps`: once a second */
  readonly monitorIntervalMs = 1000;

  constructor(private readonly opts: BhyveEngineOptions = {}) {}

  private get run(): Runner { return this.opts.run ?? defaultRun; }

  private ctx(env: EngineEnv, seedIso?: string): BhyveVmContext {
    return { wd: env.wd, jname: env.jname, nodename: env.nodename, conf: env.conf, paths: env.paths, defaultBridge: this.opts.defaultBridge, firmwareDir: this.opts.firmwareDir, seedIso };
  }

  /**
   * The cloud-init seed of a start (see the file's docstring). @returns the ISO
   * @throws BerthError E_BAD_VALUE (2: a ci_user_pubkey file that cannot be read), E_SEED_ISO (5: makefs failed)
   */
  private async makeSeed(env: EngineEnv, spec: VmSpec): Promise<string> {
    const files = cloudInitFiles(spec, resolvePubkeys(spec.cloudInit!, env.wd.root));
    const dir = join(env.paths.sysdir, 'cloud-init');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text, { mode: 0o600 });
    const iso = join(env.paths.sysdir, 'seed.iso');
    const tmp = join(env.paths.sysdir, '.seed.iso.new');
    try {
      await this.run(seedIsoArgv(dir, tmp), { errorCode: 'E_SEED_ISO', errorExit: EXIT.ENGINE });
      await rename(tmp, iso);
    } finally {
      await rm(tmp, { force: true });
    }
    return iso;
  }

  /** The VM of `conf` as bhyve runs it. @throws BerthError E_BAD_VALUE (exit 2) */
  private spec(conf: EnvConf, jname = conf.jname ?? ''): VmSpec {
    const norm = normalizeVmConf(conf, 'bhyve');
    const spec = parseVmSpec({ ...norm, jname, emulator: 'bhyve' });
    parseBhyveSettings(norm);
    validateBhyveSpec(spec);
    return spec;
  }

  /**
   * Checks the VM's settings together: each key as bhyve reads it (rows and cloud-init keys
   * included), then the cross-key rules (vm_boot=cd needs vm_iso_path; bhyveload boots
   * FreeBSD only; raw disks only; a name vmm takes).
   * @throws BerthError E_BAD_VALUE (exit 2) naming key and value
   */
  validate(conf: EnvConf): void {
    this.spec(conf, conf.jname || 'vm');
  }

  /**
   * A descriptor adopted from (shared) storage may make this host's bhyve open host files as
   * root (an absolute dsk_pathN such as /dev/ada0, vm_iso_path, efi_firmware): only from a
   * file that only root can change.
   * @throws BerthError E_DESCRIPTOR_UNSAFE (exit 1) naming the file and the keys
   */
  checkAdopted(file: string, conf: EnvConf): void {
    const keys = hostPathKeys(conf);
    if (!keys.length) return;
    const st = statSync(file);
    const unsafe = notRootOnly(st);
    if (!unsafe) return;
    throw new BerthError('E_DESCRIPTOR_UNSAFE', `refusing to adopt ${file}: it sets ${keys.join(', ')}, host paths bhyve opens as root, and ${unsafe.why}`, EXIT.FAILURE, {
      hint: `check those paths; if you trust them: chown root ${file} && chmod go-w ${file}`, details: { rcfile: file, keys, uid: st.uid },
    });
  }

  /**
   * bcreate: the VM's disk images (see the file's docstring), and their `dsk_*N` rows added
   * to `env.conf` (for the descriptor), with every bhyve column's default that was not given
   * (CBSD's descriptor has them all; stop_timeout=30 as CBSD bstop). Nothing is overwritten; on failure the disks made here
   * are removed and `env.conf` is unchanged.
   * @throws BerthError E_BAD_BASE (exit 2) for a base tree (a bhyve disk is made empty;
   *   install the guest from vm_iso_path); E_BAD_VALUE (2); E_DISK_EXISTS (1); E_DISK_CREATE (5)
   */
  /** A clone gets MAC addresses of its own (src/engines/vm/spec.ts freshHwaddrs). */
  cloneConf(conf: EnvConf): void {
    freshHwaddrs(conf);
  }

  async create(env: EngineEnv, input: { baseDir?: string }): Promise<void> {
    const spec = this.spec(env.conf, env.jname);
    if (input.baseDir) {
      throw usageError('E_BAD_BASE', `a bhyve VM is not made from a base tree (${input.baseDir}): berth makes its disk empty`, {
        hint: 'give imgsize= (e.g. imgsize=10g) and install the guest from an ISO: vm_boot=cd vm_iso_path=/path/to/FreeBSD-disc1.iso',
      });
    }
    const todo: { file: string; size: number; disk: VmSpec['disks'][number] }[] = [];
    for (const d of spec.disks) {
      if (d.path.startsWith('/')) continue; // a host device or file the user gave: not ours to make
      const size = d.index === 1 ? spec.imgsize || DEFAULT_IMGSIZE : d.size;
      const file = diskFile(d, env.paths.data);
      if (!size) throw usageError('E_BAD_VALUE', `disk ${d.index} (dsk_path${d.index}=${d.path}) has no size`, { hint: `set dsk_size${d.index}=10g` });
      if (!Number.isSafeInteger(size) || size % 512 !== 0) throw usageError('E_BAD_VALUE', `bad size ${size} of disk ${d.index} (${d.path}): expected a positive multiple of 512 bytes`);
      if (exists(file)) throw new BerthError('E_DISK_EXISTS', `${file} already exists; berth never overwrites a disk`, EXIT.FAILURE, { hint: 'remove it first if it is really not needed' });
      todo.push({ file, size, disk: d });
    }
    const made: string[] = [];
    try {
      for (const { file, size } of todo) {
        await mkdir(dirname(file), { recursive: true });
        const tmp = join(dirname(file), `.${basename(file)}.new`);
        await rm(tmp, { force: true });
        await (await open(tmp, 'wx', 0o600)).close();
        try {
          await this.run(['truncate', '-s', String(size), tmp], { errorCode: 'E_DISK_CREATE' });
          await link(tmp, file).catch((e: NodeJS.ErrnoException) => {
            if (e.code === 'EEXIST') throw new BerthError('E_DISK_EXISTS', `${file} already exists; berth never overwrites a disk`, EXIT.FAILURE);
            throw e;
          });
        } finally {
          await rm(tmp, { force: true });
        }
        made.push(file);
      }
      if (spec.efi === 'uefi') {
        const template = join(this.opts.firmwareDir ?? UEFI_FIRMWARE_DIR, UEFI_VARS_FILE);
        const vars = join(env.paths.sysdir, UEFI_VARS_FILE);
        if (exists(template) && !exists(vars)) {
          await mkdir(env.paths.sysdir, { recursive: true });
          await copyFile(template, vars);
          made.push(vars);
        }
      }
    } catch (e) {
      for (const f of made.reverse()) await rm(f, { force: true });
      throw e;
    }
    // the rows of the disks made, as CBSD's descriptor has them (jmkrcconf: dsk_controllerN
    // dsk_pathN dsk_slotN dsk_typeN), with their size, in stored form: the lifecycle writes them into the descriptor
    // every bhyve column with its default, as CBSD's descriptor has them (and stop_timeout=30:
    // CBSD bstop's hard_timeout; the lifecycle's own default is 10)
    for (const [k, v] of Object.entries(bhyveDefaults())) env.conf[k] ??= v;
    for (const { disk: d, size } of todo) {
      const row = { controller: d.controller, path: d.path, slot: String(d.slot), type: d.type, size: String(size) };
      for (const [c, v] of Object.entries(row)) env.conf[`dsk_${c}${d.index}`] = v;
    }
  }

  /**
   * bstart: see run.ts startBhyve. Everything the start made is undone when it fails.
   * @returns jid: bhyve's pid
   * @throws BerthError E_BAD_VALUE (2); E_SEED_ISO, E_BHYVE_RUNNING, E_VM_EXISTS, E_VNET, E_BHYVELOAD, E_BHYVE_START (5)
   */
  async start(env: EngineEnv): Promise<StartResult> {
    const spec = this.spec(env.conf, env.jname);
    // the seed of a running VM is not remade under it (startBhyve refuses the start too)
    if (await bhyveIsRunning(env, this.run)) throw engineError('E_BHYVE_RUNNING', `bhyve ${env.jname} is already running`);
    const seedIso = spec.cloudInit ? await this.makeSeed(env, spec) : undefined;
    const s = await startBhyve(this.ctx(env, seedIso), { run: this.opts.run, ...this.opts.startDeps });
    return { jid: s.pid };
  }

  /** bstop: SIGTERM (ACPI), double_acpi presses, SIGKILL after `timeoutSec`; returns when bhyve is gone. Idempotent. */
  async stop(env: EngineEnv, timeoutSec: number): Promise<void> {
    await stopBhyveVm(this.ctx(env), timeoutSec, { run: this.opts.run, stop: this.opts.stopDeps });
  }

  /** True while bhyve `jid` is this VM's bhyve and this node's state still names it. */
  async isRunning(env: EngineEnv, jid: number): Promise<boolean> {
    const st = await readBhyveState(env);
    if (st?.pid !== jid) return false;
    return bhyveIsRunning(env, this.run);
  }

  /** `bhyvectl --destroy`, the taps, the config and state files (run.ts teardownBhyveVm). Idempotent. */
  async cleanup(env: EngineEnv): Promise<void> {
    await teardownBhyveVm(this.ctx(env), this.run);
  }

  /**
   * doctor: bhyve, bhyvectl and bhyveload on PATH, the vmm module loaded (`kldstat -q -m vmm`),
   * and whether the UEFI firmware (for vm_efi=uefi) is installed. A missing tool or module is a
   * warn (no VM can start), missing firmware a note in the detail.
   */
  async doctor(_wd: Workdir): Promise<EngineCheck> {
    const missing = ['bhyve', 'bhyvectl', 'bhyveload'].filter((t) => !onPath(t));
    const vmm = (await this.run(['kldstat', '-q', '-m', 'vmm'], { check: false }).catch(() => ({ exitCode: 127 }))).exitCode === 0;
    const fwDir = this.opts.firmwareDir ?? UEFI_FIRMWARE_DIR;
    const fw = exists(join(fwDir, 'BHYVE_UEFI.fd'));
    const problems = [...(missing.length ? [`${missing.join(', ')} not found on PATH`] : []), ...(vmm ? [] : ['the vmm module is not loaded (kldload vmm; vmm_load="YES" in /boot/loader.conf)'])];
    const fwNote = fw ? `UEFI firmware in ${fwDir}` : `no UEFI firmware in ${fwDir} (vm_efi=uefi VMs need pkg install edk2-bhyve)`;
    return problems.length
      ? { status: 'warn', detail: `bhyve VMs cannot start: ${problems.join('; ')}; ${fwNote}`, data: { missing, vmm, firmware: fw } }
      : { status: 'ok', detail: `bhyve ready (vmm loaded); ${fwNote}`, data: { missing, vmm, firmware: fw } };
  }

  /** The serial console: the user's side of the VM's nmdm pair (bhyve holds the A side). */
  async console(env: EngineEnv): Promise<ConsoleEndpoint> {
    const c = consoleOf(env.jname);
    return { kind: 'tty', path: c.b, attach: c.attach };
  }
}

/** The defaults bcreate writes into the descriptor: the VM keys bhyve takes (not the bcreate-only imgsize, imgtype) and the bhyve columns. */
function bhyveDefaults(): Record<string, string> {
  const skip = new Set(['vm_kernel', 'vm_cmdline', 'imgsize', 'imgtype']);
  return Object.fromEntries([...VM_SETTINGS, ...BHYVE_SETTINGS].filter((d) => !skip.has(d.key)).map((d) => [d.key, d.defaults.bhyve]));
}

/** True when `tool` is an executable file in a directory of PATH. */
function onPath(tool: string): boolean {
  return (process.env.PATH ?? '').split(':').filter(Boolean).some((d) => { try { accessSync(join(d, tool), constants.X_OK); return true; } catch { return false; } });
}

function exists(file: string): boolean {
  try { lstatSync(file); return true; } catch { return false; }
}
