/**
 * A bhyve VM through berth's one lifecycle (src/lifecycle/: create, start, stop, remove, the
 * run monitor's teardown), verified by command transcripts: the real node (openNode with the
 * registry's engines and the FreeBSD mount primitive), BERTH_PLATFORM=freebsd, and the fake
 * FreeBSD tools of test/helpers/fakebsd first on PATH (process.execPath pointed at their
 * `node` stand-in as preload.mjs does, so the run monitor, a node process, finds them too and
 * writes its commands to `<transcript>.monitor`). Each test asserts the exact commands in
 * order, that the bhyve_config(5) file passes the grammar checker, that the teardown
 * (`bhyvectl --destroy`, the taps) happens once however the VM ends, and that the fake host is
 * clean afterwards. Nothing here runs on FreeBSD.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BerthError } from '../../src/errors.js';
import { initenv } from '../../src/initenv.js';
import { createEnv } from '../../src/lifecycle/create.js';
import { execInEnv } from '../../src/lifecycle/exec.js';
import { removeEnv } from '../../src/lifecycle/remove.js';
import { startEnv } from '../../src/lifecycle/start.js';
import { stopEnv } from '../../src/lifecycle/stop.js';
import { openNode } from '../../src/node.js';
import { sleep } from '../../src/proc.js';
import { checkBhyveConfig, pciAt } from '../helpers/bhyveconfig-grammar.js';
import { ROOT, berth } from '../helpers/cli.js';

const FAKE = join(ROOT, 'test', 'helpers', 'fakebsd');
const temps: string[] = [];
const saved = { env: { ...process.env }, execPath: process.execPath };
after(() => {
  for (const t of temps) {
    const vms = join(t, 'state', 'vms');
    if (existsSync(vms)) for (const l of readFileSync(vms, 'utf8').split('\n')) { const pid = Number(l.split('\t')[2]); if (pid) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    rmSync(t, { recursive: true, force: true });
  }
  process.env = saved.env;
  process.execPath = saved.execPath;
});

const GET_STATS = (j: string) => `bhyvectl --vm=${j} --get-stats`;
const DESTROY = (j: string) => `bhyvectl --destroy --vm=${j}`;
const tapUp = (tap: string, j: string, bridge = 'bridge0') => [`ifconfig ${bridge}`, 'ifconfig tap create', `ifconfig ${tap} description berth/node1/${j} up`, `ifconfig ${bridge} addm ${tap}`];
const tapDown = (...taps: string[]) => taps.flatMap((t) => [`ifconfig ${t}`, `ifconfig ${t} destroy`]);

async function host() {
  const T = mkdtempSync(join(tmpdir(), 'berth-bhyve-lc-'));
  temps.push(T);
  const WD = join(T, 'wd');
  process.env = {
    ...saved.env, BERTH_PLATFORM: 'freebsd', PATH: `${FAKE}:${saved.env.PATH}`,
    BERTH_FAKEBSD_STATE: join(T, 'state'), BERTH_FAKEBSD_TRANSCRIPT: join(T, 'transcript'),
  };
  process.execPath = join(FAKE, 'node');
  await initenv({ workdir: WD, nodename: 'node1' });
  const ctx = openNode(WD);
  assert.equal(ctx.platform, 'freebsd');
  const norm = (s: string) => s.split(WD).join('$WD').split(T).join('$T');
  const take = (file = 'transcript'): string[] => {
    const f = join(T, file);
    if (!existsSync(f)) return [];
    const lines = readFileSync(f, 'utf8').split('\n').filter(Boolean).map(norm);
    rmSync(f);
    return lines;
  };
  take();
  const state = (name: string) => { const f = join(T, 'state', name); return existsSync(f) ? readFileSync(f, 'utf8') : ''; };
  const clean = (jname: string) => {
    assert.equal(state('vms'), '', 'a vmm instance is left');
    assert.doesNotMatch(state('ifaces'), /^tap/m, 'a tap is left');
    assert.equal(state('tapuse'), '');
    assert.equal(existsSync(join(WD, 'var', 'run', 'bhyve', `${jname}.state.json`)), false);
  };
  /** Waits (up to 20 s) until `jname` is Off in the inventory: the run monitor tore it down. */
  const offSoon = async (jname: string) => {
    for (let i = 0; i < 200 && ctx.inv.get(jname)!.status !== 0; i++) await sleep(100);
    assert.equal(ctx.inv.get(jname)!.status, 0, `${jname} was not torn down`);
  };
  return { T, WD, ctx, take, state, clean, offSoon };
}

