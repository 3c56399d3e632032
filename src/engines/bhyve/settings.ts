/**
 * The bhyve-only VM settings: CBSD's bhyve columns that the shared VM model
 * (src/engines/vm/settings.ts) does not carry, with CBSD's defaults, in the same
 * {@link VmSettingDef} shape so an engine registry can list them beside the shared keys.
 *
 * Sources: CBSD share/bhyve.conf (the columns), share/local-bhyve.schema (the defaults),
 * share/bhyverun.sh (how each one becomes a bhyve flag), subr/bhyve.subr compile_vnc_args,
 * compile_console_args, compile_hostbridge_args, compile_efi_args.
 *
 * Where berth differs from CBSD the help text says so:
 * - `vm_console`: berth always gives the guest's COM1 an nmdm(4) pair (CBSD's default `tmux`
 *   runs bhyve with `-l com1,stdio` inside tmux; berth has no tmux). `tmux` is accepted from
 *   an adopted descriptor and means the same nmdm console.
 * - `bhyve_vnc_tcp_bind`: VNC listens on loopback only (127.0.0.1 or ::1); CBSD also allows
 *   0.0.0.0 with a warning. Reach it through an SSH tunnel or the agent.
 * - `bhyve_flags` (CBSD: extra bhyve command-line flags) is refused unless `0`: berth passes
 *   every setting through the bhyve_config(5) file it writes, and a descriptor on shared
 *   storage must not be able to add devices (passthru) to the host's bhyve.
 */
import type { EnvConf } from '../../descriptor.js';
import { usageError } from '../../errors.js';
import type { VmSettingDef } from '../vm/settings.js';

/** The bhyve-only settings of one VM, typed. */
export interface BhyveSettings {
  /** vm_hostbridge: `hostbridge` (NetApp ids) or `amd_hostbridge` (AMD ids) */
  hostbridge: 'hostbridge' | 'amd_hostbridge';
  /** bhyve_generate_acpi=1: ACPI tables (bhyve -A, acpi_tables) */
  acpi: boolean;
  /** bhyve_wire_memory=1: wire guest memory (bhyve -S, memory.wired) */
  wireMemory: boolean;
  /** bhyve_rts_keeps_utc=1: RTC in UTC (bhyve -u, rtc.use_localtime=false) */
  rtcUtc: boolean;
  /** bhyve_force_msi_irq=1: MSI instead of MSI-X for virtio (bhyve -W, virtio_msix=false) */
  forceMsi: boolean;
  /** bhyve_x2apic_mode=1: x2APIC (bhyve -x, x86.x2apic) */
  x2apic: boolean;
  /** bhyve_mptable_gen=0: no MPTable (bhyve -Y, x86.mptable=false) */
  mptable: boolean;
  /** bhyve_ignore_msr_acc=1: ignore unimplemented MSRs (bhyve -w, x86.strictmsr=false) */
  ignoreMsr: boolean;
  /** cd_vnc_wait=1: with vm_boot=cd and UEFI, boot only once a VNC client connects (fbuf wait) */
  cdVncWait: boolean;
  /** bhyve_vnc_resolution: frame buffer width and height in pixels */
  vncWidth: number;
  vncHeight: number;
  /** bhyve_vnc_tcp_bind: the loopback address VNC listens on */
  vncBind: '127.0.0.1' | '::1';
  /** bhyve_vnc_vgaconf: fbuf vga= (io, on, off) */
  vga: 'io' | 'on' | 'off';
  /** bhyve_vnc_kbdlayout: a file of /usr/share/bhyve/kbdlayout (keyboard.layout); undefined for 0 */
  kbdLayout?: string;
  /** xhci=1: an XHCI controller (with a tablet when tablet=1) beside the frame buffer */
  xhci: boolean;
  tablet: boolean;
  /** fbuf=0 turns VNC off whatever vm_vnc_port says (CBSD compile_vnc_args) */
  fbuf: boolean;
  /** virtio_rnd=1: a virtio-rnd device */
  virtioRnd: boolean;
  /** double_acpi=1: bstop presses the power button again every second (CBSD sudoexec/bstop) */
  doubleAcpi: boolean;
  /** efi_firmware: a boot ROM file instead of the ports' BHYVE_UEFI.fd; undefined for 0 */
  efiFirmware?: string;
}

