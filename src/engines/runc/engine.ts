/**
 * The runc engine (Linux containers). berth writes the OCI bundle itself
 * (var/run/bundles/<jname>/config.json, src/engines/oci.ts) pointing at the assembled root
 * jails/<jname>, and runs runc with a per-node state dir (`runc --root var/run/runc`) so two
 * nodes on one host never collide. Network: ip4_addr=0 shares the host stack; vnet=1 makes
 * a network namespace `berth-<node>-<jname>` with a veth pair whose host end joins the
 * bridge `interface` and whose other end is eth0 inside, carrying ip4_addr.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { engineError, usageError } from '../../errors.js';
import type { EnvConf } from '../../descriptor.js';
import { pidAlive, run, runInteractive, runToFile, sleep } from '../../proc.js';
import { IFNAME } from '../../net/bridge.js';
import { vethDown, vethNames, vethUp } from '../../net/veth.js';
import { cgroupsPath, ociConfig } from './oci.js';
import { runcInfo } from './info.js';
import type { Engine, EngineEnv, EngineUsage, ExecOptions, StartResult } from '../types.js';

const CIDR4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;

/**
 * True when process `pid` has a handler for SIGTERM (bit 15 of SigCgt in /proc/<pid>/status),
 * or when that cannot be read (the process is gone: nothing to resend).
 */
async function catchesTerm(pid: number): Promise<boolean> {
  const st = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const m = /^SigCgt:\s*([0-9a-fA-F]+)$/m.exec(st);
  return !m || (BigInt('0x' + m[1]) & (1n << 14n)) !== 0n;
}

export class RuncEngine implements Engine {
  readonly info = runcInfo;
  readonly name = 'runc';

  validate(conf: EnvConf): void {
    const vnet = conf.vnet ?? '0';
    if (vnet !== '0' && vnet !== '1') throw usageError('E_BAD_VALUE', `bad vnet=${JSON.stringify(vnet)}: expected 0 or 1`);
    const ip = conf.ip4_addr ?? '0';
    if (vnet === '1') {
      const m = CIDR4.exec(ip);
      if (!m || m.slice(1, 5).some((o) => Number(o) > 255) || Number(m[5]) > 32) {
        throw usageError('E_BAD_VALUE', `bad ip4_addr=${JSON.stringify(ip)}: vnet=1 needs an IPv4 address with prefix length, e.g. 10.0.0.2/24`);
      }
      const br = conf.interface ?? '';
      if (!IFNAME.test(br) || br === 'auto') throw usageError('E_BAD_VALUE', `bad interface=${JSON.stringify(br)}: vnet=1 needs the name of a bridge on this host`);
    } else if (ip !== '0' && ip !== '') {
      throw usageError('E_BAD_VALUE', `ip4_addr=${JSON.stringify(ip)} needs vnet=1 on runc (ip4_addr=0 shares the host network)`);
    }
  }

  private runc(env: EngineEnv): string[] {
    return ['runc', '--root', env.wd.runcRoot];
  }

  async start(env: EngineEnv): Promise<StartResult> {
    const { paths, conf } = env;
    await mkdir(paths.bundle, { recursive: true });
    await mkdir(env.wd.runcRoot, { recursive: true, mode: 0o700 });
    let netnsPath: string | undefined;
    try {
      if (conf.vnet === '1') netnsPath = await this.netUp(env);
      const cfg = ociConfig({ jname: env.jname, nodename: env.nodename, conf, rootPath: paths.path, netnsPath });
      await writeFile(join(paths.bundle, 'config.json'), JSON.stringify(cfg, null, 2));
      const pidFile = join(paths.bundle, 'init.pid');
      await rm(pidFile, { force: true });
      const r = await runToFile([...this.runc(env), 'run', '--detach', '--bundle', paths.bundle, '--pid-file', pidFile, env.jname], paths.log);
      if (r.exitCode !== 0) {
        const tail = (await readFile(paths.log, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join('\n');
        throw engineError('E_ENGINE', `runc run ${env.jname} failed with exit code ${r.exitCode}: ${tail}`, { hint: `see ${paths.log}` });
      }
      const pid = Number((await readFile(pidFile, 'utf8')).trim());
      if (!pid) throw engineError('E_ENGINE', `runc did not report the init pid of ${env.jname}`);
      return { jid: pid };
    } catch (e) {
      await this.cleanup(env).catch(() => undefined);
      throw e;
    }
  }

  private netUp(env: EngineEnv): Promise<string> {
    return vethUp(vethNames(env.nodename, env.jname), env.conf.interface!, env.conf.ip4_addr!, `berth jset jname=${env.jname} interface=<bridge>`, this.netnsMarker(env));
  }

  /** The file recording that berth made this env's network namespace (beside its bundle, in var/run). */
  private netnsMarker(env: EngineEnv): string {
    return `${env.paths.bundle}.netns`;
  }

  /** runc's view: 'running' | 'stopped' | 'created' | 'paused' | undefined (no container). */
  async state(env: EngineEnv): Promise<string | undefined> {
    const r = await run([...this.runc(env), 'state', env.jname], { check: false });
    if (r.exitCode !== 0) return undefined;
    return (JSON.parse(r.stdout) as { status: string }).status;
  }

  /**
   * SIGTERM to the container's init, then SIGKILL to all its processes after `timeoutSec`.
   * Waits by watching the init pid (from the bundle's pid file) rather than spawning
   * `runc state` in a loop.
   */
  async stop(env: EngineEnv, timeoutSec: number): Promise<void> {
    let pid = Number((await readFile(join(env.paths.bundle, 'init.pid'), 'utf8').catch(() => '0')).trim());
    // Never signal a pid that is not this env's container (a stale pid file, a reused pid).
    if (pid && !(await this.inContainer(env, pid))) pid = 0;
    const initAlive = async () => (pid ? this.isRunning(env, pid) : (await this.state(env)) === 'running');
    // stopped means every process of the container gone, not only its init: the others die
    // just after it (the kernel kills a PID namespace's processes when its init exits), and
    // until they have, their working directories keep the env's mounts busy
    const alive = async () => (await initAlive()) || this.cgroupBusy(env);
    if (!(await alive())) return;
    // SIGTERM straight to the init pid we just saw alive (no runc process needed); the
    // forced kill below goes through runc, which knows every process of the container.
    // The init of a PID namespace only receives the signals it has a handler for (pid_namespaces(7)):
    // a SIGTERM sent before its shell has run `trap` is dropped. So when init had no TERM handler
    // at the moment of sending, SIGTERM is sent again as soon as one shows up in SigCgt.
    let termCaught = pid ? await catchesTerm(pid) : true;
    if (pid) { try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ } }
    else await run([...this.runc(env), 'kill', env.jname, 'TERM'], { check: false });
    const deadline = Date.now() + timeoutSec * 1000;
    // a shell that traps TERM exits within a few ms: poll from 1 ms up (1, 2, 4 ... 100 ms);
    // a /proc read per poll is cheap
    let wait = 1;
    while (Date.now() < deadline) {
      if (!(await alive())) return;
      if (!termCaught && (termCaught = await catchesTerm(pid))) {
        try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ }
      }
      await sleep(wait);
      wait = Math.min(wait * 2, 100);
    }
    await run([...this.runc(env), 'kill', '--all', env.jname, 'KILL'], { check: false });
    for (let i = 0; i < 200; i++) {
      if (!(await alive())) return;
      await sleep(50);
    }
    throw engineError('E_ENGINE', `${env.jname} did not stop after SIGKILL`);
  }

