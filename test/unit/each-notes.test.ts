/** forEachEnv (src/cli/each.ts): a result's `notes` (jremove's disks it left) are printed under its line and kept in the JSON result. */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { forEachEnv } from '../../src/cli/each.js';

test('a result\'s notes are printed under its line, one each, and kept in the data', async () => {
  const one = await forEachEnv(['vm2'], 'removed', async () => ({ removed: [], notes: ['rbd/x left: not made for vm2'] }));
  assert.equal(one.text, 'removed: vm2\n  note: rbd/x left: not made for vm2');
  assert.deepEqual((one.data as { results: { notes: string[] }[] }).results[0]!.notes, ['rbd/x left: not made for vm2']);
  const two = await forEachEnv(['a', 'b'], 'removed', async (j) => (j === 'b' ? { notes: ['n1', 'n2'] } : {}));
  assert.equal(two.text, 'removed: a\nremoved: b\n  note: n1\n  note: n2');
});
