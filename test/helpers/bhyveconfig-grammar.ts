/**
 * A bhyve_config(5) checker for the tests: the `key=value` file that `bhyve -k <file>` reads,
 * checked the way bhyve(8) reads it, then against the variables and value forms the manual
 * documents, stricter than bhyve itself (which ignores unknown variables): a typo in a name
 * berth writes must fail a test, not be silently ignored on a FreeBSD host.
 *
 * Sources (FreeBSD src, usr.sbin/bhyve): bhyve.8 (`-k`: "Each line of the config file is
 * expected to consist of a config variable name, an equals sign ('='), and a value. No spaces
 * are permitted between the variable name, equals sign, or value. Blank lines and lines
 * starting with '#' are ignored."), bhyve_config.5 (the variables, their formats, booleans,
 * integers as strtol(3), `%(var)` references), bhyverun.c `parse_simple_config_file` /
 * `parse_config_option` (a line needs an '=' and a non-empty value; the name is everything
 * before the first '='), config.c (`set_config_value`: names are a tree split on '.', no empty
 * component, a variable cannot also be a node; `_expand_config_value`: `%(name)` expansion and
 * `\` escapes, applied only to values that contain a '%'; `_bool_value`), pci_emul.c
 * `pci_parse_slot` (`pci.<bus>.<slot>.<func>`, decimal without padding, bus < 256, slot < 32,
 * func < 8), pci_fbuf.c (rfb/tcp address forms, w 640..3840, h 480..2160, vga io|on|off, one
 * frame buffer), block_if.c (sectorsize), vmmapi.c `vm_parse_memsize` (a bare number below
 * 1 MiB is megabytes), sys/amd64/include/vmm.h (VM_MAX_NAMELEN 32 with the NUL).
 *
 * Stricter than bhyve on purpose (named so in the messages): unknown variables, a variable
 * set twice (bhyve keeps the last), relative paths (bhyve would resolve them against its
 * working directory), `config.dump` (makes bhyve print the config and exit without a VM),
 * device models bhyve_config(5) does not list (`ahci-hd`, `ahci-cd`, `amd_hostbridge` are
 * `-s` spellings only: in a config file they are `ahci` with `port.N.type` and `hostbridge`).
 *
 * Run as a program (`node --import tsx bhyveconfig-grammar.ts <file>`, used by the fake
 * bhyve) it prints the expanded values as `key<TAB>value` lines plus derived `@memory.bytes`,
 * or the error on stderr with exit status 4 (bhyve's exit status for a bad config).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

export class BhyveConfigError extends Error {
  constructor(readonly line: number, msg: string) {
    super(`bhyve config line ${line}: ${msg}`);
  }
}

/** One `key=value` line as written. */
export interface ConfigLine {
  key: string;
  value: string;
  line: number;
}

/** What bhyve(8) builds from the file: the tree's leaves, last value wins. */
export interface ParsedBhyveConfig {
  lines: ConfigLine[];
  /** raw (unexpanded) value of each variable */
  raw: Map<string, string>;
}

/** One PCI device node `pci.<bus>.<slot>.<func>`. */
export interface PciDevice {
  bus: number;
  slot: number;
  func: number;
  device: string;
  /** expanded values of the variables under the node, by relative name (`port.0.path`) */
  vars: Map<string, string>;
  line: number;
}

export interface CheckedBhyveConfig extends ParsedBhyveConfig {
  /** expanded values (what bhyve's get_config_value returns) */
  values: Map<string, string>;
  pci: PciDevice[];
  /** memory.size in bytes (default 256M), as vm_parse_memsize reads it */
  memoryBytes: number;
  cpus: number;
}

const MIB = 1024 * 1024;

/**
 * Reads the lines the way bhyve's parse_simple_config_file does, then builds the variable
 * tree with set_config_value's rules.
 * @param opts.allowRepeat accept a variable set twice (bhyve does: last wins); default false
 * @throws BhyveConfigError naming the line
 */
