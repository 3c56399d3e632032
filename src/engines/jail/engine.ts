/**
 * The FreeBSD jail(8) engine. Per env it writes a jail.conf block (src/engines/jailconf.ts)
 * to `<workdir>/var/run/jail/<jname>.conf` and runs, with CBSD's commands (§5.2-5.4):
 * - start: [vnet: `ifconfig epair create`, `ifconfig <a> description berth/<node>/<jname> up`,
 *   `ifconfig <bridge> addm <a>`], `jail -f <conf> -c <jname>`, then `jls --libxo json -v`
 *   to check the jail exists. A jail that did not come up is an error (CBSD's jstart exits 0
 *   there; berth does not).
 * - stop: `jail -f <conf> -r <jname>` (exec.prestop, exec.stop, SIGTERM, stop.timeout, kill),
 *   then `jail -R <jname>` only if the jail is still listed. A jail of the same name on
 *   another root (another workdir's env on this host) is left alone.
 * - state: `jls --libxo json -v` (libxo version 2: {"jail-information": {"jail": [...]}}).
 * - exec: `jexec <jname> <argv...>` with the caller's stdio.
 * - cleanup: destroys the env's epair (after checking its description names this env, so a
 *   reused epair number is never destroyed) and removes the conf and state files.
 * State kept between start and stop: `<workdir>/var/run/jail/<jname>.state.json`
 * ({epair, jailIface, ipInterface}); jail.conf is regenerated at stop with stop.timeout set
 * to the stop timeout, as CBSD's `makejconf is_stop=1` does.
 */
import { mkdir, readFile, rm, writeFile, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import type { EnvConf } from '../../descriptor.js';
import { statSync } from 'node:fs';
import { BerthError, EXIT, engineError, usageError } from '../../errors.js';
import { notRootOnly } from '../../hooks.js';
import { jailInfo } from './info.js';
import { debug } from '../../log.js';
import { run, runInteractive } from '../../proc.js';
import { epairDestroy, epairDown, epairUp } from '../../net/epair.js';
import type { Engine, EngineEnv, ExecOptions, StartResult } from '../types.js';
import { isIp6, jailConf, splitAddrs } from './jailconf.js';

/** One jail as `jls --libxo json -v` reports it. */
export interface JlsJail {
  jid: number;
  name: string;
  path: string;
  hostname: string;
  state?: string;
  ipv4: string[];
  ipv6: string[];
}

/**
 * Parses `jls --libxo json -v` output (FreeBSD usr.sbin/jls, JLS_XO_VERSION "2"):
 * `{"__version": "2", "jail-information": {"jail": [{"jid":1,"hostname":"h","path":"/p",
 * "name":"n","state":"ACTIVE","cpusetid":2, "ipv4_addrs": [...], "ipv6_addrs": [...]}]}}`.
 * @throws BerthError E_JLS (exit 5) on output that is not that shape
 */
export function parseJls(text: string): JlsJail[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw engineError('E_JLS', `cannot parse jls --libxo json output: ${JSON.stringify(text.slice(0, 200))}`);
  }
  const list = (doc as { 'jail-information'?: { jail?: unknown } })?.['jail-information']?.jail;
  if (!Array.isArray(list)) throw engineError('E_JLS', `jls --libxo json output has no jail-information.jail list: ${JSON.stringify(text.slice(0, 200))}`);
  return list.map((j: Record<string, unknown>) => ({
    jid: Number(j.jid),
    name: String(j.name ?? ''),
    path: String(j.path ?? ''),
    hostname: String(j.hostname ?? ''),
    state: j.state === undefined ? undefined : String(j.state),
    ipv4: Array.isArray(j.ipv4_addrs) ? j.ipv4_addrs.map(String) : [],
    ipv6: Array.isArray(j.ipv6_addrs) ? j.ipv6_addrs.map(String) : [],
  }));
}

/** Engine state kept in var/run/jail/<jname>.state.json while the env runs. */
interface JailState {
  /** host end of the vnet epair (epairNa) */
  epair?: string;
  /** jail end of the vnet epair (epairNb) */
  jailIface?: string;
  /** host interface the addresses are aliased on (non-vnet) */
  ipInterface?: string;
}

