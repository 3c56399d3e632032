/**
 * The bhyve_config(5) file berth writes for `bhyve -k <file> <vm>`: one `name=value` line per
 * variable, written from the shared VM model ({@link VmSpec}) and the bhyve-only settings
 * ({@link BhyveSettings}). berth passes nothing else to bhyve, so a path with a comma (which
 * `-s` would split) reaches bhyve unchanged.
 *
 * Mapping (CBSD share/bhyverun.sh and subr/bhyve.subr compile_*_args, written as the variables
 * bhyve's options set: FreeBSD usr.sbin/bhyve bhyverun.c option parsing, pci_emul.c
 * pci_parse_slot, the devices' legacy config parsers, bhyve_config(5)):
 * - `name`, `uuid` (the env's uuid: the guest's SMBIOS UUID stays the same on every node),
 *   `cpus` (vm_cpus), `memory.size` (vm_ram; `<n>M` when whole MiB, else bytes);
 * - `x86.vmexit_on_hlt=true` always (CBSD passes -H always: idle vCPUs yield the host CPU),
 *   `acpi_tables` (bhyve_generate_acpi, -A), `memory.wired` (-S), `rtc.use_localtime=false`
 *   (-u), `virtio_msix=false` (-W), `x86.x2apic` (-x), `x86.mptable=false` (-Y),
 *   `x86.strictmsr=false` (-w), `keyboard.layout` (-K). Like CBSD, no -P (vmexit_on_pause);
 * - PCI slots as CBSD lays them out: 0 the host bridge, 2 the boot device (the first disk;
 *   the CD with vm_boot=cd; the first NIC with vm_boot=net), then from 3 the other disks,
 *   the ISO, the cloud-init seed (CBSD bstart: a read-only AHCI CD), the NICs, virtio-rnd;
 *   29 the frame buffer, 30 the XHCI tablet, 31 the LPC bridge. A `dsk_slotN`/`nic_slotN`
 *   other than 0 places that device at that slot;
 * - disks: virtio-blk `path`; ahci-hd as `device=ahci` with `port.0.type=hd` and
 *   `port.0.path` (bhyve_config(5) has no ahci-hd model: that is a `-s` spelling); nvme `path`;
 *   CDs `device=ahci`, `port.0.type=cd`, `port.0.ro=true`;
 * - NICs: virtio-net (nic_driver vtnet) or e1000 with `backend=<tap>`, `mac` (nic_hwaddr),
 *   `mtu` (nic_mtu, virtio-net only: CBSD adds ,mtu= for virtio-net);
 * - VNC (UEFI only, vm_vnc_port not 1, fbuf=1): `device=fbuf`, `rfb=<loopback>:<port>`, `w`,
 *   `h`, `vga` when not io (CBSD adds it only then), `password`, `wait=true` with vm_boot=cd
 *   and cd_vnc_wait=1 (bhyverun.sh); with xhci=1 an XHCI controller with `slot.1.device=tablet`;
 * - `lpc.com1.path=<nmdm A side>` (the serial console), `lpc.bootrom`/`lpc.bootvars`/
 *   `lpc.fwcfg=qemu` for UEFI (CBSD compile_efi_args: bootrom,<efi>,<vars>,fwcfg=qemu).
 *
 * Values are written so bhyve reads them back unchanged: config.c expands `%(name)` and `\`
 * escapes only in values that contain a `%`, so such values get every `%` and `\` escaped.
 * A value with a control character (a newline would start a new variable) is refused.
 */
import { diskFile, type VmSpec } from '../vm/spec.js';
import { usageError } from '../../errors.js';
import type { BhyveSettings } from './settings.js';

const MIB = 1024 * 1024;

/** The boot ROM of a UEFI VM (see src/engines/bhyve/plan.ts firmwareFor). */
export interface BhyveFirmware {
  /** lpc.bootrom: the firmware file */
  bootrom: string;
  /** lpc.bootvars: the VM's own UEFI variables file (written by the guest) */
  bootvars?: string;
  /** lpc.fwcfg: `qemu` with a variables file, as CBSD */
  fwcfg?: 'qemu';
}