export function parseBhyveConfig(text: string, opts: { allowRepeat?: boolean } = {}): ParsedBhyveConfig {
  const lines: ConfigLine[] = [];
  const raw = new Map<string, string>();
  const where = new Map<string, number>();
  const nodes = new Map<string, number>(); // node path -> line that made it
  const parts = text.split('\n');
  if (parts[parts.length - 1] === '') parts.pop();
  parts.forEach((l, i) => {
    const n = i + 1;
    if (l === '' || l.startsWith('#')) return;
    const eq = l.indexOf('=');
    if (eq < 0 || eq === l.length - 1) throw new BhyveConfigError(n, `invalid config option '${l}' (bhyve needs name=value with a non-empty value)`);
    const key = l.slice(0, eq);
    const value = l.slice(eq + 1);
    if (key === '') throw new BhyveConfigError(n, `invalid config option '${l}': empty variable name`);
    if (/\s/.test(key)) throw new BhyveConfigError(n, `variable name ${JSON.stringify(key)} contains white space (no spaces are permitted around '=')`);
    if (!/^[A-Za-z0-9_.-]+$/.test(key)) throw new BhyveConfigError(n, `variable name ${JSON.stringify(key)} has characters outside [A-Za-z0-9_.-]`);
    const comps = key.split('.');
    if (comps.some((c) => c === '')) throw new BhyveConfigError(n, `Invalid configuration node: ${key} (empty name component)`);
    for (let k = 1; k < comps.length; k++) {
      const prefix = comps.slice(0, k).join('.');
      if (raw.has(prefix)) throw new BhyveConfigError(n, `Configuration node ${key} is a child of existing variable ${prefix} (line ${where.get(prefix)})`);
      if (!nodes.has(prefix)) nodes.set(prefix, n);
    }
    if (nodes.has(key)) throw new BhyveConfigError(n, `Attempting to add value ${value} to existing node ${key} (made by line ${nodes.get(key)})`);
    if (raw.has(key) && !opts.allowRepeat) throw new BhyveConfigError(n, `${key} is set twice (also line ${where.get(key)}); bhyve would keep the last value (stricter than bhyve)`);
    if (/[\x00-\x1f\x7f]/.test(value)) throw new BhyveConfigError(n, `${key}: the value contains a control character ${JSON.stringify(value)} (a CR of a CRLF file, a tab ...)`);
    raw.set(key, value);
    where.set(key, n);
    lines.push({ key, value, line: n });
  });
  return { lines, raw };
}

/**
 * Expands `%(name)` references and `\` escapes as config.c `_expand_config_value` does (only
 * for values containing a '%'). Problems bhyve only warns about are errors here.
 * @throws Error with the reason
 */
export function expandValue(value: string, lookup: (name: string) => string | undefined, depth = 0): string {
  if (depth === 0 && !value.includes('%')) return value;
  let out = '';
  for (let i = 0; i < value.length;) {
    const c = value[i]!;
    if (c === '%') {
      if (depth > 15) throw new Error('Too many recursive references in configuration value');
      const close = value[i + 1] === '(' && i + 2 < value.length ? value.indexOf(')', i + 2) : -1;
      if (close < 0) throw new Error(`Invalid reference in configuration value "${value}" (a lone % is kept by bhyve with a warning; write \\% for a literal %)`);
      const name = value.slice(i + 2, close);
      if (name === '') throw new Error(`Empty reference in configuration value "${value}"`);
      const v = lookup(name);
      if (v === undefined) throw new Error(`Failed to fetch referenced configuration variable ${name}`);
      out += expandValue(v, lookup, depth + 1);
      i = close + 1;
      continue;
    }
    if (c === '\\') {
      if (i + 1 >= value.length) throw new Error(`Trailing \\ in configuration value "${value}"`);
      out += value[i + 1];
      i += 2;
      continue;
    }
    out += c;
    i++;
  }
  return out;
}

// ---- value forms ---------------------------------------------------------------------------

type Check = (v: string) => string | undefined; // returns the problem, or undefined when fine

/** bhyve_config(5) booleans (config.c _bool_value): true/on/yes/1, false/off/no/0; words case-insensitive. */
export function parseBool(v: string): boolean | undefined {
  if (/^(true|on|yes)$/i.test(v) || v === '1') return true;
  if (/^(false|off|no)$/i.test(v) || v === '0') return false;
  return undefined;
}