const bad = (key: string, value: string, expected: string, hint?: string) =>
  usageError('E_BAD_VALUE', `bad ${key}=${JSON.stringify(value)}: expected ${expected}`, hint ? { hint } : undefined);
const both = (v: string) => ({ qemu: v, bhyve: v });
const flag = (key: string, def: '0' | '1', help: string): VmSettingDef => ({
  key, help, defaults: both(def),
  normalize: (v) => {
    if (v !== '0' && v !== '1') throw bad(key, v, '0 or 1');
    return v;
  },
});

/** bhyve(8) fbuf limits (pci_fbuf.c COLS_MIN..COLS_MAX, ROWS_MIN..ROWS_MAX). */
export const FBUF_LIMITS = { minWidth: 640, maxWidth: 3840, minHeight: 480, maxHeight: 2160 } as const;

/** The bhyve-only settings in CBSD's column order (share/bhyve.conf). */
export const BHYVE_SETTINGS: readonly VmSettingDef[] = [
  {
    key: 'vm_hostbridge', help: 'PCI host bridge: hostbridge or amd_hostbridge (AMD ids, for guests that want them)', defaults: both('hostbridge'),
    normalize: (v) => { if (v !== 'hostbridge' && v !== 'amd_hostbridge') throw bad('vm_hostbridge', v, 'hostbridge | amd_hostbridge'); return v; },
  },
  {
    key: 'bhyve_flags', help: 'CBSD: extra bhyve flags; berth: must be 0 (every setting goes through the bhyve_config(5) file)', defaults: both('0'),
    normalize: (v) => {
      if (v !== '0' && v !== '') throw bad('bhyve_flags', v, '0', 'berth passes no free-form flags to bhyve; use the bhyve_* settings (bget lists them)');
      return '0';
    },
  },
  {
    key: 'vm_console', help: 'serial console: nmdm (an nmdm(4) pair, bconsole attaches to it); tmux from CBSD means the same', defaults: both('nmdm'),
    normalize: (v) => { if (v !== 'nmdm' && v !== 'tmux') throw bad('vm_console', v, 'nmdm'); return v; },
  },
  flag('bhyve_generate_acpi', '1', 'ACPI tables for the guest (bhyve -A)'),
  flag('bhyve_wire_memory', '0', 'wire guest memory (bhyve -S)'),
  flag('bhyve_rts_keeps_utc', '0', 'the RTC keeps UTC instead of local time (bhyve -u)'),
  flag('bhyve_force_msi_irq', '0', 'MSI instead of MSI-X interrupts for virtio devices (bhyve -W)'),
  flag('bhyve_x2apic_mode', '0', 'local APICs in x2APIC mode (bhyve -x)'),
  flag('bhyve_mptable_gen', '1', 'generate an MPTable (0 = bhyve -Y)'),
  flag('bhyve_ignore_msr_acc', '0', 'ignore guest accesses to unimplemented MSRs (bhyve -w)'),
  flag('cd_vnc_wait', '0', 'with vm_boot=cd and UEFI: start the guest only when a VNC client connects'),
  {
    key: 'bhyve_vnc_resolution', help: 'VNC frame buffer size WxH (640x480 to 3840x2160)', defaults: both('1024x768'),
    normalize: (v) => {
      const m = /^(\d+)x(\d+)$/.exec(v);
      const L = FBUF_LIMITS;
      if (!m || Number(m[1]) < L.minWidth || Number(m[1]) > L.maxWidth || Number(m[2]) < L.minHeight || Number(m[2]) > L.maxHeight) {
        throw bad('bhyve_vnc_resolution', v, `WxH between ${L.minWidth}x${L.minHeight} and ${L.maxWidth}x${L.maxHeight} (bhyve fbuf)`);
      }
      return `${Number(m[1])}x${Number(m[2])}`;
    },
  },
  {
    key: 'bhyve_vnc_tcp_bind', help: 'VNC listen address: 127.0.0.1 or ::1 (berth: loopback only)', defaults: both('127.0.0.1'),
    normalize: (v) => {
      const a = v === '[::1]' ? '::1' : v;
      if (a !== '127.0.0.1' && a !== '::1') throw bad('bhyve_vnc_tcp_bind', v, '127.0.0.1 or ::1', 'berth serves VNC on loopback only: use an SSH tunnel (ssh -L 5900:127.0.0.1:<port>) or the web console');
      return a;
    },
  },
  {
    key: 'bhyve_vnc_vgaconf', help: 'fbuf VGA mode: io (default), on (legacy VGA for CSM guests), off (UEFI guests that probe VGA ports)', defaults: both('io'),
    normalize: (v) => { if (!['io', 'on', 'off'].includes(v)) throw bad('bhyve_vnc_vgaconf', v, 'io | on | off'); return v; },
  },
  flag('xhci', '0', 'an XHCI USB controller beside the frame buffer (UEFI with VNC)'),
  flag('virtio_rnd', '0', 'a virtio-rnd entropy device'),
  flag('double_acpi', '1', 'bstop presses the ACPI power button again every second until the guest is off'),
  flag('fbuf', '1', 'the VNC frame buffer (0 = none, whatever vm_vnc_port says)'),
  flag('tablet', '1', 'a USB tablet on the XHCI controller (precise VNC pointer)'),
  {
    key: 'efi_firmware', help: 'boot ROM for vm_efi=uefi (0 = the ports\' /usr/local/share/uefi-firmware/BHYVE_UEFI.fd)', defaults: both('0'),
    normalize: (v) => {
      if (v !== '0' && (!v.startsWith('/') || /[\n\r\0%\\]/.test(v))) throw bad('efi_firmware', v, 'an absolute path to a boot ROM, or 0');
      return v;
    },
  },
  {
    key: 'bhyve_vnc_kbdlayout', help: 'VNC keyboard layout, a file of /usr/share/bhyve/kbdlayout (0 = US)', defaults: both('0'),
    normalize: (v) => { if (v !== '0' && !/^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$/.test(v)) throw bad('bhyve_vnc_kbdlayout', v, 'a layout name such as fr or de_noacc, or 0'); return v; },
  },
];

