/**
 * The qemu command line of a VM: a pure function of its {@link VmSpec}, the node's paths and
 * the accelerator probe. Nothing here touches disk or network.
 *
 * What it builds (QEMU 7.2, qemu-system-x86_64(1); the choices follow Incus's driver_qemu.go):
 * - `-nodefaults -no-user-config -name guest=<vm>,process=qemu:<vm> [-uuid <uuid>]
 *   -machine q35 -accel kvm|tcg -m <vm_ram>B -smp <vm_cpus> -display none`;
 * - QMP on a unix socket (`var/run/qemu/<vm>.qmp`), the serial console as a socket chardev
 *   (`var/run/qemu/<vm>.console`, one client at a time) that also logs every byte the guest
 *   writes to `var/log/<vm>.console.log`;
 * - VNC on 127.0.0.1 (display = port - 5900) with a websocket port for noVNC; a std VGA,
 *   an XHCI controller and a USB tablet come with it; `password=on` when vnc_password is set
 *   (the password itself is set through QMP `change-vnc-password`, never on the command line);
 * - disks as `-drive file=...,format=raw|qcow2,if=none,cache=none,discard=unmap` plus a
 *   device per controller (virtio-blk-pci, ide-hd on the q35 AHCI, nvme): cache=none because
 *   a disk on shared storage must not sit in this node's page cache (libvirt refuses live
 *   migration otherwise). The `-device` form rather than `if=virtio` gives each disk a
 *   `bootindex`, which OVMF and the cd/hdd/net order need;
 * - `-kernel/-initrd/-append` for direct kernel boot (vm_kernel), an ide-cd with the ISO
 *   for vm_boot=cd, the NoCloud seed ISO as a read-only virtio disk (the Debian cloud kernel
 *   has virtio but no AHCI driver), OVMF pflash for vm_efi=uefi (uefi_csm: SeaBIOS, as QEMU's
 *   OVMF has no CSM), taps for NICs (`-netdev tap,ifname=<tap>,script=no,downscript=no`; the
 *   taps themselves are made by the caller);
 * - `-incoming defer -S` for the receiving side of a live migration (it listens when told
 *   with QMP `migrate-incoming`, and stays paused until `cont`); `-pidfile`; `-daemonize`.
 * - CBSD's on_poweroff/on_reboot/on_crash: on_reboot=destroy is `-action reboot=shutdown` (the
 *   guest's reboot ends qemu, and the run monitor tears the run down); on_poweroff=restart is
 *   `-action shutdown=pause` (qemu stays, the guest halted in state `shutdown`); a pvpanic
 *   device with `-action panic=pause` for on_crash=restart (state `guest-panicked`) or
 *   `panic=shutdown` for destroy. A VM halted that way is found by the run monitor on a second
 *   QMP socket of its own (`var/run/qemu/<vm>.watch`, so that it never waits behind a bstop
 *   or a migration on the first), which powers it on again (src/lifecycle/guest-end.ts).
 */
import { join } from 'node:path';
import { BerthError, EXIT } from '../../errors.js';
import type { Workdir } from '../../paths.js';
import { diskFile, type VmSpec } from '../vm/spec.js';
import { KERNEL_CMDLINE } from './kernel.js';

/** The qemu binary berth runs. */
export const QEMU_BINARY = 'qemu-system-x86_64';

/** Longest unix socket path (sun_path is 108 bytes with the NUL). */
export const UNIX_PATH_MAX = 107;

/** Node-local files of a running VM. */
export interface QemuRunPaths {
  /** QMP socket: var/run/qemu/<vm>.qmp */
  qmpSocket: string;
  /** serial console socket: var/run/qemu/<vm>.console */
  consoleSocket: string;
  /** serial console log: var/log/<vm>.console.log */
  consoleLog: string;
  /** the run monitor's QMP socket (VMs with on_poweroff or on_crash restart): var/run/qemu/<vm>.watch */
  watchSocket?: string;
  /** qemu's pid file: var/run/qemu/<vm>.pid */
  pidFile: string;
  /** qemu's own messages (start-up errors): var/log/<vm>.qemu.log */
  qemuLog: string;
  /** where a live migration's destination qemu listens for the state: var/run/qemu/<vm>.migrate
   * (the agent relays the migration channel to it, src/agent/stream.ts); qemuRunPaths sets it */
  migrateSocket?: string;
}

/**
 * The node-local paths of a VM (see {@link QemuRunPaths}).
 * @throws BerthError E_SOCKET_PATH (exit 1) when a socket path would exceed 107 bytes
 */