const IFNAME = /^[A-Za-z][A-Za-z0-9_.]{0,14}$/;
const FLAG_KEYS = ['vnet', 'persist', 'mount_devfs', 'mount_fdescfs', 'mount_procfs', 'allow_mount', 'allow_nullfs',
  'allow_devfs', 'allow_fusefs', 'allow_fdescfs', 'allow_procfs', 'allow_linprocfs', 'allow_linsysfs', 'allow_tmpfs',
  'allow_zfs', 'allow_raw_sockets', 'allow_sysvipc', 'allow_mlock', 'allow_nfsd', 'allow_read_msgbuf', 'allow_vmm',
  'allow_unprivileged_proc_debug', 'allow_reserved_ports', 'allow_set_hostname', 'allow_socket_af', 'allow_chflags'];
const INT_KEYS = ['devfs_ruleset', 'exec_timeout', 'stop_timeout', 'childrenmax', 'exec_fib'];

function validIp4(a: string, needPrefix: boolean): boolean {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(a);
  if (!m) return false;
  if (m.slice(1, 5).some((o) => Number(o) > 255)) return false;
  if (m[5] !== undefined && Number(m[5]) > 32) return false;
  return !needPrefix || m[5] !== undefined;
}

function validIp6(a: string): boolean {
  const m = /^([0-9A-Fa-f:.]+)(?:\/(\d{1,3}))?$/.exec(a);
  if (!m || !m[1]!.includes(':')) return false;
  return m[2] === undefined || Number(m[2]) <= 128;
}

const set = (v: string | undefined): v is string => v !== undefined && v !== '' && v !== '0';

/** Settings whose commands jail(8) runs on the host, as root: exec.prestart, exec.poststart, exec.prestop, exec.poststop (jail(8) "exec.*" parameters). */
export const HOST_EXEC_KEYS = ['exec_prestart', 'exec_poststart', 'exec_prestop', 'exec_poststop'];

/**
 * A descriptor adopted from (shared) storage that sets host commands (HOST_EXEC_KEYS, jail
 * emulator) must be a file only root can change, as a hook must (src/hooks.ts checkHookSafe):
 * otherwise whoever can write that file runs commands as root on every node that adopts the
 * env. CBSD runs them from any descriptor (cbsd-behaviour.md §12).
 * @throws BerthError E_DESCRIPTOR_UNSAFE (exit 1) naming the file, the keys and the fix
 */
export function checkHostCommandsSafe(rcfile: string, conf: EnvConf): void {
  const keys = HOST_EXEC_KEYS.filter((k) => conf[k] && conf[k] !== '0');
  if (!keys.length) return;
  const st = statSync(rcfile);
  const unsafe = notRootOnly(st);
  if (!unsafe) return;
  throw new BerthError('E_DESCRIPTOR_UNSAFE', `refusing to adopt ${rcfile}: it sets ${keys.join(', ')}, which jail(8) runs on this host as root, and ${unsafe.why}`, EXIT.FAILURE, {
    hint: `read those commands; if you trust them: chown root ${rcfile} && chmod go-w ${rcfile}`, details: { rcfile, keys, uid: st.uid },
  });
}

export class JailEngine implements Engine {
  readonly info = jailInfo;
  readonly name = 'jail';

  /** An adopted descriptor's host commands must be in a file only root can change (see {@link checkHostCommandsSafe}). */
  checkAdopted(file: string, conf: EnvConf): void {
    checkHostCommandsSafe(file, conf);
  }
  /** the monitor's check runs `jls`: poll every 2 s, not 4 times a second */
  readonly monitorIntervalMs = 2000;

