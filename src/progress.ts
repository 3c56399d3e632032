/**
 * Progress of long work (base import, base debootstrap, jclone's copy, base fetch) as events
 * the library emits and only src/cli renders (design/product.md "Exit codes and output": long
 * work shows progress on a terminal and stays quiet otherwise). The library never decides
 * whether anything is shown: it calls the callback it is given, or nothing.
 */
import { lstatSync, readdirSync, type Stats } from 'node:fs';
import { join } from 'node:path';

/** One progress report. `done` and `total` are in `unit`s (bytes unless said otherwise). */
export interface ProgressEvent {
  /** what is being done, one or two words: 'copying', 'extracting', 'debootstrap' */
  phase: string;
  /** amount done so far */
  done: number;
  /** the whole amount when known (a bar with a percentage), else undefined (bytes and rate only) */
  total?: number;
  unit: 'bytes' | 'files';
  /** true on the last event of a phase */
  final?: boolean;
}

/** The callback long operations take (`onProgressEvent`). */
export type ProgressFn = (e: ProgressEvent) => void;

/** Options of {@link watchTree}. */
export interface WatchTreeOptions {
  phase: string;
  /** expected final size in bytes, when known */
  total?: number;
  /** milliseconds between two walks of the tree (default 500) */
  intervalMs?: number;
}

/**
 * Reports the growing size of directory `dir` (apparent bytes, {@link treeSize}) to
 * `onProgress` every `intervalMs` while another process fills it (cp, tar, debootstrap).
 * One event at once, then one per interval; `stop()` emits a last event with `final: true`
 * and stops the timer. A missing `onProgress` makes this a no-op (no walk at all).
 * @returns stop(): ends the watch, emitting the final size
 */
export function watchTree(dir: string, onProgress: ProgressFn | undefined, opts: WatchTreeOptions): { stop: () => void } {
  if (!onProgress) return { stop: () => undefined };
  const emit = (final: boolean) => {
    const done = treeSize(dir);
    onProgress({ phase: opts.phase, done, total: opts.total !== undefined ? Math.max(opts.total, done) : undefined, unit: 'bytes', ...(final ? { final } : {}) });
  };
  emit(false);
  const timer = setInterval(() => emit(false), opts.intervalMs ?? 500);
  timer.unref();
  let stopped = false;
  return {
    stop: () => {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      emit(true);
    },
  };
}

/**
 * Apparent size of a tree in bytes: regular files and symlinks (lstat size), hard links
 * counted once, not crossing into other file systems.
 */
export function treeSize(root: string): number {
  let total = 0;
  let rootDev: number;
  try { rootDev = lstatSync(root).dev; } catch { return 0; }
  const seen = new Set<string>();
  const stack = [root];
  while (stack.length) {
    const d = stack.pop()!;
    let names: string[];
    try { names = readdirSync(d); } catch { continue; }
    for (const n of names) {
      const p = join(d, n);
      let st: Stats;
      try { st = lstatSync(p); } catch { continue; }
      if (st.dev !== rootDev) continue;
      if (st.isDirectory()) { stack.push(p); continue; }
      if (st.nlink > 1) {
        const k = `${st.ino}`;
        if (seen.has(k)) continue;
        seen.add(k);
      }
      total += st.size;
    }
  }
  return total;
}

