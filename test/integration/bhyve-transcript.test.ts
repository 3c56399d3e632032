/**
 * The bhyve engine verified by command transcripts: its steps (src/engines/bhyve/run.ts over
 * the plans of plan.ts) driven against the fake FreeBSD tools of test/helpers/fakebsd (bhyve,
 * bhyvectl, bhyveload, ifconfig), which append their argv to a transcript and keep a fake
 * host (vmm instances, taps and bridges, nmdm pairs). The fake bhyve reads the config with
 * the bhyve_config(5) checker, opens what bhyve would open, and runs as the VM until it is
 * stopped or its guest powers off, reboots or fails (bhyve(8) exit statuses). Each test runs
 * a whole lifecycle and asserts the exact commands in order and that the fake host is clean
 * afterwards. Nothing here runs on FreeBSD; no root needed (`ps` is the host's own).
 *
 * The steps are called directly (`vm` below), then the engine class (contract v2:
 * src/engines/bhyve/engine.ts); the lifecycle and the CLI over the same fakes are in
 * bhyve-lifecycle.test.ts.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EnvConf } from '../../src/descriptor.js';
import { BerthError } from '../../src/errors.js';
import { Workdir } from '../../src/paths.js';
import { exitAction, refuseLiveMigration } from '../../src/engines/bhyve/plan.js';
import { bhyveIsRunning, readBhyveState, restartBhyve, startBhyve, stopBhyveVm, teardownBhyveVm, type BhyveVmContext } from '../../src/engines/bhyve/run.js';
import { checkBhyveConfig, pciAt } from '../helpers/bhyveconfig-grammar.js';
import { berth, ROOT } from '../helpers/cli.js';

const FAKE = join(ROOT, 'test', 'helpers', 'fakebsd');
const temps: string[] = [];
const saved = { ...process.env };
after(() => {
  for (const t of temps) {
    // no fake VM may outlive the tests
    const vms = join(t, 'state', 'vms');
    if (existsSync(vms)) for (const l of readFileSync(vms, 'utf8').split('\n')) { const pid = Number(l.split('\t')[2]); if (pid) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    rmSync(t, { recursive: true, force: true });
  }
  process.env = saved;
});

/** A fresh fake FreeBSD host with an initialised workdir of node `node1`; the fakes first on this process's PATH. */
function host() {
  const T = mkdtempSync(join(tmpdir(), 'berth-bhyve-it-'));
  temps.push(T);
  const WD = join(T, 'wd');
  const env: Record<string, string> = {
    BERTH_PLATFORM: 'freebsd',
    PATH: `${FAKE}:${saved.PATH}`,
    NODE_OPTIONS: `${saved.NODE_OPTIONS ?? ''} --import=${join(FAKE, 'preload.mjs')}`.trim(),
    BERTH_FAKEBSD_STATE: join(T, 'state'),
    BERTH_FAKEBSD_TRANSCRIPT: join(T, 'transcript'),
  };
  const r = berth(['initenv', `workdir=${WD}`, 'nodename=node1'], { env });
  assert.equal(r.code, 0, r.stderr);
  // the steps run in this process: their commands (src/proc.ts run) see the fakes
  process.env = { ...saved, PATH: env.PATH, BERTH_FAKEBSD_STATE: env.BERTH_FAKEBSD_STATE, BERTH_FAKEBSD_TRANSCRIPT: env.BERTH_FAKEBSD_TRANSCRIPT };
  const wd = new Workdir(WD);
  const fw = join(T, 'uefi-firmware');
  mkdirSync(fw);
  for (const f of ['BHYVE_UEFI.fd', 'BHYVE_UEFI_CODE.fd', 'BHYVE_UEFI_CSM.fd', 'BHYVE_UEFI_VARS.fd']) writeFileSync(join(fw, f), 'fake firmware\n');
  const norm = (s: string) => s.split(WD).join('$WD').split(T).join('$T');
  /** The transcript since the last call, paths normalised; then cleared. */
  const take = (): string[] => {
    const f = join(T, 'transcript');
    if (!existsSync(f)) return [];
    const lines = readFileSync(f, 'utf8').split('\n').filter(Boolean).map(norm);
    rmSync(f);
    return lines;
  };
  take();
  const state = (name: string) => { const f = join(T, 'state', name); return existsSync(f) ? readFileSync(f, 'utf8') : ''; };
  /** A VM `jname` with a 64 MiB sparse first disk; its step context. */
  const vm = (jname: string, conf: EnvConf, opts: Partial<BhyveVmContext> = {}) => {
    const paths = wd.env(jname);
    mkdirSync(paths.data, { recursive: true });
    mkdirSync(paths.sysdir, { recursive: true });
    execFileSync('truncate', ['-s', '64M', join(paths.data, 'dsk1.vhd')], { env: saved }); // the host's: not in the transcript
    const ctx: BhyveVmContext = { wd, jname, nodename: 'node1', conf: { jname, emulator: 'bhyve', ...conf }, paths, firmwareDir: fw, ...opts };
    return ctx;
  };
  /** The fake host holds no VM, tap, open tap or nmdm pair, and the VM's node files are gone. */
  const clean = (jname: string) => {
    assert.equal(state('vms'), '', 'a vmm instance is left');
    assert.doesNotMatch(state('ifaces'), /^tap/m, 'a tap is left');
    assert.equal(state('tapuse'), '');
    // an nmdm pair whose opener is dead was closed by the kernel
    const open = (existsSync(join(T, 'state', 'dev')) ? readdirSync(join(T, 'state', 'dev')) : []).filter((f) => f.endsWith('A')).filter((f) => {
      try { process.kill(Number(readFileSync(join(T, 'state', 'dev', f), 'utf8')), 0); return true; } catch { return false; }
    });
    assert.deepEqual(open, [], 'an nmdm pair is left open');
    assert.equal(existsSync(join(WD, 'var', 'run', 'bhyve', `${jname}.conf`)), false);
    assert.equal(existsSync(join(WD, 'var', 'run', 'bhyve', `${jname}.state.json`)), false);
  };
  const exits = (jname: string) => state(`vm.${jname}.exits`).split('\n').filter(Boolean).map(Number);
  return { T, WD, wd, take, state, vm, clean, exits, fw };
}