  /**
   * Checks the jail settings (see src/engines/jailconf.ts for their meaning).
   * @throws BerthError E_BAD_VALUE (exit 2) naming key and value
   */
  validate(conf: EnvConf): void {
    const bad = (k: string, why: string): never => {
      throw usageError('E_BAD_VALUE', `bad ${k}=${JSON.stringify(conf[k] ?? '')}: ${why}`);
    };
    if (conf.jname !== undefined && /^\d+$/.test(conf.jname)) bad('jname', 'jail(8) reads an all-digit name as a jail id; use a name with a letter');
    for (const k of FLAG_KEYS) if (conf[k] !== undefined && conf[k] !== '' && conf[k] !== '0' && conf[k] !== '1') bad(k, 'expected 0 or 1');
    for (const k of INT_KEYS) if (conf[k] !== undefined && conf[k] !== '' && !/^\d+$/.test(conf[k]!)) bad(k, 'expected a whole number');
    if (conf.enforce_statfs !== undefined && conf.enforce_statfs !== '' && !/^[012]$/.test(conf.enforce_statfs)) bad('enforce_statfs', 'expected 0, 1 or 2');
    if (conf.devfs !== undefined && conf.devfs !== '' && !/^(0|1|yes|no)$/i.test(conf.devfs)) bad('devfs', 'expected 0 or 1');
    for (const k of ['sysvsem', 'sysvshm', 'sysvmsg']) {
      if (conf[k] !== undefined && conf[k] !== '' && conf[k] !== '0' && !['new', 'inherit', 'disable'].includes(conf[k]!)) bad(k, 'expected new, inherit or disable');
    }
    const vnet = conf.vnet === '1';
    for (const a of splitAddrs(conf.ip4_addr)) {
      if (/^(real)?dhcp(v6)?$/i.test(a)) bad('ip4_addr', 'berth assigns no addresses from a pool; give A.B.C.D/N (comma list) or 0');
      if (isIp6(a) ? !validIp6(a) : !validIp4(a, vnet)) {
        bad('ip4_addr', vnet ? 'a vnet jail needs addresses as A.B.C.D/N (or IPv6/N), comma separated, or 0' : 'expected IPv4/IPv6 addresses (optionally /N), comma separated, or 0');
      }
    }
    for (const a of splitAddrs(conf.ip6_addr)) if (!validIp6(a)) bad('ip6_addr', 'expected IPv6 addresses (optionally /N), comma separated, or 0');
    const ifc = conf.interface;
    if (vnet) {
      if (!set(ifc) || ifc === 'auto') bad('interface', 'vnet=1 needs interface=<bridge> (the bridge the epair joins, e.g. bridge0)');
      if (!IFNAME.test(ifc!)) bad('interface', 'not an interface name');
    } else if (set(ifc) && ifc !== 'auto' && !IFNAME.test(ifc)) {
      bad('interface', 'not an interface name (or 0, or auto for the default route\'s interface)');
    }
    const cl = conf.exec_consolelog;
    if (cl !== undefined && cl !== '' && cl !== '0' && cl !== '1' && !cl.startsWith('/')) bad('exec_consolelog', 'expected 0, 1 or an absolute path');
    if (conf.host_hostname !== undefined && /[\x00-\x1f\x7f]/.test(conf.host_hostname)) bad('host_hostname', 'control characters are not allowed');
  }

  private dir(env: EngineEnv): string { return join(env.wd.runDir, 'jail'); }
  /** The env's jail.conf: `<workdir>/var/run/jail/<jname>.conf`. */
  confFile(env: EngineEnv): string { return join(this.dir(env), `${env.jname}.conf`); }
  private stateFile(env: EngineEnv): string { return join(this.dir(env), `${env.jname}.state.json`); }

  private async readState(env: EngineEnv): Promise<JailState | undefined> {
    try { return JSON.parse(await readFile(this.stateFile(env), 'utf8')) as JailState; } catch { return undefined; }
  }

  /** The description berth puts on the host end of an env's epair. */
  epairDescription(env: EngineEnv): string { return `berth/${env.nodename}/${env.jname}`; }

  /** Writes the env's jail.conf from its settings and `state`. @returns the file path */
  private async writeConf(env: EngineEnv, state: JailState, stopTimeout?: number): Promise<string> {
    const file = this.confFile(env);
    await mkdir(this.dir(env), { recursive: true });
    const text = jailConf({
      jname: env.jname, conf: env.conf, path: env.paths.path, workdir: env.wd.root,
      ipInterface: state.ipInterface, vnetInterface: state.jailIface, stopTimeout,
      header: [`jail.conf of ${env.jname}, written by berth on node ${env.nodename}; rewritten at every start and stop`],
    });
    await writeFile(file, text, { mode: 0o600 });
    return file;
  }

  /** The host interface non-vnet addresses are aliased on: `interface`, or for `auto` the default route's. */
  private async ipInterface(conf: EnvConf): Promise<string | undefined> {
    const ifc = conf.interface;
    if (conf.vnet === '1' || !set(ifc) || (splitAddrs(conf.ip4_addr).length === 0 && splitAddrs(conf.ip6_addr).length === 0)) return undefined;
    if (ifc !== 'auto') return ifc;
    const r = await run(['route', '-n', 'get', 'default'], { check: false });
    const m = /^\s*interface:\s*(\S+)/m.exec(r.stdout);
    if (r.exitCode !== 0 || !m) {
      throw engineError('E_NO_DEFAULT_IFACE', 'interface=auto: the host has no default route to take the interface from', {
        hint: 'set interface=<nic> (e.g. em0) or interface=0',
      });
    }
    return m[1]!;
  }

