/**
 * The VM settings model shared by the qemu and bhyve engines: a descriptor's flat
 * `key=value` map (src/descriptor.ts EnvConf) parsed into a typed {@link VmSpec} and back.
 *
 * Keys (CBSD's, see src/engines/vm/settings.ts for the scalar ones):
 * - numbered disk rows `dsk_controllerN dsk_pathN dsk_slotN dsk_typeN dsk_sizeN` (CBSD
 *   bhyvedsk, written by jailctl/jmkrcconf for N = 1, 2, ...), plus berth's `dsk_formatN`
 *   (`raw`, the default, or `qcow2` for qemu). `dsk_path` is relative to the env's data dir
 *   (CBSD: `dsk1.vhd` is `jails-data/<vm>-data/dsk1.vhd`) or absolute; with berth's
 *   `dsk_typeN=rbd` (qemu only) it names a Ceph RBD image `pool/image` instead (opened by
 *   QEMU's rbd driver, src/storage/rbd.ts);
 * - numbered NIC rows `nic_orderN nic_driverN nic_slotN nic_typeN nic_parentN nic_hwaddrN
 *   nic_mtuN` (CBSD bhyvenic; `nic_parent` the bridge, `nic_hwaddr` `0` = not chosen yet);
 * - cloud-init `ci_*` keys (CBSD sudoexec/bcreate and modules/bsdconf.d/cloud-tpl):
 *   `ci_jname ci_fqdn ci_template ci_interface ci_interface_name ci_ip4_addr ci_gw4
 *   ci_nameserver_address ci_nameserver_search ci_user_add ci_user_pubkey ci_user_pubkey2
 *   ci_user_pw_user ci_user_pw_root ci_interface_mtu` and the second interface's
 *   `ci_interface2 ci_ip4_addr2 ci_gw42 ci_interface_mtu2`; other `ci_*` keys are kept as is.
 *
 * Rows are numbered from 1 without gaps (CBSD's readers stop at the first gap, so a gap
 * would silently drop a disk: berth refuses it). A descriptor with no disk row gets CBSD's
 * first disk `dsk1.vhd` (unless `imgtype=none`). Everything here is pure: no file is read.
 */
import { isIP } from 'node:net';
import { posix } from 'node:path';
import type { EnvConf } from '../../descriptor.js';
import { usageError } from '../../errors.js';
import { DEFAULT_IMGSIZE, VM_EMULATORS, VM_SETTINGS, vmDefaults, type VmEmulator } from './settings.js';
import { parseSize } from './size.js';
import { parseRbdImage, rbdSpec } from '../../storage/rbd.js';

export type { VmEmulator } from './settings.js';

/** The first disk's file name in the env's data dir (CBSD sudoexec/bcreate `defdsk`). */
export const FIRST_DISK = 'dsk1.vhd';

/** One disk row (`dsk_*N`). */
export interface VmDisk {
  /** N of the row, from 1 */
  index: number;
  /** dsk_controller: virtio-blk | ahci-hd | nvme */
  controller: string;
  /** dsk_path as stored: relative to the data dir (`dsk1.vhd`) or absolute */
  path: string;
  /** dsk_slot: PCI slot, 0 = auto */
  slot: number;
  /** dsk_type: `vhd` (a disk image file; CBSD's only direct-attach type) or `rbd` (a Ceph RBD image `pool/image`, qemu only) */
  type: string;
  /** dsk_size in bytes, 0 = unknown */
  size: number;
  /** berth dsk_format: raw (default; CBSD `md`) or qcow2 (qemu only) */
  format: 'raw' | 'qcow2';
}

/** One NIC row (`nic_*N`). */
export interface VmNic {
  /** N of the row, from 1 */
  index: number;
  /** nic_order (CBSD: sort order, 0 = as listed) */
  order: number;
  /** nic_driver: vtnet (virtio-net) or e1000 */
  driver: 'vtnet' | 'e1000';
  /** nic_slot as stored (`0` = auto) */
  slot: string;
  /** nic_type as stored (`0` = auto) */
  type: string;
  /** nic_parent: the bridge the tap joins; `auto` = the node's default; `0` = none */
  parent: string;
  /** nic_hwaddr (lower case), undefined when `0` (not chosen yet: see {@link randomHwaddr}) */
  hwaddr?: string;
  /** nic_mtu, 0 = the bridge's */
  mtu: number;
}

/** An address of a cloud-init interface. */
export interface CiAddress {
  address: string;
  /** prefix length (IPv4 without one: 24, as CBSD's templates) */
  prefix: number;
  family: 4 | 6;
}

