/**
 * Upgrade from berth 0.1, which kept each env's lease in its system dir
 * (`jails-system/<jname>/lease/gen.<N>`, visible only where the env's storage is mounted).
 * The first operation that needs an env's lease on a node where the ownership directory has no
 * record of it, but the sysdir holds such a log, imports it: the log's current generation is
 * written, unchanged, as the record's first `gen.<N>` (exclusive create: two nodes importing at
 * once write the same text, one create wins), so the generation every inventory recorded stays
 * valid and is honoured; a `MOVED` note is left in the old dir for whoever looks there. The old
 * per-env heartbeats (`hb.<N>`) are not read any more: liveness is the node's heartbeat.
 *
 * All nodes sharing the storage must run the new release (a 0.1 node would keep reading the old
 * log): upgrade every node, then start the agents.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readLeaseState, seedLease } from './record.js';

const GEN_RE = /^gen\.(\d+)$/;

/** The current generation of a legacy log and its record text (undefined: no legacy log visible). */
export async function readLegacy(legacyDir: string): Promise<{ generation: number; text: string } | undefined> {
  let names: string[];
  try { names = await readdir(legacyDir); } catch { return undefined; }
  if (!names.some((n) => GEN_RE.test(n))) return undefined;
  const st = await readLeaseState(legacyDir);
  if (st.generation === 0) return undefined;
  const text = await readFile(join(legacyDir, `gen.${st.generation}`), 'utf8');
  return { generation: st.generation, text };
}

/**
 * Imports the legacy log at `legacyDir` into the record `recordDir` when the record has no
 * generation yet. @returns the imported generation, or 0 (nothing to import, or already done)
 * @throws E_LEASE_CORRUPT / E_LEASE_IO (exit 1) from src/ownership/record.ts
 */
export async function importLegacy(legacyDir: string, recordDir: string): Promise<number> {
  // the legacy log first: nearly always absent (one lookup), and then the record is not read at all
  const old = await readLegacy(legacyDir);
  if (!old) return 0;
  const cur = await readLeaseState(recordDir);
  if (cur.generation > 0) return 0;
  await seedLease(recordDir, old.generation, old.text);
  await writeFile(join(legacyDir, 'MOVED'), `This lease moved to ${recordDir} (berth >= 0.2 keeps ownership records in the shared lease_dir).\n`).catch(() => undefined);
  return old.generation;
}
