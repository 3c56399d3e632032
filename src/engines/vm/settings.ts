/**
 * The scalar VM settings shared by the qemu and bhyve engines: CBSD's keys, their defaults,
 * their help text and the check that turns a user's value into the stored one (`vm_ram=1g`
 * is stored as `1073741824`, as CBSD's register_insert_bhyve does with conv2bytes).
 *
 * Sources: CBSD share/bhyve.conf (the column list), share/local-bhyve.schema (defaults),
 * share/local-qemu-settings.schema and etc/defaults/qemu-default-default.conf (CBSD's qemu
 * mode), sudoexec/bcreate (imgsize, imgtype, `dsk1.vhd`), sudoexec/bstop (30 s before the
 * hard stop), share/bhyverun.sh (on_poweroff/on_reboot/on_crash: `destroy` or `restart`).
 *
 * Where berth's default differs from CBSD's bhyve default it says so in the help text:
 * for qemu, `virtio_type` is `virtio-blk` (CBSD's bhyve default `ahci-hd` would hide the
 * disk from a virtio-only initramfs) and `vm_os_type` is `linux`.
 *
 * The numbered disk and NIC rows and the cloud-init `ci_*` keys are in src/engines/vm/spec.ts.
 */
import { usageError } from '../../errors.js';
import type { SettingDef } from '../types.js';
import { parseSize } from './size.js';

/** The VM emulators of design/product.md "Words". */
export type VmEmulator = 'qemu' | 'bhyve';

/** The emulators this model serves. */
export const VM_EMULATORS: readonly VmEmulator[] = ['qemu', 'bhyve'];

/** One scalar VM setting: key, help, default per emulator, and its check. */
export interface VmSettingDef {
  /** the CBSD key (berth's own keys say so in `help`) */
  readonly key: string;
  /** one line for `--help` and `bget` */
  readonly help: string;
  /** the default, in stored form, per emulator */
  readonly defaults: Readonly<Record<VmEmulator, string>>;
  /**
   * Checks a user's value and returns the stored form (sizes in bytes).
   * @throws BerthError E_BAD_VALUE (exit 2) naming key and value
   */
  normalize(value: string, emulator: VmEmulator): string;
}

const bad = (key: string, value: string, expected: string, hint?: string) =>
  usageError('E_BAD_VALUE', `bad ${key}=${JSON.stringify(value)}: expected ${expected}`, hint ? { hint } : undefined);

const both = (v: string): Record<VmEmulator, string> => ({ qemu: v, bhyve: v });

function oneOf(key: string, values: readonly string[]) {
  return (v: string): string => {
    if (!values.includes(v)) throw bad(key, v, values.join(' | '));
    return v;
  };
}

function wholeNumber(key: string, min: number, max: number, what = `a whole number ${min}-${max}`) {
  return (v: string): string => {
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw bad(key, v, what);
    return String(Number(v));
  };
}

function noNewline(key: string, v: string): void {
  if (/[\n\r\0]/.test(v)) throw usageError('E_BAD_VALUE', `bad ${key}: values may not contain newlines or NUL`);
}

/** Smallest vm_ram berth accepts (32 MiB): catches `vm_ram=512` meant as megabytes (it is bytes, as in CBSD). */
export const VM_RAM_MIN = 32 * 1024 * 1024;
/** Largest vm_cpus berth accepts. */
export const VM_CPUS_MAX = 256;
/** Size of an empty first disk when bcreate is given no imgsize and no base (CBSD's vm package `small1`: 10 GiB). */
export const DEFAULT_IMGSIZE = 10 * 1024 ** 3;
/** The VNC port range that vm_vnc_port=0 picks from (CBSD: 5900-6900). */
export const VNC_AUTO_RANGE: readonly [number, number] = [5900, 6900];
/** CBSD's guest OS types (etc/defaults/vm-<type>-*.conf profiles). */
export const VM_OS_TYPES: readonly string[] = ['freebsd', 'linux', 'openbsd', 'netbsd', 'dflybsd', 'windows', 'other'];
/** Disk controllers: CBSD's bhyve `virtio_type`/`dsk_controller` values berth maps onto both engines. */
export const DISK_CONTROLLERS: readonly string[] = ['virtio-blk', 'ahci-hd', 'nvme'];
/** What happens when the guest powers off, reboots or crashes (CBSD share/bhyverun.sh). */
export const VM_ACTIONS: readonly string[] = ['destroy', 'restart'];

