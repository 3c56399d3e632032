/**
 * What happens when a VM's guest powers off or crashes while its engine holds it halted
 * (qemu with on_poweroff=restart or on_crash=restart; src/engines/types.ts Engine.guestEnded):
 * CBSD's on_poweroff / on_crash (`restart` or `destroy`, as its bhyverun.sh loop). The run
 * monitor (src/monitor.ts) calls {@link handleGuestEnd} when it finds such a guest.
 *
 * restart: the guest is powered on again inside the same run (Engine.restartGuest: the same
 * qemu process, so its disks stay open and locked, its taps and VNC port stay, the storage
 * stays mounted and the lease is never let go), only while this node still holds the env's
 * lease (the check bstart makes) and at most {@link RESTART_LIMIT} times in
 * {@link RESTART_WINDOW_MS}: a guest that keeps ending is torn down instead, with a warning.
 * Like CBSD's loop, no hook runs again (mnt_start, master_prestart.d ...): it is the same run.
 *
 * destroy (or a restart refused): the run's one teardown (teardownRun), as when the process
 * exits.
 */
import { STATUS } from '../inventory.js';
import { engineEnv, type GuestEnd } from '../engines/types.js';
import type { NodeCtx } from '../node.js';
import { requireLease } from '../ownership/leases.js';
import { teardownRun } from './teardown.js';

/** At most this many restarts of a guest within {@link RESTART_WINDOW_MS}; the next end tears the run down. */
export const RESTART_LIMIT = 5;
/** The window of {@link RESTART_LIMIT}, ms. */
export const RESTART_WINDOW_MS = 60_000;

/** What {@link handleGuestEnd} did: restarted the guest, tore the run down (`why`), or nothing (the run changed meanwhile). */
export interface GuestEndOutcome {
  action: 'restarted' | 'destroyed' | 'none';
  /** the setting that decided, or why a restart was refused */
  why: string;
}

/**
 * Acts on the end of run `runId`'s guest (see the module comment). `history` holds the times
 * (ms since the epoch) of this run's earlier restarts; a restart appends to it.
 * @throws the teardown's error when the run was torn down and a step failed
 */
export async function handleGuestEnd(ctx: NodeCtx, jname: string, runId: string, how: GuestEnd, history: number[], now = Date.now()): Promise<GuestEndOutcome> {
  const row = ctx.inv.get(jname);
  if (!row || row.run_id !== runId || row.status !== STATUS.ON) return { action: 'none', why: 'the run changed' };
  const key = how === 'poweroff' ? 'on_poweroff' : 'on_crash';
  const setting = `${key}=${row.conf[key] ?? 'destroy'}`;
  const engine = await ctx.engine(row.emulator);
  let why: string | undefined;
  const recent = history.filter((t) => now - t < RESTART_WINDOW_MS);
  history.splice(0, history.length, ...recent);
  if (row.conf[key] !== 'restart' || !engine.restartGuest) why = setting;
  else if (recent.length >= RESTART_LIMIT) why = `${setting}, but it was restarted ${recent.length} times in the last ${RESTART_WINDOW_MS / 1000} s`;
  else {
    try { await requireLease(ctx, row); } catch (e) { why = `${setting}, but this node does not hold the lease: ${(e as Error).message}`; }
  }
  if (!why) {
    if (!ctx.inv.claimRestart(jname, runId)) return { action: 'none', why: 'the run changed' };
    try {
      await engine.restartGuest!(engineEnv(ctx, jname, row.conf));
      history.push(now);
      ctx.inv.setRunning(jname, runId, row.jid);
      return { action: 'restarted', why: `${setting}, ${recent.length + 1} of ${RESTART_LIMIT} in ${RESTART_WINDOW_MS / 1000} s` };
    } catch (e) {
      why = `${setting}, but the restart failed: ${(e as Error).message}`;
    }
  }
  const did = await teardownRun(ctx, jname, runId, { engineStarted: true, reason: how });
  return did ? { action: 'destroyed', why } : { action: 'none', why: 'another process tore it down' };
}
