/**
 * The qemu engine (Linux VMs) on engine contract v2 (src/engines/types.ts), put together from
 * the pieces beside it: jcreate makes the first disk (create: ext4 from a base tree, or an
 * empty sparse image of imgsize); jstart resolves the kernel base, VNC ports, cloud-init seed,
 * UEFI vars and taps, builds the argv (argv.ts) and starts qemu daemonized (process.ts) with
 * the accelerator of the node's probe (accel.ts: KVM only when it really runs a guest, else
 * TCG); stop is stop.ts (system_powerdown, again after 0.5 s, stop_timeout, QMP quit, SIGKILL).
 * The lifecycle's run monitor sees qemu exit (guest poweroff, crash, kill -9) through
 * isRunning and tears the run down once; a guest qemu holds halted (on_poweroff=restart,
 * on_crash=restart) it finds through guestEnded and powers on again with restartGuest.
 */
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { EnvConf } from '../../descriptor.js';
import { engineError, usageError } from '../../errors.js';
import { warn } from '../../log.js';
import { tapDown, tapName, tapUp } from '../../net/tap.js';
import type { Workdir } from '../../paths.js';
import type { ConsoleEndpoint, Engine, EngineCheck, EngineEnv, EngineUsage, GuestEnd, LiveStats, ScreenEndpoint, StartResult } from '../types.js';
import { vmDefaults } from '../vm/settings.js';
import { DEFAULT_IMGSIZE, diskFile, freshHwaddrs, isRbdDisk, parseVmSpec, randomHwaddr, vmSpecToConf, type VmSpec } from '../vm/spec.js';
import { describeAccel, nodeAccel } from './accel.js';
import { buildQemuArgv, qemuRunPaths, watchesGuest, type QemuRunPaths } from './argv.js';
import { writeSeedIso } from './cloudinit.js';
import { createDiskImage, ext4FromTree } from './disk.js';
import { uefiFiles } from './firmware.js';
import { busyboxGuestFiles, isBusyboxTree } from './guest.js';
import { qemuInfo } from './info.js';
import { readKernelBase } from './kernel.js';
import { abortMigration, completeSwitchover, migrateToSwitchover, prepareIncoming } from './migrate.js';
import { chooseVncPorts, setVncPassword } from './ports.js';
import { cleanupRunFiles, qemuPid, startQemu } from './process.js';
import { QmpClient } from './qmp.js';
import { assertRbdDisksFree, cloneRbdDisks, createRbdDisks, rbdDiskFiles, rbdDisks, removeRbdDisks } from './rbd-disks.js';
import { stopQemu } from './stop.js';
import { qemuUsage } from './usage.js';

/** The seed ISO of a VM with ci_* keys, remade at each start: jails-system/<vm>/seed.iso. */
function seedFile(env: EngineEnv): string {
  return join(env.paths.sysdir, 'seed.iso');
}

function spec(env: EngineEnv): VmSpec {
  return parseVmSpec({ ...env.conf, jname: env.jname, emulator: 'qemu' });
}

/** The taps of a VM's NIC rows, in row order. */
function taps(env: EngineEnv, s: VmSpec): string[] {
  return s.nics.map((n) => tapName(env.nodename, env.jname, n.index));
}

export class QemuEngine implements Engine {
  readonly info = qemuInfo;
  readonly name = 'qemu';

  /** Cross-key checks of parseVmSpec (vm_boot=cd needs vm_iso_path, ...). @throws BerthError E_BAD_VALUE (2) */
  validate(conf: EnvConf): void {
    const s = parseVmSpec({ ...conf, emulator: 'qemu' });
    if (s.imgtype === 'qcow2' && conf.base) throw usageError('E_BAD_VALUE', `bad imgtype=qcow2 with base=${conf.base}: a disk made from a base tree is a raw ext4 image`, { hint: 'leave imgtype=md, or give no base for an empty qcow2 disk' });
    if (s.onPoweroff === 'restart' && s.onReboot === 'destroy') {
      throw usageError('E_BAD_VALUE', 'bad on_poweroff=restart with on_reboot=destroy: qemu cannot tell a reboot from a poweroff while it holds the halted guest', { hint: 'on_reboot=restart with on_poweroff=restart, or on_poweroff=destroy with on_reboot=destroy' });
    }
    for (const n of s.nics) {
      if (n.parent === 'auto') throw usageError('E_BAD_VALUE', `bad nic_parent${n.index}=auto: berth has no default bridge`, { hint: `give a bridge: nic_parent${n.index}=<bridge> (or 0: a tap on no bridge)` });
    }
  }

