/** What jregister and junregister share. */
import type { NodeCtx } from '../node.js';

/**
 * Envs registered (or unregistered) at once by one glob command. Each env's work is mostly
 * waiting on the shared storage (lease create, descriptor fsync), so a few run side by side,
 * as CBSD queues one task per env (§6.1); results keep the name order.
 */
export const REGISTER_CONCURRENCY = 8;

/**
 * After a jregister/junregister of `count` envs: when that is COMPACT_EVERY or more (a single
 * env's command skips the look at the journal), compacts this node's ownership journal (src/ownership/leases.ts
 * compactJournal), so that `cluster ls` on any node, arriving cold, reads one snapshot rather
 * than one journal entry per env. Best effort: the agent compacts within 10 heartbeat periods anyway.
 */
export async function compactAfterMany(ctx: NodeCtx, count: number): Promise<void> {
  const { COMPACT_EVERY } = await import('../ownership/journal.js');
  if (count < COMPACT_EVERY) return;
  const { compactJournal } = await import('../ownership/leases.js');
  await compactJournal(ctx).catch(() => undefined);
}