const isErr = (code: string, exit: number, re?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof BerthError, String(e));
  assert.equal(e.code, code, e.message);
  assert.equal(e.exitCode, exit);
  if (re) assert.match(e.message, re, e.message);
  return true;
};

test('a bhyveload FreeBSD VM on bridge0 through the lifecycle: create (truncate), start, stop (teardown once), remove; nothing left', async () => {
  const h = await host();
  const e = await createEnv(h.ctx, { jname: 'fb1', emulator: 'bhyve', settings: { imgsize: '64m', vm_ram: '1g', vm_cpus: '2', nic_parent1: 'bridge0', stop_timeout: '5' } });
  assert.equal(e.status, 'Off');
  assert.deepEqual(h.take(), ['truncate -s 67108864 $WD/jails-data/fb1-data/.dsk1.vhd.new']);
  const p = h.ctx.wd.env('fb1');
  const desc = readFileSync(p.descriptor, 'utf8');
  for (const kv of ['emulator="bhyve"', 'vm_ram="1073741824"', 'vm_efi="none"', 'virtio_type="ahci-hd"', 'double_acpi="1"', 'stop_timeout="5"', 'dsk_path1="dsk1.vhd"', 'dsk_controller1="ahci-hd"', 'dsk_size1="67108864"', 'nic_parent1="bridge0"']) assert.ok(desc.includes(kv), `descriptor has ${kv}:\n${desc}`);
  assert.equal(existsSync(p.path), false, 'no root tree');

  const s = await startEnv(h.ctx, 'fb1');
  assert.equal(s.status, 'On');
  assert.deepEqual(h.take(), [
    ...tapUp('tap0', 'fb1'), GET_STATS('fb1'),
    'bhyveload -c /dev/nmdm-fb1-1A -m 1024M -d $WD/jails-data/fb1-data/dsk1.vhd fb1',
    'bhyve -k $WD/var/run/bhyve/fb1.conf fb1',
  ]);
  const c = checkBhyveConfig(readFileSync(join(h.WD, 'var', 'run', 'bhyve', 'fb1.conf'), 'utf8'));
  assert.equal(c.memoryBytes, 1024 ** 3);
  assert.equal(pciAt(c, 2)!.vars.get('port.0.path'), join(p.data, 'dsk1.vhd'));
  assert.equal(pciAt(c, 3)!.vars.get('backend'), 'tap0');
  assert.match(h.state('vms'), new RegExp(`^fb1\\trunning\\t${s.jid}\\t`, 'm'), 'the jid is bhyve\'s pid');
  await assert.rejects(execInEnv(h.ctx, 'fb1', ['/bin/sh']), isErr('E_NO_EXEC', 2, /fb1 is a bhyve env.*bconsole jname=fb1/));

  const st = await stopEnv(h.ctx, 'fb1');
  assert.equal(st.status, 'Off');
  // the lifecycle's teardown reads the mount table (nothing of a VM is mounted: nothing unmounted)
  assert.deepEqual(h.take(), [DESTROY('fb1'), ...tapDown('tap0'), 'mount -p'], 'ACPI stop (signals), then one teardown');
  await sleep(1500); // let the run monitor see the end: it must not tear down again
  assert.deepEqual(h.take('transcript.monitor').filter((l) => !l.startsWith('ps ')), [], 'the monitor did not tear down a second time');
  h.clean('fb1');

  await removeEnv(h.ctx, 'fb1');
  assert.equal(existsSync(join(p.data, 'dsk1.vhd')), false, 'the disk went with the env');
  assert.equal(h.ctx.inv.get('fb1'), undefined);
  assert.deepEqual(h.take(), ['mount -p', 'mount -p'], 'remove: the mount table checked (nothing deleted through a mount), no engine command');
});

