/**
 * A VM disk on GlusterFS, as two nodes see it: one volume FUSE-mounted twice (node A's and
 * node B's jails-data). qemu opens the disk with cache=none through mount A, the VM moves live
 * to a qemu that opens the same file through mount B (only memory crosses), writes there, and
 * a later boot through mount A reads what B wrote; the disk file is never copied.
 * Needs root, glusterd (scripts/gluster-up), qemu-system-x86, cpio, busybox-static, apt access.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { isRoot } from '../helpers/cli.js';
import { glusterVolume, type GlusterVolume } from '../helpers/gluster.js';
import { Console, guestNode, guestVm, type GuestNode } from '../helpers/vmguest.js';
import type { QemuRunPaths } from '../../src/engines/qemu/argv.js';
import { liveMigrate } from '../../src/engines/qemu/migrate.js';
import { cleanupRunFiles, qemuPid, startQemu, waitPidGone } from '../../src/engines/qemu/process.js';
import { QmpClient } from '../../src/engines/qemu/qmp.js';
import { stopQemu } from '../../src/engines/qemu/stop.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

let node: GuestNode;
let vol: GlusterVolume;
let mountB: string;
const runs: QemuRunPaths[] = [];

before(async () => {
  node = await guestNode();
  vol = await glusterVolume();
  await vol.mount(node.wd.jailsData);
  mountB = join(mkdtempSync(join(tmpdir(), 'berth-vmb-')), 'jails-data');
  await vol.mount(mountB);
});

after(async () => {
  for (const r of runs) {
    const pid = qemuPid(r);
    if (pid) { process.kill(pid, 'SIGKILL'); await waitPidGone(pid, 5000); }
  }
  await vol?.remove();
  node?.close();
  // the second mount point's temp dir, once nothing is mounted there (never delete through a mount)
  if (mountB && !readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${mountB} `)) rmSync(dirname(mountB), { recursive: true, force: true });
});

async function shell(run: QemuRunPaths): Promise<Console> {
  const c = await Console.connect(run.consoleSocket);
  c.write('\n');
  await c.waitFor(/# /, 90_000);
  return c;
}

test('live migration between two mounts of one GlusterFS volume (cache=none), then a boot through the first mount reads what the second wrote', async () => {
  const vm = await guestVm(node, 'gvm');
  const inode = statSync(vm.disk).ino;
  runs.push(vm.run);
  const srcPid = (await startQemu(vm.argv(), vm.run)).pid;
  const c = await shell(vm.run);
  assert.equal((await c.run('echo from-A > /root/a; sync; cat /root/a')).trim(), 'from-A');
  // node B: the same VM, its disk path through mount B, its own sockets
  const d = join(node.wd.runDir, 'qemu');
  const destRun: QemuRunPaths = {
    qmpSocket: join(d, 'gvm-b.qmp'), consoleSocket: join(d, 'gvm-b.console'), pidFile: join(d, 'gvm-b.pid'),
    consoleLog: join(node.wd.logDir, 'gvm-b.console.log'), qemuLog: join(node.wd.logDir, 'gvm-b.qemu.log'),
  };
  runs.push(destRun);
  const dataB = join(mountB, 'gvm-data');
  assert.equal(statSync(join(dataB, 'dsk1.vhd')).ino, inode, 'mount B shows the same file');
  const destArgv = vm.argv({ run: destRun, dataDir: dataB, incoming: true });
  assert.ok(destArgv.some((a) => a.startsWith(`file=${dataB}/dsk1.vhd,`) && a.includes('cache=none')));
  const destPid = (await startQemu(destArgv, destRun)).pid;
  const source = await QmpClient.connect(vm.run.qmpSocket);
  const dest = await QmpClient.connect(destRun.qmpSocket);
  const r = await liveMigrate({ source, destination: dest, uri: `unix:${join(d, 'gvm.mig')}`, killDestination: async () => { process.kill(destPid, 'SIGKILL'); } });
  console.log(`# migration with the disk on GlusterFS: qemu downtime ${r.qemu.downtimeMs} ms, measured ${r.measured.downtimeMs} ms, total ${r.measured.totalMs} ms`);
  assert.ok(await waitPidGone(srcPid, 10_000), 'the source quit');
  c.close(); source.close(); dest.close();
  const cb = await shell(destRun);
  assert.equal((await cb.run('cat /root/a; echo from-B > /root/b; sync; cat /root/b')).trim(), 'from-A\nfrom-B');
  cb.close();
  assert.equal((await stopQemu(destRun, { timeoutSec: 60 })).how, 'acpi');
  await cleanupRunFiles(destRun);
  // back on node A, cold: a new boot through mount A
  await startQemu(vm.argv(), vm.run);
  const ca = await shell(vm.run);
  assert.equal((await ca.run('cat /root/b')).trim(), 'from-B', 'what B wrote through its mount is read through A');
  ca.close();
  assert.equal((await stopQemu(vm.run, { timeoutSec: 60 })).how, 'acpi');
  assert.equal(statSync(vm.disk).ino, inode, 'the disk file was never copied');
});