/** One cloud-init network interface (CBSD has two: `ci_*` and `ci_*2`). */
export interface CiInterface {
  /** 1 or 2 */
  index: 1 | 2;
  /** ci_interface / ci_interface2: the host side (bridge) in CBSD; kept for compatibility */
  hostInterface?: string;
  /** the guest's interface name (ci_interface_name; default eth0, or matched by MAC when the NIC has one) */
  guestName: string;
  /** ci_ip4_addr=DHCP (dhcp4) or DHCPv6 (dhcp6) */
  dhcp?: 'dhcp4' | 'dhcp6';
  /** static addresses (ci_ip4_addr=10.0.0.5/24[,2001:db8::5/64]) */
  addresses: CiAddress[];
  /** ci_gw4 / ci_gw42; undefined for 0 or auto */
  gateway?: string;
  /** ci_interface_mtu / ci_interface_mtu2 (0 = unset) */
  mtu: number;
}

/** The cloud-init settings of a VM (present when any `ci_*` key other than ci_gw4 is set). */
export interface CloudInitSpec {
  /** meta-data instance-id: ci_jname, default the jname */
  instanceId: string;
  /** meta-data local-hostname: ci_fqdn, default host_hostname, else the jname */
  hostname: string;
  /** ci_template (CBSD's template name; berth writes one NoCloud format for all) */
  template?: string;
  interfaces: CiInterface[];
  /** ci_nameserver_address (comma or space separated) */
  nameservers: string[];
  /** ci_nameserver_search */
  searchDomains: string[];
  /** ci_user_add: users to create (space separated) */
  users: string[];
  /** ci_user_pubkey, ci_user_pubkey2: a key's text, or a path to an authorized_keys file */
  pubkeys: string[];
  /** ci_user_pw_user: password of the users (`*` = locked) */
  pwUser?: string;
  /** ci_user_pw_root: root's password (`*` = locked) */
  pwRoot?: string;
  /** every other ci_* key, as given */
  extra: Record<string, string>;
}

/** A VM's settings, typed. Sizes in bytes, times in seconds. */
export interface VmSpec {
  jname: string;
  emulator: VmEmulator;
  /** the env's uuid (berth key `uuid`), when set */
  uuid?: string;
  /** host_hostname, else the jname */
  hostname: string;
  /** vm_cpus */
  cpus: number;
  /** vm_ram, bytes */
  ram: number;
  /** vm_os_type */
  osType: string;
  /** vm_boot */
  boot: 'hdd' | 'cd' | 'net';
  /** vm_efi */
  efi: 'none' | 'uefi' | 'uefi_csm';
  /** imgsize, bytes (0 = not given) */
  imgsize: number;
  /** imgtype */
  imgtype: 'md' | 'qcow2' | 'none';
  /** vm_iso_path; undefined for 0 (may be a CBSD media name, not a path, in an adopted descriptor) */
  isoPath?: string;
  /** vm_vnc_port as stored: 0 auto, 1 off, N that port (see {@link vncSetting}) */
  vncPort: number;
  /** vnc_password; undefined when empty */
  vncPassword?: string;
  /** virtio_type: the first disk's controller */
  virtioType: string;
  onPoweroff: 'destroy' | 'restart';
  onReboot: 'destroy' | 'restart';
  onCrash: 'destroy' | 'restart';
  /** stop_timeout, seconds */
  stopTimeout: number;
  /** vm_kernel: a kernel base to boot directly; undefined for 0 */
  kernel?: string;
  /** vm_cmdline: extra kernel command line */
  cmdline: string;
  disks: VmDisk[];
  nics: VmNic[];
  cloudInit?: CloudInitSpec;
}

/** The columns of a disk row, in CBSD's order (jmkrcconf), then berth's. */
export const DSK_COLUMNS: readonly string[] = ['controller', 'path', 'slot', 'type', 'size', 'format'];
/** The columns of a NIC row, in CBSD's order (jmkrcconf), then nic_mtu. */
export const NIC_COLUMNS: readonly string[] = ['order', 'driver', 'slot', 'type', 'parent', 'hwaddr', 'mtu'];
/** The cloud-init keys berth types (others are kept in {@link CloudInitSpec.extra}). */
export const CI_KEYS: readonly string[] = [
  'ci_jname', 'ci_fqdn', 'ci_template', 'ci_interface', 'ci_interface_name', 'ci_ip4_addr', 'ci_gw4', 'ci_nameserver_address',
  'ci_nameserver_search', 'ci_user_add', 'ci_user_pubkey', 'ci_user_pubkey2', 'ci_user_pw_user', 'ci_user_pw_root', 'ci_interface_mtu',
  'ci_interface2', 'ci_interface_name2', 'ci_ip4_addr2', 'ci_gw42', 'ci_interface_mtu2',
];

