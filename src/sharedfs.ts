/**
 * Writing files on the shared storage (GlusterFS, NFSv4, CephFS), where every call is a network
 * round trip: descriptors and lease heartbeats.
 */
import { randomBytes } from 'node:crypto';
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
