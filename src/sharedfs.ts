/**
 * Writing files on the shared storage (GlusterFS, NFSv4, CephFS), where every call is a network
 * round trip: descriptors and lease heartbeats.
 */
import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, readFileSync } from 'node:fs';
import { lstat, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { sleep } from './proc.js';

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

/** ESTALE (116 on Linux; libuv does not name it, so Node reports "Unknown system error -116"). */
export const isStale = (e: unknown): boolean => (e as NodeJS.ErrnoException)?.code === 'ESTALE' || (e as NodeJS.ErrnoException)?.errno === -116;

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
 * aborting utf8 fast path), retries twice on ESTALE.
 * @throws Node errors (ENOENT ...)
 */
export function readSharedText(path: string): string {
  for (let i = 0; ; i++) {
    revalidate(path);
    try {
      return readFileSync(path).toString('utf8');
    } catch (e) {
      if (!isStale(e) || i >= 2) throw e;
    }
  }
}

/** How many times {@link readSharedTextAsync} retries (about 0.6 s in all). */
const RETRIES = 6;

/**
 * {@link readSharedText}, asynchronous, for the hot lease reads (heartbeats, gen records). On
 * GlusterFS FUSE a file replaced by rename through another node's mount (a heartbeat, every
 * lease_ttl/3) can fail through this mount's cached entry: open or read with ESTALE, or read
 * with ENOENT once the old file is gone (measured: test/integration/lease-gluster.test.ts).
 * Such a failure is retried from the open, after a fresh lookup, RETRIES times; ENOENT from
 * the open itself means the file does not exist and is thrown at once. An error of close
 * after a complete read is ignored: the bytes read are a whole record. A read through such an
 * entry can also return nothing at all, and so can a file renamed into place before its data
 * reached the brick (GlusterFS flush-behind lets close() return first): with `nonEmpty` (files
 * only ever written whole, by rename), an empty read is retried the same way, and '' returned
 * only if it stays empty. Retries wait 10, 20, 40 ... 320 ms (RETRIES of them).
 * @throws Node errors (ENOENT when missing, ...)
 */
export async function readSharedTextAsync(path: string, opts: { nonEmpty?: boolean } = {}): Promise<string> {
  return (await readSharedBytesAsync(path, opts)).toString('utf8');
}

/** {@link readSharedTextAsync}, the bytes as read (a file put back exactly as it was found). @throws Node errors (ENOENT ...) */
export async function readSharedBytesAsync(path: string, opts: { nonEmpty?: boolean } = {}): Promise<Buffer> {
  for (let i = 0; ; i++) {
    if (i > 0) {
      await sleep(5 << i); // 10, 20, 40 ... 320 ms
      try { await lstat(path); } catch { /* missing: the open says so */ }
    }
    let fh;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      if (isStale(e) && i < RETRIES) continue;
      throw e;
    }
    try {
      const bytes = await fh.readFile();
      if (bytes.length === 0 && opts.nonEmpty && i < RETRIES) continue;
      return bytes;
    } catch (e) {
      if ((isStale(e) || (e as NodeJS.ErrnoException).code === 'ENOENT') && i < RETRIES) continue;
      throw e;
    } finally {
      await fh.close().catch(() => undefined);
    }
  }
}

/** The sha256 (hex) of a shared file's text: how two nodes agree that they read the same version. */
export function textDigest(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** How long {@link readSharedTextAs} waits for the expected version, milliseconds. */
const EXPECT_WAIT_MS = 3000;

/**
 * Reads a shared file that another node has just rewritten, expecting the version whose
 * {@link textDigest} is `digest`: a DFS client may serve the old version for a while through
 * its cached entry (GlusterFS FUSE keeps entries and attributes about 1 s), so a different
 * text is read again, after a fresh lookup, every 50–200 ms for up to `waitMs` (default 3000).
 * Without `digest` it is {@link readSharedText}.
 * @returns the text, or `undefined` when it still differed after `waitMs` (the caller says what that means)
 * @throws Node errors (ENOENT ...) as readSharedText
 */
export async function readSharedTextAs(path: string, digest: string | undefined, waitMs = EXPECT_WAIT_MS): Promise<string | undefined> {
  const until = performance.now() + waitMs;
  for (let pause = 50; ; pause = Math.min(pause * 2, 200)) {
    const text = readSharedText(path);
    if (!digest || textDigest(text) === digest) return text;
    if (performance.now() + pause > until) return undefined;
    await sleep(pause);
  }
}
