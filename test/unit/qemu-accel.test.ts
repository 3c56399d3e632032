/**
 * The accelerator probe: its firmware image, a real probe run (TCG must reach long mode; KVM
 * either works or is refused within the timeout, never hanging or aborting berth), and the
 * per-node cache (reused for the same boot and qemu binary, probed again otherwise).
 */
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Workdir } from '../../src/paths.js';
import { accelCacheFile, describeAccel, nodeAccel, probeAccel, probeFirmware, PROBE_EXIT } from '../../src/engines/qemu/accel.js';

test('the probe firmware is a 64 KiB image whose reset vector jumps to its code at 0xf0000', () => {
  const fw = probeFirmware();
  assert.equal(fw.length, 0x10000);
  assert.deepEqual([...fw.subarray(0xfff0, 0xfff5)], [0xea, 0x00, 0x00, 0x00, 0xf0], 'ljmp $0xf000, $0');
  assert.equal(fw[0], 0xfa, 'cli first');
  assert.ok(fw.includes(Buffer.from([0x0f, 0x32])) && fw.includes(Buffer.from([0x0f, 0x30])), 'rdmsr/wrmsr of EFER (long mode enable)');
  assert.equal(PROBE_EXIT, (0x10 << 1) | 1);
});

test('a real probe: TCG reaches long mode; KVM is used only when it does too, and a broken KVM costs at most the timeout', async () => {
  const p = await probeAccel({ timeoutMs: 2000 });
  if (p.accel === 'kvm') {
    assert.equal(p.kvm.ok, true);
    assert.equal(p.tcg, undefined);
  } else {
    assert.equal(p.kvm.ok, false);
    assert.ok(p.kvm.reason.length > 5, p.kvm.reason);
    assert.equal(p.tcg?.ok, true, `TCG reaches long mode: ${p.tcg?.reason}`);
  }
  const left = spawnSync('pgrep', ['-f', 'berth-accel-.*probe\\.fd'], { encoding: 'utf8' }).stdout.trim();
  assert.equal(left, '', 'no probe qemu is left running');
  assert.match(p.qemuVersion, /QEMU emulator version/);
  assert.match(describeAccel(p), p.accel === 'kvm' ? /uses KVM/ : /uses TCG.*KVM is not usable/);
  const nokvm = await probeAccel({ timeoutMs: 2000, kvmDevice: '/nonexistent/kvm' });
  assert.equal(nokvm.accel, 'tcg');
  assert.match(nokvm.kvm.reason, /\/nonexistent\/kvm is missing/);
  assert.equal(nokvm.kvm.durationMs, 0, 'no KVM run without the device');
});

test('the node caches the result in var/run and probes again for another boot or qemu binary', async () => {
  const d = mkdtempSync(join(tmpdir(), 'berth-accel-'));
  try {
    const wd = new Workdir(d);
    mkdirSync(wd.runDir, { recursive: true });
    const a = await nodeAccel(wd, { timeoutMs: 2000, kvmDevice: '/nonexistent/kvm' });
    assert.equal(a.cached, false);
    const b = await nodeAccel(wd, { timeoutMs: 2000, kvmDevice: '/nonexistent/kvm' });
    assert.equal(b.cached, true);
    assert.equal(b.probedAt, a.probedAt);
    const c = JSON.parse(readFileSync(accelCacheFile(wd), 'utf8'));
    writeFileSync(accelCacheFile(wd), JSON.stringify({ ...c, bootId: 'another-boot' }));
    assert.equal((await nodeAccel(wd, { timeoutMs: 2000, kvmDevice: '/nonexistent/kvm' })).cached, false, 'a reboot invalidates it');
    writeFileSync(accelCacheFile(wd), JSON.stringify({ ...c, binaryStamp: '1:2' }));
    assert.equal((await nodeAccel(wd, { timeoutMs: 2000, kvmDevice: '/nonexistent/kvm' })).cached, false, 'a new qemu invalidates it');
    writeFileSync(accelCacheFile(wd), 'garbage');
    assert.equal((await nodeAccel(wd, { timeoutMs: 2000, kvmDevice: '/nonexistent/kvm' })).cached, false);
    assert.equal((await nodeAccel(wd, { timeoutMs: 2000, kvmDevice: '/nonexistent/kvm', refresh: true })).cached, false);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('only a guest that printed RL and exited 33 counts: a hang is killed at the timeout, an abort or a short run is refused', async () => {
  const d = mkdtempSync(join(tmpdir(), 'berth-accel-fake-'));
  try {
    // stand-ins for qemu that behave as a broken or working KVM does (the real one cannot be
    // made to hang or abort on demand); they answer --version like qemu
    const fake = (name: string, body: string) => {
      const f = join(d, name);
      writeFileSync(f, `#!/bin/sh\n[ "$1" = --version ] && { echo "QEMU emulator version 7.2.0 (fake)"; exit 0; }\n${body}\n`);
      chmodSync(f, 0o755);
      return f;
    };
    const kvmDevice = join(d, 'kvm');
    writeFileSync(kvmDevice, '');
    const ok = await probeAccel({ binary: fake('ok', 'printf RL; exit 33'), kvmDevice, timeoutMs: 2000 });
    assert.equal(ok.accel, 'kvm');
    assert.equal(ok.tcg, undefined);
    const hang = await probeAccel({ binary: fake('hang', 'printf R; exec sleep 60'), kvmDevice, timeoutMs: 500 });
    assert.equal(hang.accel, 'tcg');
    assert.match(hang.kvm.reason, /did not reach long mode within 500 ms/);
    assert.equal(spawnSync('pgrep', ['-f', `${d}/hang`]).status, 1, 'the hung probe was killed');
    const abort = await probeAccel({ binary: fake('abort', 'echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69" >&2; kill -ABRT $$'), kvmDevice, timeoutMs: 2000 });
    assert.equal(abort.accel, 'tcg');
    assert.match(abort.kvm.reason, /failed to set MSR/);
    const short = await probeAccel({ binary: fake('short', 'printf R; exit 33'), kvmDevice, timeoutMs: 2000 });
    assert.equal(short.accel, 'tcg', 'exit 33 without reaching long mode is not enough');
    const zero = await probeAccel({ binary: fake('zero', 'printf RL; exit 0'), kvmDevice, timeoutMs: 2000 });
    assert.equal(zero.accel, 'tcg', 'RL without the debug-exit status is not enough');
    assert.equal(zero.tcg?.ok, false, 'and the fake fails the TCG check too');
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