const GET_STATS = (j: string) => `bhyvectl --vm=${j} --get-stats`;
const DESTROY = (j: string) => `bhyvectl --destroy --vm=${j}`;
const tapUp = (tap: string, j: string, bridge = 'bridge0') => [`ifconfig ${bridge}`, 'ifconfig tap create', `ifconfig ${tap} description berth/node1/${j} up`, `ifconfig ${bridge} addm ${tap}`];
const tapDown = (...taps: string[]) => taps.flatMap((t) => [`ifconfig ${t}`, `ifconfig ${t} destroy`]);
const configOf = (WD: string, j: string) => checkBhyveConfig(readFileSync(join(WD, 'var', 'run', 'bhyve', `${j}.conf`), 'utf8'));

test('a FreeBSD guest (bhyveload) on bridge0: start, its console, ACPI stop, teardown; nothing left', async () => {
  const h = host();
  const ctx = h.vm('fbsd1', { vm_ram: '1g', vm_cpus: '2', nic_parent1: 'bridge0', nic_hwaddr1: '02:a0:98:00:00:01' });
  const s = await startBhyve(ctx);
  assert.deepEqual(h.take(), [
    ...tapUp('tap0', 'fbsd1'),
    GET_STATS('fbsd1'),
    'bhyveload -c /dev/nmdm-fbsd1-1A -m 1024M -d $WD/jails-data/fbsd1-data/dsk1.vhd fbsd1',
    'bhyve -k $WD/var/run/bhyve/fbsd1.conf fbsd1',
  ]);
  const c = configOf(h.WD, 'fbsd1');
  assert.equal(c.memoryBytes, 1024 ** 3);
  assert.equal(pciAt(c, 2)!.vars.get('port.0.path'), join(h.WD, 'jails-data', 'fbsd1-data', 'dsk1.vhd'));
  assert.equal(pciAt(c, 3)!.vars.get('backend'), 'tap0');
  assert.equal(c.values.has('lpc.bootrom'), false, 'bhyveload loaded the guest');
  assert.equal(statSync(s.files.config).mode & 0o777, 0o600);
  assert.match(h.state('ifaces'), /^bridge0\t[^\t]*\ttap0$/m);
  assert.match(h.state('vms'), new RegExp(`^fbsd1\\trunning\\t${s.pid}\\t1073741824$`, 'm'));
  assert.match(h.state('dev/nmdm-fbsd1-1B'), /fbsd1 booted \(2 vCPUs, 1073741824 bytes\)/, 'the boot banner on the console\'s user side');
  assert.deepEqual(await readBhyveState(ctx), { taps: ['tap0'], console: '/dev/nmdm-fbsd1-1A', pid: s.pid });
  assert.equal(await bhyveIsRunning(ctx), true);

  assert.deepEqual(await stopBhyveVm(ctx, 30), { how: 'acpi', presses: 1 });
  assert.deepEqual(await s.wait(), 1, 'the guest powered off');
  assert.deepEqual(h.exits('fbsd1'), [1]);
  assert.equal(await bhyveIsRunning(ctx), false);
  assert.match(h.state('vms'), /^fbsd1\toff\t/m, 'the vmm instance outlives bhyve');
  assert.deepEqual(h.take(), [], 'the stop is signals only');

  assert.deepEqual(await teardownBhyveVm(ctx), { destroyed: true, taps: ['tap0'], skipped: [] });
  assert.deepEqual(h.take(), [DESTROY('fbsd1'), ...tapDown('tap0')]);
  h.clean('fbsd1');
  assert.equal(await teardownBhyveVm(ctx), undefined, 'a second teardown has nothing to do');
  assert.deepEqual(h.take(), []);
});

