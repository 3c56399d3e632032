/**
 * bench/vm (issue #13), from one run on this machine under TCG, a guest made of Debian's cloud
 * kernel, a busybox initramfs and an ext4 disk made from a busybox base (256 MiB RAM):
 *  - boot to the guest's first userspace line: bare qemu (spawned directly with the very argv
 *    berth builds) against berth's start (startQemu: -daemonize, pid file, sockets checked),
 *    target <= 1.1x; and the whole `berth bstart` command (CLI, lifecycle, lease, run monitor)
 *    against the same baseline, with `berth bstop`;
 *  - stop: bare QMP system_powerdown + process exit against berth's stopQemu (ACPI sequence);
 *  - live migration of the 256 MiB guest over a unix socket, disk on one shared file: bare
 *    QMP `migrate` (no pause-before-switchover) against berth's liveMigrate (events,
 *    pause-before-switchover, an empty switchover hook, destination `cont`): downtime as QEMU
 *    measures it (target <= 100 ms) and total time (target <= 1.2x bare).
 *  - the whole `jmigrate live=1` between two nodes (two agents on loopback, the disk on one
 *    GlusterFS volume) against that bare migrate, its downtime as QEMU and berth measure it;
 *    and the cold `jmigrate` of the running VM (stop here, boot there) against bare stop + boot.
 * Medians of BENCH_N runs (default 5; 3 for migration), measures taken in turns.
 * Needs root, qemu-system-x86, cpio, busybox-static, apt access (for the kernel package).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { berth, report } from './common.js';
import { guestNode, guestVm, Console } from '../test/helpers/vmguest.js';
import { qemuRunPaths, type QemuRunPaths } from '../src/engines/qemu/argv.js';
import { GUEST_READY_LINE } from '../src/engines/qemu/guest.js';
import { liveMigrate } from '../src/engines/qemu/migrate.js';
import { cleanupRunFiles, qemuPid, startQemu, waitPidGone } from '../src/engines/qemu/process.js';
import { QmpClient } from '../src/engines/qemu/qmp.js';
import { stopQemu } from '../src/engines/qemu/stop.js';
import { makeKernelBase } from '../src/engines/qemu/kernel.js';
import { Workdir } from '../src/paths.js';
import { twoNodes, type TestNode } from '../test/integration/cluster-twonode.js';

const N = Number(process.env.BENCH_N ?? 5);
const NM = Number(process.env.BENCH_MIGRATE_N ?? 3);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ms = (x: number) => `${x.toFixed(0)} ms`;

const node = await guestNode('berth-bench-vm-');
const vm = await guestVm(node, 'bvm');
const argv = vm.argv();
mkdirSync(join(node.wd.runDir, 'qemu'), { recursive: true, mode: 0o700 });
mkdirSync(node.wd.logDir, { recursive: true });

async function waitReady(log: string, from: number, timeoutMs = 120_000, alive: () => boolean = () => true): Promise<void> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    if (!alive()) throw new Error(`qemu exited before ${GUEST_READY_LINE}`);
    if (existsSync(log) && readFileSync(log, 'utf8').slice(from).includes(GUEST_READY_LINE)) return;
    if (performance.now() > end) throw new Error(`no ${GUEST_READY_LINE} in ${log}`);
    await sleep(5);
  }
}

const logSize = (f: string) => (existsSync(f) ? readFileSync(f).length : 0);

/** Bare qemu: the same argv, spawned directly; boot to the ready line, then powerdown to exit. */
async function bare(): Promise<{ boot: number; stop: number }> {
  for (const f of [vm.run.qmpSocket, vm.run.consoleSocket, vm.run.pidFile]) rmSync(f, { force: true });
  const from = logSize(vm.run.consoleLog);
  const t0 = performance.now();
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
  let running = true;
  const exited = new Promise<void>((r) => child.once('exit', () => { running = false; r(); }));
  await waitReady(vm.run.consoleLog, from, 120_000, () => running);
  const boot = performance.now() - t0;
  const q = await QmpClient.connect(vm.run.qmpSocket, { timeoutMs: 5000 });
  const t1 = performance.now();
  // as an admin's script would: the power button again every 0.5 s until qemu exits (a guest
  // that just reached userspace may not listen to it yet; berth's stopQemu does the same)
  let pressed = 0;
  while (running && pressed++ < 240) {
    await q.execute('system_powerdown').catch(() => undefined);
    await Promise.race([exited, sleep(500)]);
  }
  await exited;
  const stop = performance.now() - t1;
  q.close();
  return { boot, stop };
}

