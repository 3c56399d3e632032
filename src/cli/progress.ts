/**
 * Renders the library's progress events (src/progress.ts) on stderr with cli-progress, only
 * when stderr is a terminal and --json is off (`io.interactive`); otherwise the callback is
 * undefined, so the library does not even measure. With a total: a bar, percentage, MiB done
 * of MiB and the rate; without: MiB done and the rate.
 */
import type { ProgressEvent, ProgressFn } from '../progress.js';
import type { CmdIO } from './types.js';

const mib = (n: number) => (n / 1048576).toFixed(1);

/** A progress callback and its stop() (idempotent; call it before printing the result). */
export interface Renderer { on?: ProgressFn; stop: () => void }

/** The MiB/s between two samples (0 before the second one). */
export function rate(first: { t: number; done: number } | undefined, now: { t: number; done: number }): number {
  if (!first || now.t <= first.t) return 0;
  return (now.done - first.done) / 1048576 / ((now.t - first.t) / 1000);
}

/** The renderer for one command: a bar on a terminal, nothing otherwise. */
export async function progressRenderer(io: CmdIO): Promise<Renderer> {
  if (!io.interactive) return { stop: () => undefined };
  const { SingleBar, Presets } = await import('cli-progress');
  let bar: InstanceType<typeof SingleBar> | undefined;
  let phase = '';
  let first: { t: number; done: number } | undefined;
  const stop = () => { if (bar) { bar.stop(); bar = undefined; } };
  const on = (e: ProgressEvent) => {
    const now = { t: performance.now(), done: e.done };
    if (e.phase !== phase) { stop(); phase = e.phase; first = undefined; }
    if (!first) first = now;
    const payload = { phase: e.phase, done: mib(e.done), size: e.total !== undefined ? mib(e.total) : '?', rate: rate(first, now).toFixed(1) };
    if (!bar) {
      bar = new SingleBar({
        format: e.total !== undefined ? ' {phase} [{bar}] {percentage}% | {done}/{size} MiB | {rate} MiB/s'
          : ' {phase} | {done} MiB | {rate} MiB/s',
        stream: process.stderr, hideCursor: true, clearOnComplete: false, etaBuffer: 50, noTTYOutput: false,
      }, Presets.shades_classic);
      bar.start(Math.max(e.total ?? e.done, 1), e.done, payload);
    } else {
      bar.setTotal(Math.max(e.total ?? e.done, 1));
      bar.update(e.done, payload);
    }
    if (e.final) stop();
  };
  return { on, stop };
}
