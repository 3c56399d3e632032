/**
 * qemu VMs for real under TCG: a guest made of Debian's cloud kernel, a busybox initramfs and
 * an ext4 disk made from a busybox base boots, prints its first userspace line on the serial
 * console log, keeps a file written through the console socket across an ACPI power-down and
 * a new boot; kill -9 of qemu is seen; a second qemu on the same disk fails on QEMU's image
 * lock; VNC greets with RFB 003.008 and its websocket port answers an upgrade; a live
 * migration over a unix socket keeps the guest's counter going with the disk on one file;
 * a failed migration leaves the source running; failed starts leave nothing behind; the
 * cloud-init seed ISO reaches the guest.
 * Needs root, qemu-system-x86, qemu-utils, genisoimage, cpio, busybox-static, apt access.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { isRoot } from '../helpers/cli.js';
import { Console, guestNode, guestVm, type GuestNode } from '../helpers/vmguest.js';
import { buildQemuArgv, qemuRunPaths, type QemuRunPaths } from '../../src/engines/qemu/argv.js';
import { writeSeedIso } from '../../src/engines/qemu/cloudinit.js';
import { GUEST_READY_LINE } from '../../src/engines/qemu/guest.js';
import { abortMigration, liveMigrate } from '../../src/engines/qemu/migrate.js';
import { chooseVncPorts, setVncPassword } from '../../src/engines/qemu/ports.js';
import { cleanupRunFiles, pidAlive, qemuPid, startQemu, waitPidGone } from '../../src/engines/qemu/process.js';
import { QmpClient } from '../../src/engines/qemu/qmp.js';
import { stopQemu } from '../../src/engines/qemu/stop.js';
import { BerthError } from '../../src/errors.js';
import { parseVmSpec } from '../../src/engines/vm/spec.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

let node: GuestNode;
const started: QemuRunPaths[] = [];

before(async () => {
  node = await guestNode();
});

after(async () => {
  for (const r of started) {
    const pid = qemuPid(r);
    if (pid) { process.kill(pid, 'SIGKILL'); await waitPidGone(pid, 5000); }
  }
  node?.close();
});

async function start(argv: string[], run: QemuRunPaths): Promise<number> {
  started.push(run);
  return (await startQemu(argv, run)).pid;
}

async function waitFile(file: string, re: RegExp, timeoutMs = 90_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const t = existsSync(file) ? readFileSync(file, 'utf8') : '';
    if (re.test(t)) return t;
    if (Date.now() > end) throw new Error(`${file}: no ${re} within ${timeoutMs} ms; it holds:\n${t.slice(-1500)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function shell(run: QemuRunPaths): Promise<Console> {
  const c = await Console.connect(run.consoleSocket);
  c.write('\n');
  await c.waitFor(/# $|# \S*$/m, 90_000);
  return c;
}

const isErr = (code: string, re?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof BerthError, String(e));
  assert.equal(e.code, code, e.message);
  if (re) assert.match(e.message, re);
  return true;
};

test('boot to the first userspace line, write through the console, ACPI power-down, boot again and read it back', async () => {
  const vm = await guestVm(node, 'vm1');
  const pid = await start(vm.argv(), vm.run);
  assert.ok(pidAlive(pid));
  await waitFile(vm.run.consoleLog, new RegExp(`${GUEST_READY_LINE} [0-9.]+`));
  let c = await shell(vm.run);
  const value = `persisted-${Date.now()}`;
  assert.equal((await c.run(`echo ${value} > /root/data; sync; cat /root/data`)).trim(), value);
  const st = await stopQemu(vm.run, { timeoutSec: 60 });
  assert.equal(st.how, 'acpi', 'the guest powered itself off on system_powerdown');
  c.close();
  assert.equal(qemuPid(vm.run), undefined);
  assert.match(readFileSync(vm.run.consoleLog, 'utf8'), /reboot: Power down/);
  assert.ok(await cleanupRunFiles(vm.run));
  assert.ok(!existsSync(vm.run.qmpSocket) && !existsSync(vm.run.pidFile));

  await start(vm.argv(), vm.run);
  c = await shell(vm.run);
  assert.equal((await c.run('cat /root/data')).trim(), value, 'the file survived the power-down');
  c.close();
  assert.equal((await stopQemu(vm.run, { timeoutSec: 60 })).how, 'acpi');
  assert.equal((await stopQemu(vm.run, { timeoutSec: 1 })).how, 'not-running', 'stop is idempotent');
});

test('a second qemu on the same disk fails on the image lock, the same VM twice is refused, and kill -9 is seen', async () => {
  const vm = await guestVm(node, 'vm2');
  const pid = await start(vm.argv(), vm.run);
  const qmp = await QmpClient.connect(vm.run.qmpSocket, { timeoutMs: 10_000 });
  // another VM (own sockets) whose disk row names vm2's disk
  const other = parseVmSpec({ jname: 'vm2b', emulator: 'qemu', vm_kernel: 'k1', vm_ram: '256m', vm_vnc_port: '1', dsk_path1: vm.disk });
  const run2 = qemuRunPaths(node.wd, 'vm2b');
  await assert.rejects(start(buildQemuArgv({ spec: other, dataDir: vm.dataDir, run: run2, accel: { accel: 'tcg' }, kernel: node.kernel }), run2),
    isErr('E_QEMU_START', /Failed to get "write" lock/));
  assert.equal(qemuPid(run2), undefined, 'the second qemu is gone');
  assert.ok(!existsSync(run2.qmpSocket) && !existsSync(run2.pidFile), 'and left no files');
  await assert.rejects(startQemu(vm.argv(), vm.run), isErr('E_VM_RUNNING'));
  assert.equal((await qmp.execute('query-status')).status, 'running', 'the first VM kept running, its QMP socket too');

  process.kill(pid, 'SIGKILL');
  assert.ok(await qmp.waitClosed(10_000), 'the QMP connection closes when qemu dies');
  await assert.rejects(qmp.execute('query-status'), isErr('E_QMP_CLOSED'));
  assert.ok(await waitPidGone(pid, 5000));
  assert.equal(qemuPid(vm.run), undefined);
  assert.ok(existsSync(vm.run.qmpSocket), 'kill -9 leaves the socket file');
  assert.ok(await cleanupRunFiles(vm.run));
  assert.ok(!existsSync(vm.run.qmpSocket) && !existsSync(vm.run.consoleSocket) && !existsSync(vm.run.pidFile));
});

function readSome(host: string, port: number, send: string | undefined, until: (s: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, host);
    let got = '';
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`no answer on ${port}: ${JSON.stringify(got)}`)); }, 10_000);
    s.on('data', (d) => { got += d.toString('latin1'); if (until(got)) { clearTimeout(timer); s.destroy(); resolve(got); } });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
    if (send) s.write(send);
  });
}

test('VNC on 127.0.0.1 greets with RFB 003.008, asks for the password set through QMP, and its websocket port upgrades', async () => {
  const vm = await guestVm(node, 'vm3', { vm_vnc_port: '0', vnc_password: 'pw1234' });
  const ports = await chooseVncPorts(vm.spec);
  assert.ok(ports && ports.port >= 5900 && ports.port <= 6900);
  const argv = vm.argv({ vnc: ports });
  assert.ok(argv.join(' ').includes('password=on') && !argv.join(' ').includes('pw1234'), 'the password is not on the command line');
  await start(argv, vm.run);
  const qmp = await QmpClient.connect(vm.run.qmpSocket, { timeoutMs: 10_000 });
  await setVncPassword(qmp, vm.spec.vncPassword!);
  const greet = await readSome('127.0.0.1', ports.port, undefined, (s) => s.length >= 12);
  assert.equal(greet.slice(0, 12), 'RFB 003.008\n');
  // after the client's version, the server lists its security types: 2 = VNC authentication
  const sec = await new Promise<Buffer>((resolve, reject) => {
    const s = connect(ports.port, '127.0.0.1');
    let b = Buffer.alloc(0);
    s.on('data', (d) => { b = Buffer.concat([b, d]); if (b.length === 12) s.write('RFB 003.008\n'); if (b.length >= 14 && b.length >= 13 + b[12]!) { s.destroy(); resolve(b.subarray(12)); } });
    s.on('error', reject);
  });
  assert.deepEqual([...sec.subarray(1, 1 + sec[0]!)], [2], 'VNC authentication only');
  const ws = await readSome('127.0.0.1', ports.websocketPort,
    'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n',
    (s) => s.includes('\r\n\r\n'));
  assert.match(ws, /^HTTP\/1\.1 101 /);
  assert.match(ws, /Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i);
  qmp.close();
  await stopQemu(vm.run, { timeoutSec: 0, force: true });
  await cleanupRunFiles(vm.run);
});

function ticks(text: string): number[] {
  return [...text.matchAll(/tick-(\d+)\r?\n/g)].map((m) => Number(m[1]));
}

async function migrationPair(name: string) {
  const vm = await guestVm(node, name);
  const srcPid = await start(vm.argv(), vm.run);
  const c = await shell(vm.run);
  c.write('(i=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.2; done) &\n');
  await c.waitFor(/tick-3\r?\n/, 60_000);
  // the destination: the same VM and disk, its own sockets (as on another node)
  const d = join(node.wd.runDir, 'qemu');
  const destRun: QemuRunPaths = {
    qmpSocket: join(d, `${name}-in.qmp`), consoleSocket: join(d, `${name}-in.console`), pidFile: join(d, `${name}-in.pid`),
    consoleLog: join(node.wd.logDir, `${name}-in.console.log`), qemuLog: join(node.wd.logDir, `${name}-in.qemu.log`),
  };
  const destPid = await start(vm.argv({ run: destRun, incoming: true }), destRun);
  const source = await QmpClient.connect(vm.run.qmpSocket, { timeoutMs: 10_000 });
  const dest = await QmpClient.connect(destRun.qmpSocket, { timeoutMs: 10_000 });
  return { vm, c, srcPid, destRun, destPid, source, dest, uri: `unix:${join(d, `${name}.mig`)}` };
}

test('live migration over a unix socket: the guest counter goes on in the destination, the disk stays one file, downtime reported', async () => {
  const p = await migrationPair('vm4');
  const inode = statSync(p.vm.disk).ino;
  let pausedInHook = '';
  const r = await liveMigrate({
    source: p.source, destination: p.dest, uri: p.uri,
    onSwitchover: async () => { pausedInHook = (await p.source.execute('query-status')).status; },
    killDestination: async () => { process.kill(p.destPid, 'SIGKILL'); },
  });
  assert.notEqual(pausedInHook, 'running', 'the source is paused while the hook runs');
  const last = Math.max(...ticks(p.c.text));
  const dc = await Console.connect(p.destRun.consoleSocket);
  // ticks printed between the switchover and this connection are not seen (nobody listened)
  const first = Number((await dc.waitFor(/tick-(\d+)\r?\n/, 60_000))[1]);
  await dc.waitFor(new RegExp(`tick-${first + 3}\\r?\\n`), 60_000);
  const after = ticks(dc.text);
  assert.ok(after.length >= 3 && after.every((t, i) => i === 0 || t === after[i - 1]! + 1), `the counter goes on: ${after.join(' ')}`);
  assert.ok(after[0]! >= last && after[0]! < last + 50, `it did not restart: last on the source ${last}, first on the destination ${after[0]}`);
  assert.equal(r.qemu.status, 'completed');
  assert.ok(r.qemu.downtimeMs > 0 && r.qemu.transferredBytes > 0, JSON.stringify(r.qemu));
  assert.ok(r.measured.downtimeMs > 0 && r.measured.totalMs >= r.measured.downtimeMs, JSON.stringify(r.measured));
  console.log(`# migration: qemu downtime ${r.qemu.downtimeMs} ms, total ${r.qemu.totalMs} ms, ${Math.round(r.qemu.transferredBytes / 1048576)} MiB sent; measured downtime ${r.measured.downtimeMs} ms, total ${r.measured.totalMs} ms`);
  assert.equal(statSync(p.vm.disk).ino, inode, 'the disk file was not copied');
  assert.ok(await waitPidGone(p.srcPid, 10_000), 'the source quit');
  // the destination owns the disk now: it writes
  const out = (await dc.run('echo moved > /root/m; sync; cat /root/m')).split('\n').filter((l) => l && !/^tick-\d+$/.test(l));
  assert.deepEqual(out, ['moved'], 'the counter may interleave; the file reads back');
  dc.close(); p.c.close(); p.source.close(); p.dest.close();
  await stopQemu(p.destRun, { timeoutSec: 60 });
});

test('a failed live migration (the switchover hook throws) resumes the source and kills the destination', async () => {
  const p = await migrationPair('vm5');
  await assert.rejects(liveMigrate({
    source: p.source, destination: p.dest, uri: p.uri,
    onSwitchover: async () => { throw new Error('lease handover refused'); },
    killDestination: async () => { process.kill(p.destPid, 'SIGKILL'); },
  }), isErr('E_MIGRATE', /lease handover refused/));
  assert.equal((await p.source.execute('query-status')).status, 'running');
  assert.ok(await waitPidGone(p.destPid, 5000), 'the destination qemu is gone');
  const last = Math.max(...ticks(p.c.text));
  await p.c.waitFor(new RegExp(`tick-${last + 2}\\r?\\n`), 30_000);
  // QEMU resumes a cancelled source by itself; abortMigration also resumes one left paused
  await p.source.execute('stop');
  let killed = false;
  assert.equal(await abortMigration(p.source, async () => { killed = true; }), 'running');
  assert.ok(killed);
  p.c.close(); p.source.close(); p.dest.close();
  await stopQemu(p.vm.run, { timeoutSec: 60 });
  await cleanupRunFiles(p.destRun);
});

test('failed starts leave nothing: a missing ISO, a missing disk, a VNC port in use', async () => {
  const noFiles = (r: QemuRunPaths) => assert.ok(![r.qmpSocket, r.consoleSocket, r.pidFile].some(existsSync) && qemuPid(r) === undefined);
  const vm = await guestVm(node, 'vm6');
  const iso = parseVmSpec({ jname: 'vm6', emulator: 'qemu', vm_boot: 'cd', vm_iso_path: '/nonexistent/x.iso', vm_vnc_port: '1' });
  await assert.rejects(start(buildQemuArgv({ spec: iso, dataDir: vm.dataDir, run: vm.run, accel: { accel: 'tcg' } }), vm.run), isErr('E_QEMU_START', /\/nonexistent\/x\.iso/));
  noFiles(vm.run);
  const nodisk = parseVmSpec({ jname: 'vm6', emulator: 'qemu', vm_kernel: 'k1', dsk_path1: 'missing.vhd', vm_vnc_port: '1' });
  await assert.rejects(start(buildQemuArgv({ spec: nodisk, dataDir: vm.dataDir, run: vm.run, accel: { accel: 'tcg' }, kernel: node.kernel }), vm.run), isErr('E_QEMU_START', /missing\.vhd/));
  noFiles(vm.run);
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(5987, '127.0.0.1', () => r()));
  try {
    const spec = parseVmSpec({ jname: 'vm6', emulator: 'qemu', vm_kernel: 'k1', vm_vnc_port: '5987' });
    await assert.rejects(chooseVncPorts(spec), isErr('E_PORT_TAKEN', /5987/));
    await assert.rejects(start(vm.argv({ spec, vnc: { port: 5987, websocketPort: 5787 } }), vm.run), isErr('E_QEMU_START', /Address already in use|5987/));
    noFiles(vm.run);
  } finally {
    srv.close();
  }
});

test('the cloud-init seed ISO (volume id cidata) reaches the guest as a read-only disk', async () => {
  const vm = await guestVm(node, 'vm7', { ci_user_add: 'alice', ci_ip4_addr: '10.0.0.7/24', ci_gw4: '10.0.0.1', ci_user_pubkey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB test@berth' });
  const seed = join(node.wd.env('vm7').sysdir, 'seed.iso');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(node.wd.env('vm7').sysdir, { recursive: true });
  await writeSeedIso(vm.spec, seed, node.wd.root);
  await start(vm.argv({ seedIso: seed }), vm.run);
  const c = await shell(vm.run);
  // the ISO 9660 primary volume descriptor: "CD001" at 32769, the volume id at 32808
  assert.equal((await c.run('dd if=/dev/vdb bs=1 skip=32769 count=5 2>/dev/null')).trim(), 'CD001');
  assert.equal((await c.run('dd if=/dev/vdb bs=1 skip=32808 count=6 2>/dev/null')).trim(), 'cidata');
  assert.equal((await c.run('cat /sys/block/vdb/ro')).trim(), '1');
  c.close();
  await stopQemu(vm.run, { timeoutSec: 60 });
});