  /** A clone gets MAC addresses of its own (src/engines/vm/spec.ts freshHwaddrs). */
  cloneConf(conf: EnvConf): void {
    freshHwaddrs(conf);
  }

  /**
   * bcreate: writes CBSD's VM keys with their defaults into env.conf (every column, as CBSD's
   * descriptors have them; NICs get a MAC address kept on every node), then makes the disks:
   * the first from `baseDir` (ext4; a busybox tree gets the files that make it a guest) or
   * empty of imgsize (10g when 0), as a file in the data dir or an RBD image; every other RBD
   * row N an empty image of dsk_sizeN (rbd-disks.ts createRbdDisks). All or nothing: a failed
   * step removes the images made. imgtype=none makes no disk.
   */
  async create(env: EngineEnv, input: { baseDir?: string }): Promise<void> {
    const defs = vmDefaults('qemu');
    for (const [k, v] of Object.entries(defs)) if (env.conf[k] === undefined) env.conf[k] = v;
    let s = spec(env);
    for (const n of s.nics) if (!n.hwaddr) env.conf[`nic_hwaddr${n.index}`] = randomHwaddr();
    s = spec(env);
    Object.assign(env.conf, vmSpecToConf(s));
    const first = s.disks.find((d) => d.index === 1);
    if (s.imgtype === 'none' || !first) return;
    // the RBD rows (any N): row 1 from the base or empty of imgsize, the others empty of dsk_sizeN
    const files = input.baseDir && isBusyboxTree(input.baseDir) ? busyboxGuestFiles({ hostname: s.hostname }) : [];
    const rbd = await createRbdDisks(env, rbdDisks(s), { baseDir: input.baseDir, sizeBytes: s.imgsize || DEFAULT_IMGSIZE, ext4: { sizeBytes: s.imgsize || undefined, files } });
    for (const [i, size] of Object.entries(rbd.sizes)) env.conf[`dsk_size${i}`] = String(size);
    if (isRbdDisk(first)) return;
    try {
      const file = diskFile(first, env.paths.data);
      if (input.baseDir) {
        const r = await ext4FromTree(input.baseDir, file, { sizeBytes: s.imgsize || undefined, files });
        env.conf.dsk_size1 = String(r.sizeBytes);
      } else {
        const size = s.imgsize || DEFAULT_IMGSIZE;
        await createDiskImage(file, size, first.format);
        env.conf.dsk_size1 = String(size);
      }
    } catch (e) {
      await rbd.undo();
      throw e;
    }
  }

  async start(env: EngineEnv): Promise<StartResult> {
    return this.boot(env, false);
  }

  /**
   * Starts qemu (paused with `-incoming defer` for a live migration's destination). Outside a
   * migration, refuses first an RBD image another client has open (E_RBD_IN_USE, exit 1).
   */
  private async boot(env: EngineEnv, incoming: boolean): Promise<StartResult> {
    const s = spec(env);
    // QEMU locks image files, not rbd: images: refuse one another client has open, before
    // anything is made (a live migration's destination opens what its source has open)
    if (!incoming) await assertRbdDisksFree(env, s);
    const run = qemuRunPaths(env.wd, env.jname);
    const accel = await nodeAccel(env.wd);
    const kernel = s.kernel ? readKernelBase(env.wd, s.kernel) : undefined;
    const vnc = await chooseVncPorts(s);
    let seedIso: string | undefined;
    if (s.cloudInit) {
      seedIso = seedFile(env);
      await mkdir(env.paths.sysdir, { recursive: true });
      await rm(seedIso, { force: true });
      await writeSeedIso(s, seedIso, env.wd.root);
    }
    const uefi = s.efi === 'uefi' ? await uefiFiles(env.paths.sysdir) : undefined;
    const names = taps(env, s);
    try {
      for (const [i, n] of s.nics.entries()) {
        await tapUp(names[i]!, n.parent === '0' ? undefined : n.parent, `berth bset jname=${env.jname} nic_parent${n.index}=<bridge>`, n.mtu || undefined);
      }
      const diskFiles = rbdDiskFiles(env, s);
      const argv = buildQemuArgv({ spec: s, dataDir: env.paths.data, run, accel: { accel: accel.accel }, kernel, seedIso, uefi, vnc, taps: names, incoming, diskFiles });
      const started = await startQemu(argv, run);
      if (s.vncPassword) {
        const qmp = await QmpClient.connect(run.qmpSocket, { timeoutMs: 5000 });
        try { await setVncPassword(qmp, s.vncPassword); } finally { qmp.close(); }
      }
      return { jid: started.pid };
    } catch (e) {
      await this.cleanup(env).catch(() => undefined);
      throw e;
    }
  }