  /** All jails on the host (`jls --libxo json -v`). */
  async list(): Promise<JlsJail[]> {
    const r = await run(['jls', '--libxo', 'json', '-v'], { errorCode: 'E_JLS' });
    return parseJls(r.stdout);
  }

  /** The env's jail, if the host runs one by that name. */
  private async find(env: EngineEnv): Promise<JlsJail | undefined> {
    return (await this.list()).find((j) => j.name === env.jname);
  }

  /** True when `j` runs on this env's root (the kernel may report the real path). */
  private async onOurRoot(env: EngineEnv, j: JlsJail): Promise<boolean> {
    if (j.path === env.paths.path) return true;
    try { return j.path === (await realpath(env.paths.path)); } catch { return false; }
  }

  async start(env: EngineEnv): Promise<StartResult> {
    const state: JailState = {};
    try {
      state.ipInterface = await this.ipInterface(env.conf);
      if (env.conf.vnet === '1') {
        const bridge = env.conf.interface!;
        const pair = await epairUp(bridge, this.epairDescription(env));
        state.epair = pair.a;
        state.jailIface = pair.b;
      }
      await mkdir(this.dir(env), { recursive: true });
      await writeFile(this.stateFile(env), JSON.stringify(state) + '\n');
      const conf = await this.writeConf(env, state);
      const r = await run(['jail', '-f', conf, '-c', env.jname], { check: false });
      if (r.exitCode !== 0) {
        const tail = (r.stderr || r.stdout).trim().split('\n').slice(-5).join('\n');
        throw engineError('E_JAIL_START', `jail -f ${conf} -c ${env.jname} failed with exit code ${r.exitCode}${tail ? `: ${tail}` : ''}`, {
          hint: `see the jail's console log (exec_consolelog=1) or run: jail -f ${conf} -c ${env.jname}`,
        });
      }
      const j = await this.find(env);
      if (!j) {
        throw engineError('E_JAIL_START', `jail ${env.jname} is not running after jail -c exited 0 (its exec.start ended and nothing keeps it alive)`, {
          hint: 'set persist=1, or make exec_start leave a process running',
        });
      }
      return { jid: j.jid };
    } catch (e) {
      // Undo only what this call made: the epair it created, the conf and state files.
      if (state.epair) await epairDestroy(state.epair);
      await rm(this.confFile(env), { force: true });
      await rm(this.stateFile(env), { force: true });
      throw e;
    }
  }

  async stop(env: EngineEnv, timeoutSec: number): Promise<void> {
    const j = await this.find(env);
    if (!j) return;
    if (!(await this.onOurRoot(env, j))) {
      // Same name, another root: another workdir's jail on this host. Not ours to stop.
      await debug({ jname: env.jname, path: j.path, ours: env.paths.path }, 'jail of the same name runs on another root; not stopping it');
      return;
    }
    const state = (await this.readState(env)) ?? { ipInterface: await this.ipInterface(env.conf).catch(() => undefined) };
    const conf = await this.writeConf(env, state, timeoutSec);
    // rc.shutdown bounds itself (rcshutdown_timeout, 90 s); stop.timeout bounds the rest.
    const r = await run(['jail', '-f', conf, '-r', env.jname], { check: false, timeoutSec: timeoutSec + 120 });
    if (!(await this.find(env))) return;
    await debug({ jname: env.jname, exitCode: r.exitCode }, 'jail -r left the jail; removing it with jail -R');
    await run(['jail', '-R', env.jname], { check: false });
    if (await this.find(env)) {
      throw engineError('E_JAIL_STOP', `jail ${env.jname} is still running after jail -r and jail -R: ${(r.stderr || r.stdout).trim()}`, {
        hint: `see its processes: ps -J ${env.jname}`,
      });
    }
  }

  async isRunning(env: EngineEnv, jid: number): Promise<boolean> {
    const j = await this.find(env);
    if (!j) return false;
    if (jid > 0 && j.jid === jid) return true;
    return this.onOurRoot(env, j);
  }

  async cleanup(env: EngineEnv): Promise<void> {
    const state = await this.readState(env);
    if (state?.epair) await epairDown(state.epair, this.epairDescription(env));
    await rm(this.confFile(env), { force: true });
    await rm(this.stateFile(env), { force: true });
  }

  async exec(env: EngineEnv, argv: string[], opts: ExecOptions): Promise<number> {
    // jexec(8) runs the command with the caller's terminal as is; it has no tty option.
    return runInteractive(['jexec', env.jname, ...(argv.length ? argv : ['login', '-f', 'root'])], opts);
  }
}