/** berth's library path: startQemu (daemonized) to the ready line, then stopQemu. */
async function berthRun(): Promise<{ boot: number; stop: number }> {
  await cleanupRunFiles(vm.run);
  const from = logSize(vm.run.consoleLog);
  const t0 = performance.now();
  await startQemu(argv, vm.run);
  await waitReady(vm.run.consoleLog, from);
  const boot = performance.now() - t0;
  const t1 = performance.now();
  const r = await stopQemu(vm.run, { timeoutSec: 60 });
  if (r.how !== 'acpi') throw new Error(`stop ended by ${r.how}`);
  return { boot, stop: performance.now() - t1 };
}

/** The whole commands: `berth bstart` (CLI, lifecycle, lease, run monitor) to the ready line, then `berth bstop`. */
berth(node.wd.root, ['bcreate', 'jname=bcli', 'base=bb', 'vm_kernel=k1', 'vm_ram=256m', 'vm_vnc_port=1']);
const cliLog = qemuRunPaths(node.wd, 'bcli').consoleLog;
async function cliRun(): Promise<{ boot: number; stop: number }> {
  const from = logSize(cliLog);
  const t0 = performance.now();
  berth(node.wd.root, ['bstart', 'jname=bcli']);
  await waitReady(cliLog, from);
  const boot = performance.now() - t0;
  const t1 = performance.now();
  berth(node.wd.root, ['bstop', 'jname=bcli']);
  return { boot, stop: performance.now() - t1 };
}

const runs: { bare: { boot: number; stop: number }[]; berth: { boot: number; stop: number }[]; cli: { boot: number; stop: number }[] } = { bare: [], berth: [], cli: [] };
await bare(); await berthRun(); await cliRun(); // warm-up (page cache, the accelerator probe)
for (let i = 0; i < N; i++) {
  runs.bare.push(await bare());
  runs.berth.push(await berthRun());
  runs.cli.push(await cliRun());
}
const bb = med(runs.bare.map((r) => r.boot)), eb = med(runs.berth.map((r) => r.boot));
const bs = med(runs.bare.map((r) => r.stop)), es = med(runs.berth.map((r) => r.stop));
console.log(`# boot to "${GUEST_READY_LINE}" (TCG, 256 MiB): bare qemu ${ms(bb)}, berth startQemu ${ms(eb)}; stop: bare system_powerdown ${ms(bs)}, berth stopQemu ${ms(es)}`);
report('start to first userspace line vs bare qemu', `${(eb / bb).toFixed(2)}x (${ms(eb)} / ${ms(bb)})`, '<= 1.1x', eb / bb <= 1.1);
report('stop (ACPI) vs bare system_powerdown + exit', `${(es / bs).toFixed(2)}x (${ms(es)} / ${ms(bs)})`, '<= 1.1x', es / bs <= 1.1);
const cb = med(runs.cli.map((r) => r.boot)), cs = med(runs.cli.map((r) => r.stop));
report('berth bstart (whole command) to first userspace line vs bare qemu', `${(cb / bb).toFixed(2)}x (${ms(cb)} / ${ms(bb)})`, '<= 1.1x', cb / bb <= 1.1);
report('berth bstop (whole command) vs bare system_powerdown + exit', `${(cs / bs).toFixed(2)}x (${ms(cs)} / ${ms(bs)})`, '(no target)', true);

// ---- live migration of the 256 MiB guest ----
const d = join(node.wd.runDir, 'qemu');
const destRun: QemuRunPaths = {
  qmpSocket: join(d, 'bvm-in.qmp'), consoleSocket: join(d, 'bvm-in.console'), pidFile: join(d, 'bvm-in.pid'),
  consoleLog: join(node.wd.logDir, 'bvm-in.console.log'), qemuLog: join(node.wd.logDir, 'bvm-in.qemu.log'),
};