export function qemuRunPaths(wd: Workdir, jname: string): QemuRunPaths {
  const run = join(wd.runDir, 'qemu');
  const p: QemuRunPaths = {
    qmpSocket: join(run, `${jname}.qmp`),
    consoleSocket: join(run, `${jname}.console`),
    watchSocket: join(run, `${jname}.watch`),
    consoleLog: join(wd.logDir, `${jname}.console.log`),
    pidFile: join(run, `${jname}.pid`),
    qemuLog: join(wd.logDir, `${jname}.qemu.log`),
    migrateSocket: join(run, `${jname}.migrate`),
  };
  for (const s of [p.qmpSocket, p.consoleSocket, p.watchSocket!, p.migrateSocket!]) {
    if (Buffer.byteLength(s) > UNIX_PATH_MAX) {
      throw new BerthError('E_SOCKET_PATH', `the socket path ${s} is longer than ${UNIX_PATH_MAX} bytes (the unix socket limit)`, EXIT.FAILURE, {
        hint: 'use a shorter workdir path or a shorter jname',
      });
    }
  }
  return p;
}

/** What the accelerator probe found (src/engines/qemu/accel.ts). */
export interface AccelChoice {
  accel: 'kvm' | 'tcg';
}

/** Firmware files for vm_efi=uefi. */
export interface UefiFiles {
  /** read-only OVMF code, e.g. /usr/share/OVMF/OVMF_CODE_4M.fd */
  code: string;
  /** this VM's writable copy of the OVMF variable store (kept in its sysdir, so it moves with the VM) */
  vars: string;
}

/** Everything else {@link buildQemuArgv} needs, resolved by the caller. */
export interface QemuArgvInput {
  spec: VmSpec;
  /** the env's data dir (relative dsk_path values are under it) */
  dataDir: string;
  run: QemuRunPaths;
  accel: AccelChoice;
  /** vm_kernel resolved: the kernel base's files */
  kernel?: { vmlinuz: string; initrd: string };
  /** the cloud-init NoCloud seed ISO (when spec.cloudInit) */
  seedIso?: string;
  /** for vm_efi=uefi */
  uefi?: UefiFiles;
  /** the VNC port and its websocket port (omit when VNC is off) */
  vnc?: { port: number; websocketPort: number };
  /** one tap name per NIC row, in row order */
  taps?: string[];
  /** the receiving side of a live migration: `-incoming defer -S` */
  incoming?: boolean;
  /** add `-daemonize` (qemu returns once it runs, or fails with its message) */
  daemonize?: boolean;
  /** the qemu binary (default {@link QEMU_BINARY}) */
  binary?: string;
  /**
   * The `file=` value of disk N (by its dsk row index) when it is not a file (a dsk_path under
   * the data dir or absolute): an RBD image, src/storage/rbd.ts qemuRbdFile. Commas are doubled here.
   */
  diskFiles?: Record<number, string>;
}

const MODEL: Record<string, string> = { vtnet: 'virtio-net-pci', e1000: 'e1000' };

/** Escapes a value for QEMU's `key=value,...` option syntax (a comma is doubled). */
export function qemuOptValue(v: string): string {
  return v.replace(/,/g, ',,');
}

/**
 * True when qemu holds the VM's guest halted at its end instead of exiting (on_poweroff=restart
 * or on_crash=restart), so that the run monitor powers it on again through its watch socket.
 */
export function watchesGuest(spec: Pick<VmSpec, 'onPoweroff' | 'onCrash'>): boolean {
  return spec.onPoweroff === 'restart' || spec.onCrash === 'restart';
}

/**
 * Builds the qemu argv (argv[0] is the binary).
 * @throws BerthError E_QEMU_ARGV (exit 5) when the input is incomplete: a NIC without a tap,
 *   vm_kernel without kernel files, cloud-init without a seed ISO, uefi without firmware
 */