/**
 * The scalar VM settings, in CBSD's column order (share/bhyve.conf), then the bcreate keys,
 * then berth's own.
 */
export const VM_SETTINGS: readonly VmSettingDef[] = [
  {
    key: 'vm_cpus', help: 'virtual CPUs (1-256)', defaults: both('1'),
    normalize: (v) => wholeNumber('vm_cpus', 1, VM_CPUS_MAX)(v),
  },
  {
    key: 'vm_ram', help: 'guest memory in bytes as CBSD stores it; 512m, 1g accepted (at least 32m)', defaults: both('536870912'),
    normalize: (v) => {
      const n = parseSize(v, 'vm_ram');
      if (n < VM_RAM_MIN) {
        throw usageError('E_BAD_VALUE', `bad vm_ram=${JSON.stringify(v)}: that is ${n} bytes; a VM needs at least 32m`, {
          hint: /^\d+$/.test(v.trim()) ? `a plain number is bytes (as in CBSD): did you mean vm_ram=${v.trim()}m?` : 'e.g. vm_ram=512m or vm_ram=1g',
        });
      }
      return String(n);
    },
  },
  {
    key: 'vm_os_type', help: `guest OS type: ${VM_OS_TYPES.join(' ')} (bhyve: freebsd or linux picks bhyveload or the firmware path)`,
    defaults: { qemu: 'linux', bhyve: 'freebsd' }, normalize: (v) => oneOf('vm_os_type', VM_OS_TYPES)(v),
  },
  {
    key: 'vm_boot', help: 'boot from: hdd (the first disk), cd (vm_iso_path), net (PXE)', defaults: both('hdd'),
    normalize: (v) => oneOf('vm_boot', ['hdd', 'cd', 'net'])(v),
  },
  {
    key: 'virtio_type', help: `controller of the first disk: ${DISK_CONTROLLERS.join(' ')} (qemu default virtio-blk; bhyve ahci-hd as CBSD)`,
    defaults: { qemu: 'virtio-blk', bhyve: 'ahci-hd' }, normalize: (v) => oneOf('virtio_type', DISK_CONTROLLERS)(v),
  },
  {
    key: 'vm_iso_path', help: 'the ISO image booted with vm_boot=cd (an absolute path; 0 = none)', defaults: both('0'),
    normalize: (v) => {
      noNewline('vm_iso_path', v);
      // a CBSD descriptor may name a CBSD media entry (cbsd-iso-...) instead of a path: kept,
      // and refused only when the VM boots from it (parseVmSpec: vm_boot=cd)
      if (v !== '0' && v !== '' && !v.startsWith('/') && !/^[A-Za-z0-9][A-Za-z0-9_.+-]*$/.test(v)) throw bad('vm_iso_path', v, 'an absolute path to an ISO image, or 0');
      return v === '' ? '0' : v;
    },
  },
  {
    key: 'vm_efi', help: 'firmware: none (qemu: SeaBIOS or direct kernel boot; bhyve: bhyveload), uefi, uefi_csm', defaults: both('none'),
    normalize: (v) => oneOf('vm_efi', ['none', 'uefi', 'uefi_csm'])(v),
  },
  {
    key: 'vm_vnc_port', help: 'VNC on 127.0.0.1: 0 = a free port in 5900-6900, 1 = off, N = that port', defaults: both('0'),
    normalize: (v, emu) => {
      const min = emu === 'qemu' ? VNC_AUTO_RANGE[0] : 1024;
      if (!/^\d+$/.test(v) || !(Number(v) <= 1 || (Number(v) >= min && Number(v) <= 65535))) {
        throw bad('vm_vnc_port', v, `0 (auto), 1 (off) or a TCP port ${min}-65535`, emu === 'qemu' ? 'qemu listens on 5900 + its display number, so a fixed port is at least 5900' : undefined);
      }
      return String(Number(v));
    },
  },
  {
    key: 'vnc_password', help: 'VNC password (RFB authentication: at most 8 characters; empty = none)', defaults: both(''),
    normalize: (v) => {
      noNewline('vnc_password', v);
      // RFB's VNC authentication keys DES with the first 8 bytes only (RFC 6143 §7.2.2)
      if (Buffer.byteLength(v) > 8) throw bad('vnc_password', '********', 'at most 8 bytes (RFB VNC authentication uses 8)');
      return v;
    },
  },
  { key: 'on_poweroff', help: 'when the guest powers off: destroy (stop) or restart', defaults: both('destroy'), normalize: (v) => oneOf('on_poweroff', VM_ACTIONS)(v) },
  { key: 'on_reboot', help: 'when the guest reboots: restart or destroy (stop)', defaults: both('restart'), normalize: (v) => oneOf('on_reboot', VM_ACTIONS)(v) },
  { key: 'on_crash', help: 'when the guest crashes: destroy (stop) or restart', defaults: both('destroy'), normalize: (v) => oneOf('on_crash', VM_ACTIONS)(v) },
  {
    key: 'stop_timeout', help: 'seconds the guest has to power off after ACPI before it is stopped hard (CBSD bstop: 30)', defaults: both('30'),
    normalize: (v) => wholeNumber('stop_timeout', 0, 86400, 'a whole number of seconds 0-86400')(v),
  },
  {
    key: 'imgsize', help: 'size of the first disk made by bcreate: bytes, or 10g, 512m (0 = the base tree plus headroom, or 10g)', defaults: both('0'),
    normalize: (v) => String(parseSize(v, 'imgsize')),
  },
  {
    key: 'imgtype', help: 'first disk made by bcreate: md (a sparse raw file, as CBSD without ZFS), qcow2 (qemu only), none (no disk)', defaults: both('md'),
    normalize: (v, emu) => {
      if (v === 'zvol') throw bad('imgtype', v, 'md, qcow2 (qemu) or none', 'berth keeps VM disks as files in the env data, which moves with the env; zvol disks are not supported');
      if (v === 'qcow2' && emu !== 'qemu') throw bad('imgtype', v, 'md or none', 'qcow2 disks need qemu; bhyve reads raw images');
      return oneOf('imgtype', emu === 'qemu' ? ['md', 'qcow2', 'none'] : ['md', 'none'])(v);
    },
  },
  {
    key: 'vm_kernel', help: 'berth: boot this kernel base (bases/<name>: vmlinuz, initrd.img) directly, root on the first disk; 0 = none', defaults: both('0'),
    normalize: (v) => {
      if (v !== '0' && !/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(v)) throw bad('vm_kernel', v, 'the name of a kernel base, or 0');
      return v;
    },
  },
  {
    key: 'vm_cmdline', help: 'berth: extra kernel command line for vm_kernel (appended to console=ttyS0 root=/dev/vda)', defaults: both(''),
    normalize: (v) => { noNewline('vm_cmdline', v); return v; },
  },
];

