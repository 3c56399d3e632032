/**
 * CBSD's on_poweroff / on_reboot / on_crash on the qemu engine, for real (qemu under TCG, the
 * busybox guest, the node's run monitor): with on_poweroff=restart a `poweroff` typed in the
 * guest boots it again in the same run (the same qemu, still On, a second boot on the console);
 * with on_reboot=destroy a `reboot` typed in the guest ends the VM, torn down once; a kernel
 * panic (sysrq c) reported through pvpanic boots the guest again with on_crash=restart and ends
 * the VM (torn down once) with the default on_crash=destroy; bad values
 * and a combination qemu cannot honour are exit 2 and change nothing.
 * Needs root, qemu-system-x86, cpio, busybox-static, apt access (the Debian cloud kernel).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { berth, berthOk, isRoot, mountTable } from '../helpers/cli.js';
import { Console, guestNode, type GuestNode } from '../helpers/vmguest.js';
import { GUEST_READY_LINE } from '../../src/engines/qemu/guest.js';
import { qemuPid } from '../../src/engines/qemu/process.js';
import { qemuRunPaths } from '../../src/engines/qemu/argv.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

let node: GuestNode;
let wd: string;
let mountsBefore: string[];

before(async () => {
  node = await guestNode('berth-qemu-act-');
  node.close();
  wd = node.wd.root;
  mountsBefore = mountTable(wd);
});

after(() => {
  for (const j of ['a1', 'a2', 'a3', 'a4']) {
    const pid = qemuPid(qemuRunPaths(node.wd, j));
    if (pid) process.kill(pid, 'SIGKILL');
  }
  berth(['bstop', 'jname=*'], { workdir: wd, timeoutMs: 90_000 });
});

const b = (args: string[], timeoutMs?: number) => berth(args, { workdir: wd, timeoutMs });
const ok = (args: string[], timeoutMs?: number) => berthOk(args, { workdir: wd, timeoutMs });
const vm = (jname: string) => (ok(['bls', '--json', `jname=${jname}`]).json.envs as { status: string; jid: number }[])[0]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, f: () => boolean, ms = 120_000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** The run monitor's lines about `jname` (var/log/monitor.log). */
function monitorLines(jname: string): string[] {
  const f = join(wd, 'var', 'log', 'monitor.log');
  return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter((l) => l.includes(`: ${jname}`) || l.includes(` ${jname} exited`)) : [];
}

const consoleLog = (jname: string) => { const f = qemuRunPaths(node.wd, jname).consoleLog; return existsSync(f) ? readFileSync(f, 'utf8') : ''; };
const count = (text: string, s: string) => text.split(s).length - 1;