  /**
   * True while a live process is left in the env's cgroup (`cgroup.procs` of the pids
   * controller under cgroup v1, of the unified hierarchy under v2; zombies count as gone).
   * False when the cgroup does not exist (runc removed it, or it was never made).
   */
  private async cgroupBusy(env: EngineEnv): Promise<boolean> {
    const path = cgroupsPath(env.nodename, env.jname);
    for (const root of ['/sys/fs/cgroup/pids', '/sys/fs/cgroup']) {
      const text = await readFile(`${root}${path}/cgroup.procs`, 'utf8').catch(() => undefined);
      if (text === undefined) continue;
      return text.split('\n').some((l) => Number(l) > 0 && pidAlive(Number(l)));
    }
    return false;
  }

  /** True when `pid` lives in this env's cgroup (`/berth/<node>/<jname>`, see oci.ts). */
  async inContainer(env: EngineEnv, pid: number): Promise<boolean> {
    const cg = await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => '');
    const want = cgroupsPath(env.nodename, env.jname);
    return cg.split('\n').some((l) => l.endsWith(':' + want) || l.includes(':' + want + '/'));
  }

  /**
   * The container's cgroup v1 counters: `/sys/fs/cgroup/cpuacct/<cgroupsPath>/cpuacct.usage`
   * (ns of CPU time) and `/sys/fs/cgroup/memory/<cgroupsPath>/memory.usage_in_bytes`, where
   * cgroupsPath is `/berth/<node>/<jname>` (oci.ts). undefined when either cannot be read.
   */
  async usage(env: EngineEnv): Promise<EngineUsage | undefined> {
    const cg = cgroupsPath(env.nodename, env.jname);
    const num = async (f: string) => { const n = Number((await readFile(f, 'utf8').catch(() => '')).trim() || NaN); return Number.isFinite(n) ? n : undefined; };
    const [ns, mem] = await Promise.all([num(`/sys/fs/cgroup/cpuacct${cg}/cpuacct.usage`), num(`/sys/fs/cgroup/memory${cg}/memory.usage_in_bytes`)]);
    return ns === undefined || mem === undefined ? undefined : { cpuSec: ns / 1e9, memBytes: mem };
  }

  async isRunning(_env: EngineEnv, jid: number): Promise<boolean> {
    // a zombie (exited, not yet reaped) counts as gone
    return jid > 0 && pidAlive(jid);
  }

  async cleanup(env: EngineEnv): Promise<void> {
    if (existsSync(join(env.wd.runcRoot, env.jname))) {
      await run([...this.runc(env), 'delete', '--force', env.jname], { check: false });
    }
    await vethDown(vethNames(env.nodename, env.jname), this.netnsMarker(env));
    await rm(env.paths.bundle, { recursive: true, force: true });
  }

  async exec(env: EngineEnv, argv: string[], opts: ExecOptions): Promise<number> {
    const a = [...this.runc(env), 'exec'];
    if (opts.tty) a.push('--tty');
    return runInteractive([...a, env.jname, ...argv], opts);
  }
}
