/**
 * The bhyve engine's plans (src/engines/bhyve/plan.ts) and settings (settings.ts): the exact
 * argv of each step, the executors' order and rollback against a scripted runner, the stop
 * sequence against a virtual clock, and the bhyve-specific validation. Real fake tools are
 * driven in test/integration/bhyve-transcript.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BerthError, EXIT } from '../../src/errors.js';
import type { EnvConf } from '../../src/descriptor.js';
import type { RunOptions, RunResult } from '../../src/proc.js';
import {
  bhyveArgv, bhyvePidMatches, bhyveTitleIs, chooseVncPort, clearStaleVm, consoleOf, createTaps, destroyArgv, exitAction, firmwareFor, loaderArgv,
  parseIfconfigMtu, refuseLiveMigration, stopBhyve, teardownBhyve, validateBhyveSpec, type StopDeps,
} from '../../src/engines/bhyve/plan.js';
import { BHYVE_SETTINGS, isBhyveKey, parseBhyveSettings } from '../../src/engines/bhyve/settings.js';
import { parseVmSpec } from '../../src/engines/vm/spec.js';
import { VM_SETTINGS } from '../../src/engines/vm/settings.js';

const spec = (conf: EnvConf) => parseVmSpec({ emulator: 'bhyve', jname: 'vm1', ...conf });
const usage = (re: RegExp) => (e: unknown) => e instanceof BerthError && e.exitCode === 2 && re.test(e.message);

/** A runner that records argv and answers from a script (`argv joined by spaces` → result). */
function scripted(answers: Record<string, Partial<RunResult>> = {}) {
  const calls: string[] = [];
  const run = async (argv: string[], opts: RunOptions = {}): Promise<RunResult> => {
    const line = argv.join(' ');
    calls.push(line);
    const a = answers[line] ?? {};
    const r: RunResult = { argv, exitCode: a.exitCode ?? 0, stdout: a.stdout ?? '', stderr: a.stderr ?? '', durationMs: 0 };
    if ((opts.check ?? true) && r.exitCode !== 0) throw new BerthError(opts.errorCode ?? 'E_COMMAND_FAILED', `${line} failed with exit code ${r.exitCode}: ${r.stderr}`, EXIT.ENGINE);
    return r;
  };
  return { run, calls };
}
const NO_VM = { exitCode: 1, stderr: 'vm_open: vm1 could not be opened: No such file or directory\n' };

test('settings: the bhyve-only keys are not the shared model\'s, have CBSD\'s defaults, and refuse what berth does not do', () => {
  for (const d of BHYVE_SETTINGS) assert.ok(!VM_SETTINGS.some((s) => s.key === d.key), `${d.key} is in both`);
  assert.ok(isBhyveKey('double_acpi') && !isBhyveKey('vm_ram'));
  const s = parseBhyveSettings({});
  assert.deepEqual([s.hostbridge, s.acpi, s.mptable, s.fbuf, s.tablet, s.xhci, s.doubleAcpi, s.vncWidth, s.vncHeight, s.vncBind, s.vga],
    ['hostbridge', true, true, true, true, false, true, 1024, 768, '127.0.0.1', 'io']);
  assert.equal(parseBhyveSettings({ bhyve_vnc_tcp_bind: '[::1]' }).vncBind, '::1');
  const bad: [EnvConf, RegExp][] = [
    [{ bhyve_flags: '-s 5,passthru,2/0/0' }, /bhyve_flags=.*expected 0/],
    [{ bhyve_vnc_tcp_bind: '0.0.0.0' }, /127\.0\.0\.1 or ::1/],
    [{ bhyve_vnc_resolution: '320x200' }, /640x480 and 3840x2160/],
    [{ bhyve_vnc_vgaconf: 'vesa' }, /io \| on \| off/],
    [{ efi_firmware: 'efi.fd' }, /absolute path/],
    [{ double_acpi: 'yes' }, /0 or 1/],
    [{ vm_console: 'stdio' }, /nmdm/],
    [{ vm_hostbridge: 'intel' }, /hostbridge \| amd_hostbridge/],
  ];
  for (const [conf, re] of bad) assert.throws(() => parseBhyveSettings(conf), usage(re), JSON.stringify(conf));
});

