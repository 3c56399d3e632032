/**
 * The accelerator probe: does KVM really run a guest here, or must qemu use TCG?
 *
 * `/dev/kvm` existing is not enough: on some hosts (a paravirtual KVM module, nested
 * virtualisation without vmx/svm) it opens and even runs real-mode code, but `-cpu host`
 * aborts qemu ("failed to set MSR") and a stock kernel hangs where it enters long mode. So
 * the probe boots a tiny firmware ({@link probeFirmware}, source in probe.S beside this file)
 * under `-accel kvm`, with qemu's default CPU model as VMs get it: from the reset vector it
 * prints `R` on COM1, enters protected mode, builds identity page tables, enters long mode,
 * prints `L` and exits qemu through `isa-debug-exit` with status 33. KVM counts as usable only
 * when qemu exits 33 having printed `RL` within the timeout; a hang is killed (SIGKILL after
 * the timeout), an abort is caught, and berth falls back to TCG (checked with the same
 * firmware). Nothing here can hang or abort berth.
 *
 * The result is cached per node in `var/run/qemu-accel.json` and reused while the host's
 * boot id (/proc/sys/kernel/random/boot_id) and the qemu binary (size, mtime) are the same.
 */
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Workdir } from '../../paths.js';
import { run } from '../../proc.js';
import { QEMU_BINARY } from './argv.js';

/**
 * The probe firmware's code (probe.S assembled with `as --32` and `ld --oformat binary`):
 * bytes 0x0000-0x00bc of the image; the rest is zero but for the reset vector.
 */
const PROBE_CODE = 'fabaf803b052ee2e660f0116b8000f20c00c010f22c066ea1e000f00080066b810008ed88ec08ed0bf00100000b9000c000031c0f3abc7050010000003200000c7050020000003300000c70500300000830000000f20e083c8200f22e0b8001000000f22d8b9800000c00f320d000100000f300f20c00d000000800f22c0ea85000f00180066baf803b04cee66baf400b010eef4ebfd66900000000000000000ffff0000009acf00ffff00000092cf00ffff0000009aaf001f0098000f';
/** At 0xfff0, the reset vector: `ljmp $0xf000, $0` (to the code at 0xf0000). */
const RESET_VECTOR = 'ea000000f0';

/** qemu's exit status when the probe guest wrote 0x10 to isa-debug-exit: (0x10 << 1) | 1. */
export const PROBE_EXIT = 33;

/** The 64 KiB probe firmware image, loaded by qemu with `-bios` at 0xf0000. */
export function probeFirmware(): Buffer {
  const img = Buffer.alloc(0x10000);
  Buffer.from(PROBE_CODE, 'hex').copy(img, 0);
  Buffer.from(RESET_VECTOR, 'hex').copy(img, 0xfff0);
  return img;
}

/** One probe run. `durationMs` wall time. */
export interface ProbeRun {
  accel: 'kvm' | 'tcg';
  ok: boolean;
  /** why not ok (or 'reached long mode') */
  reason: string;
  durationMs: number;
}

/** The probe's result, as cached and as `doctor` reports it. */
export interface AccelProbe {
  /** what VMs use */
  accel: 'kvm' | 'tcg';
  kvm: ProbeRun;
  /** the TCG check (run when KVM is not usable) */
  tcg?: ProbeRun;
  binary: string;
  /** qemu's version line */
  qemuVersion: string;
  bootId: string;
  /** size:mtime of the qemu binary */
  binaryStamp: string;
  /** ISO 8601 */
  probedAt: string;
}

/** Options of {@link probeAccel}. */
export interface ProbeOptions {
  /** qemu binary (default qemu-system-x86_64) */
  binary?: string;
  /** time allowed per probe run, ms (default 5000; a working KVM takes well under 1 s) */
  timeoutMs?: number;
  /** the KVM device (default /dev/kvm) */
  kvmDevice?: string;
}

