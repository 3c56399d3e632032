/**
 * The qemu process helpers with a real qemu that runs no guest (`-machine none`): a start
 * that returns once qemu runs (daemonized, pid file written), QEMU's own message when it
 * fails, no second start of a running VM, a pid file trusted only for the process it names,
 * zombies counted as gone, and run files removed only once qemu is gone.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BerthError } from '../../src/errors.js';
import type { QemuRunPaths } from '../../src/engines/qemu/argv.js';
import { cleanupRunFiles, pidAlive, qemuPid, startQemu, waitPidGone } from '../../src/engines/qemu/process.js';
import { QmpClient } from '../../src/engines/qemu/qmp.js';
import { stopQemu } from '../../src/engines/qemu/stop.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-proc-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function paths(name: string): QemuRunPaths {
  return { qmpSocket: join(dir, 'run', `${name}.qmp`), consoleSocket: join(dir, 'run', `${name}.console`), pidFile: join(dir, 'run', `${name}.pid`), consoleLog: join(dir, 'log', `${name}.console.log`), qemuLog: join(dir, 'log', `${name}.qemu.log`) };
}

const argv = (r: QemuRunPaths, ...extra: string[]) => ['qemu-system-x86_64', '-machine', 'none', '-nodefaults', '-display', 'none', '-qmp', `unix:${r.qmpSocket},server=on,wait=off`, '-pidfile', r.pidFile, ...extra];

test('startQemu returns once qemu runs; a second start is refused; stop and cleanup; QEMU\'s message when it fails', async () => {
  const r = paths('a');
  const { pid } = await startQemu(argv(r), r);
  assert.equal(qemuPid(r), pid);
  assert.ok(existsSync(r.qmpSocket), 'the QMP socket listens when startQemu returns');
  const q = await QmpClient.connect(r.qmpSocket);
  assert.equal((await q.execute('query-status')).running, true);
  q.close();
  await assert.rejects(startQemu(argv(r), r), (e: unknown) => e instanceof BerthError && e.code === 'E_VM_RUNNING' && e.exitCode === 4);
  assert.equal(await cleanupRunFiles(r), false, 'nothing removed while qemu runs');
  assert.ok(existsSync(r.qmpSocket));
  // -machine none has no ACPI: the power button does nothing, so stop goes on to quit
  assert.equal((await stopQemu(r, { timeoutSec: 0.3 })).how, 'quit');
  assert.equal(pidAlive(pid), false);
  assert.ok(await cleanupRunFiles(r));
  assert.ok(!existsSync(r.qmpSocket) && !existsSync(r.pidFile));

  await assert.rejects(startQemu(argv(r, '-no-such-option'), r), (e: unknown) => e instanceof BerthError && e.code === 'E_QEMU_START' && e.exitCode === 5 && /-no-such-option: invalid option/.test(e.message));
  await assert.rejects(startQemu(argv(r, '-drive', `file=${join(dir, 'missing.img')},format=raw,if=none`), r), (e: unknown) => e instanceof BerthError && /missing\.img.*No such file/.test((e as Error).message));
  assert.equal(qemuPid(r), undefined);
  assert.ok(!existsSync(r.qmpSocket) && !existsSync(r.pidFile), 'a failed start leaves no files');
});

test('a pid file is trusted only when its process is this VM\'s qemu; zombies are gone', async () => {
  const r = paths('b');
  await startQemu(argv(r), r);
  const real = qemuPid(r)!;
  writeFileSync(r.pidFile, `${process.pid}\n`);
  assert.equal(qemuPid(r), undefined, 'a live process without -pidfile <this file> is not the VM (pid reuse)');
  writeFileSync(r.pidFile, 'garbage');
  assert.equal(qemuPid(r), undefined);
  writeFileSync(r.pidFile, `${real}\n`);
  assert.equal(qemuPid(r), real);
  process.kill(real, 'SIGKILL');
  assert.ok(await waitPidGone(real, 5000));
  assert.equal(qemuPid(r), undefined);
  // a zombie: the background sleep's parent execs into another sleep and never reaps it
  const sh = spawn('sh', ['-c', 'sleep 0.1 & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const zpid = Number(await new Promise<string>((res) => sh.stdout!.once('data', (d) => res(String(d).trim()))));
  await new Promise((res) => setTimeout(res, 400));
  assert.equal(pidAlive(zpid), false, 'a zombie counts as gone');
  assert.equal(pidAlive(sh.pid!), true);
  sh.kill('SIGKILL');
  assert.equal(pidAlive(999_999_999), false);
});

test('a qemu that answers nothing (SIGSTOPped) is stopped by SIGKILL after the quit wait', async () => {
  const r = paths('c');
  const { pid } = await startQemu(argv(r), r);
  process.kill(pid, 'SIGSTOP');
  const steps: string[] = [];
  const st = await stopQemu(r, { timeoutSec: 0.2, quitWaitMs: 300, onStep: (s) => steps.push(s) });
  assert.equal(st.how, 'kill');
  assert.deepEqual(steps, ['quit', 'kill'], 'no QMP: no power button, straight to SIGTERM then SIGKILL');
  assert.equal(pidAlive(pid), false);
  await cleanupRunFiles(r);
});