/** A shell on the VM's serial console (the prompt seen after the guest came up). */
async function shell(jname: string): Promise<Console> {
  const c = await Console.connect(qemuRunPaths(node.wd, jname).consoleSocket);
  await waitFor(`${jname} to boot`, () => consoleLog(jname).includes(GUEST_READY_LINE));
  c.write('\n');
  await c.waitFor(/# /, 90_000);
  return c;
}

test('bad on_* values and on_poweroff=restart with on_reboot=destroy are exit 2 and change nothing', () => {
  for (const arg of ['on_poweroff=reboot', 'on_reboot=halt', 'on_crash=explode']) {
    const r = b(['bcreate', 'jname=bad1', 'vm_kernel=k1', 'imgsize=1m', arg]);
    assert.equal(r.code, 2, `${arg}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(arg.split('=')[0]!));
  }
  const both = b(['bcreate', 'jname=bad1', 'vm_kernel=k1', 'imgsize=1m', 'on_poweroff=restart', 'on_reboot=destroy']);
  assert.equal(both.code, 2, both.stderr);
  assert.match(both.stderr, /on_poweroff=restart with on_reboot=destroy/);
  assert.deepEqual(ok(['bls', '--json']).json.envs, []);
  assert.ok(!existsSync(node.wd.env('bad1').data) && !existsSync(node.wd.env('bad1').sysdir));

  ok(['bcreate', 'jname=a2', 'base=bb', 'vm_kernel=k1', 'vm_ram=256m', 'vm_vnc_port=1', 'on_reboot=destroy']);
  const rc = readFileSync(join(node.wd.jailsSystem, 'a2', 'rc.conf_a2'), 'utf8');
  for (const arg of ['on_poweroff=maybe', 'on_poweroff=restart']) {
    const r = b(['bset', 'jname=a2', arg]);
    assert.equal(r.code, 2, `${arg}: ${r.stderr}`);
  }
  assert.equal(ok(['bget', 'jname=a2', 'key=on_poweroff']).stdout.trim(), 'destroy');
  assert.equal(readFileSync(join(node.wd.jailsSystem, 'a2', 'rc.conf_a2'), 'utf8'), rc, 'the descriptor is unchanged');
});

test('on_poweroff=restart: the guest\'s poweroff boots it again in the same qemu, still On; bstop then stops it by ACPI', async () => {
  ok(['bcreate', 'jname=a1', 'base=bb', 'vm_kernel=k1', 'vm_ram=256m', 'vm_vnc_port=1', 'on_poweroff=restart']);
  ok(['bstart', 'jname=a1']);
  const pid = vm('a1').jid;
  const c = await shell('a1');
  c.write('poweroff\n');
  await c.waitFor(/reboot: Power down/, 90_000);
  // the run monitor finds the halted guest and powers it on again: a second boot
  await waitFor('a second boot of a1', () => count(consoleLog('a1'), GUEST_READY_LINE) === 2);
  c.close();
  assert.equal(vm('a1').status, 'On');
  assert.equal(vm('a1').jid, pid, 'the same run: the same qemu');
  assert.equal(qemuPid(qemuRunPaths(node.wd, 'a1')), pid);
  const lines = monitorLines('a1');
  assert.equal(lines.filter((l) => /a1: the guest powered off; restarted \(on_poweroff=restart, 1 of 5 in 60 s\)/.test(l)).length, 1, lines.join('\n'));
  assert.equal(lines.filter((l) => /torn down/.test(l)).length, 0, 'not torn down');
  // the guest works after its restart
  const c2 = await shell('a1');
  assert.equal((await c2.run('echo up-$((2+3))')).trim(), 'up-5');
  c2.close();

  // bstop: ACPI, the guest powers off, qemu (holding it) is told to quit: no warning, no restart
  const s = ok(['bstop', 'jname=a1'], 90_000);
  assert.doesNotMatch(s.stderr, /did not power off/);
  assert.equal(vm('a1').status, 'Off');
  assert.equal(qemuPid(qemuRunPaths(node.wd, 'a1')), undefined);
  const run = qemuRunPaths(node.wd, 'a1');
  assert.ok(![run.qmpSocket, run.consoleSocket, run.watchSocket!, run.pidFile].some(existsSync), 'run files cleaned');
  await sleep(1500);
  assert.equal(count(consoleLog('a1'), GUEST_READY_LINE), 2, 'no boot after bstop');
  assert.equal(monitorLines('a1').filter((l) => /restarted/.test(l)).length, 1);
});

test('on_crash: a kernel panic reported through pvpanic restarts the guest (on_crash=restart) or ends the VM, torn down once (default destroy)', async () => {
  ok(['bcreate', 'jname=a3', 'base=bb', 'vm_kernel=k1', 'vm_ram=256m', 'vm_vnc_port=1', 'on_crash=restart']);
  ok(['bstart', 'jname=a3']);
  const pid = vm('a3').jid;
  const c = await shell('a3');
  assert.match(await c.run('ls /sys/bus/platform/drivers/ /sys/bus/acpi/drivers/ | grep -i pvpanic'), /pvpanic/, 'the guest has the pvpanic driver');
  c.write('echo c > /proc/sysrq-trigger\n');
  await c.waitFor(/Kernel panic/, 90_000);
  await waitFor('a second boot of a3', () => count(consoleLog('a3'), GUEST_READY_LINE) === 2);
  c.close();
  assert.equal(vm('a3').status, 'On');
  assert.equal(vm('a3').jid, pid, 'the same qemu');
  assert.equal(monitorLines('a3').filter((l) => /a3: the guest crashed; restarted \(on_crash=restart, 1 of 5 in 60 s\)/.test(l)).length, 1, monitorLines('a3').join('\n'));
  ok(['bstop', 'jname=a3'], 90_000);

  ok(['bcreate', 'jname=a4', 'base=bb', 'vm_kernel=k1', 'vm_ram=256m', 'vm_vnc_port=1']);
  ok(['bstart', 'jname=a4']);
  const c4 = await shell('a4');
  c4.write('echo c > /proc/sysrq-trigger\n');
  await waitFor('a4 to be Off', () => vm('a4').status === 'Off');
  c4.close();
  await sleep(1500);
  assert.match(consoleLog('a4'), /Kernel panic/);
  assert.equal(monitorLines('a4').filter((l) => l.includes('a4 exited; torn down')).length, 1, 'torn down once');
  assert.equal(count(consoleLog('a4'), GUEST_READY_LINE), 1, 'it did not boot again');
  ok(['bremove', 'jname=a3']);
  ok(['bremove', 'jname=a4']);
});

test('on_reboot=destroy: the guest\'s reboot ends the VM, torn down once; the mount table is unchanged', async () => {
  ok(['bstart', 'jname=a2']);
  const c = await shell('a2');
  c.write('reboot\n');
  await waitFor('a2 to be Off', () => vm('a2').status === 'Off');
  c.close();
  await sleep(1500);
  assert.equal(monitorLines('a2').filter((l) => l.includes('a2 exited; torn down')).length, 1, 'torn down once');
  assert.match(consoleLog('a2'), /reboot: Restarting system/);
  assert.equal(count(consoleLog('a2'), GUEST_READY_LINE), 1, 'it did not boot again');
  assert.equal(qemuPid(qemuRunPaths(node.wd, 'a2')), undefined);
  ok(['bremove', 'jname=a2']);
  ok(['bremove', 'jname=a1']);
  assert.deepEqual(mountTable(wd), mountsBefore);
});