test('a UEFI guest with VNC on loopback, two NICs and a guest that needs the second ACPI press (double_acpi)', async () => {
  const h = host();
  writeFileSync(join(h.T, 'state', 'guest.web1'), 'acpi2');
  const ctx = h.vm('web1', {
    vm_os_type: 'linux', vm_efi: 'uefi', virtio_type: 'virtio-blk', vm_ram: '2g', nic_parent1: 'bridge0', nic_parent2: '0', nic_driver2: 'e1000',
    xhci: '1', vnc_password: 'pw', stop_timeout: '10',
  });
  const s = await startBhyve(ctx);
  assert.deepEqual(h.take(), [
    ...tapUp('tap0', 'web1'), 'ifconfig tap create', 'ifconfig tap1 description berth/node1/web1 up',
    GET_STATS('web1'),
    'bhyve -k $WD/var/run/bhyve/web1.conf web1',
  ]);
  const c = configOf(h.WD, 'web1');
  const port = s.state.vncPort!;
  assert.ok(port >= 5900 && port <= 6900, `VNC port ${port}`);
  assert.deepEqual([pciAt(c, 29)!.device, pciAt(c, 29)!.vars.get('rfb'), pciAt(c, 29)!.vars.get('password')], ['fbuf', `127.0.0.1:${port}`, 'pw']);
  assert.equal(pciAt(c, 30)!.vars.get('slot.1.device'), 'tablet');
  assert.equal(c.values.get('lpc.bootrom'), join(h.fw, 'BHYVE_UEFI.fd'));
  assert.deepEqual(c.pci.filter((d) => d.vars.has('backend')).map((d) => [d.device, d.vars.get('backend')]), [['virtio-net', 'tap0'], ['e1000', 'tap1']]);

  assert.deepEqual(await stopBhyveVm(ctx, 10), { how: 'acpi', presses: 2 });
  assert.equal(await s.wait(), 1);
  await teardownBhyveVm(ctx);
  assert.deepEqual(h.take(), [DESTROY('web1'), ...tapDown('tap0', 'tap1')]);
  h.clean('web1');
});

test('a guest that ignores ACPI is killed after stop_timeout; the teardown destroys the vmm instance bhyve left', async () => {
  const h = host();
  writeFileSync(join(h.T, 'state', 'guest.deaf1'), 'noacpi');
  const ctx = h.vm('deaf1', { nic_parent1: 'bridge0' });
  const s = await startBhyve(ctx);
  h.take();
  assert.deepEqual(await stopBhyveVm(ctx, 2), { how: 'killed', presses: 2 });
  assert.equal(await s.wait(), 128 + 9);
  assert.deepEqual(h.exits('deaf1'), [], 'bhyve never reached its own exit');
  assert.match(h.state('vms'), /^deaf1\trunning\t\d+\t/m, 'killed: the instance is still marked running, its pid dead');
  await teardownBhyveVm(ctx);
  assert.deepEqual(h.take(), [DESTROY('deaf1'), ...tapDown('tap0')]);
  h.clean('deaf1');
});