/** What {@link bhyveConfig} needs besides the settings: the node-side names of this start. */
export interface BhyveConfigInput {
  spec: VmSpec;
  bhyve: BhyveSettings;
  /** the env's data dir (jails-data/<vm>-data): relative dsk_path are under it */
  dataDir: string;
  /** the tap of each NIC, in `spec.nics` order (src/engines/bhyve/plan.ts createTaps) */
  taps: readonly string[];
  /** the nmdm(4) A side COM1 is connected to (plan.ts consoleOf) */
  console: string;
  /** the VNC TCP port chosen for this start; undefined = no VNC */
  vncPort?: number;
  /** the UEFI boot ROM; undefined with vm_efi=none (bhyveload loads the guest) */
  firmware?: BhyveFirmware;
  /** the cloud-init seed ISO (NoCloud, volume id cidata) to attach read-only */
  seedIso?: string;
  /** comment lines written first (without the leading `# `) */
  header?: readonly string[];
}

/** One PCI device of the layout. */
export interface BhyvePciDevice {
  slot: number;
  /** what it is, for messages and tests: `hostbridge`, `disk1`, `cd`, `seed`, `nic1`, `rnd`, `fbuf`, `xhci`, `lpc` */
  role: string;
  /** the variables under pci.0.<slot>.0, in order (`device` first) */
  vars: [string, string][];
}

/** Slots CBSD reserves and berth keeps: host bridge, frame buffer, XHCI, LPC. */
export const FIXED_SLOTS = { hostbridge: 0, boot: 2, fbuf: 29, xhci: 30, lpc: 31 } as const;
const FIRST_FREE = 3;
const LAST_FREE = 28;

/**
 * Escapes a value for a bhyve_config(5) line.
 * @throws BerthError E_BAD_VALUE (exit 2) for a control character (naming `what`)
 */
export function configValue(v: string, what: string): string {
  if (/[\x00-\x1f\x7f]/.test(v)) throw usageError('E_BAD_VALUE', `bad ${what}=${JSON.stringify(v)}: control characters cannot be written to a bhyve_config(5) file`);
  if (v === '') throw usageError('E_BAD_VALUE', `bad ${what}: an empty value cannot be written to a bhyve_config(5) file (bhyve refuses name= lines)`);
  return v.includes('%') ? v.replace(/[%\\]/g, '\\$&') : v;
}

/** memory.size / bhyveload -m for `bytes`: `<n>M` when whole MiB (bhyve(8) -m style), else bytes. */
export function memsizeArg(bytes: number): string {
  return bytes % MIB === 0 ? `${bytes / MIB}M` : String(bytes);
}

/** The PCI slot a dsk_slotN / nic_slotN asks for: undefined for auto (0). @throws BerthError E_BAD_VALUE */
function wantedSlot(key: string, v: string | number): number | undefined {
  const s = String(v);
  if (s === '0') return undefined;
  if (!/^\d+$/.test(s) || Number(s) < 1 || Number(s) > 31) throw usageError('E_BAD_VALUE', `bad ${key}=${JSON.stringify(s)}: bhyve needs 0 (auto) or a PCI slot 1-31`);
  return Number(s);
}

/**
 * The PCI layout of a VM (see the module docs for the rules).
 * @throws BerthError E_BAD_VALUE (exit 2): two devices asking for one slot, a slot CBSD
 *   reserves, more devices than free slots, a NIC without a tap
 */