export function buildQemuArgv(input: QemuArgvInput): string[] {
  const { spec, run } = input;
  const need = (ok: unknown, what: string) => {
    if (!ok) throw new BerthError('E_QEMU_ARGV', `cannot start ${spec.jname}: ${what}`, EXIT.ENGINE);
  };
  const o = qemuOptValue;
  const a: string[] = [input.binary ?? QEMU_BINARY,
    '-nodefaults', '-no-user-config',
    '-name', `guest=${o(spec.jname)},process=qemu:${o(spec.jname)}`,
  ];
  if (spec.uuid) a.push('-uuid', spec.uuid);
  a.push('-machine', 'q35', '-accel', input.accel.accel, '-m', `${spec.ram}B`, '-smp', String(spec.cpus), '-display', 'none');
  a.push('-qmp', `unix:${o(run.qmpSocket)},server=on,wait=off`);
  a.push('-chardev', `socket,id=console0,path=${o(run.consoleSocket)},server=on,wait=off,logfile=${o(run.consoleLog)},logappend=on`, '-serial', 'chardev:console0');
  if (input.vnc) {
    const display = input.vnc.port - 5900;
    need(display >= 0 && display <= 59635, `VNC port ${input.vnc.port} is below 5900 (qemu listens on 5900 + display)`);
    a.push('-vnc', `127.0.0.1:${display},websocket=127.0.0.1:${input.vnc.websocketPort}${spec.vncPassword ? ',password=on' : ''}`);
    a.push('-device', 'VGA', '-device', 'qemu-xhci,id=xhci0', '-device', 'usb-tablet,bus=xhci0.0');
  }
  if (spec.efi === 'uefi') {
    need(input.uefi, 'vm_efi=uefi needs the OVMF firmware (apt-get install ovmf)');
    a.push('-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${o(input.uefi!.code)}`, '-drive', `if=pflash,format=raw,unit=1,file=${o(input.uefi!.vars)}`);
  }
  if (spec.kernel) {
    need(input.kernel, `vm_kernel=${spec.kernel} is not resolved to a kernel and an initrd`);
    a.push('-kernel', input.kernel!.vmlinuz, '-initrd', input.kernel!.initrd, '-append', [KERNEL_CMDLINE, spec.cmdline].filter(Boolean).join(' '));
  }
  // boot order: cd first for vm_boot=cd, the first NIC for net, else the first disk
  let boot = 1;
  const bootIndex = (first: boolean) => (first ? 0 : boot++);
  if (spec.boot === 'cd') {
    a.push('-drive', `file=${o(spec.isoPath!)},format=raw,if=none,id=cd0,media=cdrom,readonly=on`, '-device', `ide-cd,drive=cd0,bus=ide.0,bootindex=${bootIndex(true)}`);
  }
  let ide = 1;
  for (const d of spec.disks) {
    const id = `dsk${d.index}`;
    a.push('-drive', `file=${o(input.diskFiles?.[d.index] ?? diskFile(d, input.dataDir))},format=${d.format},if=none,id=${id},cache=none,discard=unmap`);
    const bi = spec.boot === 'hdd' && !spec.kernel ? `,bootindex=${bootIndex(false)}` : '';
    if (d.controller === 'ahci-hd') a.push('-device', `ide-hd,drive=${id},bus=ide.${ide++}${bi}`);
    else if (d.controller === 'nvme') a.push('-device', `nvme,drive=${id},serial=${id}${bi}`);
    else a.push('-device', `virtio-blk-pci,drive=${id},id=vd${d.index}${bi}`);
  }
  if (spec.cloudInit) {
    need(input.seedIso, 'the cloud-init seed ISO is not made');
    a.push('-drive', `file=${o(input.seedIso!)},format=raw,if=none,id=seed0,readonly=on`, '-device', 'virtio-blk-pci,drive=seed0,id=seed0dev');
  }
  const taps = input.taps ?? [];
  need(taps.length >= spec.nics.length, `${spec.nics.length} NIC(s) but ${taps.length} tap(s)`);
  spec.nics.forEach((n, i) => {
    need(n.hwaddr, `nic_hwaddr${n.index} is 0: give the NIC a MAC address first`);
    const id = `net${n.index}`;
    a.push('-netdev', `tap,id=${id},ifname=${o(taps[i]!)},script=no,downscript=no`);
    const bi = spec.boot === 'net' && i === 0 ? `,bootindex=${bootIndex(true)}` : '';
    a.push('-device', `${MODEL[n.driver]},netdev=${id},mac=${n.hwaddr}${n.mtu && n.driver === 'vtnet' ? `,host_mtu=${n.mtu}` : ''}${bi}`);
  });
  // the guest's end (see the module comment): a halted guest is powered on again by the run monitor
  if (watchesGuest(spec)) {
    need(run.watchSocket, 'on_poweroff=restart or on_crash=restart needs the watch socket');
    a.push('-qmp', `unix:${o(run.watchSocket!)},server=on,wait=off`);
  }
  a.push('-device', 'pvpanic', '-action', `panic=${spec.onCrash === 'restart' ? 'pause' : 'shutdown'}`);
  if (spec.onReboot === 'destroy') a.push('-action', 'reboot=shutdown');
  if (spec.onPoweroff === 'restart') a.push('-action', 'shutdown=pause');
  if (input.incoming) a.push('-incoming', 'defer', '-S');
  a.push('-pidfile', run.pidFile);
  if (input.daemonize) a.push('-daemonize');
  return a;
}