test('a failed start leaves nothing: bhyve cannot open a disk, bhyveload fails or hangs, the bridge is missing', async () => {
  const h = host();
  const fails = async (ctx: BhyveVmContext, code: string, re: RegExp, deps = {}) => {
    await assert.rejects(startBhyve(ctx, deps), (e: unknown) => {
      assert.ok(e instanceof BerthError && e.code === code && e.exitCode === (code === 'E_BAD_VALUE' ? 2 : 5) && re.test(e.message), `expected ${code} ${re}, got ${String(e)}`);
      return true;
    });
  };
  // bhyve exits 4 at its device init: the second disk is missing
  const uefi = h.vm('bad1', { vm_os_type: 'linux', vm_efi: 'uefi', nic_parent1: 'bridge0', dsk_path2: 'missing.vhd', vm_vnc_port: '1' });
  await fails(uefi, 'E_BHYVE_START', /exited during start with status 4: bhyve: Could not open backing file: \S+missing\.vhd/);
  assert.deepEqual(h.take(), [...tapUp('tap0', 'bad1'), GET_STATS('bad1'), 'bhyve -k $WD/var/run/bhyve/bad1.conf bad1', DESTROY('bad1'), ...tapDown('tap0')]);
  h.clean('bad1');
  // bhyveload finds no kernel
  const fb = h.vm('bad2', { nic_parent1: 'bridge0' });
  process.env.BERTH_FAKEBSD_FAIL = 'bhyveload';
  await fails(fb, 'E_BHYVELOAD', /bhyveload -c \/dev\/nmdm-bad2-1A -m 512M -d \S+dsk1\.vhd bad2 failed with exit code 1: can't load 'kernel'/);
  assert.deepEqual(h.take(), [...tapUp('tap0', 'bad2'), GET_STATS('bad2'), 'bhyveload -c /dev/nmdm-bad2-1A -m 512M -d $WD/jails-data/bad2-data/dsk1.vhd bad2', DESTROY('bad2'), ...tapDown('tap0')]);
  h.clean('bad2');
  // bhyveload waits at its prompt: killed after the loader timeout
  process.env.BERTH_FAKEBSD_FAIL = 'bhyveload-hang';
  await fails(fb, 'E_BHYVELOAD', /did not load a kernel within 1 s/, { loaderTimeoutSec: 1 });
  assert.deepEqual(h.take().slice(-3), [DESTROY('bad2'), ...tapDown('tap0')]);
  h.clean('bad2');
  // bhyve never comes up (stuck in its device init): killed after the readiness timeout
  process.env.BERTH_FAKEBSD_FAIL = 'bhyve-stall';
  const stuck = h.vm('bad6', { vm_os_type: 'linux', vm_efi: 'uefi', nic_parent1: 'bridge0', vm_vnc_port: '1' });
  await fails(stuck, 'E_BHYVE_START', /bhyve bad6 is not up 1 s after its start/, { readyTimeoutMs: 1000 });
  assert.deepEqual(h.take(), [...tapUp('tap0', 'bad6'), GET_STATS('bad6'), 'bhyve -k $WD/var/run/bhyve/bad6.conf bad6', DESTROY('bad6'), ...tapDown('tap0')]);
  h.clean('bad6');
  assert.doesNotMatch(execFileSync('ps', ['-eo', 'command'], { encoding: 'utf8' }), /fakebsd\/bhyve -k \S+bad6\.conf/, 'the stuck bhyve was killed');
  delete process.env.BERTH_FAKEBSD_FAIL;
  // the bridge does not exist: nothing is made
  await fails(h.vm('bad3', { nic_parent1: 'bridge9' }), 'E_VNET', /nic_parent1=bridge9: no such interface/);
  assert.deepEqual(h.take(), ['ifconfig bridge9']);
  h.clean('bad3');
  // settings bhyve cannot take: refused before any command
  await fails(h.vm('bad4', { vm_os_type: 'linux' }), 'E_BAD_VALUE', /bhyveload boots FreeBSD guests only/);
  await fails(h.vm('bad5', { bhyve_flags: '-s 9,passthru,2/0/0' }), 'E_BAD_VALUE', /bhyve_flags/);
  assert.deepEqual(h.take(), []);
});

test('a leftover of this node\'s last run is torn down before the next start; a VM of that name that is not this node\'s is refused', async () => {
  const h = host();
  const ctx = h.vm('vm1', { nic_parent1: 'bridge0' });
  const first = await startBhyve(ctx);
  h.take();
  process.kill(first.pid, 'SIGKILL'); // the node's berth died with it: no teardown
  assert.equal(await first.wait(), 137);
  const again = await startBhyve(ctx);
  assert.deepEqual(h.take(), [
    DESTROY('vm1'), ...tapDown('tap0'),
    ...tapUp('tap0', 'vm1'), GET_STATS('vm1'),
    'bhyveload -c /dev/nmdm-vm1-1A -m 512M -d $WD/jails-data/vm1-data/dsk1.vhd vm1', 'bhyve -k $WD/var/run/bhyve/vm1.conf vm1',
  ]);
  await assert.rejects(startBhyve(ctx), (e: unknown) => e instanceof BerthError && e.code === 'E_BHYVE_RUNNING');
  assert.deepEqual(h.take(), [], 'a running VM is not started twice');
  await stopBhyveVm(ctx, 30);
  await again.wait();
  await teardownBhyveVm(ctx);
  h.take();
  h.clean('vm1');

  // someone else's vmm instance of that name (another workdir on this host)
  execFileSync(join(FAKE, 'bhyvectl'), ['--create', '--vm=vm1']);
  h.take();
  await assert.rejects(startBhyve(ctx), (e: unknown) => e instanceof BerthError && e.code === 'E_VM_EXISTS' && /already exists on this host/.test(e.message));
  assert.deepEqual(h.take(), [...tapUp('tap0', 'vm1'), GET_STATS('vm1'), ...tapDown('tap0')], 'not destroyed: not ours');
  assert.match(h.state('vms'), /^vm1\toff\t/m);
});

test('the guest reboots: bhyve exits 0, on_reboot=restart runs the loader and bhyve again with the same taps; then it powers off', async () => {
  const h = host();
  const ctx = h.vm('rb1', { nic_parent1: 'bridge0' });
  const s = await startBhyve(ctx);
  h.take();
  writeFileSync(join(h.T, 'state', 'vm.rb1.ctl'), 'reboot');
  const code = await s.wait();
  assert.equal(code, 0);
  assert.deepEqual(exitAction(code, s.spec), { event: 'reboot', action: 'restart' });
  const r = await restartBhyve(ctx);
  assert.deepEqual(h.take(), [DESTROY('rb1'), 'bhyveload -c /dev/nmdm-rb1-1A -m 512M -d $WD/jails-data/rb1-data/dsk1.vhd rb1', 'bhyve -k $WD/var/run/bhyve/rb1.conf rb1']);
  assert.deepEqual(r.state.taps, ['tap0']);
  assert.equal((await readBhyveState(ctx))!.pid, r.pid);
  writeFileSync(join(h.T, 'state', 'vm.rb1.ctl'), 'poweroff');
  const code2 = await r.wait();
  assert.deepEqual(exitAction(code2, r.spec), { event: 'poweroff', action: 'destroy' });
  assert.deepEqual(h.exits('rb1'), [0, 1]);
  await teardownBhyveVm(ctx);
  assert.deepEqual(h.take(), [DESTROY('rb1'), ...tapDown('tap0')]);
  h.clean('rb1');
  assert.throws(() => refuseLiveMigration('rb1'), (e: unknown) => e instanceof BerthError && e.exitCode === 2);
});

test('the engine (contract v2): bcreate makes sparse disks by truncate, never over a disk; start, isRunning, console, stop, cleanup once', async () => {
  const { BhyveEngine } = await import('../../src/engines/bhyve/engine.js');
  const { engineEnv } = await import('../../src/engines/types.js');
  const h = host();
  const eng = new BhyveEngine({ firmwareDir: h.fw });
  const envOf = (jname: string, conf: EnvConf) => {
    const env = engineEnv({ nodename: 'node1', wd: h.wd }, jname, { jname, emulator: 'bhyve', ...conf });
    mkdirSync(env.paths.data, { recursive: true });
    mkdirSync(env.paths.sysdir, { recursive: true });
    return env;
  };
  const rejects = async (p: Promise<unknown>, code: string, exit: number, re: RegExp) => assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof BerthError && e.code === code && e.exitCode === exit && re.test(e.message), `expected ${code} ${re}, got ${String(e)}`);
    return true;
  });

  const env = envOf('e1', { imgsize: '64m', dsk_path2: 'dsk2.vhd', dsk_size2: '32m', dsk_slot2: '7', nic_parent1: 'bridge0' });
  await eng.create(env, {});
  assert.deepEqual(h.take(), ['truncate -s 67108864 $WD/jails-data/e1-data/.dsk1.vhd.new', 'truncate -s 33554432 $WD/jails-data/e1-data/.dsk2.vhd.new']);
  const d1 = statSync(join(env.paths.data, 'dsk1.vhd'));
  assert.equal(d1.size, 64 * 1024 * 1024);
  assert.ok(d1.blocks * 512 < 1024 * 1024, `sparse: ${d1.blocks} blocks`);
  assert.equal(d1.mode & 0o777, 0o600);
  assert.equal(statSync(join(env.paths.data, 'dsk2.vhd')).size, 32 * 1024 * 1024);
  assert.deepEqual(readdirSync(env.paths.data).sort(), ['dsk1.vhd', 'dsk2.vhd'], 'no temp file left');
  assert.deepEqual(Object.fromEntries(Object.entries(env.conf).filter(([k]) => k.startsWith('dsk_'))), {
    dsk_controller1: 'ahci-hd', dsk_path1: 'dsk1.vhd', dsk_slot1: '0', dsk_type1: 'vhd', dsk_size1: '67108864',
    dsk_controller2: 'ahci-hd', dsk_path2: 'dsk2.vhd', dsk_slot2: '7', dsk_type2: 'vhd', dsk_size2: '33554432',
  }, 'the disk rows for the descriptor, as CBSD writes them');
  assert.equal(env.conf.stop_timeout, '30', 'CBSD bstop\'s 30 s when not given');
  // never over an existing disk; checked before any command
  await rejects(eng.create(env, {}), 'E_DISK_EXISTS', 1, /dsk1\.vhd already exists/);
  assert.deepEqual(h.take(), []);
  // no base tree: the disk is made empty
  await rejects(eng.create(envOf('e2', {}), { baseDir: '/srv/base' }), 'E_BAD_BASE', 2, /not made from a base tree/);
  // truncate fails: nothing left
  process.env.BERTH_FAKEBSD_FAIL = 'truncate';
  const e3 = envOf('e3', { imgsize: '1g' });
  await rejects(eng.create(e3, {}), 'E_DISK_CREATE', 5, /truncate/);
  delete process.env.BERTH_FAKEBSD_FAIL;
  assert.deepEqual(readdirSync(e3.paths.data), []);
  assert.equal(e3.conf.dsk_path1, undefined, 'a failed create adds no row');
  h.take();
  // a UEFI VM gets its own variables file from the template; the default size is 10g
  const e4 = envOf('e4', { vm_os_type: 'linux', vm_efi: 'uefi' });
  await eng.create(e4, {});
  assert.deepEqual(h.take(), ['truncate -s 10737418240 $WD/jails-data/e4-data/.dsk1.vhd.new']);
  assert.equal(readFileSync(join(e4.paths.sysdir, 'BHYVE_UEFI_VARS.fd'), 'utf8'), 'fake firmware\n');

  const { jid } = await eng.start(env);
  assert.deepEqual(h.take(), [
    ...tapUp('tap0', 'e1'), GET_STATS('e1'),
    'bhyveload -c /dev/nmdm-e1-1A -m 512M -d $WD/jails-data/e1-data/dsk1.vhd e1',
    'bhyve -k $WD/var/run/bhyve/e1.conf e1',
  ]);
  const c = configOf(h.WD, 'e1');
  assert.equal(pciAt(c, 7)!.vars.get('port.0.path'), join(env.paths.data, 'dsk2.vhd'), 'dsk_slot2');
  assert.equal(await eng.isRunning(env, jid), true);
  assert.equal(await eng.isRunning(env, jid + 1), false, 'another pid is not this run');
  assert.deepEqual(await eng.console(env), { kind: 'tty', path: '/dev/nmdm-e1-1B', attach: ['cu', '-l', '/dev/nmdm-e1-1B', '-s', '115200'] });
  await rejects(eng.start(env), 'E_BHYVE_RUNNING', 5, /already running/);
  h.take();
  await eng.stop(env, 30);
  assert.deepEqual(h.take(), [], 'ACPI stop: signals only');
  assert.equal(await eng.isRunning(env, jid), false);
  await eng.cleanup(env);
  assert.deepEqual(h.take(), [DESTROY('e1'), ...tapDown('tap0')]);
  h.clean('e1');
  await eng.cleanup(env);
  await eng.stop(env, 30);
  assert.deepEqual(h.take(), [], 'stop and cleanup are idempotent');
});

