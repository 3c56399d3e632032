/**
 * A glob jregister / junregister compacts this node's ownership journal at its end
 * (src/cli/register-args.ts compactAfterMany → src/ownership/leases.ts compactJournal): a
 * cold `cluster ls` then reads one snapshot, not one journal entry per env. Fewer than
 * COMPACT_EVERY transitions leave the journal alone (the agent compacts later).
 */
import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { writeUnregistered } from '../../bench/common.js';
import { COMPACT_EVERY, readNodeIndex } from '../../src/ownership/journal.js';
import { Ownership } from '../../src/ownership/store.js';
import { berthOk, tempDir } from '../helpers/cli.js';

const base = tempDir('berth-compact-');
after(() => rmSync(base, { recursive: true, force: true }));
const wd = join(base, 'wd');
const snapshots = () => readdirSync(join(wd, 'jails-lease', 'nodes', 'node1')).filter((f) => f.startsWith('snapshot.')).map((f) => Number(f.slice(9))).sort((a, b) => a - b);
const journalEntries = () => readdirSync(join(wd, 'jails-lease', 'nodes', 'node1', 'journal')).length;

test('a glob jregister of COMPACT_EVERY+6 envs leaves a snapshot at the journal head holding them all; a smaller one does not', async () => {
  berthOk(['initenv', `workdir=${wd}`, 'nodename=node1']);
  const many = Array.from({ length: COMPACT_EVERY + 6 }, (_, i) => `u${String(i).padStart(3, '0')}`);
  for (const j of [...many, 'v1', 'v2']) await writeUnregistered(wd, j);
  berthOk(['jregister', 'jname=v*'], { workdir: wd });
  assert.deepEqual(snapshots(), [], 'two transitions: no snapshot yet');
  berthOk(['jregister', 'jname=u*'], { workdir: wd });
  const snaps = snapshots();
  assert.equal(snaps.length, 1, `one snapshot: ${snaps}`);
  const snap = JSON.parse(readFileSync(join(wd, 'jails-lease', 'nodes', 'node1', `snapshot.${snaps[0]}`), 'utf8'));
  assert.equal(snap.v, many.length + 2, 'at the head: every entry so far');
  assert.deepEqual(snap.envs.map((e: { jname: string }) => e.jname).sort(), [...many, 'v1', 'v2']);
  // a reader from nothing gets the same index from the snapshot alone
  const own = new Ownership(join(wd, 'jails-lease'), 'node2');
  const idx = await readNodeIndex(own, 'node1');
  assert.equal(Object.keys(idx.envs).length, many.length + 2);
  // junregister of them all: another snapshot, now without them
  berthOk(['junregister', 'jname=u*'], { workdir: wd });
  const s2 = snapshots().at(-1)!;
  assert.ok(s2 > snaps[0]!);
  const snap2 = JSON.parse(readFileSync(join(wd, 'jails-lease', 'nodes', 'node1', `snapshot.${s2}`), 'utf8'));
  assert.deepEqual(snap2.envs.map((e: { jname: string }) => e.jname).sort(), ['v1', 'v2']);
  assert.ok(journalEntries() >= 1);
});