const DSK_ROW = /^dsk_(controller|path|slot|type|size|format)([1-9]\d*)$/;
const NIC_ROW = /^nic_(order|driver|slot|type|parent|hwaddr|mtu)([1-9]\d*)$/;
const CI_KEY = /^ci_[a-z0-9_]+$/;
const IFNAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;
const HWADDR = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i;
const SCALAR_KEYS = new Set(VM_SETTINGS.map((d) => d.key));

/** True for every key this model reads: the scalar VM keys, `dsk_*N`, `nic_*N` and `ci_*`. */
export function isVmKey(key: string): boolean {
  return SCALAR_KEYS.has(key) || DSK_ROW.test(key) || NIC_ROW.test(key) || CI_KEY.test(key);
}

const bad = (key: string, value: string, expected: string, hint?: string) =>
  usageError('E_BAD_VALUE', `bad ${key}=${JSON.stringify(value)}: expected ${expected}`, hint ? { hint } : undefined);

const set = (v: string | undefined): v is string => v !== undefined && v !== '' && v !== '0';

function checkDiskPath(key: string, v: string): string {
  if (!set(v) || /[\n\r\0]/.test(v)) throw bad(key, v, 'a file name in the env data dir (dsk1.vhd) or an absolute path');
  if (!v.startsWith('/') && posix.normalize(v).split('/').includes('..')) {
    throw bad(key, v, 'a path inside the env data dir', 'a relative dsk_path may not leave the data dir with ..');
  }
  return v;
}

function checkHwaddr(key: string, v: string): string | undefined {
  if (v === '0' || v === '') return undefined;
  if (!HWADDR.test(v)) throw bad(key, v, 'a MAC address like 02:a0:98:12:34:56, or 0 (choose one)');
  if (parseInt(v.slice(0, 2), 16) & 1) throw bad(key, v, 'a unicast MAC address (the first octet must be even)');
  return v.toLowerCase();
}

function checkParent(key: string, v: string): string {
  if (v === '0' || v === 'auto' || IFNAME.test(v)) return v;
  throw bad(key, v, 'a bridge name, auto, or 0 (no bridge)');
}

/**
 * Checks one row key (`dsk_*N`, `nic_*N`) and returns its stored form (sizes in bytes,
 * MAC addresses in lower case).
 * @throws BerthError E_BAD_VALUE (exit 2) naming key and value
 */
export function normalizeRowValue(key: string, value: string, emulator: VmEmulator): string {
  const d = DSK_ROW.exec(key);
  if (d) {
    switch (d[1]) {
      case 'controller': if (!['virtio-blk', 'ahci-hd', 'nvme'].includes(value)) throw bad(key, value, 'virtio-blk | ahci-hd | nvme'); return value;
      case 'path': return checkDiskPath(key, value);
      case 'slot': if (!/^\d+$/.test(value) || Number(value) > 31) throw bad(key, value, 'a PCI slot 0-31 (0 = auto)'); return String(Number(value));
      case 'type':
        if (value === 'rbd') {
          if (emulator !== 'qemu') throw bad(key, value, 'vhd (a disk image)', 'RBD images are opened by QEMU\'s rbd driver; bhyve reads files');
          return value;
        }
        if (value !== 'vhd' && value !== '0') throw bad(key, value, 'vhd (a disk image) | rbd (a Ceph RBD image pool/image, qemu)');
        return 'vhd';
      case 'size': return String(parseSize(value, key));
      case 'format':
        if (value === 'qcow2' && emulator !== 'qemu') throw bad(key, value, 'raw', 'qcow2 disks need qemu; bhyve reads raw images');
        if (value !== 'raw' && value !== 'qcow2') throw bad(key, value, 'raw | qcow2');
        return value;
    }
  }
  const n = NIC_ROW.exec(key);
  if (n) {
    switch (n[1]) {
      case 'order': if (!/^\d+$/.test(value)) throw bad(key, value, 'a whole number'); return String(Number(value));
      case 'driver':
        if (value === 'virtio-net') return 'vtnet';
        if (value !== 'vtnet' && value !== 'e1000') throw bad(key, value, 'vtnet (virtio-net) | e1000');
        return value;
      case 'slot': case 'type':
        if (!/^[A-Za-z0-9_:.-]{1,32}$/.test(value)) throw bad(key, value, '0 (auto) or a short word');
        return value;
      case 'parent': return checkParent(key, value);
      case 'hwaddr': return checkHwaddr(key, value) ?? '0';
      case 'mtu':
        if (!/^\d+$/.test(value) || (Number(value) !== 0 && (Number(value) < 68 || Number(value) > 65535))) throw bad(key, value, 'an MTU 68-65535, or 0 (the bridge\'s)');
        return String(Number(value));
    }
  }
  throw usageError('E_UNKNOWN_KEY', `unknown VM row key ${JSON.stringify(key)}`);
}

