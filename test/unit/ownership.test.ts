/**
 * The shared ownership directory's per-node parts on a local temp dir: journals and snapshots
 * (src/ownership/journal.ts), fence notices (notices.ts), heartbeats (heartbeat.ts) and the
 * import of berth 0.1 leases from the sysdir (legacy.ts). The same code through two GlusterFS
 * mounts is exercised by the integration tests (cluster-perenv, lease-gluster).
 */
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { Ownership } from '../../src/ownership/store.js';
import { entriesSinceSnapshot, JournalWriter, readNodeIndex, writeSnapshot } from '../../src/ownership/journal.js';
import { clearNotice, leaveNotice, listNotices } from '../../src/ownership/notices.js';
import { beatKey, parseNodeBeat, readNodeBeatRaw, writeNodeBeat } from '../../src/ownership/heartbeat.js';
import { importLegacy, readLegacy } from '../../src/ownership/legacy.js';
import { acquireLease, checkLease, readLeaseState } from '../../src/ownership/record.js';

const root = mkdtempSync(join(tmpdir(), 'berth-own-unit-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
/** a fresh ownership dir seen by `node` */
function fresh(node = 'node1'): Ownership {
  const dir = join(root, `own${++n}`);
  mkdirSync(dir);
  return new Ownership(dir, node);
}
const entry = (jname: string, generation: number, op: 'own' | 'drop' = 'own') => ({ op, jname, uuid: `u-${jname}`, generation, emulator: 'runc', why: 'test' });

describe('journal', () => {
  test('entries get versions 1, 2, 3 ...; a reader sees what a node owns', async () => {
    const own = fresh();
    await own.ensureNode();
    const w = new JournalWriter(own);
    assert.equal(await w.append(entry('a', 1)), 1);
    assert.equal(await w.append(entry('b', 1)), 2);
    assert.equal(await w.append(entry('a', 1, 'drop')), 3);
    const idx = await readNodeIndex(new Ownership(own.root, 'node2'), 'node1');
    assert.equal(idx.v, 3);
    assert.deepEqual(Object.keys(idx.envs), ['b']);
    assert.equal(idx.envs.b!.generation, 1);
  });

  test('two writers of one node (two berth commands) never take the same version', async () => {
    const own = fresh();
    await own.ensureNode();
    const w1 = new JournalWriter(own);
    const w2 = new JournalWriter(own);
    const vs = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? w1 : w2).append(entry(`e${i}`, 1))));
    assert.equal(new Set(vs).size, 20);
    assert.deepEqual(readdirSync(own.journalDir()).map(Number).sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i + 1));
    assert.equal(Object.keys((await readNodeIndex(own, 'node1')).envs).length, 20);
  });

  test('a cached index reads only what came after it; a drop of an older generation does not remove a newer own', async () => {
    const own = fresh();
    await own.ensureNode();
    const w = new JournalWriter(own);
    await w.append(entry('a', 1));
    const first = await readNodeIndex(own, 'node1');
    await w.append(entry('a', 3));
    await w.append(entry('a', 2, 'drop')); // late, stale: must not undo generation 3
    const next = await readNodeIndex(own, 'node1', first);
    assert.equal(next.v, 3);
    assert.equal(next.envs.a!.generation, 3);
  });

  test('a created but not yet written entry stops the reader until it is written', async () => {
    const own = fresh();
    await own.ensureNode();
    const w = new JournalWriter(own);
    await w.append(entry('a', 1));
    writeFileSync(join(own.journalDir(), '2'), '');
    const idx = await readNodeIndex(own, 'node1');
    assert.equal(idx.v, 1, 'stopped before the empty entry');
    writeFileSync(join(own.journalDir(), '2'), JSON.stringify({ ...entry('b', 1), v: 2 }));
    const idx2 = await readNodeIndex(own, 'node1', idx);
    assert.equal(idx2.v, 2);
    assert.ok(idx2.envs.b);
  });

  test('snapshots: compaction keeps the previous snapshot, prunes entries up to it; stale and fresh readers agree', async () => {
    const own = fresh();
    await own.ensureNode();
    const w = new JournalWriter(own);
    for (let i = 1; i <= 5; i++) await w.append(entry(`e${i}`, 1));
    const stale = await readNodeIndex(own, 'node1'); // a reader at v=5
    assert.equal(await writeSnapshot(own, 5, Object.values(stale.envs)), true);
    assert.equal(await writeSnapshot(own, 5, []), false, 'a snapshot is never rewritten');
    for (let i = 6; i <= 8; i++) await w.append(entry(`e${i}`, 1));
    assert.equal(await entriesSinceSnapshot(own), 3);
    const idx8 = await readNodeIndex(own, 'node1');
    assert.equal(await writeSnapshot(own, 8, Object.values(idx8.envs)), true);
    // entries up to the previous snapshot (5) are gone, both snapshots stay
    assert.deepEqual(readdirSync(own.journalDir()).map(Number).sort((a, b) => a - b), [6, 7, 8]);
    assert.deepEqual(readdirSync(own.nodeDir()).filter((f) => f.startsWith('snapshot.')).sort(), ['snapshot.5', 'snapshot.8']);
    await w.append(entry('e1', 1, 'drop'));
    const fromStale = await readNodeIndex(own, 'node1', stale);
    const fromNothing = await readNodeIndex(own, 'node1');
    assert.deepEqual(fromStale, fromNothing);
    assert.equal(fromNothing.v, 9);
    assert.equal(Object.keys(fromNothing.envs).length, 7);
    // a third snapshot prunes the first one
    await writeSnapshot(own, 9, Object.values(fromNothing.envs));
    assert.deepEqual(readdirSync(own.nodeDir()).filter((f) => f.startsWith('snapshot.')).sort(), ['snapshot.8', 'snapshot.9']);
    assert.deepEqual(readdirSync(own.journalDir()).map(Number), [9]);
    assert.equal(await new JournalWriter(own).currentHead(), 9);
  });

  test('a node with no journal owns nothing', async () => {
    const own = fresh();
    assert.deepEqual(await readNodeIndex(own, 'ghost'), { node: 'ghost', v: 0, envs: {} });
  });
});

