/**
 * Writing files on the shared storage (GlusterFS, NFSv4, CephFS), where every call is a network
 * round trip: descriptors and lease heartbeats.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync, readFileSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * The temp name under which `file` is written before its rename: `.<name>.<pid><random hex>`
 * next to it. GlusterFS's distribute translator places such a name (its default
 * rsync-hash-regex `^\.(.+)\.[^.]+$`) on the brick of `<name>`, so the rename stays on one
 * brick instead of leaving a link file on another. Listings of berth's files ignore dot files.
 */
export function tempNameFor(file: string): string {
  return join(dirname(file), `.${basename(file)}.${process.pid.toString(16)}${randomBytes(6).toString('hex')}`);
}

/**
 * Replaces `file` atomically: writes a new temp file ({@link tempNameFor}, O_EXCL, `mode`),
 * fsyncs it when `durable` (default true), renames it over `file`. Readers see the old or the
 * new content, never a mix. Five calls on the storage (create, write, fsync, close, rename),
 * where write-file-atomic also resolves the real path, stats, chowns and chmods.
 * The temp file is removed when a step fails.
 * @throws the file system error (ENOENT when the directory is missing, ...)
 */
export async function replaceFileAtomic(file: string, text: string, opts: { mode?: number; durable?: boolean } = {}): Promise<void> {
  const tmp = tempNameFor(file);
  try {
    const fh = await open(tmp, 'wx', opts.mode ?? 0o644);
    try {
      await fh.writeFile(text);
      if (opts.durable ?? true) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
}

/**
 * Looks `path` up afresh (lstat), so that the next open through this node's mount of a shared
 * file system finds the file as it is now. On GlusterFS FUSE, a file that another mount deleted
 * and re-created (or replaced by rename) is otherwise opened through the stale cached entry:
 * the read returns the right bytes, but close(2) fails with ESTALE, and Node 20's
 * `readFileSync(path, 'utf8')` ABORTS the process on a failed close (an assertion in its native
 * ReadFileUtf8). access(2) (`existsSync`) does not refresh the entry; stat/lstat does
 * (measured on this machine, GlusterFS 10.3: 199 of 200 such reads failed without it, 0 with it).
 */
export function revalidate(path: string): void {
  try { lstatSync(path); } catch { /* missing: the open will say so */ }
}

/**
 * Reads a file that another node may rewrite: revalidates it, reads it as bytes (never the
 * aborting utf8 fast path), retries once on ESTALE.
 * @throws Node errors (ENOENT ...)
 */
export function readSharedText(path: string): string {
  for (let i = 0; ; i++) {
    revalidate(path);
    try {
      return readFileSync(path).toString('utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).errno !== -116 || i >= 2) throw e; // ESTALE
    }
  }
}
