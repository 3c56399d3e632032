/**
 * The jail.conf(5) block berth writes for one env (CBSD `makejconf`, cbsd-behaviour.md §5.3).
 * Pure: no I/O. The engine (src/engines/jail.ts) writes the text to
 * `<workdir>/var/run/jail/<jname>.conf` and runs `jail -f <conf> -c|-r <jname>`.
 *
 * Syntax (FreeBSD usr.sbin/jail/jaillex.l, jailparse.y): `name { param; param = "v"; p += "v"; }`.
 * Every value is written double-quoted. Inside double quotes jail(8) expands `$name` and
 * `${name}` variables and processes C-style backslash escapes, so `\`, `"` and `$` are
 * escaped with a backslash and control characters become octal escapes: any text survives
 * unchanged (see {@link quoteJailValue}).
 *
 * Key mapping (CBSD semantics, env setting → jail(8) parameter):
 * - `exec_start` (default `/bin/sh /etc/rc`), `exec_stop` (default `/bin/sh /etc/rc.shutdown`),
 *   `exec_prestart`, `exec_poststart`, `exec_prestop`, `exec_poststop` → `exec.*`; the value
 *   `0` (or empty) means no command (CBSD writes an empty string; berth omits the line).
 * - `host_hostname` (default jname) → `host.hostname`; the assembled root → `path`.
 * - always `allow.socket_af;` and `allow.chflags;` as CBSD does (turn off with
 *   `allow_socket_af=0` / `allow_chflags=0`).
 * - `allow_<x>=1` → `allow.<x>;` for raw_sockets, sysvipc, mlock, nfsd, read_msgbuf, vmm,
 *   unprivileged_proc_debug, reserved_ports, set_hostname; `allow_<x>=0` → `allow.no<x>;`
 *   only for the two jail(8) turns on by default (reserved_ports, set_hostname).
 * - `sysvsem`/`sysvshm`/`sysvmsg` = new|inherit|disable → same-named parameters.
 * - `ip4_addr` (comma list; IPv6 entries in it go to ip6.addr, as in CBSD) and `ip6_addr` →
 *   `ip4.addr = "<iface>|<ip>";` then `ip4.addr += ...;` for the rest (`<iface>|` only when a
 *   host interface is given). `ip4_addr=0` (no address) → `ip4 = "inherit";` and, without
 *   ip6_addr, `ip6 = "inherit";`: the env shares the host's addresses (design/product.md).
 * - `vnet=1` → `vnet = "new";` and `vnet.interface = "<jail end of the epair>";`; the
 *   addresses are configured inside the jail by `ifconfig` commands prepended to exec.start
 *   (jail(8) moves vnet.interface into the jail before exec.start runs).
 * - `mount_devfs=0` or `devfs=0|NO` → `mount.nodevfs;`, else `mount.devfs;`;
 *   `devfs_ruleset=N` → `devfs_ruleset = "N";` (jail(8) applies ruleset 4 when unset).
 * - `allow_mount=1` → `allow.mount;` plus `allow.mount.<fs>;` for every `allow_<fs>=1`
 *   (devfs nullfs fusefs fdescfs procfs linprocfs linsysfs tmpfs zfs) and
 *   `enforce_statfs = "1"` unless `enforce_statfs` is set (CBSD).
 * - `exec_timeout`, `exec_fib`, `stop_timeout`, `childrenmax` → `exec.timeout`, `exec.fib`,
 *   `stop.timeout`, `children.max` (integers); `mount_fdescfs=1`/`mount_procfs=1` →
 *   `mount.fdescfs;`/`mount.procfs;`; `exec_consolelog=1` → `<workdir>/var/log/<jname>.console.log`,
 *   an absolute path → itself; `persist=1` → `persist;`; `enforce_statfs=N` → `enforce_statfs`.
 */
import type { EnvConf } from '../../descriptor.js';

/** Default exec.start / exec.stop of a FreeBSD jail (CBSD defaults). */
export const DEFAULT_JAIL_EXEC_START = '/bin/sh /etc/rc';
export const DEFAULT_JAIL_EXEC_STOP = '/bin/sh /etc/rc.shutdown';

/** One parameter statement of a jail block. `value` undefined = a valueless boolean (`persist;`). */
export interface JailParam {
  name: string;
  op?: '=' | '+=';
  value?: string;
}