function rowIndexes(conf: EnvConf, re: RegExp, what: string, first = 1): number[] {
  const seen = new Map<number, string>();
  for (const k of Object.keys(conf)) {
    const m = re.exec(k);
    if (m) seen.set(Number(m[2]), k);
  }
  const idx = [...seen.keys()].sort((a, b) => a - b);
  idx.forEach((n, i) => {
    if (n !== i + first) {
      throw usageError('E_BAD_VALUE', `bad ${seen.get(n)}: ${what} rows are numbered 1, 2, 3 ... without gaps, and row ${i + first} is missing`, {
        hint: `renumber the ${what} rows from 1`,
      });
    }
  });
  return idx;
}

function parseDisks(conf: EnvConf, emulator: VmEmulator, virtioType: string, imgsize: number, imgtype: VmSpec['imgtype']): VmDisk[] {
  // rows 2.. without row 1 (bcreate dsk_path2=... beside the first disk): row 1 is CBSD's first disk
  const hasRow1 = Object.keys(conf).some((k) => DSK_ROW.exec(k)?.[2] === '1');
  const synth1 = !hasRow1 && imgtype !== 'none';
  const idx = rowIndexes(conf, DSK_ROW, 'disk', synth1 ? 2 : 1);
  if (synth1) idx.unshift(1);
  const disks: VmDisk[] = idx.map((i) => {
    const get = (c: string) => conf[`dsk_${c}${i}`];
    const norm = (c: string, def: string) => { const v = get(c); return v === undefined || v === '' ? def : normalizeRowValue(`dsk_${c}${i}`, v, emulator); };
    const path = get('path') ?? (i === 1 ? FIRST_DISK : undefined);
    if (path === undefined) throw usageError('E_BAD_VALUE', `disk row ${i} has no dsk_path${i}`, { hint: `set dsk_path${i}=dsk${i}.vhd or remove the dsk_*${i} keys` });
    const type = norm('type', 'vhd');
    return {
      index: i,
      controller: norm('controller', virtioType),
      path: type === 'rbd' ? rbdSpec(parseRbdImage(path, `dsk_path${i}`)) : normalizeRowValue(`dsk_path${i}`, path, emulator),
      slot: Number(norm('slot', '0')),
      type,
      size: Number(norm('size', i === 1 ? String(imgsize) : '0')),
      format: norm('format', i === 1 && imgtype === 'qcow2' ? 'qcow2' : 'raw') as VmDisk['format'],
    };
  });
  const paths = new Map<string, number>();
  for (const d of disks) {
    const p = isRbdDisk(d) ? `rbd:${d.path}` : d.path.startsWith('/') ? posix.normalize(d.path) : posix.normalize(`./${d.path}`);
    if (paths.has(p)) throw bad(`dsk_path${d.index}`, d.path, `a disk other than dsk_path${paths.get(p)}'s`, 'two rows naming one image would open it twice');
    paths.set(p, d.index);
  }
  return disks;
}

function parseNics(conf: EnvConf, emulator: VmEmulator): VmNic[] {
  const nics = rowIndexes(conf, NIC_ROW, 'NIC').map((i): VmNic => {
    const norm = (c: string, def: string) => { const v = conf[`nic_${c}${i}`]; return v === undefined || v === '' ? def : normalizeRowValue(`nic_${c}${i}`, v, emulator); };
    const hw = norm('hwaddr', '0');
    return {
      index: i,
      order: Number(norm('order', '0')),
      driver: norm('driver', 'vtnet') as VmNic['driver'],
      slot: norm('slot', '0'),
      type: norm('type', '0'),
      parent: norm('parent', 'auto'),
      hwaddr: hw === '0' ? undefined : hw,
      mtu: Number(norm('mtu', '0')),
    };
  });
  const macs = new Map<string, number>();
  for (const n of nics) {
    if (!n.hwaddr) continue;
    if (macs.has(n.hwaddr)) throw bad(`nic_hwaddr${n.index}`, n.hwaddr, `an address other than nic_hwaddr${macs.get(n.hwaddr)}'s`);
    macs.set(n.hwaddr, n.index);
  }
  return nics;
}