/** Boots the source with a running counter and starts the destination (-incoming defer). */
async function pair(): Promise<{ source: QmpClient; dest: QmpClient; srcRun: QemuRunPaths; dstRun: QemuRunPaths; destPid: number; destStartMs: number }> {
  const [srcRun, dstRun] = [vm.run, destRun];
  for (const r of [srcRun, dstRun]) await cleanupRunFiles(r);
  await startQemu(argv, srcRun);
  const c = await Console.connect(srcRun.consoleSocket);
  c.write('\n');
  await c.waitFor(/# /, 120_000);
  c.write('(i=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.1; done) &\n');
  await c.waitFor(/tick-3\r?\n/, 60_000);
  c.close();
  const t0 = performance.now();
  const destPid = (await startQemu(vm.argv({ run: dstRun, incoming: true }), dstRun)).pid;
  const dest = await QmpClient.connect(dstRun.qmpSocket);
  return { source: await QmpClient.connect(srcRun.qmpSocket), dest, srcRun, dstRun, destPid, destStartMs: performance.now() - t0 };
}

async function finish(p: Awaited<ReturnType<typeof pair>>): Promise<void> {
  p.source.close(); p.dest.close();
  for (const r of [p.srcRun, p.dstRun]) {
    const pid = qemuPid(r);
    if (pid) { process.kill(pid, 'SIGKILL'); await waitPidGone(pid, 5000); }
    await cleanupRunFiles(r);
  }
}

async function bareMigrate(): Promise<{ downtime: number; total: number; withDest: number }> {
  const p = await pair();
  const uri = `unix:${join(d, 'bare.mig')}`;
  const t0 = performance.now();
  await p.dest.execute('migrate-incoming', { uri });
  await p.source.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
  await p.source.execute('migrate', { uri });
  await p.source.waitEvent('MIGRATION', { since: t0, timeoutMs: 120_000, filter: (e) => ['completed', 'failed'].includes(e.data.status) });
  let m = await p.source.execute('query-migrate');
  while (!(m['total-time'] > 0)) { await sleep(10); m = await p.source.execute('query-migrate'); }
  await p.dest.execute('cont');
  const total = performance.now() - t0;
  await finish(p);
  if (m.status !== 'completed') throw new Error(`bare migration ${m.status}`);
  return { downtime: m.downtime, total, withDest: total + p.destStartMs };
}

async function berthMigrate(): Promise<{ downtime: number; total: number; measured: number }> {
  const p = await pair();
  const r = await liveMigrate({ source: p.source, destination: p.dest, uri: `unix:${join(d, 'berth.mig')}`, onSwitchover: async () => {}, killDestination: async () => { process.kill(p.destPid, 'SIGKILL'); } });
  await finish(p);
  return { downtime: r.qemu.downtimeMs, total: r.measured.totalMs, measured: r.measured.downtimeMs };
}

const mb: { downtime: number; total: number; withDest: number }[] = [];
const me: { downtime: number; total: number; measured: number }[] = [];
for (let i = 0; i < NM; i++) {
  mb.push(await bareMigrate());
  me.push(await berthMigrate());
}
const [bd, bt, ed, et, em] = [med(mb.map((x) => x.downtime)), med(mb.map((x) => x.total)), med(me.map((x) => x.downtime)), med(me.map((x) => x.total)), med(me.map((x) => x.measured))];
const bw = med(mb.map((x) => x.withDest));
console.log(`# live migration, 256 MiB guest, unix socket: bare migrate downtime ${ms(bd)} (QEMU), total ${ms(bt)} (${ms(bw)} with the destination qemu's start); berth liveMigrate downtime ${ms(ed)} (QEMU), ${ms(em)} (measured STOP to RESUME), total ${ms(et)}`);
report('live migration downtime (QEMU, berth liveMigrate)', ms(ed), '<= 100 ms', ed <= 100);
report('live migration total vs bare QEMU migrate', `${(et / bt).toFixed(2)}x (${ms(et)} / ${ms(bt)})`, '<= 1.2x', et / bt <= 1.2);
node.close();

// ---- the whole jmigrate between two nodes (two agents, one GlusterFS volume) ----
// live: `jmigrate live=1` (prepare, paused qemu there, the agents' channel, lease handover,
// resume) against bare QEMU migrate above; cold: `jmigrate` of the running VM (ACPI stop here,
// boot there) against a bare stop + boot above.
const fx = await twoNodes(['lease_ttl=5']);
try {
  for (const n of [fx.n1, fx.n2]) await makeKernelBase(new Workdir(n.wd), 'k1');
  await fx.n1.startAgent();
  await fx.n2.startAgent();
  fx.n1.ok(['node', 'add', 'name=node2', `url=${fx.n2.url}`, `token_file=${fx.n2.wd}/etc/api.token`]);
  fx.n2.ok(['node', 'add', 'name=node1', `url=${fx.n1.url}`, `token_file=${fx.n1.wd}/etc/api.token`]);
  fx.n1.ok(['bcreate', 'jname=mv', 'base=bb', 'vm_kernel=k1', 'vm_ram=256m', 'vm_vnc_port=1']);
  fx.n1.ok(['bstart', 'jname=mv']);
  // log=0: only what the console prints from now on (the log holds earlier boots' lines); jmigrate
  // returns once qemu runs there, seconds before the guest's userspace
  const ready = (n: TestNode, log: '0' | '1' = '0') => n.ok(['bconsole', 'jname=mv', `until=${GUEST_READY_LINE}`, `log=${log}`, 'timeout=120'], 150_000);
  ready(fx.n1, '1');
  const pairs: [TestNode, TestNode, string][] = [[fx.n1, fx.n2, 'node2'], [fx.n2, fx.n1, 'node1']];
  const live: { total: number; downtime: number; qemu: number }[] = [];
  for (let i = 0; i < 2 * NM; i++) {
    const [from, , to] = pairs[i % 2]!;
    const m = from.ok(['jmigrate', 'jname=mv', `dst=${to}`, 'live=1', '--json'], 240_000).json.migration;
    live.push({ total: m.totalMs, downtime: m.downtimeMs, qemu: m.live.downtimeMs });
  }
  // cold: from the stop here (jmigrate's own prepare step left out) to the guest's userspace there
  const cold: { downtime: number; userspace: number }[] = [];
  for (let i = 0; i < NM; i++) {
    const [from, there, to] = pairs[i % 2]!;
    const t0 = performance.now();
    const m = from.ok(['jmigrate', 'jname=mv', `dst=${to}`, '--json'], 240_000).json.migration;
    ready(there);
    const prepare = m.steps.find((x: { step: string }) => x.step === 'prepare')?.ms ?? 0;
    cold.push({ downtime: m.downtimeMs, userspace: performance.now() - t0 - prepare });
  }
  const owner = NM % 2 ? fx.n2 : fx.n1;
  owner.ok(['bstop', 'jname=mv'], 90_000);
  const [lt, ld, lq, cd, cu] = [med(live.map((x) => x.total)), med(live.map((x) => x.downtime)), med(live.map((x) => x.qemu)), med(cold.map((x) => x.downtime)), med(cold.map((x) => x.userspace))];
  console.log(`# jmigrate between two nodes (GlusterFS, agents on loopback): live total ${ms(lt)}, downtime ${ms(ld)} (berth) / ${ms(lq)} (QEMU); cold: downtime ${ms(cd)} (stop here to qemu running there), ${ms(cu)} to the guest's userspace there`);
  report('jmigrate live=1 (whole command) vs bare QEMU migrate', `${(lt / bt).toFixed(2)}x (${ms(lt)} / ${ms(bt)})`, '<= 1.2x', lt / bt <= 1.2);
  report('  the same, bare with its destination qemu started', `${(lt / bw).toFixed(2)}x (${ms(lt)} / ${ms(bw)})`, '<= 1.2x', lt / bw <= 1.2);
  report('jmigrate live=1 downtime (QEMU; berth measures paused to resumed)', `${ms(lq)} (${ms(ld)})`, '<= 100 ms', lq <= 100);
  report('cold jmigrate, stop here to userspace there, vs bare stop + boot', `${(cu / (bs + bb)).toFixed(2)}x (${ms(cu)} / ${ms(bs + bb)})`, '(no target)', true);
} finally {
  for (const n of [fx.n1, fx.n2]) n.run(['bstop', 'jname=*'], 90_000);
  await fx.cleanup();
}
