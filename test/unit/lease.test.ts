/**
 * Unit tests of src/ownership/record.ts (an env's generation log) on a local temp dir, with node
 * heartbeats written by src/ownership/heartbeat.ts as liveness (the GlusterFS race tests are in
 * test/integration/lease-gluster.test.ts).
 */
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, test } from 'node:test';
import { BerthError } from '../../src/errors.js';
import {
  acquireLease, checkLease, claimFrom, handoverLease, KEEP_GENERATIONS, reclaimHandover, leaseTuning, readLease, readLeaseHistory, readLeaseState, releaseLease,
  seedLease, takeoverLease, watchHolder, type TakeoverOptions,
} from '../../src/ownership/record.js';
import { readNodeBeatRaw, watchSeconds, writeNodeBeat } from '../../src/ownership/heartbeat.js';

const root = mkdtempSync(join(tmpdir(), 'berth-lease-unit-'));
after(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
let lease: string;
let beats: string;
beforeEach(() => {
  const leaseDir = join(root, `own${++n}`);
  mkdirSync(leaseDir);
  lease = join(leaseDir, 'envs', 'web1');
  beats = join(leaseDir, 'nodes');
  mkdirSync(beats);
});

/** node `node`'s heartbeat file in this test's ownership dir */
const beatFile = (node: string) => join(beats, `${node}.hb`);
/** writes a heartbeat of `node` (a new content each time) */
let counter = 0;
const beat = (node: string, leaseTtl = 30) => writeNodeBeat(beatFile(node), { node, boot: 'b', counter: ++counter, leaseTtl });
/** takeover options with liveness from the heartbeat files; `ttl` seconds of watching */
const live = (ttl: number, extra: Partial<TakeoverOptions> = {}): TakeoverOptions => ({
  force: true, beat: (node) => readNodeBeatRaw(beatFile(node)), watchSec: async () => ttl, sleep: noSleep, ...extra,
});

const A = { node: 'node1', uuid: 'u-1' };
const B = { node: 'node2', uuid: 'u-1' };
const C = { node: 'node3', uuid: 'u-1' };
const noSleep = async (): Promise<void> => {};

/** Asserts that `p` rejects with a BerthError of `code` and exit 4; returns it. */
async function rejectsWith(p: Promise<unknown>, code: string, exitCode = 4): Promise<BerthError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof BerthError, `expected a BerthError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.exitCode, exitCode);
    return e;
  }
  assert.fail(`expected ${code}, but it resolved`);
}

describe('acquire', () => {
  test('a fresh lease is acquired at generation 1 and readable', async () => {
    assert.equal(await readLease(lease), undefined);
    assert.deepEqual(await readLeaseState(lease), { generation: 0 });
    const r = await acquireLease(lease, A);
    assert.equal(r.node, 'node1');
    assert.equal(r.uuid, 'u-1');
    assert.equal(r.generation, 1);
    assert.ok(!Number.isNaN(Date.parse(r.acquiredAt)));
    const read = await readLease(lease);
    assert.equal(read?.node, 'node1');
    assert.equal(read?.generation, 1);
    assert.equal(read?.acquiredAt, r.acquiredAt);
  });

  test('a second acquire is refused with exit 4, naming the owner, and changes nothing', async () => {
    await acquireLease(lease, A);
    const before = readdirSync(lease).sort();
    const e = await rejectsWith(acquireLease(lease, B), 'E_LEASE_HELD');
    assert.match(e.message, /node1/);
    assert.match(e.message, /generation 1/);
    assert.match(e.hint ?? '', /--force/);
    assert.equal(e.details?.node, 'node1');
    // the same node acquiring again is refused too: it must know its generation
    await rejectsWith(acquireLease(lease, A), 'E_LEASE_HELD');
    assert.deepEqual(readdirSync(lease).sort(), before);
    assert.equal((await readLease(lease))?.node, 'node1');
  });

  test('only one of many concurrent acquires wins', async () => {
    const nodes = Array.from({ length: 12 }, (_, i) => ({ node: `n${i}`, uuid: 'u-1' }));
    const results = await Promise.allSettled(nodes.map((w) => acquireLease(lease, w)));
    const won = results.filter((r) => r.status === 'fulfilled');
    assert.equal(won.length, 1);
    for (const r of results) {
      if (r.status === 'rejected') assert.equal((r.reason as BerthError).code, 'E_LEASE_HELD');
    }
    const winner = (won[0] as PromiseFulfilledResult<{ node: string }>).value.node;
    assert.equal((await readLease(lease))?.node, winner);
  });

  test('a missing ownership dir is an error, not a silent mkdir -p', async () => {
    const e = await rejectsWith(acquireLease(join(root, 'no-such-lease-dir', 'envs', 'web1'), A), 'E_LEASE_IO', 1);
    assert.match(e.message, /ownership directory .* does not exist/);
  });


  test('a lease path that is a regular file is reported, not overwritten', async () => {
    mkdirSync(join(lease, '..'), { recursive: true });
    writeFileSync(lease, 'node=x\n');
    await rejectsWith(acquireLease(lease, A), 'E_LEASE_CORRUPT', 1);
    assert.equal(readFileSync(lease, 'utf8'), 'node=x\n');
  });
});

describe('check', () => {
  test('check confirms the holder, with or without the uuid', async () => {
    const r = await acquireLease(lease, A);
    assert.equal((await checkLease(lease, { node: 'node1', generation: r.generation })).generation, r.generation);
    const c = await checkLease(lease, { node: 'node1', generation: r.generation, uuid: 'u-1' });
    assert.equal(c.node, 'node1');
  });

  test('check by another node, another generation or another uuid fails with exit 4', async () => {
    const r = await acquireLease(lease, A);
    await rejectsWith(checkLease(lease, { node: 'node2', generation: r.generation }), 'E_LEASE_SUPERSEDED');
    await rejectsWith(checkLease(lease, { node: 'node1', generation: r.generation, uuid: 'other' }), 'E_LEASE_SUPERSEDED');
    await rejectsWith(checkLease(lease, { node: 'node1', generation: r.generation + 5 }), 'E_LEASE_MISSING');
    await rejectsWith(checkLease(join(root, 'nothing-here', 'lease'), { node: 'node1', generation: 1 }), 'E_LEASE_MISSING');
  });

  test('a lease wiped and created again at the same generation by another node is not this node\'s', async () => {
    const g = await acquireLease(lease, A);
    rmSync(lease, { recursive: true });
    const other = await acquireLease(lease, { node: 'node2', uuid: 'u-2' });
    assert.equal(other.generation, g.generation);
    await rejectsWith(checkLease(lease, { ...A, generation: g.generation }), 'E_LEASE_SUPERSEDED');
  });
});

describe('handover (jmigrate)', () => {
  test('the holder hands the env to another node at generation + 1; the giver is superseded at once', async () => {
    const r = await acquireLease(lease, A);
    const h = await handoverLease(lease, { ...A, generation: r.generation }, B);
    assert.equal(h.node, 'node2');
    assert.equal(h.generation, r.generation + 1);
    assert.deepEqual(h.handoverFrom, { node: 'node1', generation: r.generation });
    assert.equal((await checkLease(lease, { node: 'node2', generation: h.generation, uuid: 'u-1' })).node, 'node2');
    const e = await rejectsWith(checkLease(lease, { ...A, generation: r.generation }), 'E_LEASE_SUPERSEDED');
    assert.match(e.message, /handed over to node 'node2'/);
    // and back again: the generation only grows
    const back = await handoverLease(lease, { ...B, generation: h.generation }, A);
    assert.equal(back.generation, r.generation + 2);
  });

  test('a node that does not hold it cannot hand it over, and nothing changes', async () => {
    const r = await acquireLease(lease, A);
    const before = readdirSync(lease).sort();
    await rejectsWith(handoverLease(lease, { ...B, generation: r.generation }, C), 'E_LEASE_SUPERSEDED');
    await rejectsWith(handoverLease(lease, { ...A, generation: r.generation + 3 }, C), 'E_LEASE_MISSING');
    assert.deepEqual(readdirSync(lease).sort(), before);
  });

  test('a handover racing a takeover: exactly one of them wins generation + 1', async () => {
    const r = await acquireLease(lease, A);
    const results = await Promise.allSettled([
      handoverLease(lease, { ...A, generation: r.generation }, B),
      takeoverLease(lease, C, live(0)),
    ]);
    assert.equal(results.filter((x) => x.status === 'fulfilled').length, 1);
    assert.equal((await readLeaseState(lease)).generation, r.generation + 1);
  });
});

describe('reclaim of a handover nobody adopted (jmigrate live=1, destination silent)', () => {
  test('the giver takes it back at generation + 2; the receiver is superseded at the handed generation', async () => {
    const r = await acquireLease(lease, A);
    const h = await handoverLease(lease, { ...A, generation: r.generation }, B);
    const back = await reclaimHandover(lease, { ...A, generation: r.generation, uuid: 'u-1' }, 'node2');
    assert.equal(back.node, 'node1');
    assert.equal(back.generation, r.generation + 2);
    assert.deepEqual(back.handoverFrom, { node: 'node2', generation: h.generation });
    await rejectsWith(checkLease(lease, { node: 'node2', generation: h.generation, uuid: 'u-1' }), 'E_LEASE_SUPERSEDED');
    assert.equal((await checkLease(lease, { ...A, generation: back.generation })).node, 'node1');
  });

  test('the receiver handed it back first: that record is the giver\'s, nothing more is written', async () => {
    const r = await acquireLease(lease, A);
    const h = await handoverLease(lease, { ...A, generation: r.generation }, B);
    const returned = await handoverLease(lease, { ...B, generation: h.generation }, A);
    const before = readdirSync(lease).sort();
    const back = await reclaimHandover(lease, { ...A, generation: r.generation, uuid: 'u-1' }, 'node2');
    assert.equal(back.generation, returned.generation);
    assert.equal(back.node, 'node1');
    assert.deepEqual(readdirSync(lease).sort(), before);
  });

  test('refused, changing nothing, once the receiver passed it on, or for a handover the giver did not make', async () => {
    const r = await acquireLease(lease, A);
    const h = await handoverLease(lease, { ...A, generation: r.generation }, B);
    await handoverLease(lease, { ...B, generation: h.generation }, C);
    let before = readdirSync(lease).sort();
    await rejectsWith(reclaimHandover(lease, { ...A, generation: r.generation, uuid: 'u-1' }, 'node2'), 'E_LEASE_SUPERSEDED');
    assert.deepEqual(readdirSync(lease).sort(), before);
    // node3 holds it now (handed by node2): node1 cannot claim that handover as its own
    const cur = await readLeaseState(lease);
    before = readdirSync(lease).sort();
    await rejectsWith(reclaimHandover(lease, { ...A, generation: cur.generation - 1, uuid: 'u-1' }, 'node3'), 'E_LEASE_SUPERSEDED');
    assert.deepEqual(readdirSync(lease).sort(), before);
  });
});

describe('release', () => {
  test('release by a non-holder is refused and the lease stays', async () => {
    const r = await acquireLease(lease, A);
    const e = await rejectsWith(releaseLease(lease, { node: 'node2', generation: r.generation }), 'E_LEASE_SUPERSEDED');
    assert.match(e.message, /node1/);
    await rejectsWith(releaseLease(lease, { node: 'node1', generation: r.generation - 1 }), 'E_LEASE_SUPERSEDED');
    assert.equal((await checkLease(lease, { node: 'node1', generation: r.generation })).node, 'node1');
  });

  test('release by the holder frees it; a second release and a release without lease are no-ops', async () => {
    const r = await acquireLease(lease, A);
    await releaseLease(lease, { node: 'node1', generation: r.generation });
    assert.equal(await readLease(lease), undefined);
    const st = await readLeaseState(lease);
    assert.equal(st.generation, r.generation + 1);
    assert.equal(st.released?.node, 'node1');
    await releaseLease(lease, { node: 'node1', generation: r.generation });
    await releaseLease(join(root, 'never', 'lease'), { node: 'node1', generation: 1 });
    await rejectsWith(checkLease(lease, { node: 'node1', generation: r.generation }), 'E_LEASE_SUPERSEDED');
  });

  test('the generation only grows across release and acquire; the old holder stays superseded', async () => {
    const g1 = await acquireLease(lease, A);
    await releaseLease(lease, { node: 'node1', generation: g1.generation });
    const g2 = await acquireLease(lease, B);
    assert.ok(g2.generation > g1.generation);
    await releaseLease(lease, { node: 'node2', generation: g2.generation });
    const g3 = await acquireLease(lease, A);
    assert.ok(g3.generation > g2.generation);
    // node1's stale generation 1 never becomes current again, although node1 owns the env again
    await rejectsWith(checkLease(lease, { node: 'node1', generation: g1.generation }), 'E_LEASE_SUPERSEDED');
    await rejectsWith(releaseLease(lease, { node: 'node2', generation: g2.generation }), 'E_LEASE_SUPERSEDED');
    assert.equal((await checkLease(lease, { node: 'node1', generation: g3.generation })).generation, g3.generation);
  });

  test('old generations are pruned; a very old holder is still told it is superseded', async () => {
    const first = await acquireLease(lease, A);
    let g = first.generation;
    for (let i = 0; i < 10; i++) {
      await releaseLease(lease, { node: i % 2 ? 'node2' : 'node1', generation: g });
      g = (await acquireLease(lease, i % 2 ? A : B)).generation;
    }
    const gens = readdirSync(lease).filter((f) => f.startsWith('gen.'));
    assert.ok(gens.length <= KEEP_GENERATIONS + 1, `kept ${gens.join(' ')}`);
    const hist = await readLeaseHistory(lease);
    assert.deepEqual(hist.map((h) => h.generation), gens.map((f) => Number(f.slice(4))).sort((a, b) => a - b), 'the history is what is kept, oldest first');
    assert.equal(hist.at(-1)!.kind, 'claim');
    assert.ok(!readdirSync(lease).some((f) => f.startsWith('.')), 'no temp file is left');
    await rejectsWith(checkLease(lease, { node: 'node1', generation: first.generation }), 'E_LEASE_SUPERSEDED');
    assert.equal((await readLeaseState(lease)).generation, g);
  });
});

describe('takeover (liveness: the holder node\'s heartbeat)', () => {
  test('without force it is refused with a hint to use --force', async () => {
    await acquireLease(lease, A);
    const e = await rejectsWith(takeoverLease(lease, B, live(30, { force: false })), 'E_LEASE_HELD');
    assert.match(e.message, /node1/);
    assert.match(e.hint ?? '', /--force/);
  });

  test('a free lease is simply acquired, without waiting', async () => {
    let slept = 0;
    const r = await takeoverLease(lease, B, live(30, { force: false, sleep: async (ms) => { slept += ms; } }));
    assert.equal(r.node, 'node2');
    assert.equal(slept, 0);
  });

  test('is refused when the holder node heartbeats while watching; generation unchanged', async () => {
    const r = await acquireLease(lease, A);
    await beat('node1');
    let calls = 0;
    const sleep = async (): Promise<void> => { if (++calls === 3) await beat('node1'); };
    const e = await rejectsWith(takeoverLease(lease, B, live(30, { sleep })), 'E_LEASE_HELD');
    assert.match(e.message, /node1/);
    assert.match(e.hint ?? '', /alive/);
    assert.equal(calls, 3, 'refused as soon as the heartbeat moved');
    assert.equal((await checkLease(lease, { node: 'node1', generation: r.generation })).node, 'node1');
  });

  test('one beat seen in the first 1.5 s (arriving late through a DFS cache) restarts the watch; a beat after that refuses', async () => {
    const r = await acquireLease(lease, A);
    await beat('node1');
    let slept = 0;
    let calls = 0;
    // the late beat shows at the first poll (500 ms): watched again for the whole 3 s, then taken
    const t = await takeoverLease(lease, B, live(3, { pollMs: 500, sleep: async (ms) => { slept += ms; if (++calls === 1) await beat('node1'); } }));
    assert.equal(t.generation, r.generation + 1);
    assert.equal(slept, 500 + 3000, 'a whole watchSec after the late beat');
    // an alive holder: the early beat restarts the watch, its next beat (a renewal) refuses
    const lease2 = join(lease, '..', 'web2');
    const r2 = await acquireLease(lease2, A);
    await beat('node1');
    calls = 0;
    const e = await rejectsWith(takeoverLease(lease2, B, live(3, { pollMs: 500, sleep: async () => { ++calls; if (calls === 1 || calls === 3) await beat('node1'); } })), 'E_LEASE_HELD');
    assert.match(e.hint ?? '', /alive/);
    assert.equal(calls, 3);
    assert.equal((await checkLease(lease2, { node: 'node1', generation: r2.generation })).node, 'node1');
  });

  test('another node\'s heartbeat does not keep the holder alive', async () => {
    const r = await acquireLease(lease, A);
    await beat('node1');
    const t = await takeoverLease(lease, B, live(3, { sleep: async () => { await beat('node3'); } }));
    assert.equal(t.generation, r.generation + 1);
  });

  test('of a silent holder watches watchSec, then raises the generation; the old holder is superseded', async () => {
    const r = await acquireLease(lease, A);
    await beat('node1');
    let slept = 0;
    const waits: number[] = [];
    const t = await takeoverLease(lease, B, live(5, { pollMs: 1000, sleep: async (ms) => { slept += ms; }, onWait: (s) => waits.push(s) }));
    assert.equal(slept, 5000, 'watched exactly lease_ttl');
    assert.deepEqual(waits, [5, 4, 3, 2, 1]);
    assert.equal(t.node, 'node2');
    assert.equal(t.generation, r.generation + 1);
    assert.deepEqual(t.takeoverFrom, { node: 'node1', generation: r.generation });
    assert.equal((await readLease(lease))?.node, 'node2');
    const old = { node: 'node1', generation: r.generation };
    const e = await rejectsWith(checkLease(lease, old), 'E_LEASE_SUPERSEDED');
    assert.match(e.message, /node2/);
    await rejectsWith(releaseLease(lease, old), 'E_LEASE_SUPERSEDED');
    assert.equal((await checkLease(lease, { node: 'node2', generation: t.generation })).node, 'node2');
  });

  test('a holder node that never wrote a heartbeat is silent too', async () => {
    const r = await acquireLease(lease, A);
    const t = await takeoverLease(lease, B, live(2));
    assert.equal(t.generation, r.generation + 1);
  });

  test('is refused when another node takes over while we watch', async () => {
    const r = await acquireLease(lease, A);
    let calls = 0;
    const sleep = async (): Promise<void> => {
      if (++calls === 2) await takeoverLease(lease, C, live(1));
    };
    const e = await rejectsWith(takeoverLease(lease, B, live(10, { sleep })), 'E_LEASE_HELD');
    assert.match(e.message, /node3/);
    assert.equal((await readLease(lease))?.generation, r.generation + 1);
  });

  test('concurrent takeovers of a silent lease: exactly one winner', async () => {
    const r = await acquireLease(lease, A);
    const nodes = Array.from({ length: 8 }, (_, i) => ({ node: `t${i}`, uuid: 'u-1' }));
    const results = await Promise.allSettled(nodes.map((w) => takeoverLease(lease, w, live(2))));
    const won = results.filter((x) => x.status === 'fulfilled') as PromiseFulfilledResult<{ node: string; generation: number }>[];
    assert.equal(won.length, 1);
    assert.equal(won[0]!.value.generation, r.generation + 1);
    for (const x of results) if (x.status === 'rejected') assert.equal((x.reason as BerthError).code, 'E_LEASE_HELD');
    assert.equal((await readLease(lease))?.node, won[0]!.value.node);
  });

  test('the watch alone changes nothing; the claim after it takes the next generation', async () => {
    const r = await acquireLease(lease, A);
    const before = readdirSync(lease).sort();
    const w = await watchHolder(lease, live(2));
    assert.equal(w.holder?.node, 'node1');
    assert.deepEqual(readdirSync(lease).sort(), before, 'watching wrote nothing');
    const c = await claimFrom(lease, B, w.holder!);
    assert.equal(c?.generation, r.generation + 1);
    // a second claim from the same proof loses: the generation moved
    await rejectsWith(claimFrom(lease, C, w.holder!), 'E_LEASE_HELD');
  });

  test('a watch is aborted by its signal', async () => {
    await acquireLease(lease, A);
    const ac = new AbortController();
    let calls = 0;
    const p = watchHolder(lease, { ...live(10, { sleep: async () => { if (++calls === 2) ac.abort(); } }), signal: ac.signal });
    await assert.rejects(p, (e: Error) => e.name === 'AbortError');
  });

  test('watchSeconds: the writer\'s longer lease_ttl wins over the watcher\'s', async () => {
    const b = await beat('node1', 30);
    assert.equal(watchSeconds(JSON.stringify(b), 6), 30);
    assert.equal(watchSeconds(JSON.stringify({ ...b, leaseTtl: 3 }), 6), 6);
    assert.equal(watchSeconds('', 6), 6);
    assert.equal(watchSeconds('garbage', 6), 6);
  });
});

describe('seeding a record from a legacy log', () => {
  test('an empty record gets the generation as written; a second seed is a no-op; a wrong one is refused', async () => {
    const text = JSON.stringify({ kind: 'claim', node: 'node1', uuid: 'u-1', generation: 5, acquiredAt: '2026-01-01T00:00:00Z' });
    assert.equal(await seedLease(lease, 5, text), true);
    assert.equal(await seedLease(lease, 5, text), false);
    assert.equal((await checkLease(lease, { node: 'node1', generation: 5, uuid: 'u-1' })).generation, 5);
    await rejectsWith(seedLease(lease, 6, text), 'E_LEASE_CORRUPT', 1);
    const other = join(lease, '..', 'other');
    await acquireLease(other, A);
    await rejectsWith(seedLease(other, 5, text), 'E_LEASE_CORRUPT', 1);
    assert.deepEqual(readdirSync(other), ['gen.1']);
  });
});

describe('claims seen between their exclusive create and their write', () => {
  test('a reader waits for a claim that is being written', async () => {
    mkdirSync(lease, { recursive: true });
    writeFileSync(join(lease, 'gen.1'), ''); // created (O_EXCL) but not written yet
    const rec = JSON.stringify({ kind: 'claim', node: 'node7', uuid: 'u-1', generation: 1, acquiredAt: new Date().toISOString() });
    setTimeout(() => writeFileSync(join(lease, 'gen.1'), rec.slice(0, 20)), 30); // partly written
    setTimeout(() => writeFileSync(join(lease, 'gen.1'), rec + '\n'), 120);
    const r = await readLease(lease);
    assert.equal(r?.node, 'node7');
    assert.equal(r?.incomplete, undefined);
    const e = await rejectsWith(acquireLease(lease, A), 'E_LEASE_HELD');
    assert.match(e.message, /node7/);
  });

  test('an unfinished claim (its writer died) is refused to acquire and replaced by a forced takeover', async () => {
    const saved = leaseTuning.settleMs;
    leaseTuning.settleMs = 100;
    try {
      mkdirSync(lease, { recursive: true });
      writeFileSync(join(lease, 'gen.1'), '');
      assert.equal((await readLease(lease))?.incomplete, true);
      const e = await rejectsWith(acquireLease(lease, A), 'E_LEASE_HELD');
      assert.match(e.message, /unfinished claim at generation 1/);
      await rejectsWith(takeoverLease(lease, A, live(1, { force: false })), 'E_LEASE_HELD');
      const t = await takeoverLease(lease, A, live(1));
      assert.equal(t.generation, 2);
      assert.equal(t.node, 'node1');
      assert.equal((await checkLease(lease, { node: 'node1', generation: 2 })).node, 'node1');
    } finally {
      leaseTuning.settleMs = saved;
    }
  });

  test('a holder is superseded as soon as the next generation exists, even before it is written', async () => {
    const r = await acquireLease(lease, A);
    writeFileSync(join(lease, `gen.${r.generation + 1}`), '');
    const saved = leaseTuning.settleMs;
    leaseTuning.settleMs = 100;
    try {
      await rejectsWith(checkLease(lease, { node: 'node1', generation: r.generation }), 'E_LEASE_SUPERSEDED');
      await rejectsWith(releaseLease(lease, { node: 'node1', generation: r.generation }), 'E_LEASE_SUPERSEDED');
    } finally {
      leaseTuning.settleMs = saved;
    }
  });
});