function parseCiAddresses(key: string, v: string): Pick<CiInterface, 'dhcp' | 'addresses'> {
  if (v === 'DHCP' || v === 'dhcp') return { dhcp: 'dhcp4', addresses: [] };
  if (v === 'DHCPv6' || v === 'dhcpv6') return { dhcp: 'dhcp6', addresses: [] };
  const addresses = v.split(/[,\s]+/).filter(Boolean).map((a): CiAddress => {
    const [ip, len, more] = a.split('/');
    const fam = isIP(ip ?? '');
    const prefix = len === undefined ? (fam === 6 ? 64 : 24) : Number(len);
    if (!fam || more !== undefined || (len !== undefined && !/^\d+$/.test(len)) || prefix > (fam === 6 ? 128 : 32)) {
      throw bad(key, v, 'DHCP, DHCPv6, or addresses like 10.0.0.5/24 (comma separated)');
    }
    return { address: ip!, prefix, family: fam as 4 | 6 };
  });
  if (!addresses.length) throw bad(key, v, 'DHCP, DHCPv6, or addresses like 10.0.0.5/24');
  return { addresses };
}

function parseCiInterface(conf: EnvConf, suffix: '' | '2'): CiInterface {
  const k = (base: string) => (suffix === '2' && base === 'ci_gw4' ? 'ci_gw42' : `${base}${suffix}`);
  const ip = conf[k('ci_ip4_addr')];
  const gw = conf[k('ci_gw4')];
  const mtu = conf[k('ci_interface_mtu')];
  const host = conf[k('ci_interface')];
  const name = conf[k('ci_interface_name')];
  if (set(gw) && gw !== 'auto' && !isIP(gw)) throw bad(k('ci_gw4'), gw, 'an IP address, auto or 0');
  if (set(mtu) && (!/^\d+$/.test(mtu) || Number(mtu) < 68 || Number(mtu) > 65535)) throw bad(k('ci_interface_mtu'), mtu, 'an MTU 68-65535');
  if (set(host) && !IFNAME.test(host)) throw bad(k('ci_interface'), host, 'an interface name');
  if (set(name) && !IFNAME.test(name)) throw bad(k('ci_interface_name'), name, 'an interface name in the guest, e.g. eth0');
  return {
    index: suffix === '2' ? 2 : 1,
    hostInterface: set(host) ? host : undefined,
    guestName: set(name) ? name : suffix === '2' ? 'eth1' : 'eth0',
    ...parseCiAddresses(k('ci_ip4_addr'), set(ip) ? ip : 'DHCP'),
    gateway: set(gw) && gw !== 'auto' ? gw : undefined,
    mtu: set(mtu) ? Number(mtu) : 0,
  };
}

const CI_OFF = new Set(['ci_gw4']);

function parseCloudInit(conf: EnvConf, jname: string, hostname: string): CloudInitSpec | undefined {
  const ciKeys = Object.keys(conf).filter((k) => CI_KEY.test(k));
  for (const k of ciKeys) if (/[\n\r\0]/.test(conf[k]!)) throw usageError('E_BAD_VALUE', `bad ${k}: values may not contain newlines or NUL`);
  if (!ciKeys.some((k) => !CI_OFF.has(k) && set(conf[k]))) return undefined;
  const list = (v: string | undefined) => (set(v) ? v.split(/[,\s]+/).filter(Boolean) : []);
  const nameservers = list(conf.ci_nameserver_address);
  for (const ns of nameservers) if (!isIP(ns)) throw bad('ci_nameserver_address', conf.ci_nameserver_address!, 'IP addresses (comma separated)');
  const users = list(conf.ci_user_add);
  for (const u of users) if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(u)) throw bad('ci_user_add', conf.ci_user_add!, 'user names (space separated)');
  const interfaces = [parseCiInterface(conf, '')];
  const second = ['ci_interface2', 'ci_ip4_addr2', 'ci_gw42', 'ci_interface_mtu2', 'ci_interface_name2'].some((k) => set(conf[k]));
  if (second) {
    if (!set(conf.ci_interface2) && !set(conf.ci_interface_name2)) {
      throw usageError('E_BAD_VALUE', `ci_ip4_addr2 set, but ci_interface2 is empty`, { hint: 'set ci_interface2 to the bridge of the second NIC (as CBSD bcreate requires)' });
    }
    interfaces.push(parseCiInterface(conf, '2'));
  }
  const fqdn = conf.ci_fqdn;
  if (set(fqdn) && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/.test(fqdn)) throw bad('ci_fqdn', fqdn, 'a host name');
  const extra: Record<string, string> = {};
  for (const k of ciKeys) if (!CI_KEYS.includes(k)) extra[k] = conf[k]!;
  return {
    instanceId: set(conf.ci_jname) ? conf.ci_jname : jname,
    hostname: set(fqdn) ? fqdn : hostname,
    template: set(conf.ci_template) ? conf.ci_template : undefined,
    interfaces,
    nameservers,
    searchDomains: list(conf.ci_nameserver_search),
    users,
    pubkeys: [conf.ci_user_pubkey, conf.ci_user_pubkey2].filter(set),
    pwUser: set(conf.ci_user_pw_user) ? conf.ci_user_pw_user : undefined,
    pwRoot: set(conf.ci_user_pw_root) ? conf.ci_user_pw_root : undefined,
    extra,
  };
}