async function probeOnce(binary: string, accel: 'kvm' | 'tcg', fw: string, dir: string, timeoutMs: number): Promise<ProbeRun> {
  const t0 = performance.now();
  const r = await run([binary, '-nodefaults', '-no-user-config', '-machine', 'q35', '-accel', accel, '-m', '16', '-display', 'none', '-no-reboot',
    '-serial', 'stdio', '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04', '-bios', fw], { check: false, timeoutSec: timeoutMs / 1000, cwd: dir })
    .catch((e: Error) => ({ exitCode: -1, signal: undefined, stdout: '', stderr: e.message }));
  const durationMs = Math.round(performance.now() - t0);
  const out = r.stdout.replace(/[^A-Z]/g, '');
  if (r.exitCode === PROBE_EXIT && out.includes('RL')) return { accel, ok: true, reason: 'reached long mode', durationMs };
  const err = r.stderr.trim().split('\n').filter((l) => !/warning:/.test(l)).slice(-1)[0]?.replace(/^qemu-system-x86_64: /, '') ?? '';
  const reason = durationMs >= timeoutMs - 50 && !out.includes('L')
    ? `the probe guest did not reach long mode within ${timeoutMs} ms${out.includes('R') ? ' (it ran real-mode code)' : ''}`
    : `qemu exited with ${r.signal ?? r.exitCode}${err ? `: ${err}` : ''}`;
  return { accel, ok: false, reason, durationMs };
}

function bootId(): string {
  try { return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(); } catch { return 'unknown'; }
}

async function whichBinary(binary: string): Promise<string> {
  if (binary.includes('/')) return binary;
  for (const d of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const p = join(d, binary);
    try { accessSync(p, constants.X_OK); return p; } catch { /* next */ }
  }
  return binary;
}

function stamp(path: string): string {
  try { const st = statSync(path); return `${st.size}:${st.mtimeMs}`; } catch { return 'missing'; }
}

/**
 * Probes KVM (and TCG when KVM is not usable). Never throws for a broken accelerator; a qemu
 * that cannot run at all shows as tcg.ok = false.
 */
export async function probeAccel(opts: ProbeOptions = {}): Promise<AccelProbe> {
  const binary = await whichBinary(opts.binary ?? QEMU_BINARY);
  const timeoutMs = opts.timeoutMs ?? 5000;
  const dir = await mkdtemp(join(tmpdir(), 'berth-accel-'));
  try {
    const fw = join(dir, 'probe.fd');
    await writeFile(fw, probeFirmware());
    const v = await run([binary, '--version'], { check: false }).catch(() => ({ stdout: '' }));
    const base = { binary, qemuVersion: v.stdout.split('\n')[0]?.trim() ?? '', bootId: bootId(), binaryStamp: stamp(binary), probedAt: new Date().toISOString() };
    const dev = opts.kvmDevice ?? '/dev/kvm';
    let kvm: ProbeRun;
    try {
      accessSync(dev, constants.R_OK | constants.W_OK);
      kvm = await probeOnce(binary, 'kvm', fw, dir, timeoutMs);
    } catch {
      kvm = { accel: 'kvm', ok: false, reason: `${dev} is missing or not read-write`, durationMs: 0 };
    }
    if (kvm.ok) return { accel: 'kvm', kvm, ...base };
    return { accel: 'tcg', kvm, tcg: await probeOnce(binary, 'tcg', fw, dir, timeoutMs), ...base };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The cache file of the node's probe result. */
export function accelCacheFile(wd: Workdir): string {
  return join(wd.runDir, 'qemu-accel.json');
}

/**
 * The node's accelerator: the cached probe result while it is valid (same boot, same qemu
 * binary), else a new probe, cached. `refresh` probes again.
 */
export async function nodeAccel(wd: Workdir, opts: ProbeOptions & { refresh?: boolean } = {}): Promise<AccelProbe & { cached: boolean }> {
  const file = accelCacheFile(wd);
  const binary = await whichBinary(opts.binary ?? QEMU_BINARY);
  if (!opts.refresh) {
    try {
      const c = JSON.parse(readFileSync(file, 'utf8')) as AccelProbe;
      if (c.bootId === bootId() && c.binary === binary && c.binaryStamp === stamp(binary) && (c.accel === 'kvm' || c.accel === 'tcg')) return { ...c, cached: true };
    } catch { /* probe */ }
  }
  const p = await probeAccel({ ...opts, binary });
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(p, null, 2) + '\n', { mode: 0o644 });
  await rename(tmp, file);
  return { ...p, cached: false };
}

/** One line for `doctor`: what VMs use and why. */
export function describeAccel(p: AccelProbe): string {
  if (p.accel === 'kvm') return `qemu uses KVM (the probe guest reached long mode in ${p.kvm.durationMs} ms)`;
  const tcg = p.tcg && !p.tcg.ok ? `; TCG fails too: ${p.tcg.reason}` : '';
  return `qemu uses TCG (software emulation, slower): KVM is not usable: ${p.kvm.reason}${tcg}`;
}