const BY_KEY = new Map(BHYVE_SETTINGS.map((d) => [d.key, d]));

/** True for the bhyve-only keys of {@link BHYVE_SETTINGS}. */
export function isBhyveKey(key: string): boolean {
  return BY_KEY.has(key);
}

/**
 * Reads the bhyve-only settings of a descriptor (CBSD's defaults for missing keys).
 * @throws BerthError E_BAD_VALUE (exit 2) naming the first bad key and value
 */
export function parseBhyveSettings(conf: EnvConf): BhyveSettings {
  const v = (key: string): string => {
    const d = BY_KEY.get(key)!;
    const raw = conf[key];
    return raw === undefined || raw === '' ? d.defaults.bhyve : d.normalize(raw, 'bhyve');
  };
  const on = (key: string) => v(key) === '1';
  v('bhyve_flags');
  v('vm_console');
  const [w, h] = v('bhyve_vnc_resolution').split('x').map(Number);
  const layout = v('bhyve_vnc_kbdlayout');
  const efi = v('efi_firmware');
  return {
    hostbridge: v('vm_hostbridge') as BhyveSettings['hostbridge'],
    acpi: on('bhyve_generate_acpi'),
    wireMemory: on('bhyve_wire_memory'),
    rtcUtc: on('bhyve_rts_keeps_utc'),
    forceMsi: on('bhyve_force_msi_irq'),
    x2apic: on('bhyve_x2apic_mode'),
    mptable: on('bhyve_mptable_gen'),
    ignoreMsr: on('bhyve_ignore_msr_acc'),
    cdVncWait: on('cd_vnc_wait'),
    vncWidth: w!,
    vncHeight: h!,
    vncBind: v('bhyve_vnc_tcp_bind') as BhyveSettings['vncBind'],
    vga: v('bhyve_vnc_vgaconf') as BhyveSettings['vga'],
    kbdLayout: layout === '0' ? undefined : layout,
    xhci: on('xhci'),
    tablet: on('tablet'),
    fbuf: on('fbuf'),
    virtioRnd: on('virtio_rnd'),
    doubleAcpi: on('double_acpi'),
    efiFirmware: efi === '0' ? undefined : efi,
  };
}