/** Options of {@link parseVmSpec}. */
export interface ParseVmOptions {
  /** the emulator (default: the conf's `emulator`) */
  emulator?: VmEmulator;
}

/**
 * Parses a descriptor's flat map into a {@link VmSpec}: CBSD's defaults for missing keys,
 * sizes accepted as `512m`/`1g` or bytes, rows numbered from 1, the first disk `dsk1.vhd`
 * when there is no disk row. Keys that are not VM keys (the jail and berth keys) are ignored.
 * Cross-key rules: `vm_boot=cd` needs `vm_iso_path`; `vm_boot=hdd` needs a disk or `vm_kernel`;
 * `vm_kernel` boots from hdd only; no two rows name one image or one MAC address.
 * @throws BerthError E_BAD_VALUE (exit 2) naming the first bad key and value
 */
export function parseVmSpec(conf: EnvConf, opts: ParseVmOptions = {}): VmSpec {
  const emulator = (opts.emulator ?? conf.emulator) as VmEmulator;
  if (!VM_EMULATORS.includes(emulator)) throw bad('emulator', String(conf.emulator ?? ''), VM_EMULATORS.join(' | '));
  const jname = conf.jname ?? '';
  if (!jname) throw usageError('E_BAD_VALUE', 'a VM needs a jname');
  const defs = vmDefaults(emulator);
  const v: Record<string, string> = {};
  for (const d of VM_SETTINGS) {
    const raw = conf[d.key];
    v[d.key] = raw === undefined || (raw === '' && d.defaults[emulator] !== '') ? defs[d.key]! : d.normalize(raw, emulator);
  }
  const imgtype = v.imgtype as VmSpec['imgtype'];
  const imgsize = Number(v.imgsize);
  const disks = parseDisks(conf, emulator, v.virtio_type!, imgsize, imgtype);
  const hostname = set(conf.host_hostname) ? conf.host_hostname : jname;
  const spec: VmSpec = {
    jname,
    emulator,
    uuid: set(conf.uuid) ? conf.uuid : undefined,
    hostname,
    cpus: Number(v.vm_cpus),
    ram: Number(v.vm_ram),
    osType: v.vm_os_type!,
    boot: v.vm_boot as VmSpec['boot'],
    efi: v.vm_efi as VmSpec['efi'],
    imgsize: imgsize || disks[0]?.size || 0,
    imgtype,
    isoPath: set(v.vm_iso_path) ? v.vm_iso_path : undefined,
    vncPort: Number(v.vm_vnc_port),
    vncPassword: v.vnc_password ? v.vnc_password : undefined,
    virtioType: v.virtio_type!,
    onPoweroff: v.on_poweroff as VmSpec['onPoweroff'],
    onReboot: v.on_reboot as VmSpec['onReboot'],
    onCrash: v.on_crash as VmSpec['onCrash'],
    stopTimeout: Number(v.stop_timeout),
    kernel: set(v.vm_kernel) ? v.vm_kernel : undefined,
    cmdline: v.vm_cmdline!,
    disks,
    nics: parseNics(conf, emulator),
    cloudInit: parseCloudInit(conf, jname, hostname),
  };
  if (spec.boot === 'cd' && !spec.isoPath) throw bad('vm_boot', 'cd', 'hdd or net when vm_iso_path is 0', 'set vm_iso_path=/path/to/image.iso');
  if (spec.boot === 'cd' && !spec.isoPath!.startsWith('/')) {
    throw bad('vm_iso_path', spec.isoPath!, 'an absolute path with vm_boot=cd', 'this names a CBSD media entry; give the path of the ISO file');
  }
  if (spec.kernel && spec.boot !== 'hdd') throw bad('vm_boot', spec.boot, `hdd with vm_kernel=${spec.kernel}`, 'vm_kernel boots its kernel directly with the root on the first disk; set vm_kernel=0 to boot from cd or net');
  if (spec.boot === 'hdd' && !spec.disks.length && !spec.kernel) throw bad('vm_boot', 'hdd', 'cd or net: the VM has no disk (imgtype=none)');
  return spec;
}