test('the guest powers off by itself, or bhyve is killed: the run monitor tears the VM down exactly once; a start that fails leaves nothing', async () => {
  const h = await host();
  await createEnv(h.ctx, { jname: 'po1', emulator: 'bhyve', settings: { imgsize: '64m', nic_parent1: 'bridge0' } });
  await startEnv(h.ctx, 'po1');
  h.take();
  writeFileSync(join(h.T, 'state', 'vm.po1.ctl'), 'poweroff');
  await h.offSoon('po1');
  await sleep(500);
  const all = [...h.take(), ...h.take('transcript.monitor')];
  assert.deepEqual(all.filter((l) => !l.startsWith('ps ')), [DESTROY('po1'), ...tapDown('tap0'), 'mount -p'], 'the monitor\'s teardown');
  assert.deepEqual(all.filter((l) => l === DESTROY('po1')), [DESTROY('po1')], `one bhyvectl --destroy: ${all.join(' | ')}`);
  assert.deepEqual(all.filter((l) => /^ifconfig tap0 destroy$/.test(l)), ['ifconfig tap0 destroy']);
  h.clean('po1');

  // bhyve killed (kill -9): the vmm instance it leaves is destroyed by the one teardown
  const again = await startEnv(h.ctx, 'po1');
  h.take();
  process.kill(again.jid, 'SIGKILL');
  await h.offSoon('po1');
  await sleep(500);
  const killed = [...h.take(), ...h.take('transcript.monitor')].filter((l) => !l.startsWith('ps '));
  assert.deepEqual(killed, [DESTROY('po1'), ...tapDown('tap0'), 'mount -p'], 'torn down once after kill -9');
  h.clean('po1');

  // the bridge is gone: the start fails (exit 5), the VM stays Off, nothing is left
  await createEnv(h.ctx, { jname: 'bad1', emulator: 'bhyve', settings: { imgsize: '64m', nic_parent1: 'bridge9' } });
  h.take();
  await assert.rejects(startEnv(h.ctx, 'bad1'), isErr('E_VNET', 5, /nic_parent1=bridge9/));
  assert.deepEqual(h.take(), ['ifconfig bridge9', 'mount -p'], 'the failed start torn down: nothing to destroy, nothing mounted');
  assert.equal(h.ctx.inv.get('bad1')!.status, 0);
  h.clean('bad1');
  // bad settings: refused before anything is made (exit 2)
  await assert.rejects(createEnv(h.ctx, { jname: 'bad2', emulator: 'bhyve', settings: { vm_ram: 'lots' } }), isErr('E_BAD_VALUE', 2, /vm_ram/));
  await assert.rejects(createEnv(h.ctx, { jname: 'bad3', emulator: 'bhyve', settings: { vm_os_type: 'linux' } }), isErr('E_BAD_VALUE', 2, /bhyveload boots FreeBSD guests only/));
  await assert.rejects(createEnv(h.ctx, { jname: 'bad4', emulator: 'bhyve', settings: { vm_kernel: 'k' } }), isErr('E_UNKNOWN_KEY', 2, /vm_kernel/));
  for (const j of ['bad2', 'bad3', 'bad4']) {
    assert.equal(h.ctx.inv.get(j), undefined);
    assert.equal(existsSync(h.ctx.wd.env(j).data), false);
  }
  assert.deepEqual(h.take(), []);
});