/** Inputs of {@link jailConf}. */
export interface JailConfInput {
  jname: string;
  conf: EnvConf;
  /** the assembled root the jail runs on (jails/<jname>) */
  path: string;
  /** the workdir root (for exec_consolelog=1) */
  workdir: string;
  /** host interface the (non-vnet) addresses are aliased on, already resolved (never 'auto'); undefined = none */
  ipInterface?: string;
  /** vnet=1: the jail end of the env's epair (e.g. epair0b) */
  vnetInterface?: string;
  /** stop.timeout in seconds; overrides the env's stop_timeout (the engine sets it at stop) */
  stopTimeout?: number;
  /** comment lines written above the block */
  header?: string[];
}

/** True for a setting that is set and not `0`/empty (CBSD's "0 means none"). */
function isSet(v: string | undefined): v is string {
  return v !== undefined && v !== '' && v !== '0';
}

/** Splits a CBSD address list (`a,b c`) into its entries. `0`/empty → []. */
export function splitAddrs(v: string | undefined): string[] {
  if (!isSet(v)) return [];
  return v.split(/[\s,]+/).filter(Boolean);
}

/** True for an IPv6 address entry (with or without /prefix). */
export function isIp6(addr: string): boolean {
  return addr.includes(':');
}

/**
 * Quotes a value for jail.conf(5): double quotes, with `\` `"` `$` escaped and control
 * characters written as 3-digit octal escapes (the lexer reads `\ooo`), so jail(8) reads
 * back exactly `s` and never expands a variable.
 */
export function quoteJailValue(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\' || ch === '"' || ch === '$') out += '\\' + ch;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += '\\' + c.toString(8).padStart(3, '0');
    else out += ch;
  }
  return out + '"';
}

const ALLOW_PLAIN = ['raw_sockets', 'sysvipc', 'mlock', 'nfsd', 'read_msgbuf', 'vmm', 'unprivileged_proc_debug'];
/** allow.* parameters jail(8) turns on by default (jail(8) "allow.*"). */
const ALLOW_DEFAULT_ON = ['reserved_ports', 'set_hostname'];
const ALLOW_MOUNT_FS = ['devfs', 'nullfs', 'fusefs', 'fdescfs', 'procfs', 'linprocfs', 'linsysfs', 'tmpfs', 'zfs'];

/**
 * The ifconfig commands run first inside a vnet jail to configure its addresses on
 * `ifname` (the jail end of the epair): the first IPv4 address with `inet A/N`, the others
 * with `alias`; IPv6 with `inet6 ... alias`.
 */
export function vnetAddrCommands(conf: EnvConf, ifname: string): string[] {
  const all = [...splitAddrs(conf.ip4_addr), ...splitAddrs(conf.ip6_addr)];
  const cmds: string[] = [];
  let first4 = true;
  for (const a of all) {
    if (isIp6(a)) cmds.push(`/sbin/ifconfig ${ifname} inet6 ${a} alias`);
    else if (first4) { cmds.push(`/sbin/ifconfig ${ifname} inet ${a} up`); first4 = false; }
    else cmds.push(`/sbin/ifconfig ${ifname} inet ${a} alias`);
  }
  return cmds;
}