/** strtol(3) with base 0, the whole string consumed (no white space). */
export function parseInteger(v: string): number | undefined {
  const m = /^([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(v);
  if (!m) return undefined;
  const body = m[2]!;
  const n = /^0[xX]/.test(body) ? parseInt(body.slice(2), 16) : body.length > 1 && body[0] === '0' ? parseInt(body, 8) : parseInt(body, 10);
  return m[1] === '-' ? -n : n;
}

/**
 * vmmapi.c vm_parse_memsize: a whole number (strtoul base 0) is bytes, or megabytes when below
 * 1 MiB; otherwise expand_number(3): digits and one of k m g t p e (any case).
 */
export function parseMemsize(v: string): number | undefined {
  const whole = /^(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(v);
  if (whole) {
    const n = parseInteger(v)!;
    return n < MIB ? n * MIB : n;
  }
  const m = /^([0-9]+)([kKmMgGtTpPeE])$/.exec(v);
  if (!m) return undefined;
  const shift = 'kmgtpe'.indexOf(m[2]!.toLowerCase()) + 1;
  return Number(m[1]) * 1024 ** shift;
}

const bool: Check = (v) => (parseBool(v) === undefined ? `not a boolean (true/on/yes/1 or false/off/no/0)` : undefined);
const int = (min: number, max: number): Check => (v) => {
  const n = parseInteger(v);
  if (n === undefined) return 'not an integer (strtol syntax: decimal, 0x hex or 0 octal)';
  return n < min || n > max ? `out of range ${min}..${max}` : undefined;
};
const str: Check = () => undefined;
const maxLen = (n: number): Check => (v) => (v.length > n ? `longer than ${n} characters` : undefined);
const oneOf = (...vals: string[]): Check => (v) => (vals.includes(v) ? undefined : `expected one of ${vals.join(', ')}`);
const absPath: Check = (v) => (v.startsWith('/') ? undefined : 'not an absolute path (stricter than bhyve, which would resolve it against its working directory)');
const pcireg: Check = (v) => (v === 'host' || parseInteger(v) !== undefined ? undefined : 'expected an integer or host');
const sectorsize: Check = (v) => {
  const m = /^([0-9]+)(?:\/([0-9]+))?$/.exec(v);
  if (!m) return 'expected logical[/physical] sector sizes';
  const l = Number(m[1]);
  const p = m[2] === undefined ? l : Number(m[2]);
  const pow2 = (x: number) => x > 0 && (x & (x - 1)) === 0;
  return !pow2(l) || !pow2(p) || l < 512 || l > p ? 'sector sizes must be powers of two, at least 512, logical <= physical (block_if.c)' : undefined;
};
const mac: Check = (v) => {
  if (!/^[0-9A-Fa-f]{1,2}(:[0-9A-Fa-f]{1,2}){5}$/.test(v)) return 'not a MAC address in ethers(5) form (xx:xx:xx:xx:xx:xx)';
  const first = parseInt(v.split(':')[0]!, 16);
  if (first & 1) return 'a multicast MAC address (bhyve requires a unicast one)';
  if (v.split(':').every((x) => parseInt(x, 16) === 0)) return 'the zero MAC address';
  return undefined;
};
const port = (v: string) => /^[0-9]+$/.test(v) && Number(v) <= 65535;
/** pci_fbuf.c: `[IP:]port` or `[IPv6%zone]:port`, IP numeric. */
const rfbAddr: Check = (v) => {
  if (v.startsWith('[')) {
    const m = /^\[([0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.]+)?)\](?::([0-9]+))?$/.exec(v);
    return m && m[1]!.includes(':') && (m[2] === undefined || port(m[2])) ? undefined : 'expected [IPv6]:port';
  }
  const m = /^(?:([0-9.]+):)?([0-9]+)$/.exec(v);
  if (!m || !port(m[2]!)) return 'expected [IP:]port with a numeric IPv4 address';
  if (m[1] !== undefined && !/^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/.test(m[1])) return 'not a numeric IPv4 address';
  return undefined;
};
/** TTY backends (bhyve.8 "TTY device backends"): stdio, a device path, tcp=ip:port. */
const tty: Check = (v) => (v === 'stdio' || v.startsWith('/dev/') || /^tcp=/.test(v) ? undefined : 'expected stdio, a /dev/ path or tcp=ip:port');
const vmName: Check = (v) => (/^[A-Za-z0-9][A-Za-z0-9_.-]{0,30}$/.test(v) ? undefined : 'not a VM name: letters, digits, _ . -, at most 31 characters (VM_MAX_NAMELEN 32 with the NUL)');
const uuid: Check = (v) => (/^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/.test(v) ? undefined : 'not a UUID (8-4-4-4-12 hex digits)');
const layoutName: Check = (v) => (/^[A-Za-z0-9_.-]+$/.test(v) && !v.includes('..') ? undefined : 'not a file name under /usr/share/bhyve/kbdlayout');
/** net_backends.c: tapN, vmnetN, netgraph, netmap:ifname, valeX:port, slirp. */
const backend: Check = (v) => (/^(tap|vmnet)[0-9]+$/.test(v) || v === 'netgraph' || v === 'slirp' || /^netmap:.+/.test(v) || /^vale[^:]*:.+/.test(v) ? undefined : 'expected tapN, vmnetN, netgraph, netmap:<if>, vale<bridge>:<port> or slirp');

const GLOBAL: Record<string, Check> = {
  name: vmName, cpus: int(1, 65535), cores: int(1, 65535), threads: int(1, 65535), sockets: int(1, 65535),
  'memory.guest_in_core': bool, 'memory.size': (v) => (parseMemsize(v) === undefined ? 'not a size (expand_number(3): digits and k, m, g, t ...)' : undefined),
  'memory.wired': bool, acpi_tables: bool, destroy_on_poweroff: bool,
  'gdb.address': str, 'gdb.port': int(0, 65535), 'gdb.wait': bool,
  'keyboard.layout': layoutName, 'rtc.use_localtime': bool, uuid, virtio_msix: bool,
  'x86.mptable': bool, 'x86.x2apic': bool, 'x86.strictio': bool, 'x86.strictmsr': bool, 'x86.vmexit_on_hlt': bool, 'x86.vmexit_on_pause': bool,
  'lpc.bootrom': absPath, 'lpc.bootvars': absPath, 'lpc.fwcfg': oneOf('bhyve', 'qemu'), 'lpc.pc-testdev': bool,
  'lpc.com1.path': tty, 'lpc.com2.path': tty, 'lpc.com3.path': tty, 'lpc.com4.path': tty,
  'lpc.pcireg.vendor': pcireg, 'lpc.pcireg.device': pcireg, 'lpc.pcireg.revid': pcireg, 'lpc.pcireg.subvendor': pcireg, 'lpc.pcireg.subdevice': pcireg,
};
for (const k of ['bios.vendor', 'bios.version', 'bios.release_date', 'system.family_name', 'system.manufacturer', 'system.product_name',
  'system.serial_number', 'system.sku', 'system.version', 'board.manufacturer', 'board.product_name', 'board.version',
  'board.serial_number', 'board.asset_tag', 'board.location', 'chassis.manufacturer', 'chassis.version', 'chassis.serial_number',
  'chassis.asset_tag', 'chassis.sku']) GLOBAL[k] = str;

const BLOCK: Record<string, Check> = { path: absPath, nocache: bool, nodelete: bool, sync: bool, direct: bool, ro: bool, sectorsize, bootindex: int(0, 65535) };
const NETBE: Record<string, Check> = { backend, type: oneOf('tap', 'netgraph', 'netmap', 'slirp'), path: str, peerhook: str, socket: str, hook: str, hostfwd: str };

/** Per-device variables (bhyve_config(5) DEVICE SETTINGS); `N` in a name stands for a number. */
const DEVICES: Record<string, Record<string, Check>> = {
  hostbridge: { vendor: int(0, 0xffff), devid: int(0, 0xffff), 'pcireg.vendor': int(0, 0xffff), 'pcireg.device': int(0, 0xffff) },
  ahci: Object.fromEntries([...Object.entries(BLOCK), ['type', oneOf('hd', 'cd')], ['nmrr', int(0, 65535)], ['ser', maxLen(20)], ['rev', maxLen(8)], ['model', maxLen(40)]]
    .map(([k, c]) => [`port.N.${k as string}`, c as Check])),
  'virtio-blk': { ...BLOCK, ser: maxLen(20) },
  nvme: { ...BLOCK, ram: int(1, 1 << 30), maxq: int(1, 16384), qsz: int(1, 65536), ioslots: int(1, 65536), sectsz: oneOf('512', '4096', '8192'), ser: maxLen(20), eui64: int(0, Number.MAX_SAFE_INTEGER), dsm: oneOf('auto', 'enable', 'disable') },
  'virtio-net': { ...NETBE, mac, mtu: int(68, 65535) },
  e1000: { ...NETBE, mac },
  fbuf: { wait: bool, rfb: rfbAddr, tcp: rfbAddr, vga: oneOf('io', 'on', 'off'), w: int(640, 3840), h: int(480, 2160), password: str },
  xhci: { 'slot.N.device': oneOf('tablet') },
  lpc: {},
  'virtio-rnd': {},
  'virtio-9p': { sharename: str, path: absPath, ro: bool },
  'virtio-console': { 'port.N.name': str, 'port.N.path': absPath },
  'virtio-input': { path: absPath },
  'virtio-scsi': { dev: absPath, iid: int(0, 65535), bootindex: int(0, 65535) },
  uart: { path: tty },
  passthru: { bus: int(0, 255), slot: int(0, 31), func: int(0, 7), pptdev: str, rom: absPath, bootindex: int(0, 65535) },
  hda: { play: absPath, rec: absPath },
};
const LEGACY_SPELLING: Record<string, string> = { 'ahci-hd': 'ahci with port.0.type=hd', 'ahci-cd': 'ahci with port.0.type=cd', amd_hostbridge: 'hostbridge with vendor/devid' };
const DEC = '(0|[1-9][0-9]*)';
const PCI_KEY = new RegExp(`^pci\\.${DEC}\\.${DEC}\\.${DEC}\\.(.+)$`);

/**
 * Parses and checks a bhyve -k config with every rule above.
 * @throws BhyveConfigError naming the line and the problem
 */
export function checkBhyveConfig(text: string): CheckedBhyveConfig {
  const parsed = parseBhyveConfig(text);
  const lookup = (name: string) => parsed.raw.get(name);
  const values = new Map<string, string>();
  const lineOf = new Map(parsed.lines.map((l) => [l.key, l.line]));
  const fail = (key: string, msg: string): never => { throw new BhyveConfigError(lineOf.get(key) ?? 0, `${key}=${parsed.raw.get(key) ?? ''}: ${msg}`); };
  for (const l of parsed.lines) {
    try { values.set(l.key, expandValue(l.value, lookup)); } catch (e) { throw new BhyveConfigError(l.line, `${l.key}: ${(e as Error).message}`); }
  }

  const devs = new Map<string, PciDevice>();
  for (const [key, value] of values) {
    if (key === 'config.dump') fail(key, 'config.dump makes bhyve print its configuration and exit without running the VM');
    const m = PCI_KEY.exec(key);
    if (!m) {
      const check = GLOBAL[key];
      if (!check) fail(key, key.startsWith('pci.') ? 'not pci.<bus>.<slot>.<func>.<name> with decimal numbers without padding' : 'unknown variable (not in bhyve_config(5); stricter than bhyve, which ignores it)');
      const why = check!(value);
      if (why) fail(key, why);
      continue;
    }
    const [bus, slot, func] = [Number(m[1]), Number(m[2]), Number(m[3])];
    if (bus > 255 || slot > 31 || func > 7) fail(key, 'PCI address out of range (bus 0..255, slot 0..31, function 0..7)');
    const id = `${bus}.${slot}.${func}`;
    let d = devs.get(id);
    if (!d) { d = { bus, slot, func, device: '', vars: new Map(), line: lineOf.get(key)! }; devs.set(id, d); }
    d.vars.set(m[4]!, value);
  }
  for (const d of devs.values()) {
    const node = `pci.${d.bus}.${d.slot}.${d.func}`;
    const device = d.vars.get('device');
    if (device === undefined) throw new BhyveConfigError(d.line, `${node} has no device variable (every PCI device node must name its model)`);
    if (LEGACY_SPELLING[device]) fail(`${node}.device`, `"${device}" is a bhyve -s spelling, not a device model of bhyve_config(5): write ${LEGACY_SPELLING[device]}`);
    const schema = DEVICES[device];
    if (!schema) fail(`${node}.device`, `unknown device model (bhyve_config(5) lists ${Object.keys(DEVICES).join(', ')})`);
    d.device = device;
    d.vars.delete('device');
    const indexes = new Map<string, Set<number>>();
    for (const [rel, v] of d.vars) {
      const generic = rel.replace(/^(port|slot)\.(0|[1-9][0-9]*)\./, '$1.N.');
      const check = schema![generic];
      if (!check) fail(`${node}.${rel}`, `unknown variable for a ${device} device`);
      const why = check!(v);
      if (why) fail(`${node}.${rel}`, why);
      const im = /^(port|slot)\.([0-9]+)\./.exec(rel);
      if (im) {
        const s = indexes.get(im[1]!) ?? new Set<number>();
        s.add(Number(im[2]));
        indexes.set(im[1]!, s);
      }
    }
    if (d.device === 'lpc' && d.bus !== 0) fail(`${node}.device`, 'the LPC bridge must be on bus 0');
    if (d.device === 'ahci' || d.device === 'virtio-console') {
      const ports = [...(indexes.get('port') ?? [])].sort((a, b) => a - b);
      if (d.device === 'ahci' && ports.length === 0) fail(`${node}.device`, 'an ahci controller with no port.N (no disk)');
      ports.forEach((p, i) => { if (p !== i) fail(`${node}.port.${p}.${d.device === 'ahci' ? 'type' : 'path'}`, `port numbers must be successive from 0 (port.${i} is missing)`); });
      if (d.device === 'ahci') {
        if (ports.length > 32) fail(`${node}.device`, 'more than 32 AHCI ports');
        for (const p of ports) for (const need of ['type', 'path']) if (!d.vars.has(`port.${p}.${need}`)) fail(`${node}.port.${p}.${d.vars.has(`port.${p}.type`) ? 'type' : 'path'}`, `port.${p} has no ${need}`);
      }
    }
    if (d.device === 'xhci') for (const s of indexes.get('slot') ?? []) if (s < 1) fail(`${node}.slot.${s}.device`, 'USB slot numbers begin at 1');
    if (d.device === 'virtio-blk' && !d.vars.has('path')) fail(`${node}.device`, 'a virtio-blk device with no path');
    if (d.device === 'nvme' && d.vars.has('path') === d.vars.has('ram')) fail(`${node}.device`, 'an nvme device needs exactly one of path and ram');
    if ((d.device === 'virtio-net' || d.device === 'e1000') && !d.vars.has('backend')) fail(`${node}.device`, 'a network device with no backend');
  }
  const pci = [...devs.values()].sort((a, b) => a.bus - b.bus || a.slot - b.slot || a.func - b.func);
  // cross-device rules
  const fbufs = pci.filter((d) => d.device === 'fbuf');
  if (fbufs.length > 1) throw new BhyveConfigError(fbufs[1]!.line, 'Only one frame buffer device is allowed (pci_fbuf.c)');
  const lpcs = pci.filter((d) => d.device === 'lpc');
  if (lpcs.length > 1) throw new BhyveConfigError(lpcs[1]!.line, 'more than one LPC bridge');
  for (const k of ['lpc.com1.path', 'lpc.com2.path', 'lpc.com3.path', 'lpc.com4.path']) if (values.has(k) && lpcs.length === 0) fail(k, 'a COM port needs an lpc device (pci.0.<slot>.0.device=lpc)');
  const taps = new Map<string, PciDevice>();
  for (const d of pci) {
    const be = d.vars.get('backend');
    if (be && /^(tap|vmnet)/.test(be)) {
      const o = taps.get(be);
      if (o) fail(`pci.${d.bus}.${d.slot}.${d.func}.backend`, `${be} is the backend of two devices (pci.${o.bus}.${o.slot}.${o.func} too): the second open fails`);
      taps.set(be, d);
    }
  }
  const memoryBytes = values.has('memory.size') ? parseMemsize(values.get('memory.size')!)! : 256 * MIB;
  if (memoryBytes % 4096 !== 0) fail('memory.size', 'not a multiple of the 4 KiB page size (vmm refuses it)');
  const cpus = values.has('cpus') ? parseInteger(values.get('cpus')!)! : 1;
  const topo = ['sockets', 'cores', 'threads'].map((k) => (values.has(k) ? parseInteger(values.get(k)!)! : undefined));
  if (values.has('cpus') && topo.some((t) => t !== undefined)) {
    const [s, c, t] = [topo[0] ?? cpus, topo[1] ?? 1, topo[2] ?? 1];
    if (s * c * t !== cpus) fail('cpus', `topology (${s} sockets, ${c} cores, ${t} threads) does not match ${cpus} vCPUs`);
  }
  return { ...parsed, values, pci, memoryBytes, cpus };
}

/** The PCI device at bus 0, `slot`, function 0, if any. */
export function pciAt(conf: CheckedBhyveConfig, slot: number, bus = 0, func = 0): PciDevice | undefined {
  return conf.pci.find((d) => d.bus === bus && d.slot === slot && d.func === func);
}

// Run as a program: check a file, print its expanded values (for the fake bhyve of test/helpers/fakebsd).
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const file = process.argv[2];
  try {
    if (!file) throw new Error('usage: bhyveconfig-grammar.ts <config file>');
    const c = checkBhyveConfig(readFileSync(file, 'utf8'));
    const out = [...c.values].map(([k, v]) => `${k}\t${v}`);
    out.push(`@memory.bytes\t${c.memoryBytes}`, `@cpus\t${c.cpus}`);
    process.stdout.write(out.join('\n') + '\n');
  } catch (e) {
    process.stderr.write(`bhyve: ${file}: ${(e as Error).message}\n`);
    process.exit(4);
  }
}