test('the CLI on the fake FreeBSD host: doctor\'s bhyve row; bcreate, bstart, bls, bstop, bremove of a bhyve VM run exactly these commands; jcreate refuses it; jmigrate live=1 is refused and changes nothing', async () => {
  const T = mkdtempSync(join(tmpdir(), 'berth-bhyve-cli-'));
  temps.push(T);
  const WD = join(T, 'wd');
  const env: Record<string, string> = {
    BERTH_PLATFORM: 'freebsd', BERTH_WORKDIR: WD, PATH: `${FAKE}:${saved.env.PATH}`,
    NODE_OPTIONS: `${saved.env.NODE_OPTIONS ?? ''} --import=${join(FAKE, 'preload.mjs')}`.trim(),
    BERTH_FAKEBSD_STATE: join(T, 'state'), BERTH_FAKEBSD_TRANSCRIPT: join(T, 'transcript'),
  };
  const run = (args: string[], code = 0) => {
    const r = berth(args, { env });
    assert.equal(r.code, code, `berth ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    return r;
  };
  const norm = (s: string) => s.split(WD).join('$WD');
  const take = (file = 'transcript') => {
    const f = join(T, file);
    if (!existsSync(f)) return [];
    const l = readFileSync(f, 'utf8').split('\n').filter(Boolean).map(norm);
    rmSync(f);
    return l;
  };
  run(['initenv', `workdir=${WD}`, 'nodename=node1']);
  take();
  // doctor: bhyve's row (the tools on PATH, the vmm module; the UEFI firmware noted)
  type Check = { check: string; subject: string; status: string; detail: string };
  const engineRow = (extra: Record<string, string> = {}) => (JSON.parse(berth(['doctor', '--json'], { env: { ...env, ...extra } }).stdout) as { checks: Check[] }).checks.filter((c) => c.check === 'engine');
  const ok = engineRow();
  assert.deepEqual(ok.map((c) => [c.subject, c.status]), [['bhyve', 'ok']]);
  assert.match(ok[0]!.detail, /vmm loaded.*no UEFI firmware in \/usr\/local\/share\/uefi-firmware/);
  const noVmm = engineRow({ BERTH_FAKEBSD_FAIL: 'kldstat-vmm' });
  assert.deepEqual(noVmm.map((c) => [c.subject, c.status]), [['bhyve', 'warn']]);
  assert.match(noVmm[0]!.detail, /cannot start: the vmm module is not loaded \(kldload vmm/);
  assert.deepEqual(take().filter((l) => !l.startsWith('df ')), ['kldstat -q -m vmm', 'kldstat -q -m vmm']);

  assert.match(run(['bcreate', 'jname=cli1', 'imgsize=64m', 'vm_cpus=2', 'nic_parent1=bridge0']).stdout, /created: cli1 .*emulator bhyve/);
  assert.deepEqual(take(), ['truncate -s 67108864 $WD/jails-data/cli1-data/.dsk1.vhd.new']);
  run(['jcreate', 'jname=cli2', 'emulator=bhyve'], 2);
  assert.match(run(['bstart', 'cli1']).stdout, /started: cli1/);
  assert.deepEqual(take(), [
    ...tapUp('tap0', 'cli1'), GET_STATS('cli1'),
    'bhyveload -c /dev/nmdm-cli1-1A -m 512M -d $WD/jails-data/cli1-data/dsk1.vhd cli1',
    'bhyve -k $WD/var/run/bhyve/cli1.conf cli1',
  ]);
  const c = checkBhyveConfig(readFileSync(join(WD, 'var', 'run', 'bhyve', 'cli1.conf'), 'utf8'));
  assert.equal(c.values.get('cpus'), '2');
  assert.equal(pciAt(c, 3)!.vars.get('backend'), 'tap0');
  const ls = JSON.parse(run(['bls', '--json']).stdout) as { envs: { jname: string; emulator: string; status: string; conf: Record<string, string> }[] };
  assert.deepEqual(ls.envs.map((e) => [e.jname, e.emulator, e.status]), [['cli1', 'bhyve', 'On']]);
  assert.equal(ls.envs[0]!.conf.vm_ram, '536870912', 'the defaults are in the descriptor');
  run(['jexec', 'jname=cli1', '/bin/sh'], 2);
  // the console is the nmdm pair's user side, attached by cu(1) from a terminal only
  assert.match(run(['bconsole', 'jname=cli1', 'timeout=1'], 2).stderr, /terminal device \/dev\/nmdm-cli1-1B[\s\S]*cu -l \/dev\/nmdm-cli1-1B -s 115200/);

  // no live migration for bhyve: refused (exit 2) before anything happens
  const lm = run(['jmigrate', 'jname=cli1', 'dst=node2', 'live=1'], 2);
  assert.match(lm.stderr, /cli1 is a bhyve env: bhyve has no live migration; move it stopped: berth jmigrate jname=cli1 dst=node2/);
  assert.deepEqual(take(), [], 'nothing ran');
  assert.match(readFileSync(join(T, 'state', 'vms'), 'utf8'), /^cli1\trunning\t/m, 'still running');

  assert.match(run(['bstop', 'cli1']).stdout, /stopped: cli1/);
  assert.deepEqual(take(), [DESTROY('cli1'), ...tapDown('tap0'), 'mount -p'], 'ACPI stop, then one teardown');
  await sleep(1500);
  assert.deepEqual(take('transcript.monitor').filter((l) => !l.startsWith('ps ')), [], 'the run monitor did not tear down again');
  assert.equal(readFileSync(join(T, 'state', 'vms'), 'utf8'), '');
  assert.doesNotMatch(readFileSync(join(T, 'state', 'ifaces'), 'utf8'), /^tap/m);

  assert.match(run(['bremove', 'cli1']).stdout, /removed: cli1/);
  assert.equal(existsSync(join(WD, 'jails-data', 'cli1-data')), false);
  assert.deepEqual(take().filter((l) => !l.startsWith('mount -p')), [], 'remove: no engine command beyond the mount table checks');
});

test('bregister of a descriptor CBSD wrote (bunregister): refused while others may change it (it names a host firmware path), adopted when root-only; bstart/bstop by transcript', async () => {
  const T = mkdtempSync(join(tmpdir(), 'berth-bhyve-cbsd-'));
  temps.push(T);
  const WD = join(T, 'wd');
  const env: Record<string, string> = {
    BERTH_PLATFORM: 'freebsd', BERTH_WORKDIR: WD, PATH: `${FAKE}:${saved.env.PATH}`,
    NODE_OPTIONS: `${saved.env.NODE_OPTIONS ?? ''} --import=${join(FAKE, 'preload.mjs')}`.trim(),
    BERTH_FAKEBSD_STATE: join(T, 'state'), BERTH_FAKEBSD_TRANSCRIPT: join(T, 'transcript'),
  };
  const run = (args: string[], code = 0) => {
    const r = berth(args, { env });
    assert.equal(r.code, code, `berth ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    return r;
  };
  const take = () => {
    const f = join(T, 'transcript');
    if (!existsSync(f)) return [];
    const l = readFileSync(f, 'utf8').split('\n').filter(Boolean).map((s) => s.split(WD).join('$WD'));
    rmSync(f);
    return l;
  };
  run(['initenv', `workdir=${WD}`, 'nodename=node1']);
  // the descriptor as CBSD wrote it, uuid="0" (CBSD's value for none) included: berth gives it one
  const rc = join(WD, 'jails-rcconf', 'rc.conf_debian1');
  const cbsd = readFileSync(join(ROOT, 'test', 'fixtures', 'vm', 'cbsd-bunregister-debian1.conf'), 'utf8');
  assert.match(cbsd, /^uuid="0";$/m);
  writeFileSync(rc, cbsd);
  execFileSync('chmod', ['0666', rc]);
  const data = join(WD, 'jails-data', 'debian1-data');
  execFileSync('mkdir', ['-p', data]);
  execFileSync('truncate', ['-s', '64M', join(data, 'dsk1.vhd'), join(data, 'dsk2.vhd')], { env: saved.env });
  take();
  assert.match(run(['bregister', 'jname=debian1'], 1).stderr, /refusing to adopt .*rc\.conf_debian1: it sets efi_firmware, host paths bhyve opens as root/);
  run(['bstart', 'debian1'], 3);
  execFileSync('chmod', ['0644', rc]);
  assert.match(run(['bregister', 'jname=debian1']).stdout, /registered: debian1/);
  assert.match(run(['bget', 'jname=debian1', 'key=uuid']).stdout.trim(), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'a uuid of its own');
  // this host has no CBSD firmware copy and no bridge1
  const fw = join(T, 'efi.fd');
  writeFileSync(fw, 'fake firmware\n');
  run(['bset', 'jname=debian1', `efi_firmware=${fw}`, 'nic_parent1=bridge0']);
  take();
  run(['bstart', 'debian1']);
  assert.deepEqual(take(), [...tapUp('tap0', 'debian1'), GET_STATS('debian1'), 'bhyve -k $WD/var/run/bhyve/debian1.conf debian1'], 'UEFI: no bhyveload');
  const c = checkBhyveConfig(readFileSync(join(WD, 'var', 'run', 'bhyve', 'debian1.conf'), 'utf8'));
  assert.equal(c.values.get('lpc.bootrom'), fw);
  assert.deepEqual(c.pci.filter((d) => d.device === 'virtio-blk').map((d) => d.vars.get('path')), [join(data, 'dsk1.vhd'), join(data, 'dsk2.vhd')]);
  assert.equal(c.pci.find((d) => d.vars.get('backend') === 'tap0')!.vars.get('mac'), '00:a0:98:3c:1f:7e', 'CBSD\'s MAC kept');
  run(['bstop', 'debian1']);
  assert.deepEqual(take(), [DESTROY('debian1'), ...tapDown('tap0'), 'mount -p']);
});