  /**
   * Destination of a live migration: qemu started paused (`-incoming defer -S`), then QMP
   * `migrate-incoming unix:var/run/qemu/<vm>.migrate`: qemu listens on a node-local unix
   * socket only; the state reaches it through the agent's authenticated migration channel
   * (src/agent/stream.ts).
   */
  async liveIncoming(env: EngineEnv): Promise<{ jid: number; uri: string }> {
    const { jid } = await this.boot(env, true);
    try {
      const run = qemuRunPaths(env.wd, env.jname);
      const sock = run.migrateSocket!;
      await rm(sock, { force: true });
      const uri = `unix:${sock}`;
      const qmp = await QmpClient.connect(run.qmpSocket, { timeoutMs: 5000 });
      try { await prepareIncoming(qmp, uri); } finally { qmp.close(); }
      return { jid, uri };
    } catch (e) {
      await this.stop(env, 0).catch(() => undefined);
      await this.cleanup(env).catch(() => undefined);
      throw e;
    }
  }

  /** Source of a live migration (migrate.ts): to switchover, `atSwitchover` while paused, complete, quit; on failure the source resumes. */
  async liveSend(env: EngineEnv, uri: string, atSwitchover: () => Promise<void>): Promise<LiveStats> {
    const qmp = await QmpClient.connect(qemuRunPaths(env.wd, env.jname).qmpSocket, { timeoutMs: 5000 });
    try {
      try {
        await migrateToSwitchover(qmp, uri);
        await atSwitchover();
        const q = await completeSwitchover(qmp);
        await qmp.execute('quit').catch(() => {});
        return { downtimeMs: q.downtimeMs, totalMs: q.totalMs, transferredBytes: q.transferredBytes };
      } catch (e) {
        // resumed here unless the caller says it may not run it any more (it lost the lease)
        await abortMigration(qmp, async () => {}, !(e as { keepPaused?: boolean }).keepPaused);
        throw e;
      }
    } finally {
      qmp.close();
    }
  }

  /** Destination of a live migration: waits until the incoming state is complete (query-migrate), then `cont`. */
  async liveResume(env: EngineEnv): Promise<void> {
    const qmp = await QmpClient.connect(qemuRunPaths(env.wd, env.jname).qmpSocket, { timeoutMs: 5000 });
    try {
      const end = Date.now() + 120_000;
      for (;;) {
        const m = await qmp.execute('query-migrate');
        if (m.status === 'completed') break;
        if (m.status === 'failed' || m.status === 'cancelled' || Date.now() > end) throw engineError('E_MIGRATE', `the incoming migration of ${env.jname} is ${m.status}`);
        await new Promise((r) => setTimeout(r, 5));
      }
      await qmp.execute('cont');
    } finally {
      qmp.close();
    }
  }

  /** bremove: the VM's RBD images made for it (rbd-disks.ts); file disks go with the data dir. */
  async removeDisks(env: EngineEnv): Promise<{ removed: string[]; notes: string[] }> {
    return removeRbdDisks(env, spec(env));
  }

  /** bclone: an instant rbd clone of each RBD disk (rbd-disks.ts); file disks are copied with the data dir. */
  async cloneDisks(src: EngineEnv, dst: EngineEnv): Promise<{ made: string[]; undo(): Promise<void> }> {
    return cloneRbdDisks(spec(src), dst);
  }

  async stop(env: EngineEnv, timeoutSec: number): Promise<void> {
    const run = qemuRunPaths(env.wd, env.jname);
    const r = await stopQemu(run, { timeoutSec, force: timeoutSec === 0 });
    if (r.how === 'quit' || r.how === 'kill') await warn({ jname: env.jname, how: r.how }, `${env.jname}: the guest did not power off within ${timeoutSec} s; qemu was stopped by ${r.how}`);
  }