describe('fence notices', () => {
  test('a notice left for another node is listed there and cleared once handled', async () => {
    const by2 = fresh('node2');
    const for1 = new Ownership(by2.root, 'node1');
    await leaveNotice(by2, 'node1', { jname: 'web1', generation: 3, uuid: 'u1', by: 'node2', newGeneration: 4 });
    assert.deepEqual(await listNotices(by2), [], 'not in the taker\'s own dir');
    const l = await listNotices(for1);
    assert.equal(l.length, 1);
    assert.deepEqual({ ...l[0], at: '' }, { jname: 'web1', generation: 3, uuid: 'u1', by: 'node2', newGeneration: 4, at: '' });
    await clearNotice(for1, 'web1', 3);
    assert.deepEqual(await listNotices(for1), []);
  });

  test('an unreadable notice still names the env and generation to look at', async () => {
    const own = fresh();
    await own.ensureNode();
    writeFileSync(join(own.noticesDir(), 'web-2.7'), 'garbage');
    writeFileSync(join(own.noticesDir(), '.tmp'), 'x');
    const l = await listNotices(own);
    assert.deepEqual(l.map((x) => [x.jname, x.generation]), [['web-2', 7]]);
  });
});

describe('node heartbeats', () => {
  test('every write has a new content; a missing heartbeat reads as empty', async () => {
    const own = fresh();
    await own.ensureNode();
    assert.equal(await readNodeBeatRaw(own.beatFile()), '');
    const keys = new Set<string>();
    for (let i = 1; i <= 3; i++) {
      await writeNodeBeat(own.beatFile(), { node: 'node1', boot: 'b1', counter: i, leaseTtl: 6 });
      const raw = await readNodeBeatRaw(own.beatFile());
      assert.equal(parseNodeBeat(raw)?.counter, i);
      keys.add(beatKey(raw));
    }
    assert.equal(keys.size, 3);
    assert.deepEqual(readdirSync(own.nodeDir()).filter((f) => f.startsWith('.')), [], 'no temp file left');
  });
});

describe('berth 0.1 leases (jails-system/<jname>/lease)', () => {
  test('imported once at their generation, honoured, and a MOVED note left', async () => {
    const own = fresh();
    const legacy = join(own.root, 'sys', 'web1', 'lease');
    mkdirSync(legacy, { recursive: true });
    writeFileSync(join(legacy, 'gen.3'), JSON.stringify({ kind: 'claim', node: 'node1', uuid: 'u-1', generation: 3, acquiredAt: '2026-01-01T00:00:00Z' }) + '\n');
    writeFileSync(join(legacy, 'hb.3'), '{"generation":3,"node":"node1","counter":9}\n');
    assert.equal((await readLegacy(legacy))?.generation, 3);
    const rec = own.envRecord('web1');
    await own.ensureNode();
    assert.equal(await importLegacy(legacy, rec), 3);
    assert.equal(await importLegacy(legacy, rec), 0, 'a second import does nothing');
    assert.equal((await checkLease(rec, { node: 'node1', generation: 3, uuid: 'u-1' })).node, 'node1');
    assert.match(readFileSync(join(legacy, 'MOVED'), 'utf8'), /moved to/);
    assert.deepEqual(readdirSync(rec), ['gen.3']);
  });

  test('a record that already has generations is left alone; no legacy log imports nothing', async () => {
    const own = fresh();
    await own.ensureNode();
    const rec = own.envRecord('web1');
    await acquireLease(rec, { node: 'node2', uuid: 'u-9' });
    const legacy = join(own.root, 'sys', 'web1', 'lease');
    mkdirSync(legacy, { recursive: true });
    writeFileSync(join(legacy, 'gen.3'), JSON.stringify({ kind: 'claim', node: 'node1', uuid: 'u-1', generation: 3, acquiredAt: 'x' }));
    assert.equal(await importLegacy(legacy, rec), 0);
    assert.equal((await readLeaseState(rec)).holder?.node, 'node2');
    assert.equal(await importLegacy(join(own.root, 'nothing'), own.envRecord('other')), 0);
  });
});