test('the engine\'s registry row and settings: bhyve on FreeBSD only, family b, disk root, serial console, no exec, no live migration; bad values refused', async () => {
  const { BhyveEngine } = await import('../../src/engines/bhyve/engine.js');
  const { bhyveInfo } = await import('../../src/engines/bhyve/info.js');
  const { defaultEmulator, engineInfoFor, loadEngine } = await import('../../src/engines/registry.js');
  const { validateSettings } = await import('../../src/lifecycle/settings.js');
  assert.equal(engineInfoFor('bhyve', 'freebsd'), bhyveInfo);
  assert.throws(() => engineInfoFor('bhyve', 'linux'), (e: unknown) => e instanceof BerthError && e.code === 'E_BAD_EMULATOR');
  assert.equal(defaultEmulator('freebsd', 'b'), 'bhyve');
  assert.equal(defaultEmulator('freebsd', 'j'), 'jail');
  assert.deepEqual([bhyveInfo.family, bhyveInfo.root, bhyveInfo.console, bhyveInfo.exec, bhyveInfo.liveMigration, bhyveInfo.verified], ['b', 'disk', 'serial', false, false, 'transcript']);
  const eng = await loadEngine('bhyve', 'freebsd');
  assert.ok(eng instanceof BhyveEngine);
  assert.equal('exec' in eng, false, 'no jexec in a VM');
  assert.deepEqual(validateSettings({ vm_ram: '1g', vm_cpus: '2', nic_parent1: 'bridge0', bhyve_generate_acpi: '1' }, bhyveInfo), { vm_ram: '1073741824', vm_cpus: '2', nic_parent1: 'bridge0', bhyve_generate_acpi: '1' });
  const refused = (input: Record<string, string>, code: string, re: RegExp) => assert.throws(() => { eng.validate({ jname: 'v1', emulator: 'bhyve', ...validateSettings(input, bhyveInfo) }); }, (e: unknown) => {
    assert.ok(e instanceof BerthError && e.code === code && e.exitCode === 2 && re.test(e.message), `expected ${code} ${re}, got ${String(e)}`);
    return true;
  });
  refused({ vm_ram: 'lots' }, 'E_BAD_VALUE', /vm_ram="lots"/);
  refused({ vm_cpus: '0' }, 'E_BAD_VALUE', /vm_cpus="0"/);
  refused({ imgsize: '-1' }, 'E_BAD_VALUE', /imgsize/);
  refused({ vm_boot: 'floppy' }, 'E_BAD_VALUE', /vm_boot="floppy"/);
  refused({ vm_kernel: 'k1' }, 'E_UNKNOWN_KEY', /vm_kernel/);
  refused({ imgtype: 'qcow2' }, 'E_BAD_VALUE', /imgtype="qcow2"/);
  refused({ nic_hwaddr1: 'zz' }, 'E_BAD_VALUE', /nic_hwaddr1="zz"/);
  refused({ dsk_format1: 'qcow2' }, 'E_BAD_VALUE', /dsk_format1/);
  refused({ vm_os_type: 'linux' }, 'E_BAD_VALUE', /bhyveload boots FreeBSD guests only/);
  refused({ bhyve_flags: '-s 9,passthru,2/0/0' }, 'E_BAD_VALUE', /bhyve_flags/);
  assert.throws(() => refuseLiveMigration('v1'), (e: unknown) => e instanceof BerthError && e.code === 'E_NO_LIVE_MIGRATION' && /bhyve/.test(e.message));

  // an adopted descriptor naming host paths must be root-only
  const T = mkdtempSync(join(tmpdir(), 'berth-bhyve-adopt-'));
  temps.push(T);
  const f = join(T, 'rc.conf_v1');
  writeFileSync(f, 'jname="v1";\n', { mode: 0o666 });
  execFileSync('chmod', ['0666', f]);
  assert.throws(() => eng.checkAdopted!(f, { jname: 'v1', dsk_path1: '/dev/ada0' }), (e: unknown) => e instanceof BerthError && e.code === 'E_DESCRIPTOR_UNSAFE' && /dsk_path1/.test(e.message));
  eng.checkAdopted!(f, { jname: 'v1', dsk_path1: 'dsk1.vhd' });
  execFileSync('chmod', ['0644', f]);
  eng.checkAdopted!(f, { jname: 'v1', dsk_path1: '/dev/ada0' });
});

