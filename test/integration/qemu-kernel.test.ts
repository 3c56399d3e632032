/**
 * Kernel bases made from Debian's packages for real (apt-get download of
 * linux-image-cloud-amd64, dpkg-deb, cpio, busybox-static): the files, kernel.json, the
 * initramfs contents; refusals that leave nothing; and the initramfs's own failures, which
 * print a berth-initrd line on the console and power the VM off instead of looping on a panic.
 * Needs root, apt access, qemu-system-x86, cpio, busybox-static.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { berth, berthOk, isRoot } from '../helpers/cli.js';
import { guestNode, type GuestNode } from '../helpers/vmguest.js';
import { buildQemuArgv, qemuRunPaths } from '../../src/engines/qemu/argv.js';
import { ext4FromTree } from '../../src/engines/qemu/disk.js';
import { INITRD_MODULES, makeKernelBase, readKernelBase } from '../../src/engines/qemu/kernel.js';
import { qemuPid, startQemu, waitPidGone } from '../../src/engines/qemu/process.js';
import { BerthError } from '../../src/errors.js';
import { parseVmSpec } from '../../src/engines/vm/spec.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

let node: GuestNode;
before(async () => { node = await guestNode(); });
after(() => node?.close());

test('a kernel base holds vmlinuz, a gzip newc initramfs with busybox, /init and the virtio modules, and kernel.json', () => {
  const k = readKernelBase(node.wd, 'k1');
  assert.deepEqual(readdirSync(k.path).sort(), ['initrd.img', 'kernel.json', 'vmlinuz']);
  assert.equal(k.info.kind, 'kernel');
  assert.match(k.info.kernel.package, /^linux-image-[\d.]+-\d+-cloud-amd64$/);
  assert.match(k.info.kernel.release, /-cloud-amd64$/);
  assert.match(k.info.busybox.version, /^\d+\.\d+/);
  for (const m of INITRD_MODULES) assert.ok(k.info.modules.includes(m), m);
  assert.ok(k.info.modules.indexOf('virtio_ring') < k.info.modules.indexOf('virtio_blk'));
  const vmlinuz = readFileSync(k.vmlinuz);
  assert.equal(vmlinuz.toString('latin1', 0x202, 0x206), 'HdrS', 'a Linux boot image');
  const list = spawnSync('cpio', ['-t', '--quiet'], { input: gunzipSync(readFileSync(k.initrd)), encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  for (const f of ['init', 'bin/busybox', ...k.info.modules.map((m) => `lib/modules/${m}.ko`)]) assert.ok(list.includes(f), `${f} in the initramfs`);
  const verbose = spawnSync('cpio', ['-tv', '--quiet'], { input: gunzipSync(readFileSync(k.initrd)), encoding: 'utf8' }).stdout;
  assert.match(verbose, /^-rwxr-xr-x\s+1\s+root\s+root\s+.* init$/m, 'init is executable and owned by root');
});

test('refusals leave nothing: an existing base, a bad name, a package that does not exist', async () => {
  await assert.rejects(makeKernelBase(node.wd, 'k1'), (e: unknown) => e instanceof BerthError && e.code === 'E_BASE_EXISTS');
  await assert.rejects(makeKernelBase(node.wd, '../x'), (e: unknown) => e instanceof BerthError && e.code === 'E_BAD_BASE_NAME' && e.exitCode === 2);
  const steps: string[] = [];
  await assert.rejects(makeKernelBase(node.wd, 'k2', { package: 'linux-image-does-not-exist-berth', onProgress: (l) => steps.push(l) }),
    (e: unknown) => e instanceof BerthError && e.code === 'E_KERNEL_DOWNLOAD');
  assert.match(steps[0]!, /downloading linux-image-does-not-exist-berth/);
  assert.deepEqual(readdirSync(node.wd.bases).sort(), ['bb', 'k1'], 'no temp dir left in bases/');
  await assert.rejects(makeKernelBase(node.wd, 'k3', { busybox: '/bin/true' }), (e: unknown) => e instanceof BerthError && e.code === 'E_NO_BUSYBOX');
  assert.throws(() => readKernelBase(node.wd, 'bb'), (e: unknown) => e instanceof BerthError && e.code === 'E_NO_SUCH_BASE' && e.exitCode === 3);
});

test('berth base kernel makes the same kernel base from the command line; bad names are exit 2 and leave nothing', () => {
  const workdir = node.wd.root;
  const bad = berth(['base', 'kernel', 'name=../k', '--json'], { workdir });
  assert.equal(bad.code, 2, bad.stderr);
  assert.equal(bad.json.error.code, 'E_BAD_BASE_NAME');
  const r = berthOk(['base', 'kernel', 'name=kcli', '--json'], { workdir, timeoutMs: 300_000 });
  assert.equal(r.json.base.name, 'kcli');
  assert.deepEqual(readdirSync(join(node.wd.bases, 'kcli')).sort(), ['initrd.img', 'kernel.json', 'vmlinuz']);
  assert.equal(readKernelBase(node.wd, 'kcli').info.kernel.release, readKernelBase(node.wd, 'k1').info.kernel.release);
  berthOk(['base', 'remove', 'name=kcli'], { workdir });
  assert.deepEqual(readdirSync(node.wd.bases).sort(), ['bb', 'k1']);
});

async function bootExpectingPoweroff(jname: string, conf: Record<string, string>, prepare: (data: string) => Promise<void>): Promise<string> {
  const spec = parseVmSpec({ jname, emulator: 'qemu', vm_kernel: 'k1', vm_ram: '256m', vm_vnc_port: '1', ...conf });
  const data = node.wd.env(jname).data;
  mkdirSync(data, { recursive: true });
  await prepare(data);
  const run = qemuRunPaths(node.wd, jname);
  const { pid } = await startQemu(buildQemuArgv({ spec, dataDir: data, run, accel: { accel: 'tcg' }, kernel: node.kernel }), run);
  const gone = await waitPidGone(pid, 120_000);
  if (!gone) process.kill(pid, 'SIGKILL');
  assert.ok(gone, 'the VM powered itself off');
  assert.equal(qemuPid(run), undefined);
  return readFileSync(run.consoleLog, 'utf8');
}

test('a root disk without /sbin/init: the initramfs says so on the console and powers off', async () => {
  const log = await bootExpectingPoweroff('noinit', {}, async (data) => {
    const tree = join(data, '..', 'noinit-tree');
    mkdirSync(join(tree, 'etc'), { recursive: true });
    writeFileSync(join(tree, 'etc', 'motd'), 'no init here\n');
    await ext4FromTree(tree, join(data, 'dsk1.vhd'));
  });
  assert.match(log, /berth-initrd: \/dev\/vda has no \/sbin\/init/);
});

test('no root disk: the initramfs waits rootwait seconds, says so and powers off', async () => {
  const log = await bootExpectingPoweroff('nodisk', { imgtype: 'none', vm_cmdline: 'rootwait=1' }, async () => {});
  assert.match(log, /berth-initrd: no root device \/dev\/vda after 1s/);
});