test('validateBhyveSpec: VM names of vmm, no direct kernel boot, bhyveload boots FreeBSD only, whole pages', () => {
  assert.doesNotThrow(() => validateBhyveSpec(spec({ jname: 'a'.repeat(31) })));
  const bad: [EnvConf, RegExp][] = [
    [{ jname: 'a'.repeat(32) }, /at most 31 characters/],
    [{ vm_kernel: 'deb12' }, /vm_kernel="deb12": direct kernel boot is qemu's/],
    [{ vm_os_type: 'linux' }, /vm_efi="none": bhyveload boots FreeBSD guests only/],
    [{ vm_boot: 'net', nic_parent1: 'bridge0' }, /vm_boot="net": network boot needs UEFI/],
    [{ vm_ram: '536872960' }, /whole 4 KiB pages/],
  ];
  for (const [conf, re] of bad) assert.throws(() => validateBhyveSpec(spec(conf)), usage(re), JSON.stringify(conf));
  assert.throws(() => spec({ dsk_format1: 'qcow2' }), (e: unknown) => e instanceof BerthError && e.exitCode === 2 && /bhyve reads raw images/.test(e.hint ?? ''), 'the shared model refuses qcow2 for bhyve');
});

test('firmware: none for bhyveload, the ports\' ROMs for uefi and uefi_csm, the code ROM with a vars file, efi_firmware', () => {
  assert.equal(firmwareFor({ efi: 'none' }, {}), undefined);
  assert.deepEqual(firmwareFor({ efi: 'uefi' }, {}), { bootrom: '/usr/local/share/uefi-firmware/BHYVE_UEFI.fd' });
  assert.deepEqual(firmwareFor({ efi: 'uefi_csm' }, {}), { bootrom: '/usr/local/share/uefi-firmware/BHYVE_UEFI_CSM.fd' });
  assert.deepEqual(firmwareFor({ efi: 'uefi' }, {}, { varsFile: '/s/vm1/BHYVE_UEFI_VARS.fd' }),
    { bootrom: '/usr/local/share/uefi-firmware/BHYVE_UEFI_CODE.fd', bootvars: '/s/vm1/BHYVE_UEFI_VARS.fd', fwcfg: 'qemu' });
  assert.deepEqual(firmwareFor({ efi: 'uefi' }, { efiFirmware: '/opt/fw.fd' }, { firmwareDir: '/x' }), { bootrom: '/opt/fw.fd' });
  assert.deepEqual(firmwareFor({ efi: 'uefi_csm' }, { efiFirmware: '/opt/fw.fd' }, { firmwareDir: '/x' }), { bootrom: '/x/BHYVE_UEFI_CSM.fd' });
});

test('argv: bhyveload from the first disk or the ISO with the same memory size, bhyve -k, bhyvectl --destroy, the console pair', () => {
  const c = consoleOf('vm1');
  assert.deepEqual(c, { a: '/dev/nmdm-vm1-1A', b: '/dev/nmdm-vm1-1B', attach: ['cu', '-l', '/dev/nmdm-vm1-1B', '-s', '115200'] });
  assert.deepEqual(loaderArgv(spec({ vm_ram: '1g' }), '/wd/jails-data/vm1-data', c), ['bhyveload', '-c', '/dev/nmdm-vm1-1A', '-m', '1024M', '-d', '/wd/jails-data/vm1-data/dsk1.vhd', 'vm1']);
  assert.deepEqual(loaderArgv(spec({ vm_boot: 'cd', vm_iso_path: '/iso/fbsd.iso' }), '/d', c), ['bhyveload', '-c', '/dev/nmdm-vm1-1A', '-m', '512M', '-d', '/iso/fbsd.iso', 'vm1']);
  assert.equal(loaderArgv(spec({ vm_efi: 'uefi', vm_os_type: 'linux' }), '/d', c), undefined);
  assert.deepEqual(bhyveArgv('/wd/var/run/bhyve/vm1.conf', 'vm1'), ['bhyve', '-k', '/wd/var/run/bhyve/vm1.conf', 'vm1']);
  assert.deepEqual(destroyArgv('vm1'), ['bhyvectl', '--destroy', '--vm=vm1']);
});

test('exit statuses as bhyve(8) and CBSD\'s bhyverun.sh: reboot → on_reboot, poweroff → on_poweroff, the rest → on_crash', () => {
  const s = spec({});
  assert.deepEqual([0, 1, 2, 3, 4, 7, 137].map((c) => [exitAction(c, s).event, exitAction(c, s).action]), [
    ['reboot', 'restart'], ['poweroff', 'destroy'], ['halt', 'destroy'], ['triplefault', 'destroy'], ['error', 'destroy'], ['unknown', 'destroy'], ['killed', 'destroy'],
  ]);
  const r = spec({ on_reboot: 'destroy', on_poweroff: 'restart', on_crash: 'restart' });
  assert.deepEqual([0, 1, 3].map((c) => exitAction(c, r).action), ['destroy', 'restart', 'restart']);
});

test('createTaps: bridge checked first (its MTU taken), tap made, described, joined; nic_parent=0 joins nothing', async () => {
  const s = spec({ vm_efi: 'uefi', vm_os_type: 'linux', nic_parent1: 'bridge0', nic_parent2: '0', nic_parent3: 'auto', nic_mtu3: '1400' });
  const { run, calls } = scripted({
    'ifconfig bridge0': { stdout: 'bridge0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> metric 0 mtu 9000\n\tgroups: bridge\n' },
    'ifconfig bridge7': { stdout: 'bridge7: flags=8843<UP> metric 0 mtu 1500\n' },
  });
  let n = 0;
  const runTap = async (argv: string[], o?: RunOptions) => (argv.join(' ') === 'ifconfig tap create' ? { ...(await run(argv, o)), stdout: `tap${n++}\n` } : run(argv, o));
  const taps = await createTaps(s.nics, { jname: 'vm1', nodename: 'node1', defaultBridge: 'bridge7' }, runTap);
  assert.deepEqual(taps, ['tap0', 'tap1', 'tap2']);
  assert.deepEqual(calls, [
    'ifconfig bridge0', 'ifconfig tap create', 'ifconfig tap0 description berth/node1/vm1 mtu 9000 up', 'ifconfig bridge0 addm tap0',
    'ifconfig tap create', 'ifconfig tap1 description berth/node1/vm1 up',
    'ifconfig bridge7', 'ifconfig tap create', 'ifconfig tap2 description berth/node1/vm1 mtu 1400 up', 'ifconfig bridge7 addm tap2',
  ]);
  assert.equal(parseIfconfigMtu('lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> metric 0 mtu 16384\n'), 16384);
});

test('createTaps: a failure destroys the taps made so far; nic_parent=auto without a default bridge fails before any command', async () => {
  const s = spec({ vm_efi: 'uefi', vm_os_type: 'linux', nic_parent1: 'bridge0', nic_parent2: 'bridge0' });
  let n = 0;
  const { run, calls } = scripted({ 'ifconfig bridge0 addm tap1': { exitCode: 1, stderr: 'ifconfig: BRDGADD tap1: Invalid argument' } });
  const runTap = async (argv: string[], o?: RunOptions) => (argv.join(' ') === 'ifconfig tap create' ? { ...(await run(argv, o)), stdout: `tap${n++}\n` } : run(argv, o));
  await assert.rejects(createTaps(s.nics, { jname: 'vm1', nodename: 'node1' }, runTap), (e: unknown) => e instanceof BerthError && e.code === 'E_VNET' && /BRDGADD tap1/.test(e.message));
  assert.deepEqual(calls.slice(-2), ['ifconfig tap1 destroy', 'ifconfig tap0 destroy']);
  const gone = scripted({ 'ifconfig bridge9': { exitCode: 1, stderr: 'ifconfig: interface bridge9 does not exist' } });
  await assert.rejects(createTaps(spec({ vm_efi: 'uefi', vm_os_type: 'linux', nic_parent1: 'bridge9' }).nics, { jname: 'vm1', nodename: 'n' }, gone.run), /nic_parent1=bridge9: no such interface/);
  assert.deepEqual(gone.calls, ['ifconfig bridge9']);
  const auto = scripted();
  await assert.rejects(createTaps(spec({ vm_efi: 'uefi', vm_os_type: 'linux', nic_parent1: 'bridge0', nic_parent2: 'auto' }).nics, { jname: 'vm1', nodename: 'n' }, auto.run), usage(/nic_parent2=auto, but this node has no default bridge/));
  assert.deepEqual(auto.calls, []);
});

test('clearStaleVm: nothing to do, this node\'s leftover destroyed, another VM of the name refused', async () => {
  const none = scripted({ 'bhyvectl --vm=vm1 --get-stats': NO_VM });
  assert.equal(await clearStaleVm('vm1', false, none.run), 'none');
  const ours = scripted();
  assert.equal(await clearStaleVm('vm1', true, ours.run), 'destroyed');
  assert.deepEqual(ours.calls, ['bhyvectl --vm=vm1 --get-stats', 'bhyvectl --destroy --vm=vm1']);
  const theirs = scripted();
  await assert.rejects(clearStaleVm('vm1', false, theirs.run), (e: unknown) => e instanceof BerthError && e.code === 'E_VM_EXISTS' && e.exitCode === 5 && /bhyvectl --destroy --vm=vm1/.test(e.hint ?? ''));
  assert.deepEqual(theirs.calls, ['bhyvectl --vm=vm1 --get-stats']);
});

test('teardownBhyve: destroys the vmm instance and only the taps that still carry berth\'s description for this VM', async () => {
  const desc = (d: string) => ({ stdout: `tapX: flags=8843<UP> metric 0 mtu 1500\n\tdescription: ${d}\n\toptions=80000<LINKSTATE>\n` });
  const { run, calls } = scripted({
    'ifconfig tap0': desc('berth/node1/vm1'), 'ifconfig tap1': desc('berth/node1/other'), 'ifconfig tap2': { exitCode: 1, stderr: 'ifconfig: interface tap2 does not exist' },
  });
  const r = await teardownBhyve({ taps: ['tap0', 'tap1', 'tap2'] }, { jname: 'vm1', nodename: 'node1' }, run);
  assert.deepEqual(r, { destroyed: true, taps: ['tap0'], skipped: ['tap1', 'tap2'] });
  assert.deepEqual(calls, ['bhyvectl --destroy --vm=vm1', 'ifconfig tap0', 'ifconfig tap0 destroy', 'ifconfig tap1', 'ifconfig tap2']);
  // again, after everything is gone: nothing to do, no error
  const again = scripted({ 'bhyvectl --destroy --vm=vm1': NO_VM, 'ifconfig tap0': { exitCode: 1 } });
  assert.deepEqual(await teardownBhyve({ taps: ['tap0'] }, { jname: 'vm1', nodename: 'node1' }, again.run), { destroyed: false, taps: [], skipped: ['tap0'] });
  // a real failure is reported after the taps were handled
  const fail = scripted({ 'bhyvectl --destroy --vm=vm1': { exitCode: 1, stderr: 'bhyvectl: vm_destroy: Device busy' }, 'ifconfig tap0': desc('berth/node1/vm1') });
  await assert.rejects(teardownBhyve({ taps: ['tap0'] }, { jname: 'vm1', nodename: 'node1' }, fail.run), (e: unknown) => e instanceof BerthError && e.code === 'E_BHYVE_TEARDOWN' && /Device busy/.test(e.message));
  assert.deepEqual(fail.calls, ['bhyvectl --destroy --vm=vm1', 'ifconfig tap0', 'ifconfig tap0 destroy']);
  // a start that failed before it knew the vmm instance of the name was its own: taps only
  const taps = scripted({ 'ifconfig tap0': desc('berth/node1/vm1') });
  assert.deepEqual(await teardownBhyve({ taps: ['tap0'] }, { jname: 'vm1', nodename: 'node1' }, taps.run, { destroyVm: false }), { destroyed: false, taps: ['tap0'], skipped: [] });
  assert.deepEqual(taps.calls, ['ifconfig tap0', 'ifconfig tap0 destroy']);
});

/** A guest on a virtual clock: it powers off `afterPresses` SIGTERMs later (never with Infinity), 200 ms after the press. */
function guest(afterPresses: number, opts: { ignoresKill?: boolean } = {}) {
  let now = 0;
  let presses = 0;
  let offAt = Infinity;
  const log: string[] = [];
  const deps: StopDeps = {
    signal(_pid, sig) {
      log.push(`${now}ms ${sig}`);
      if (sig === 'SIGKILL' && !opts.ignoresKill) offAt = now;
      if (sig === 'SIGTERM' && ++presses === afterPresses) offAt = now + 200;
    },
    alive: () => now < offAt,
    sleep: async (ms) => { now += ms; },
  };
  return { deps, log, elapsed: () => now };
}

test('stopBhyve: one ACPI press for a guest that obeys; double_acpi presses each second; SIGKILL after stop_timeout', async () => {
  const g1 = guest(1);
  assert.deepEqual(await stopBhyve(42, { timeoutSec: 30, doubleAcpi: true }, g1.deps), { how: 'acpi', presses: 1 });
  assert.deepEqual(g1.log, ['0ms SIGTERM']);
  const g3 = guest(3);
  assert.deepEqual(await stopBhyve(42, { timeoutSec: 30, doubleAcpi: true }, g3.deps), { how: 'acpi', presses: 3 });
  assert.deepEqual(g3.log, ['0ms SIGTERM', '1000ms SIGTERM', '2000ms SIGTERM']);
  const single = guest(3);
  assert.deepEqual(await stopBhyve(42, { timeoutSec: 5, doubleAcpi: false }, single.deps), { how: 'killed', presses: 1 }, 'without double_acpi the second press never comes');
  assert.deepEqual(single.log, ['0ms SIGTERM', '5000ms SIGKILL']);
  const deaf = guest(Infinity);
  assert.deepEqual(await stopBhyve(42, { timeoutSec: 3, doubleAcpi: true }, deaf.deps), { how: 'killed', presses: 3 });
  assert.deepEqual(deaf.log, ['0ms SIGTERM', '1000ms SIGTERM', '2000ms SIGTERM', '3000ms SIGKILL']);
  const now = guest(Infinity);
  assert.deepEqual(await stopBhyve(42, { timeoutSec: 0, doubleAcpi: true }, now.deps), { how: 'killed', presses: 1 }, 'stop_timeout=0: press once, then kill');
  const gone = guest(1);
  gone.deps.alive = () => false;
  assert.deepEqual(await stopBhyve(42, { timeoutSec: 30, doubleAcpi: true }, gone.deps), { how: 'gone', presses: 0 });
  await assert.rejects(stopBhyve(42, { timeoutSec: 1, doubleAcpi: false }, guest(Infinity, { ignoresKill: true }).deps), (e: unknown) => e instanceof BerthError && e.code === 'E_BHYVE_STOP');
});

test('chooseVncPort: off, none without UEFI, a fixed port, the first free port of 5900-6900, an error when all are taken', async () => {
  const b = parseBhyveSettings({});
  const free = (taken: number[]) => async (p: number) => !taken.includes(p);
  assert.equal(await chooseVncPort({ vncPort: 1, efi: 'uefi' }, b, free([])), undefined);
  assert.equal(await chooseVncPort({ vncPort: 0, efi: 'none' }, b, free([])), undefined);
  assert.equal(await chooseVncPort({ vncPort: 0, efi: 'uefi' }, { ...b, fbuf: false }, free([])), undefined);
  assert.equal(await chooseVncPort({ vncPort: 5999, efi: 'uefi' }, b, free([5999])), 5999, 'a fixed port is the user\'s: bhyve reports a clash');
  assert.equal(await chooseVncPort({ vncPort: 0, efi: 'uefi' }, b, free([5900, 5901])), 5902);
  await assert.rejects(chooseVncPort({ vncPort: 0, efi: 'uefi' }, b, async () => false), (e: unknown) => e instanceof BerthError && e.code === 'E_VNC_PORT');
});

test('bhyvePidMatches: FreeBSD\'s process title and a command line ending in the VM name; nothing else', () => {
  assert.ok(bhyvePidMatches('bhyve: vm1 (bhyve)', 'vm1'));
  assert.ok(bhyvePidMatches('bhyve: vm1', 'vm1'));
  assert.ok(bhyvePidMatches('/usr/sbin/bhyve -k /wd/var/run/bhyve/vm1.conf vm1', 'vm1'));
  assert.ok(!bhyvePidMatches('bhyve: vm10', 'vm1'));
  assert.ok(!bhyvePidMatches('/usr/sbin/bhyve -k /c vm10', 'vm1'));
  assert.ok(!bhyvePidMatches('sleep vm1', 'vm1'));
  assert.ok(bhyveTitleIs('bhyve: vm1 (bhyve)', 'vm1'), 'up: the title bhyve sets after its device init');
  assert.ok(!bhyveTitleIs('/usr/sbin/bhyve -k /c vm1', 'vm1'), 'still starting');
});

test('live migration of a bhyve VM is refused with exit 2 and a hint for the cold move', () => {
  assert.throws(() => refuseLiveMigration('vm1'), (e: unknown) => e instanceof BerthError && e.code === 'E_NO_LIVE_MIGRATION' && e.exitCode === 2
    && /bhyve has no live migration/.test(e.message) && /jmigrate jname=vm1 dst=<node>/.test(e.hint ?? ''));
});