const BY_KEY = new Map(VM_SETTINGS.map((d) => [d.key, d]));

/** The definition of a scalar VM key, or undefined. */
export function vmSetting(key: string): VmSettingDef | undefined {
  return BY_KEY.get(key);
}

/**
 * Checks one scalar VM setting and returns its stored form.
 * @throws BerthError E_BAD_VALUE (exit 2) naming key and value; E_UNKNOWN_KEY (exit 2) for a
 *   key that is not a scalar VM key
 */
export function normalizeVmSetting(key: string, value: string, emulator: VmEmulator): string {
  const d = BY_KEY.get(key);
  if (!d) throw usageError('E_UNKNOWN_KEY', `unknown VM setting ${JSON.stringify(key)}`);
  return d.normalize(value, emulator);
}

/** Every scalar VM key with its default for `emulator`, in stored form. */
export function vmDefaults(emulator: VmEmulator): Record<string, string> {
  return Object.fromEntries(VM_SETTINGS.map((d) => [d.key, d.defaults[emulator]]));
}

/**
 * The VM settings of `emulator` as engine-registry settings (src/engines/types.ts SettingDef):
 * every scalar VM key but stop_timeout (a common setting of every env, src/lifecycle/settings.ts),
 * each checked by its own {@link VmSettingDef.normalize}.
 */
export function vmEngineSettings(emulator: VmEmulator): SettingDef[] {
  return VM_SETTINGS.filter((d) => d.key !== 'stop_timeout').map((d) => ({ key: d.key, help: d.help, normalize: (v: string) => d.normalize(v, emulator) }));
}