/**
 * Checks a user's VM settings (bcreate, bset input) key by key and returns them in stored
 * form (sizes in bytes, MAC addresses in lower case); other keys are returned unchanged.
 * Cross-key rules are {@link parseVmSpec}'s: run it on the merged settings.
 * @throws BerthError E_BAD_VALUE (exit 2) naming key and value
 */
export function normalizeVmConf(input: EnvConf, emulator: VmEmulator): EnvConf {
  const out: EnvConf = {};
  for (const [k, val] of Object.entries(input)) {
    const d = VM_SETTINGS.find((s) => s.key === k);
    if (d) out[k] = d.normalize(val, emulator);
    else if (DSK_ROW.test(k) || NIC_ROW.test(k)) out[k] = normalizeRowValue(k, val, emulator);
    else if (CI_KEY.test(k) && /[\n\r\0]/.test(val)) throw usageError('E_BAD_VALUE', `bad ${k}: values may not contain newlines or NUL`);
    else out[k] = val;
  }
  return out;
}

/**
 * The flat keys of a spec as CBSD writes them (jmkrcconf: every bhyve column, then
 * `dsk_*N`, then `nic_*N`), plus berth's keys and the `ci_*` keys. Only VM keys: jname,
 * emulator, uuid, host_hostname and the other env keys are the caller's.
 * `dsk_sizeN`, `nic_mtuN` and `dsk_formatN` are written only when not 0 / raw.
 * `parseVmSpec({...toConf, jname, emulator})` gives the spec back.
 */
export function vmSpecToConf(spec: VmSpec): EnvConf {
  const c: EnvConf = {
    vm_cpus: String(spec.cpus),
    vm_ram: String(spec.ram),
    vm_os_type: spec.osType,
    vm_boot: spec.boot,
    virtio_type: spec.virtioType,
    vm_iso_path: spec.isoPath ?? '0',
    vm_efi: spec.efi,
    vm_vnc_port: String(spec.vncPort),
    vnc_password: spec.vncPassword ?? '',
    on_poweroff: spec.onPoweroff,
    on_reboot: spec.onReboot,
    on_crash: spec.onCrash,
    stop_timeout: String(spec.stopTimeout),
    imgsize: String(spec.imgsize),
    imgtype: spec.imgtype,
    vm_kernel: spec.kernel ?? '0',
    vm_cmdline: spec.cmdline,
  };
  spec.disks.forEach((d, i) => {
    const n = i + 1;
    c[`dsk_controller${n}`] = d.controller;
    c[`dsk_path${n}`] = d.path;
    c[`dsk_slot${n}`] = String(d.slot);
    c[`dsk_type${n}`] = d.type;
    if (d.size) c[`dsk_size${n}`] = String(d.size);
    if (d.format !== 'raw') c[`dsk_format${n}`] = d.format;
  });
  spec.nics.forEach((nic, i) => {
    const n = i + 1;
    c[`nic_order${n}`] = String(nic.order);
    c[`nic_driver${n}`] = nic.driver;
    c[`nic_slot${n}`] = nic.slot;
    c[`nic_type${n}`] = nic.type;
    c[`nic_parent${n}`] = nic.parent;
    c[`nic_hwaddr${n}`] = nic.hwaddr ?? '0';
    if (nic.mtu) c[`nic_mtu${n}`] = String(nic.mtu);
  });
  const ci = spec.cloudInit;
  if (ci) {
    if (ci.instanceId !== spec.jname) c.ci_jname = ci.instanceId;
    if (ci.hostname !== spec.hostname) c.ci_fqdn = ci.hostname;
    if (ci.template) c.ci_template = ci.template;
    for (const itf of ci.interfaces) {
      const s = itf.index === 2 ? '2' : '';
      if (itf.hostInterface) c[`ci_interface${s}`] = itf.hostInterface;
      if (itf.guestName !== (itf.index === 2 ? 'eth1' : 'eth0') || itf.index === 2) c[`ci_interface_name${s}`] = itf.guestName;
      c[`ci_ip4_addr${s}`] = itf.dhcp ? (itf.dhcp === 'dhcp4' ? 'DHCP' : 'DHCPv6') : itf.addresses.map((a) => `${a.address}/${a.prefix}`).join(',');
      if (itf.gateway) c[itf.index === 2 ? 'ci_gw42' : 'ci_gw4'] = itf.gateway;
      if (itf.mtu) c[`ci_interface_mtu${s}`] = String(itf.mtu);
    }
    if (ci.nameservers.length) c.ci_nameserver_address = ci.nameservers.join(',');
    if (ci.searchDomains.length) c.ci_nameserver_search = ci.searchDomains.join(' ');
    if (ci.users.length) c.ci_user_add = ci.users.join(' ');
    if (ci.pubkeys[0]) c.ci_user_pubkey = ci.pubkeys[0];
    if (ci.pubkeys[1]) c.ci_user_pubkey2 = ci.pubkeys[1];
    if (ci.pwUser) c.ci_user_pw_user = ci.pwUser;
    if (ci.pwRoot) c.ci_user_pw_root = ci.pwRoot;
    Object.assign(c, ci.extra);
  }
  return c;
}

