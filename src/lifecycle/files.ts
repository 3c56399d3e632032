/**
 * File helpers of the lifecycle that guard against deleting or mounting through what is not the
 * env's own: empty a dir without following a symlink, refuse symlinks on a path.
 */
import { lstatSync } from 'node:fs';
import { opendir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { engineError } from '../errors.js';

/** True when `dir` has no entry (or does not exist). Reads one entry, not the whole listing (a round trip per batch on shared storage). */
export async function isEmptyDir(dir: string): Promise<boolean> {
  let d;
  try { d = await opendir(dir, { bufferSize: 1 }); } catch { return true; }
  try { return (await d.read()) === null; } catch { return true; } finally { await d.close().catch(() => undefined); }
}

/**
 * Deletes everything inside `dir` (not `dir` itself, which may be a mount point); a `dir` that
 * is a symlink is refused, never followed.
 * @throws BerthError E_SYMLINK (exit 5)
 */
export async function emptyDir(dir: string): Promise<void> {
  let st;
  try { st = lstatSync(dir); } catch { return; }
  if (st.isSymbolicLink()) throw engineError('E_SYMLINK', `${dir} is a symlink; refusing to delete what it points to`, { hint: 'remove the symlink by hand if it is yours' });
  let names: string[];
  try { names = await readdir(dir); } catch { return; }
  for (const n of names) await rm(join(dir, n), { recursive: true, force: true });
}

/**
 * Refuses when any component of `path` below `root` is a symlink (checked with lstat, never
 * followed). Components that do not exist yet end the walk: mkdir creates real dirs there.
 * @throws BerthError E_SYMLINK (exit 5) naming `what`
 */
export function noSymlinkBelow(root: string, path: string, what: string): void {
  const rel = path.slice(root.length).split('/').filter(Boolean);
  let cur = root;
  for (const c of rel) {
    cur = join(cur, c);
    let st;
    try { st = lstatSync(cur); } catch { return; }
    if (st.isSymbolicLink()) {
      throw engineError('E_SYMLINK', `${what}: ${cur} is a symlink; refusing to follow it (it could lead outside the env)`, { hint: 'replace the symlink by a directory, or mount somewhere else' });
    }
  }
}
