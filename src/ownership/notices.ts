/**
 * Fence notices: when a node takes an env over from a silent owner (`jregister --force`), it
 * leaves a notice in the old owner's directory, `<lease_dir>/nodes/<old>/notices/<jname>.<N>`
 * (N = the generation taken from it). The old owner's agent lists that one directory every
 * lease_ttl/3, so it finds every env it lost at a cost that does not grow with the cluster's
 * env count, and fences it (src/ownership/fence.ts) after checking the record itself: a notice
 * is a hint to look, never a proof (the record's `gen.<N+1>` is).
 *
 * A notice lost (the taker died between its claim and the notice) is covered by the agent's
 * own checks: every record it owns at agent start and after any gap in its own heartbeat, and
 * a few records every round in turn (src/agent/daemon.ts).
 */
import { mkdir, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { readSharedTextAsync, replaceFileAtomic } from '../sharedfs.js';
import type { Ownership } from './store.js';

/** What a notice says. */
export interface FenceNotice {
  jname: string;
  /** the generation the old owner held */
  generation: number;
  uuid: string;
  /** the node that took it over, and at which generation */
  by: string;
  newGeneration: number;
  /** the taker's clock, ISO 8601 (shown only) */
  at: string;
}

const NOTICE_RE = /^(.+)\.(\d+)$/;

/**
 * Leaves a notice for `oldOwner` (best effort for the caller: the takeover is already decided
 * by the record; a lost notice is covered by the old owner's own checks).
 * @throws file system errors
 */
export async function leaveNotice(own: Ownership, oldOwner: string, n: Omit<FenceNotice, 'at'>): Promise<void> {
  const dir = own.noticesDir(oldOwner);
  await mkdir(dir, { recursive: true });
  await replaceFileAtomic(join(dir, `${n.jname}.${n.generation}`), JSON.stringify({ ...n, at: new Date().toISOString() }) + '\n', { durable: false });
}

/**
 * The notices left for this node (one listing; a notice whose content cannot be read is
 * returned with what its name says).
 */
export async function listNotices(own: Ownership): Promise<FenceNotice[]> {
  const dir = own.noticesDir();
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: FenceNotice[] = [];
  for (const name of names) {
    const m = NOTICE_RE.exec(name);
    if (!m || name.startsWith('.')) continue;
    let n: Partial<FenceNotice> = {};
    try { n = JSON.parse(await readSharedTextAsync(join(dir, name), { nonEmpty: true })) as FenceNotice; } catch { /* the name is enough to look */ }
    out.push({ jname: m[1]!, generation: Number(m[2]), uuid: n.uuid ?? '', by: n.by ?? '', newGeneration: n.newGeneration ?? 0, at: n.at ?? '' });
  }
  return out;
}

/** Deletes a notice once handled (no-op when gone). */
export async function clearNotice(own: Ownership, jname: string, generation: number): Promise<void> {
  await unlink(join(own.noticesDir(), `${jname}.${generation}`)).catch(() => undefined);
}