export function pciLayout(input: BhyveConfigInput): BhyvePciDevice[] {
  const { spec, bhyve } = input;
  const vnc = input.vncPort !== undefined;
  const used = new Map<number, string>();
  const out: BhyvePciDevice[] = [];
  const reserved = new Map<number, string>([[FIXED_SLOTS.hostbridge, 'the host bridge'], [FIXED_SLOTS.lpc, 'the LPC bridge']]);
  if (vnc) reserved.set(FIXED_SLOTS.fbuf, 'the VNC frame buffer');
  if (vnc && bhyve.xhci) reserved.set(FIXED_SLOTS.xhci, 'the XHCI tablet');
  const place = (slot: number, role: string, vars: [string, string][], key?: string) => {
    if (used.has(slot)) throw usageError('E_BAD_VALUE', `bad ${key ?? role}: PCI slot ${slot} is taken by ${used.get(slot)}`, { hint: 'give each dsk_slotN/nic_slotN its own slot, or 0 (auto)' });
    used.set(slot, role);
    out.push({ slot, role, vars });
  };

  // the devices, in CBSD's order; `want` is an explicit slot, `boot` the one for slot 2
  interface Item { role: string; vars: [string, string][]; want?: number; key?: string; boot?: boolean }
  const items: Item[] = [];
  const disk = (d: VmSpec['disks'][number]): [string, string][] => {
    const path = configValue(diskFile(d, input.dataDir), `dsk_path${d.index}`);
    if (d.controller === 'ahci-hd') return [['device', 'ahci'], ['port.0.type', 'hd'], ['port.0.path', path]];
    if (d.controller === 'nvme') return [['device', 'nvme'], ['path', path]];
    return [['device', 'virtio-blk'], ['path', path]];
  };
  const cd = (path: string, what: string): [string, string][] => [['device', 'ahci'], ['port.0.type', 'cd'], ['port.0.path', configValue(path, what)], ['port.0.ro', 'true']];
  spec.disks.forEach((d, i) => items.push({ role: `disk${d.index}`, vars: disk(d), want: wantedSlot(`dsk_slot${d.index}`, d.slot), key: `dsk_slot${d.index}`, boot: spec.boot === 'hdd' && i === 0 }));
  if (spec.isoPath?.startsWith('/')) items.push({ role: 'cd', vars: cd(spec.isoPath, 'vm_iso_path'), boot: spec.boot === 'cd' });
  if (input.seedIso) items.push({ role: 'seed', vars: cd(input.seedIso, 'the cloud-init seed') });
  if (input.taps.length !== spec.nics.length) throw usageError('E_BAD_VALUE', `${spec.nics.length} NIC rows but ${input.taps.length} taps`);
  spec.nics.forEach((n, i) => {
    const emu = n.driver === 'e1000' ? 'e1000' : 'virtio-net';
    const vars: [string, string][] = [['device', emu], ['backend', configValue(input.taps[i]!, `the tap of NIC ${n.index}`)]];
    if (n.hwaddr) vars.push(['mac', n.hwaddr]);
    if (n.mtu && emu === 'virtio-net') vars.push(['mtu', String(n.mtu)]);
    items.push({ role: `nic${n.index}`, vars, want: wantedSlot(`nic_slot${n.index}`, n.slot), key: `nic_slot${n.index}`, boot: spec.boot === 'net' && i === 0 });
  });
  if (bhyve.virtioRnd) items.push({ role: 'rnd', vars: [['device', 'virtio-rnd']] });

  const hb: [string, string][] = [['device', 'hostbridge']];
  // amd_hostbridge is a -s spelling: the config node is a hostbridge with AMD ids. The ids
  // are written under both names bhyve versions read (pci_hostbridge.c: vendor/devid in
  // FreeBSD 13 and 14, pcireg.vendor/pcireg.device in bhyve_config(5) of FreeBSD 15).
  if (bhyve.hostbridge === 'amd_hostbridge') hb.push(['vendor', '0x1022'], ['devid', '0x7432'], ['pcireg.vendor', '0x1022'], ['pcireg.device', '0x7432']);
  place(FIXED_SLOTS.hostbridge, 'the host bridge', hb);
  for (const it of items) {
    if (it.want === undefined) continue;
    if (reserved.has(it.want)) throw usageError('E_BAD_VALUE', `bad ${it.key}=${it.want}: PCI slot ${it.want} is ${reserved.get(it.want)}'s`, { hint: `use a slot from ${FIXED_SLOTS.boot} to ${LAST_FREE}, or 0 (auto)` });
    place(it.want, it.role, it.vars, it.key);
  }
  const boot = items.find((it) => it.boot && it.want === undefined);
  if (boot) place(FIXED_SLOTS.boot, boot.role, boot.vars);
  let next = FIRST_FREE;
  for (const it of items) {
    if (it.want !== undefined || it === boot) continue;
    while (used.has(next) && next <= LAST_FREE) next++;
    if (next > LAST_FREE) throw usageError('E_BAD_VALUE', `too many devices for one bhyve VM: no PCI slot left for ${it.role} (slots ${FIRST_FREE}-${LAST_FREE} are taken)`);
    place(next, it.role, it.vars);
  }
  if (vnc) {
    const fb: [string, string][] = [['device', 'fbuf'], ['rfb', bhyve.vncBind === '::1' ? `[::1]:${input.vncPort}` : `127.0.0.1:${input.vncPort}`],
      ['w', String(bhyve.vncWidth)], ['h', String(bhyve.vncHeight)]];
    if (bhyve.vga !== 'io') fb.push(['vga', bhyve.vga]);
    if (spec.vncPassword) fb.push(['password', configValue(spec.vncPassword, 'vnc_password')]);
    if (spec.boot === 'cd' && bhyve.cdVncWait) fb.push(['wait', 'true']);
    place(FIXED_SLOTS.fbuf, 'fbuf', fb);
    if (bhyve.xhci) place(FIXED_SLOTS.xhci, 'xhci', bhyve.tablet ? [['device', 'xhci'], ['slot.1.device', 'tablet']] : [['device', 'xhci']]);
  }
  place(FIXED_SLOTS.lpc, 'lpc', [['device', 'lpc']]);
  return out.sort((a, b) => a.slot - b.slot);
}