test('the engine with ci_* keys: the cloud-init seed made by makefs in the system dir at every start, attached as a read-only CD; a failing makefs starts nothing', async () => {
  const { BhyveEngine } = await import('../../src/engines/bhyve/engine.js');
  const { engineEnv } = await import('../../src/engines/types.js');
  const h = host();
  const eng = new BhyveEngine({ firmwareDir: h.fw });
  const env = engineEnv({ nodename: 'node1', wd: h.wd }, 'ci1', {
    jname: 'ci1', emulator: 'bhyve', imgsize: '64m', nic_parent1: 'bridge0', nic_hwaddr1: '02:a0:98:00:00:07',
    ci_ip4_addr: '10.0.0.5/24', ci_gw4: '10.0.0.1', ci_user_pubkey: 'ssh-ed25519 AAAAC3NzaTest user@host',
  });
  mkdirSync(env.paths.data, { recursive: true });
  mkdirSync(env.paths.sysdir, { recursive: true });
  await eng.create(env, {});
  h.take();
  process.env.BERTH_FAKEBSD_FAIL = 'makefs';
  await assert.rejects(eng.start(env), (e: unknown) => e instanceof BerthError && e.code === 'E_SEED_ISO' && e.exitCode === 5);
  delete process.env.BERTH_FAKEBSD_FAIL;
  const mk = 'makefs -t cd9660 -o label=cidata -o isolevel=2 -o rockridge $WD/jails-system/ci1/.seed.iso.new $WD/jails-system/ci1/cloud-init';
  assert.deepEqual(h.take(), [mk], 'nothing else ran');
  assert.equal(existsSync(join(env.paths.sysdir, 'seed.iso')), false);
  h.clean('ci1');

  const { jid } = await eng.start(env);
  assert.deepEqual(h.take(), [
    mk, ...tapUp('tap0', 'ci1'), GET_STATS('ci1'),
    'bhyveload -c /dev/nmdm-ci1-1A -m 512M -d $WD/jails-data/ci1-data/dsk1.vhd ci1',
    'bhyve -k $WD/var/run/bhyve/ci1.conf ci1',
  ]);
  assert.deepEqual(readdirSync(join(env.paths.sysdir, 'cloud-init')).sort(), ['meta-data', 'network-config', 'user-data']);
  assert.match(readFileSync(join(env.paths.sysdir, 'cloud-init', 'user-data'), 'utf8'), /ssh-ed25519 AAAAC3NzaTest/);
  assert.match(readFileSync(join(env.paths.sysdir, 'cloud-init', 'network-config'), 'utf8'), /10\.0\.0\.5/);
  assert.match(readFileSync(join(env.paths.sysdir, 'seed.iso'), 'utf8'), /^cd9660 label=cidata\n/);
  const c = configOf(h.WD, 'ci1');
  const cd = c.pci.find((d) => d.vars.get('port.0.path') === join(env.paths.sysdir, 'seed.iso'));
  assert.ok(cd, 'the seed is attached');
  assert.deepEqual([cd.device, cd.vars.get('port.0.type'), cd.vars.get('port.0.ro')], ['ahci', 'cd', 'true']);
  await assert.rejects(eng.start(env), (e: unknown) => e instanceof BerthError && e.code === 'E_BHYVE_RUNNING');
  assert.deepEqual(h.take(), [], 'a running VM\'s seed is not remade');
  assert.equal(await eng.isRunning(env, jid), true);
  await eng.stop(env, 30);
  await eng.cleanup(env);
  assert.deepEqual(h.take(), [DESTROY('ci1'), ...tapDown('tap0')]);
  h.clean('ci1');
});
