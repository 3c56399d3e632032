/**
 * Unit tests of src/lease.ts on a local temp dir (the GlusterFS race tests are in
 * test/integration/lease-gluster.test.ts).
 */
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, test } from 'node:test';
import { BerthError } from '../../src/errors.js';
import {
  acquireLease, checkLease, KEEP_GENERATIONS, leaseTuning, readLease, readLeaseState, releaseLease, renewLease, takeoverLease,
} from '../../src/lease.js';

const root = mkdtempSync(join(tmpdir(), 'berth-lease-unit-'));
after(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
let lease: string;
beforeEach(() => {
  const sysdir = join(root, `env${++n}`);
  mkdirSync(sysdir);
  lease = join(sysdir, 'lease');
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
    assert.equal(read?.heartbeat, r.heartbeat);
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

  test('a missing sysdir is an error, not a silent mkdir -p', async () => {
    const e = await rejectsWith(acquireLease(join(root, 'no-such-sysdir', 'lease'), A), 'E_LEASE_IO', 1);
    assert.match(e.message, /system dir does not exist/);
  });

  test('a lease path that is a regular file is reported, not overwritten', async () => {
    writeFileSync(lease, 'node=x\n');
    await rejectsWith(acquireLease(lease, A), 'E_LEASE_CORRUPT', 1);
    assert.equal(readFileSync(lease, 'utf8'), 'node=x\n');
  });
});

describe('renew and check', () => {
  test('renew moves the heartbeat; check confirms the holder', async () => {
    const r = await acquireLease(lease, A);
    const r1 = await renewLease(lease, { node: 'node1', generation: r.generation });
    const r2 = await renewLease(lease, { node: 'node1', uuid: 'u-1', generation: r.generation });
    assert.ok(r1.heartbeat > r.heartbeat);
    assert.ok(r2.heartbeat > r1.heartbeat);
    assert.equal((await readLease(lease))?.heartbeat, r2.heartbeat);
    const c = await checkLease(lease, { node: 'node1', generation: r.generation, uuid: 'u-1' });
    assert.equal(c.generation, r.generation);
  });

  test('check by another node, another generation or another uuid fails with exit 4', async () => {
    const r = await acquireLease(lease, A);
    await rejectsWith(checkLease(lease, { node: 'node2', generation: r.generation }), 'E_LEASE_SUPERSEDED');
    await rejectsWith(checkLease(lease, { node: 'node1', generation: r.generation, uuid: 'other' }), 'E_LEASE_SUPERSEDED');
    await rejectsWith(checkLease(lease, { node: 'node1', generation: r.generation + 5 }), 'E_LEASE_MISSING');
    await rejectsWith(checkLease(join(root, 'nothing-here', 'lease'), { node: 'node1', generation: 1 }), 'E_LEASE_MISSING');
    await rejectsWith(renewLease(lease, { node: 'node2', generation: r.generation }), 'E_LEASE_SUPERSEDED');
  });
});

describe('renew with a memo (the agent: gen.<N> is read once, then only looked up)', () => {
  test('the counter keeps growing and no temp file is left', async () => {
    const g = await acquireLease(lease, A);
    const memo = {};
    const counters: number[] = [];
    for (let i = 0; i < 4; i++) counters.push((await renewLease(lease, { ...A, generation: g.generation }, memo)).heartbeat);
    assert.deepEqual(counters, [1, 2, 3, 4]);
    assert.equal((await readLease(lease))!.heartbeat, 4);
    assert.deepEqual(readdirSync(lease).filter((f) => f.startsWith('.')), []);
  });

  test('a takeover is still seen: E_LEASE_SUPERSEDED', async () => {
    const g = await acquireLease(lease, A);
    const memo = {};
    await renewLease(lease, { ...A, generation: g.generation }, memo);
    await renewLease(lease, { ...A, generation: g.generation }, memo);
    await takeoverLease(lease, B, { ttlSec: 0, force: true, sleep: noSleep });
    await rejectsWith(renewLease(lease, { ...A, generation: g.generation }, memo), 'E_LEASE_SUPERSEDED');
  });

  test('a lease wiped and created again at the same generation by another node is not renewed', async () => {
    const g = await acquireLease(lease, A);
    const memo = {};
    await renewLease(lease, { ...A, generation: g.generation }, memo);
    await renewLease(lease, { ...A, generation: g.generation }, memo);
    rmSync(lease, { recursive: true });
    const other = await acquireLease(lease, { node: 'node2', uuid: 'u-2' });
    assert.equal(other.generation, g.generation);
    await rejectsWith(renewLease(lease, { ...A, generation: g.generation }, memo), 'E_LEASE_SUPERSEDED');
    assert.equal((await readLease(lease))!.heartbeat, 0, 'the other node\'s lease got no heartbeat from node1');
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
    assert.ok(!readdirSync(lease).some((f) => f.startsWith('.')), 'no temp file is left');
    await rejectsWith(checkLease(lease, { node: 'node1', generation: first.generation }), 'E_LEASE_SUPERSEDED');
    assert.equal((await readLeaseState(lease)).generation, g);
  });
});

describe('takeover', () => {
  test('without force it is refused with a hint to use --force', async () => {
    await acquireLease(lease, A);
    const e = await rejectsWith(takeoverLease(lease, B, { ttlSec: 30, force: false, sleep: noSleep }), 'E_LEASE_HELD');
    assert.match(e.message, /node1/);
    assert.match(e.hint ?? '', /--force/);
  });

  test('a free lease is simply acquired, without waiting', async () => {
    let slept = 0;
    const r = await takeoverLease(lease, B, { ttlSec: 30, force: false, sleep: async (ms) => { slept += ms; } });
    assert.equal(r.node, 'node2');
    assert.equal(slept, 0);
  });

  test('is refused when the heartbeat moves while watching; generation unchanged', async () => {
    const r = await acquireLease(lease, A);
    let calls = 0;
    const sleep = async (): Promise<void> => {
      if (++calls === 3) await renewLease(lease, { node: 'node1', generation: r.generation });
    };
    const e = await rejectsWith(takeoverLease(lease, B, { ttlSec: 30, force: true, sleep }), 'E_LEASE_HELD');
    assert.match(e.message, /node1/);
    assert.match(e.hint ?? '', /alive/);
    assert.equal(calls, 3, 'refused as soon as the heartbeat moved');
    assert.equal((await checkLease(lease, { node: 'node1', generation: r.generation })).node, 'node1');
  });

  test('of a silent lease watches ttlSec, then raises the generation; the old holder is fenced', async () => {
    const r = await acquireLease(lease, A);
    let slept = 0;
    const waits: number[] = [];
    const t = await takeoverLease(lease, B, {
      ttlSec: 5, force: true, pollMs: 1000, sleep: async (ms) => { slept += ms; }, onWait: (s) => waits.push(s),
    });
    assert.equal(slept, 5000, 'watched exactly lease_ttl');
    assert.deepEqual(waits, [5, 4, 3, 2, 1]);
    assert.equal(t.node, 'node2');
    assert.equal(t.generation, r.generation + 1);
    assert.deepEqual(t.takeoverFrom, { node: 'node1', generation: r.generation });
    assert.equal((await readLease(lease))?.node, 'node2');
    const old = { node: 'node1', generation: r.generation };
    const e = await rejectsWith(checkLease(lease, old), 'E_LEASE_SUPERSEDED');
    assert.match(e.message, /node2/);
    await rejectsWith(renewLease(lease, old), 'E_LEASE_SUPERSEDED');
    await rejectsWith(releaseLease(lease, old), 'E_LEASE_SUPERSEDED');
    assert.equal((await checkLease(lease, { node: 'node2', generation: t.generation })).node, 'node2');
  });

  test('is refused when another node takes over while we watch', async () => {
    const r = await acquireLease(lease, A);
    let calls = 0;
    const sleep = async (): Promise<void> => {
      if (++calls === 2) await takeoverLease(lease, C, { ttlSec: 1, force: true, sleep: noSleep });
    };
    const e = await rejectsWith(takeoverLease(lease, B, { ttlSec: 10, force: true, sleep }), 'E_LEASE_HELD');
    assert.match(e.message, /node3/);
    assert.equal((await readLease(lease))?.generation, r.generation + 1);
  });

  test('concurrent takeovers of a silent lease: exactly one winner', async () => {
    const r = await acquireLease(lease, A);
    const nodes = Array.from({ length: 8 }, (_, i) => ({ node: `t${i}`, uuid: 'u-1' }));
    const results = await Promise.allSettled(nodes.map((w) => takeoverLease(lease, w, { ttlSec: 2, force: true, sleep: noSleep })));
    const won = results.filter((x) => x.status === 'fulfilled') as PromiseFulfilledResult<{ node: string; generation: number }>[];
    assert.equal(won.length, 1);
    assert.equal(won[0]!.value.generation, r.generation + 1);
    for (const x of results) if (x.status === 'rejected') assert.equal((x.reason as BerthError).code, 'E_LEASE_HELD');
    assert.equal((await readLease(lease))?.node, won[0]!.value.node);
  });
});

describe('claims seen between their exclusive create and their write', () => {
  test('a reader waits for a claim that is being written', async () => {
    mkdirSync(lease);
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
      mkdirSync(lease);
      writeFileSync(join(lease, 'gen.1'), '');
      assert.equal((await readLease(lease))?.incomplete, true);
      const e = await rejectsWith(acquireLease(lease, A), 'E_LEASE_HELD');
      assert.match(e.message, /unfinished claim at generation 1/);
      await rejectsWith(takeoverLease(lease, A, { ttlSec: 1, force: false, sleep: noSleep }), 'E_LEASE_HELD');
      const t = await takeoverLease(lease, A, { ttlSec: 1, force: true, sleep: noSleep });
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
      await rejectsWith(renewLease(lease, { node: 'node1', generation: r.generation }), 'E_LEASE_SUPERSEDED');
    } finally {
      leaseTuning.settleMs = saved;
    }
  });
});