/**
 * The bhyve_config(5) text of one start of a VM, ending with a newline.
 * @throws BerthError E_BAD_VALUE (exit 2) for a value bhyve cannot take or a bad PCI layout
 */
export function bhyveConfig(input: BhyveConfigInput): string {
  const { spec, bhyve } = input;
  const lines: string[] = (input.header ?? []).map((h) => `# ${h}`.replace(/[\r\n]/g, ' '));
  const add = (k: string, v: string) => lines.push(`${k}=${v}`);
  add('name', configValue(spec.jname, 'jname'));
  if (spec.uuid) add('uuid', configValue(spec.uuid, 'uuid'));
  add('cpus', String(spec.cpus));
  add('memory.size', memsizeArg(spec.ram));
  if (bhyve.wireMemory) add('memory.wired', 'true');
  if (bhyve.acpi) add('acpi_tables', 'true');
  add('x86.vmexit_on_hlt', 'true');
  if (bhyve.ignoreMsr) add('x86.strictmsr', 'false');
  if (bhyve.x2apic) add('x86.x2apic', 'true');
  if (!bhyve.mptable) add('x86.mptable', 'false');
  if (bhyve.rtcUtc) add('rtc.use_localtime', 'false');
  if (bhyve.forceMsi) add('virtio_msix', 'false');
  if (bhyve.kbdLayout && input.vncPort !== undefined) add('keyboard.layout', configValue(bhyve.kbdLayout, 'bhyve_vnc_kbdlayout'));
  for (const d of pciLayout(input)) for (const [k, v] of d.vars) add(`pci.0.${d.slot}.0.${k}`, v);
  add('lpc.com1.path', configValue(input.console, 'the console device'));
  if (input.firmware) {
    add('lpc.bootrom', configValue(input.firmware.bootrom, 'the boot ROM'));
    if (input.firmware.bootvars) add('lpc.bootvars', configValue(input.firmware.bootvars, 'the UEFI variables file'));
    if (input.firmware.fwcfg) add('lpc.fwcfg', input.firmware.fwcfg);
  }
  return lines.join('\n') + '\n';
}
