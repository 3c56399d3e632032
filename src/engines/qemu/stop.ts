/**
 * Stopping a qemu VM, politely first (Incus's driver_qemu.go, CBSD's bstop with
 * `double_acpi=1`): QMP `system_powerdown` (the ACPI power button), sent again 0.5 s later
 * because some guests miss the first press while booting, then wait up to `stop_timeout`
 * seconds for the guest to power off; then QMP `quit`, wait; then SIGKILL, wait. A qemu whose
 * QMP socket does not answer goes straight to SIGTERM (qemu quits on it) and SIGKILL. A qemu
 * that holds its powered-off guest instead of exiting (on_poweroff=restart: `-action
 * shutdown=pause`) is told to `quit` as soon as QMP says `shutdown`: the guest did power off.
 */
import { BerthError, EXIT } from '../../errors.js';
import type { QemuRunPaths } from './argv.js';
import { pidAlive, qemuPid, waitPidGone } from './process.js';
import { QmpClient } from './qmp.js';

/** How the VM ended: the guest powered off (acpi), qemu quit on request, qemu was killed, or it was not running. */
export type StopHow = 'acpi' | 'quit' | 'kill' | 'not-running';

/** Result of {@link stopQemu}; `durationMs` from the call to qemu gone. */
export interface StopResult {
  how: StopHow;
  durationMs: number;
}

/** Options of {@link stopQemu}. Times in ms unless named Sec. */
export interface StopOptions {
  /** how long the guest has to power off after ACPI (the VM's stop_timeout), seconds */
  timeoutSec: number;
  /** a QMP session to use (else one is opened and closed) */
  qmp?: QmpClient;
  /** the second power button press comes this long after the first (default 500) */
  repeatMs?: number;
  /** wait after `quit` (default 5000) and after SIGKILL (default 5000) */
  quitWaitMs?: number;
  killWaitMs?: number;
  /** skip ACPI (a forced stop): quit, then kill */
  force?: boolean;
  /** told about each step: 'powerdown', 'quit', 'kill' */
  onStep?: (step: 'powerdown' | 'quit' | 'kill') => void;
}

/**
 * Waits up to `ms` for the guest to power off: 'gone' when qemu exited, 'halted' when it holds
 * the powered-off or panicked guest (QMP status `shutdown` or `guest-panicked`, asked every 200 ms), else 'running'.
 */
async function waitPoweredOff(pid: number, qmp: QmpClient, ms: number): Promise<'gone' | 'halted' | 'running'> {
  const end = performance.now() + ms;
  let nextAsk = 0;
  for (;;) {
    if (!pidAlive(pid)) return 'gone';
    if (performance.now() >= nextAsk) {
      nextAsk = performance.now() + 200;
      const st = await qmp.execute<{ status: string }>('query-status', undefined, { timeoutMs: 1000 }).catch(() => undefined);
      if (st?.status === 'shutdown' || st?.status === 'guest-panicked') return 'halted';
    }
    if (performance.now() >= end) return 'running';
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Stops the VM's qemu (see the module comment). Returns when the qemu process is gone.
 * @throws BerthError E_STOP_FAILED (exit 5) when qemu survives SIGKILL (a process stuck in the kernel)
 */
export async function stopQemu(run: QemuRunPaths, opts: StopOptions): Promise<StopResult> {
  const t0 = performance.now();
  const done = (how: StopHow): StopResult => ({ how, durationMs: Math.round((performance.now() - t0) * 10) / 10 });
  const pid = qemuPid(run);
  if (!pid) return done('not-running');
  let qmp = opts.qmp;
  const own = !qmp;
  if (!qmp) {
    try { qmp = await QmpClient.connect(run.qmpSocket, { timeoutMs: 2000 }); } catch { qmp = undefined; }
  }
  try {
    if (qmp && !opts.force) {
      opts.onStep?.('powerdown');
      const sent = await qmp.execute('system_powerdown', undefined, { timeoutMs: 2000 }).then(() => true, () => false);
      if (sent) {
        const repeat = opts.repeatMs ?? 500;
        let off = await waitPoweredOff(pid, qmp, Math.min(repeat, opts.timeoutSec * 1000));
        if (off === 'running') {
          await qmp.execute('system_powerdown', undefined, { timeoutMs: 2000 }).catch(() => {});
          off = await waitPoweredOff(pid, qmp, Math.max(0, opts.timeoutSec * 1000 - repeat));
        }
        if (off === 'gone') return done('acpi');
        if (off === 'halted') {
          await qmp.execute('quit', undefined, { timeoutMs: 2000 }).catch(() => {});
          if (await waitPidGone(pid, opts.quitWaitMs ?? 5000)) return done('acpi');
        }
      }
    }
    opts.onStep?.('quit');
    if (qmp) await qmp.execute('quit', undefined, { timeoutMs: 2000 }).catch(() => {});
    else { try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ } }
    if (await waitPidGone(pid, opts.quitWaitMs ?? 5000)) return done('quit');
    opts.onStep?.('kill');
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    if (await waitPidGone(pid, opts.killWaitMs ?? 5000)) return done('kill');
    throw new BerthError('E_STOP_FAILED', `qemu (pid ${pid}) survived SIGKILL`, EXIT.ENGINE, { hint: 'it is stuck in the kernel (I/O on a hung storage?); see ps -o stat,wchan -p ' + pid });
  } finally {
    if (own) qmp?.close();
  }
}