  async isRunning(env: EngineEnv, jid: number): Promise<boolean> {
    const pid = qemuPid(qemuRunPaths(env.wd, env.jname));
    return pid !== undefined && (!jid || pid === jid);
  }

  /** CPU of the vCPU threads, qemu's resident memory, the guest's RAM (usage.ts: QMP and /proc). */
  async usage(env: EngineEnv, jid: number): Promise<EngineUsage | undefined> {
    const run = qemuRunPaths(env.wd, env.jname);
    const pid = qemuPid(run);
    if (!pid || (jid && pid !== jid)) return undefined;
    return qemuUsage(pid, run.qmpSocket);
  }

  /**
   * A halted guest (on_poweroff=restart or on_crash=restart): QMP `query-status` on the VM's
   * watch socket says `shutdown` (it powered off) or `guest-panicked` (pvpanic). One short
   * session per call (about 1 ms); a qemu that does not answer within 1 s counts as running
   * (isRunning tells whether it is gone).
   */
  async guestEnded(env: EngineEnv): Promise<GuestEnd | undefined> {
    let s: VmSpec;
    try { s = spec(env); } catch { return undefined; }
    if (!watchesGuest(s)) return undefined;
    let qmp: QmpClient | undefined;
    try {
      qmp = await QmpClient.connect(qemuRunPaths(env.wd, env.jname).watchSocket!, { timeoutMs: 1000 });
      const st = await qmp.execute<{ status: string }>('query-status', undefined, { timeoutMs: 1000 });
      return st.status === 'shutdown' ? 'poweroff' : st.status === 'guest-panicked' ? 'crash' : undefined;
    } catch {
      return undefined;
    } finally {
      qmp?.close();
    }
  }

  /** Powers the halted guest on again: QMP `system_reset`, then `cont` (libvirt's "fake reboot"). @throws BerthError E_QMP* (exit 5) */
  async restartGuest(env: EngineEnv): Promise<void> {
    const qmp = await QmpClient.connect(qemuRunPaths(env.wd, env.jname).watchSocket!, { timeoutMs: 5000 });
    try {
      await qmp.execute('system_reset');
      await qmp.execute('cont');
    } finally {
      qmp.close();
    }
  }

  async cleanup(env: EngineEnv): Promise<void> {
    const run: QemuRunPaths = qemuRunPaths(env.wd, env.jname);
    await cleanupRunFiles(run);
    let s: VmSpec | undefined;
    try { s = spec(env); } catch { s = undefined; }
    for (const t of s ? taps(env, s) : []) await tapDown(t);
    if (existsSync(seedFile(env))) await rm(seedFile(env), { force: true });
  }

  /** The accelerator of the node's probe (accel.ts; cached per boot and qemu binary): KVM ok, TCG ok (slower), neither warn. */
  async doctor(wd: Workdir): Promise<EngineCheck> {
    const p = await nodeAccel(wd);
    const usable = p.accel === 'kvm' || !!p.tcg?.ok;
    return { status: usable ? 'ok' : 'warn', detail: describeAccel(p) + (usable ? '' : ' (VMs cannot start: apt-get install qemu-system-x86)'), data: { accel: p.accel, kvm: p.kvm, tcg: p.tcg, qemuVersion: p.qemuVersion, cached: p.cached } };
  }

  async console(env: EngineEnv): Promise<ConsoleEndpoint> {
    const run = qemuRunPaths(env.wd, env.jname);
    return { kind: 'unix', path: run.consoleSocket, log: run.consoleLog };
  }

  /**
   * The VNC server of the running VM as QEMU reports it (QMP `query-vnc`: enabled, host,
   * service, auth), so that a port chosen at start (vm_vnc_port=0) is found without a record.
   * @returns undefined when VNC is off
   * @throws BerthError E_QMP (exit 5) when QMP does not answer
   */
  async screen(env: EngineEnv): Promise<ScreenEndpoint | undefined> {
    const qmp = await QmpClient.connect(qemuRunPaths(env.wd, env.jname).qmpSocket, { timeoutMs: 5000 });
    try {
      const v = await qmp.execute<{ enabled: boolean; host?: string; service?: string; auth?: string }>('query-vnc');
      if (!v.enabled || !v.service) return undefined;
      return { host: v.host && v.host !== '0.0.0.0' ? v.host : '127.0.0.1', port: Number(v.service), password: v.auth === 'vnc' };
    } finally {
      qmp.close();
    }
  }
}