/**
 * Orders keys as CBSD's jmkrcconf writes a VM: the scalar VM keys in column order, the disk
 * rows (row by row, columns in CBSD order), the NIC rows, the ci_* keys (typed ones first),
 * then the remaining keys in their given order. For a descriptor writer's key order.
 */
export function orderVmKeys(keys: readonly string[]): string[] {
  const rank = (k: string): [number, number, number] => {
    const s = VM_SETTINGS.findIndex((d) => d.key === k);
    if (s >= 0) return [1, 0, s];
    const d = DSK_ROW.exec(k);
    if (d) return [2, Number(d[2]), DSK_COLUMNS.indexOf(d[1]!)];
    const n = NIC_ROW.exec(k);
    if (n) return [3, Number(n[2]), NIC_COLUMNS.indexOf(n[1]!)];
    if (CI_KEY.test(k)) { const c = CI_KEYS.indexOf(k); return [4, c >= 0 ? 0 : 1, c]; }
    return [0, 0, 0];
  };
  const vm = keys.filter(isVmKey).sort((a, b) => {
    const [x, y] = [rank(a), rank(b)];
    return x[0] - y[0] || x[1] - y[1] || x[2] - y[2] || (a < b ? -1 : a > b ? 1 : 0);
  });
  return [...keys.filter((k) => !isVmKey(k)), ...vm];
}

/** True for a disk row on a Ceph RBD image (`dsk_type=rbd`): its path is `pool/image`, not a file. */
export function isRbdDisk(disk: Pick<VmDisk, 'type'>): boolean {
  return disk.type === 'rbd';
}

/** The file of a disk: `dsk_path` under the env's data dir, or the absolute path itself (not for RBD disks: {@link isRbdDisk}). */
export function diskFile(disk: Pick<VmDisk, 'path'>, dataDir: string): string {
  return disk.path.startsWith('/') ? disk.path : posix.join(dataDir, disk.path);
}

/** What vm_vnc_port asks for. */
export type VncSetting = { kind: 'auto' } | { kind: 'off' } | { kind: 'port'; port: number };

/** vm_vnc_port as a {@link VncSetting} (CBSD: 0 = auto in 5900-6900, 1 = off, N = that port). */
export function vncSetting(spec: Pick<VmSpec, 'vncPort'>): VncSetting {
  return spec.vncPort === 0 ? { kind: 'auto' } : spec.vncPort === 1 ? { kind: 'off' } : { kind: 'port', port: spec.vncPort };
}

/**
 * A random locally administered unicast MAC address (`02:xx:xx:xx:xx:xx`, IEEE 802: bit 1 of
 * the first octet set, bit 0 clear), for a NIC row whose nic_hwaddr is 0. bcreate stores it so
 * the VM keeps its address on every node.
 * @param bytes five random bytes (default: from crypto.getRandomValues)
 */
export function randomHwaddr(bytes?: Uint8Array): string {
  const b = bytes ?? globalThis.crypto.getRandomValues(new Uint8Array(5));
  return ['02', ...Array.from(b.slice(0, 5), (x) => x.toString(16).padStart(2, '0'))].join(':');
}

/**
 * A NIC row for a VM on bridge `parent` with CBSD's defaults (vtnet, order 0, slot and type
 * auto, MTU of the bridge) and a fresh MAC address.
 */
export function newNic(index: number, parent: string, hwaddr: string = randomHwaddr()): VmNic {
  return { index, order: 0, driver: 'vtnet', slot: '0', type: '0', parent: checkParent(`nic_parent${index}`, parent), hwaddr: checkHwaddr(`nic_hwaddr${index}`, hwaddr), mtu: 0 };
}

/**
 * For a clone (bclone): every NIC row that has an address gets a fresh one, so the clone and
 * its source never share a MAC address on a bridge. Changes `conf` in place.
 */
export function freshHwaddrs(conf: Record<string, string | undefined>): void {
  for (const k of Object.keys(conf)) {
    if (/^nic_hwaddr[1-9]\d*$/.test(k) && conf[k] && conf[k] !== '0') conf[k] = randomHwaddr();
  }
}

/** The default size of an empty first disk (re-exported for bcreate). */
export { DEFAULT_IMGSIZE };
