/**
 * Node heartbeat ages as one node observes them (src/ownership/heartbeat.ts): only this node's clock is used;
 * a first sighting gives a lower bound only, a change seen between two looks gives both bounds;
 * `silent` after lease_ttl without change. Token validation of `node add`.
 */
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { checkToken } from '../../src/nodes/cluster.js';
import { formatHeartbeat, heartbeatView, observe, type NodeBeat } from '../../src/ownership/heartbeat.js';

const beat = (counter: number, at?: string): NodeBeat => ({ node: 'n', boot: 'b', counter, nonce: 'x', at: at ?? '', leaseTtl: 30 });
import { BerthError } from '../../src/errors.js';

describe('heartbeat observations', () => {
  test('first sighting: lower bound only', () => {
    const s = observe(undefined, '3:10:x', 1_000_000);
    assert.deepEqual(s, { key: '3:10:x', seenAt: 1_000_000, after: null, checkedAt: 1_000_000 });
    const v = heartbeatView(s, 1_004_000, 30, beat(10));
    assert.equal(v.ageSec, 4);
    assert.equal(v.ageMaxSec, null);
    assert.equal(v.silent, false);
    assert.equal(formatHeartbeat(v), '>=4s');
  });

  test('unchanged content keeps the first sighting; a change is bounded by the previous look', () => {
    let s = observe(undefined, 'a', 0);
    s = observe(s, 'a', 10_000);
    assert.equal(s.seenAt, 0);
    assert.equal(s.checkedAt, 10_000);
    s = observe(s, 'b', 12_000);
    assert.deepEqual(s, { key: 'b', seenAt: 12_000, after: 10_000, checkedAt: 12_000 });
    const v = heartbeatView(s, 15_000, 30, beat(11, '2030-01-01T00:00:00Z'));
    assert.equal(v.ageSec, 3);
    assert.equal(v.ageMaxSec, 5);
    assert.equal(v.renewedAt, '2030-01-01T00:00:00Z', 'the holder\'s timestamp is shown, never used');
    assert.equal(formatHeartbeat(v), '3s');
  });

  test('silent after lease_ttl seconds without change', () => {
    let s = observe(undefined, 'a', 0);
    s = observe(s, 'b', 1000);
    const v = heartbeatView(s, 1000 + 31_000, 30, beat(1));
    assert.equal(v.silent, true);
    assert.equal(formatHeartbeat(v), '31s silent');
    assert.equal(heartbeatView(s, 1000 + 29_000, 30, beat(1)).silent, false);
    assert.equal(formatHeartbeat(null), '-');
  });
});

describe('node add token', () => {
  test('printable, no spaces, 1..1024; the message never shows the token', () => {
    assert.equal(checkToken('abc123'), 'abc123');
    for (const bad of [undefined, '', 'a b', 'sec\nret', 'x'.repeat(1025), 'é']) {
      assert.throws(() => checkToken(bad), (e: unknown) => e instanceof BerthError && e.exitCode === 2 && (bad === undefined || bad === '' || !e.message.includes(bad)));
    }
  });
});