/** The parameters of the env's jail block, in the order they are written (CBSD makejconf order). */
export function jailParams(i: JailConfInput): JailParam[] {
  const c = i.conf;
  const out: JailParam[] = [];
  const set = (name: string, value: string, op: '=' | '+=' = '='): void => { out.push({ name, op, value }); };
  const flag = (name: string): void => { out.push({ name }); };
  const vnet = c.vnet === '1';

  // exec.* commands
  const start: string[] = [];
  if (vnet && i.vnetInterface) start.push(...vnetAddrCommands(c, i.vnetInterface));
  if (c.exec_start === undefined || c.exec_start === '') start.push(DEFAULT_JAIL_EXEC_START);
  else if (c.exec_start !== '0') start.push(c.exec_start);
  start.forEach((cmd, n) => set('exec.start', cmd, n === 0 ? '=' : '+='));
  const stop = c.exec_stop === undefined || c.exec_stop === '' ? DEFAULT_JAIL_EXEC_STOP : c.exec_stop;
  if (stop !== '0') set('exec.stop', stop);
  for (const k of ['poststart', 'poststop', 'prestart', 'prestop']) {
    const v = c[`exec_${k}`];
    if (isSet(v)) set(`exec.${k}`, v);
  }

  set('host.hostname', isSet(c.host_hostname) ? c.host_hostname : i.jname);
  set('path', i.path);
  if (c.allow_socket_af !== '0') flag('allow.socket_af');
  if (c.allow_chflags !== '0') flag('allow.chflags');
  for (const k of ALLOW_PLAIN) if (c[`allow_${k}`] === '1') flag(`allow.${k}`);
  for (const k of ['sysvsem', 'sysvshm', 'sysvmsg']) {
    const v = c[k];
    if (v === 'new' || v === 'inherit' || v === 'disable') set(k, v);
  }

  // network
  if (vnet) {
    set('vnet', 'new');
    if (i.vnetInterface) set('vnet.interface', i.vnetInterface);
  } else {
    const v4 = splitAddrs(c.ip4_addr);
    const v6 = [...v4.filter(isIp6), ...splitAddrs(c.ip6_addr)];
    const only4 = v4.filter((a) => !isIp6(a));
    const pre = i.ipInterface ? `${i.ipInterface}|` : '';
    only4.forEach((a, n) => set('ip4.addr', pre + a, n === 0 ? '=' : '+='));
    v6.forEach((a, n) => set('ip6.addr', pre + a, n === 0 ? '=' : '+='));
    if (only4.length === 0 && v6.length === 0) {
      set('ip4', 'inherit');
      set('ip6', 'inherit');
    }
  }

  // devfs
  const nodevfs = c.mount_devfs === '0' || c.devfs === '0' || /^no$/i.test(c.devfs ?? '');
  flag(nodevfs ? 'mount.nodevfs' : 'mount.devfs');
  if (isInt(c.devfs_ruleset)) set('devfs_ruleset', c.devfs_ruleset!);

  // mount permissions
  const allowMount = c.allow_mount === '1';
  if (allowMount) {
    flag('allow.mount');
    for (const fs of ALLOW_MOUNT_FS) if (c[`allow_${fs}`] === '1') flag(`allow.mount.${fs}`);
  }
  for (const k of ALLOW_DEFAULT_ON) {
    if (c[`allow_${k}`] === '1') flag(`allow.${k}`);
    else if (c[`allow_${k}`] === '0') flag(`allow.no${k}`);
  }

  if (isInt(c.exec_timeout)) set('exec.timeout', c.exec_timeout!);
  if (isInt(c.exec_fib)) set('exec.fib', c.exec_fib!);
  const stopTimeout = i.stopTimeout !== undefined ? String(i.stopTimeout) : c.stop_timeout;
  if (isInt(stopTimeout)) set('stop.timeout', stopTimeout!);
  if (c.mount_fdescfs === '1') flag('mount.fdescfs');
  if (c.mount_procfs === '1') flag('mount.procfs');
  if (c.exec_consolelog === '1') set('exec.consolelog', `${i.workdir.replace(/\/+$/, '')}/var/log/${i.jname}.console.log`);
  else if (isSet(c.exec_consolelog) && c.exec_consolelog.startsWith('/')) set('exec.consolelog', c.exec_consolelog);
  if (c.persist === '1') flag('persist');
  if (isInt(c.childrenmax)) set('children.max', c.childrenmax!);
  if (isInt(c.enforce_statfs)) set('enforce_statfs', c.enforce_statfs!);
  else if (allowMount) set('enforce_statfs', '1');
  return out;
}

function isInt(v: string | undefined): boolean {
  return v !== undefined && /^\d+$/.test(v);
}

/** Renders one parameter statement (without indentation). */
export function renderParam(p: JailParam): string {
  return p.value === undefined ? `${p.name};` : `${p.name} ${p.op ?? '='} ${quoteJailValue(p.value)};`;
}

/**
 * The complete jail.conf text for the env: header comments, then `<jname> { ... }` with
 * one tab-indented statement per line.
 */
export function jailConf(i: JailConfInput): string {
  const head = (i.header ?? []).map((h) => `# ${h.replace(/[\r\n]+/g, ' ')}\n`).join('');
  const body = jailParams(i).map((p) => `\t${renderParam(p)}\n`).join('');
  return `${head}${i.jname} {\n${body}}\n`;
}
