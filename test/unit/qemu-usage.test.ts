/**
 * A VM's usage (src/engines/qemu/usage.ts) against a real qemu (a paused 2-vCPU PC with 64 MiB
 * and no disk: it starts in a blink): the vCPU threads QMP names are qemu's threads, their CPU
 * time is read, qemu's resident memory and the guest's RAM (QMP) are reported; a socket that is
 * not QMP gives undefined, not a throw. And the /proc readers on this process itself.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QmpClient } from '../../src/engines/qemu/qmp.js';
import { qemuUsage, residentBytes, threadCpuSec } from '../../src/engines/qemu/usage.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-usage-'));
const children: ChildProcess[] = [];
after(() => { for (const c of children) c.kill('SIGKILL'); rmSync(dir, { recursive: true, force: true }); });

test('the /proc readers: this thread\'s CPU time grows with work; this process\'s resident memory', async () => {
  const before = (await threadCpuSec(process.pid, process.pid))!;
  const end = performance.now() + 300;
  let x = 0;
  while (performance.now() < end) x += Math.sqrt(x + 1);
  const later = (await threadCpuSec(process.pid, process.pid))!;
  assert.ok(later > before, `${before} -> ${later} (${x > 0})`);
  assert.ok((await residentBytes(process.pid))! > 10 * 1048576);
  assert.equal(await threadCpuSec(process.pid, 1 << 30), undefined);
  assert.equal(await residentBytes(1 << 30), undefined);
});

test('qemuUsage: the vCPU threads of QMP query-cpus-fast, qemu\'s RSS, the guest RAM', async () => {
  const sock = join(dir, 'vm.qmp');
  const child = spawn('qemu-system-x86_64', ['-machine', 'pc', '-accel', 'tcg', '-smp', '2', '-m', '64', '-S', '-nodefaults', '-display', 'none', '-qmp', `unix:${sock},server=on,wait=off`], { stdio: 'ignore' });
  children.push(child);
  (await QmpClient.connect(sock, { retry: true, timeoutMs: 20_000 })).close();
  const u = await qemuUsage(child.pid!, sock);
  assert.ok(u, 'usage read');
  assert.ok(u.cpuSec >= 0 && Number.isFinite(u.cpuSec), String(u.cpuSec));
  assert.ok(u.memBytes > 0, String(u.memBytes));
  assert.equal(u.memMaxBytes, 64 * 1048576);
  // the threads QMP named are qemu's own (two vCPUs)
  const q = await QmpClient.connect(sock, { timeoutMs: 5000 });
  const tids = (await q.execute<{ 'thread-id': number }[]>('query-cpus-fast')).map((c) => c['thread-id']);
  q.close();
  assert.equal(tids.length, 2);
  const tasks = readdirSync(`/proc/${child.pid}/task`).map(Number);
  for (const t of tids) assert.ok(tasks.includes(t), `vCPU thread ${t} in ${tasks}`);
});

test('qemuUsage of a socket that is not QMP: undefined', async () => {
  const sock = join(dir, 'not-qmp.sock');
  const srv = createServer((c) => { c.end('hello\n'); });
  await new Promise<void>((r) => srv.listen(sock, () => r()));
  try {
    assert.equal(await qemuUsage(process.pid, sock), undefined);
    assert.equal(await qemuUsage(process.pid, join(dir, 'missing.sock')), undefined);
  } finally {
    srv.close();
  }
});
