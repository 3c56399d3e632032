/**
 * qemu VMs through berth's one lifecycle and the CBSD VM commands, for real (qemu under the
 * node's probed accelerator: TCG here): bcreate makes dsk1.vhd from a busybox base, bstart
 * boots it by direct kernel boot, bconsole shows the guest booting, bstop powers it off by
 * ACPI; a guest-initiated poweroff and a kill -9 of qemu are each torn down exactly once by
 * the run monitor; the mount table is unchanged; bad input is exit 2 and changes nothing;
 * jls lists no VM and jexec of a VM is E_NO_EXEC.
 * Needs root, qemu-system-x86, cpio, busybox-static, apt access (the Debian cloud kernel).
 */
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { berth, berthOk, isRoot, mountTable } from '../helpers/cli.js';
import { guestNode, type GuestNode } from '../helpers/vmguest.js';
import { GUEST_READY_LINE } from '../../src/engines/qemu/guest.js';
import { qemuPid, waitPidGone } from '../../src/engines/qemu/process.js';
import { qemuRunPaths } from '../../src/engines/qemu/argv.js';
import { tapName } from '../../src/net/tap.js';
import { run } from '../../src/proc.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

let node: GuestNode;
let wd: string;
let mountsBefore: string[];

before(async () => {
  node = await guestNode('berth-qemu-lc-');
  node.close();
  wd = node.wd.root;
  mountsBefore = mountTable(wd);
});

after(() => {
  // nothing of a failed test left running
  for (const j of ['v1', 'v2', 'v3']) {
    const pid = qemuPid(qemuRunPaths(node.wd, j));
    if (pid) process.kill(pid, 'SIGKILL');
  }
  berth(['bstop', 'jname=*'], { workdir: wd });
  if (existsSync(`/sys/class/net/${BRIDGE}`)) spawnSync('ip', ['link', 'delete', BRIDGE]);
});

const BRIDGE = `bqemu${process.pid % 100000}`;

const b = (args: string[], timeoutMs?: number) => berth(args, { workdir: wd, timeoutMs });
const ok = (args: string[], timeoutMs?: number) => berthOk(args, { workdir: wd, timeoutMs });
const vm = (jname: string) => (ok(['bls', '--json', `jname=${jname}`]).json.envs as { status: string; jid: number; emulator: string }[])[0]!;

async function waitStatus(jname: string, status: string, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (vm(jname).status !== status) {
    if (Date.now() > end) throw new Error(`${jname} is still ${vm(jname).status}, not ${status}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** How many times the run monitor tore `jname` down (var/log/monitor.log). */
function teardowns(jname: string): number {
  const f = join(wd, 'var', 'log', 'monitor.log');
  return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter((l) => l.includes(`${jname} exited; torn down`)).length : 0;
}

test('bad input is exit 2 naming the value, and changes nothing', () => {
  for (const [arg, re] of [['vm_ram=lots', /vm_ram/], ['vm_cpus=0', /vm_cpus/], ['imgsize=-1', /imgsize/], ['vm_boot=floppy', /vm_boot/], ['emulator=runc', /not a VM engine/]] as const) {
    const r = b(['bcreate', 'jname=bad1', 'vm_kernel=k1', arg]);
    assert.equal(r.code, 2, `${arg}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
  assert.equal(b(['jcreate', 'jname=bad1', 'emulator=qemu', 'base=bb']).code, 2, 'jcreate makes no VM');
  assert.deepEqual(ok(['bls', '--json']).json.envs, []);
  assert.ok(!existsSync(node.wd.env('bad1').data) && !existsSync(node.wd.env('bad1').sysdir));
  assert.deepEqual(readdirSync(node.wd.jailsRcconf), []);
});

test('bcreate from a base, bstart, the console shows the guest booting, jexec refused, bstop by ACPI', () => {
  const c = ok(['bcreate', 'jname=v1', 'base=bb', 'vm_kernel=k1', 'vm_ram=256m', 'vm_vnc_port=1']);
  assert.match(c.stdout, /created: v1 .*emulator qemu, disk dsk1\.vhd/);
  const disk = join(node.wd.env('v1').data, 'dsk1.vhd');
  assert.ok(statSync(disk).blocks * 512 < statSync(disk).size, 'the disk is sparse');
  assert.ok(!existsSync(node.wd.env('v1').path), 'no root tree');
  assert.match(ok(['bget', 'jname=v1', 'key=dsk_path1']).stdout, /dsk1\.vhd/);
  assert.equal(ok(['jls', '--json']).json.envs.length, 0, 'jls lists jails and containers only');

  ok(['bstart', 'jname=v1']);
  const s = vm('v1');
  assert.equal(s.status, 'On');
  assert.equal(s.emulator, 'qemu');
  assert.equal(qemuPid(qemuRunPaths(node.wd, 'v1')), s.jid, 'jid is the qemu pid');
  const con = b(['bconsole', 'jname=v1', `until=${GUEST_READY_LINE}`, 'timeout=120'], 150_000);
  assert.equal(con.code, 0, con.stderr);
  assert.ok(con.stdout.includes(GUEST_READY_LINE));

  const x = b(['jexec', 'jname=v1', '/bin/true']);
  assert.equal(x.code, 2);
  assert.match(x.stderr, /v1.*bconsole/);
  assert.equal(b(['jstart', 'jname=v1']).code, 2, 'a j command refuses a VM');

  ok(['bstop', 'jname=v1'], 90_000);
  assert.equal(vm('v1').status, 'Off');
  const run = qemuRunPaths(node.wd, 'v1');
  assert.equal(qemuPid(run), undefined);
  assert.ok(![run.qmpSocket, run.consoleSocket, run.pidFile].some(existsSync), 'run files cleaned');
  assert.match(readFileSync(run.consoleLog, 'utf8'), /reboot: Power down/, 'the guest powered itself off on ACPI');
  assert.equal(teardowns('v1'), 0, 'bstop tore it down, not the monitor');
});

test('a guest-initiated poweroff is torn down once; so is kill -9 of qemu; the mount table is unchanged', async () => {
  ok(['bstart', 'jname=v1']);
  assert.equal(b(['bconsole', 'jname=v1', `until=${GUEST_READY_LINE}`, 'timeout=120'], 150_000).code, 0);
  // a shell prompt first (input typed while the shell starts is lost), then poweroff typed on the console
  assert.equal(berth(['bconsole', 'jname=v1', 'log=0', 'until=# ', 'timeout=60'], { workdir: wd, input: '\n', timeoutMs: 90_000 }).code, 0);
  const p = berth(['bconsole', 'jname=v1', 'log=0', 'until=Power down', 'timeout=60'], { workdir: wd, input: 'poweroff\n', timeoutMs: 90_000 });
  assert.equal(p.code, 0, p.stderr + p.stdout);
  await waitStatus('v1', 'Off');
  assert.equal(teardowns('v1'), 1, 'the monitor tore it down once');

  ok(['bstart', 'jname=v1']);
  const pid = vm('v1').jid;
  process.kill(pid, 'SIGKILL');
  assert.ok(await waitPidGone(pid, 10_000));
  await waitStatus('v1', 'Off');
  // give a second teardown (there must be none) the time to show
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(teardowns('v1'), 2, 'kill -9: one more teardown, exactly one');
  const run = qemuRunPaths(node.wd, 'v1');
  assert.ok(![run.qmpSocket, run.consoleSocket, run.pidFile].some(existsSync), 'kill -9 leaves no run files after the teardown');

  // it starts again after both
  ok(['bstart', 'jname=v1']);
  ok(['bstop', 'jname=v1'], 90_000);
  assert.deepEqual(mountTable(wd), mountsBefore);
});

test('bcreate imgsize= makes an empty sparse disk; bremove deletes the VM and its disk', () => {
  ok(['bcreate', 'jname=v2', 'imgsize=2g', 'vm_vnc_port=1']);
  const disk = join(node.wd.env('v2').data, 'dsk1.vhd');
  assert.equal(statSync(disk).size, 2 * 1024 ** 3);
  assert.equal(statSync(disk).blocks, 0, 'no block written');
  ok(['bremove', 'jname=v2']);
  assert.ok(!existsSync(disk));
  assert.equal(b(['bls', '--json', 'jname=v2']).code === 0 ? b(['bls', '--json', 'jname=v2']).json.envs.length : 0, 0);
});

test('vnet: each NIC gets a tap on its nic_parent bridge while the VM runs; a missing bridge fails the start and leaves nothing', async () => {
  await run(['ip', 'link', 'add', BRIDGE, 'type', 'bridge']);
  ok(['bcreate', 'jname=v3', 'base=bb', 'vm_kernel=k1', 'vm_ram=256m', 'vm_vnc_port=1', `nic_parent1=${BRIDGE}`]);
  const hw = ok(['bget', 'jname=v3', 'key=nic_hwaddr1']).stdout.trim();
  assert.match(hw, /^02(:[0-9a-f]{2}){5}$/, 'bcreate stored a MAC address');
  const tap = tapName('n1', 'v3', 1);
  ok(['bstart', 'jname=v3']);
  assert.ok(existsSync(`/sys/class/net/${tap}`), `tap ${tap} exists`);
  assert.ok(existsSync(`/sys/class/net/${BRIDGE}/brif/${tap}`), `tap ${tap} is on ${BRIDGE}`);
  ok(['bstop', 'jname=v3'], 90_000);
  assert.ok(!existsSync(`/sys/class/net/${tap}`), 'the tap is gone after bstop');

  ok(['bset', 'jname=v3', 'nic_parent1=bqnosuch0']);
  const r = b(['bstart', 'jname=v3']);
  assert.equal(r.code, 5, r.stderr);
  assert.match(r.stderr, /bqnosuch0/);
  assert.equal(vm('v3').status, 'Off');
  assert.equal(qemuPid(qemuRunPaths(node.wd, 'v3')), undefined);
  assert.ok(!existsSync(`/sys/class/net/${tap}`));
  ok(['bremove', 'jname=v3']);
});
