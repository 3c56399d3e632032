/**
 * The console's shared cluster view (src/agent/console/app.ts SharedView, ChangeHub): one
 * computation serves every page and event stream of a period; none while no page listens.
 */
import { strict as assert } from 'node:assert';
import { describe, mock, test } from 'node:test';
import { ChangeHub, SharedView, viewChange, viewKeys } from '../../src/agent/console/app.js';
import type { ClusterView } from '../../src/nodes/cluster.js';

type Env = ClusterView['envs'][number];
const env = (jname: string, state: string): Env => ({ jname, uuid: 'u', emulator: 'runc', registered: true, owner: 'n1', generation: 1, state, stateFrom: 'local', running: null, heartbeat: null, ip4_addr: '', local: null, problems: [] });
const viewOf = (state: string, more: Env[] = [], nodeEnvs = 1): ClusterView => ({
  node: 'n1', nodes: [{ name: 'n1', self: true, known: false, answering: null, heartbeat: null, envs: nodeEnvs }],
  envs: [env('a', state), ...more],
});

describe('viewChange', () => {
  test('the rows that changed; null when the set of envs changed; [] when only the nodes did; nothing when the same', () => {
    const k = (v: ClusterView) => viewKeys(v);
    assert.equal(viewChange(k(viewOf('Off', [env('b', 'On')])), k(viewOf('Off', [env('b', 'On')]))), undefined);
    assert.deepEqual(viewChange(k(viewOf('Off', [env('b', 'On')])), k(viewOf('On', [env('b', 'On')]))), { rows: ['a'] });
    assert.deepEqual(viewChange(k(viewOf('Off', [env('b', 'On')])), k(viewOf('On', [env('b', 'Off')]))), { rows: ['a', 'b'] });
    assert.deepEqual(viewChange(k(viewOf('Off', [env('b', 'On')])), k(viewOf('Off', [env('c', 'On')]))), { rows: null }, 'b gone, c new');
    assert.deepEqual(viewChange(k(viewOf('Off')), k(viewOf('Off', [env('b', 'On')]))), { rows: null });
    assert.deepEqual(viewChange(k(viewOf('Off')), k(viewOf('Off', [], 2))), { rows: [] });
    assert.deepEqual(viewChange(undefined, k(viewOf('Off'))), { rows: null });
    const hb = viewOf('Off');
    hb.envs[0]!.heartbeat = { counter: 7 } as Env['heartbeat'];
    const hb2 = viewOf('Off');
    hb2.envs[0]!.heartbeat = { counter: 8 } as Env['heartbeat'];
    assert.deepEqual(viewChange(k(hb), k(hb2)), { rows: ['a'] }, 'the owner\'s heartbeat moved');
  });
});

describe('SharedView', () => {
  test('concurrent askers share one computation; a fresh-enough view is reused; an older one is recomputed', async () => {
    let clock = 1000;
    let n = 0;
    const sv = new SharedView(async () => { n++; await new Promise((r) => setImmediate(r)); return n; }, () => clock);
    const got = await Promise.all([sv.fresh(1000), sv.fresh(1000), sv.fresh(0)]);
    assert.deepEqual(got, [1, 1, 1]);
    assert.equal(sv.computed, 1);
    clock += 500;
    assert.equal(await sv.fresh(1000), 1, 'started 500 ms ago: still fresh');
    assert.equal(await sv.fresh(0), 2, 'nothing started from now on: computed again');
    assert.equal(sv.computed, 2);
    assert.equal(sv.peek(), 2);
  });

  test('a failed computation is not kept', async () => {
    let fail = true;
    const sv = new SharedView(async () => { if (fail) throw new Error('boom'); return 7; });
    await assert.rejects(sv.fresh(1000), /boom/);
    fail = false;
    assert.equal(await sv.fresh(1000), 7);
  });
});

describe('ChangeHub', () => {
  test('one computation per period for all listeners, a change told to each; none while nobody listens', async () => {
    mock.timers.enable({ apis: ['setInterval'] });
    try {
      let state = 'Off';
      let clock = 0;
      const sv = new SharedView(async () => viewOf(state), () => clock);
      await sv.fresh(0); // the page was rendered from this view
      const hub = new ChangeHub(sv, 1000);
      const told: number[] = [0, 0, 0];
      const what: unknown[] = [];
      const offs = told.map((_, i) => hub.listen((c) => { told[i]!++; what.push(c); }));
      const flush = () => new Promise((r) => setImmediate(r));
      const base = sv.computed;
      clock += 1000; mock.timers.tick(1000); await flush();
      assert.equal(sv.computed, base + 1, 'one look for three listeners');
      assert.deepEqual(told, [0, 0, 0], 'nothing changed since the page was rendered');
      state = 'On';
      clock += 1000; mock.timers.tick(1000); await flush();
      assert.equal(sv.computed, base + 2);
      assert.deepEqual(told, [1, 1, 1]);
      assert.deepEqual(what, [{ rows: ['a'] }, { rows: ['a'] }, { rows: ['a'] }], 'each listener is told which row changed');
      for (const off of offs) off();
      clock += 5000; mock.timers.tick(5000); await flush();
      assert.equal(sv.computed, base + 2, 'no look while no page listens');
      hub.close();
    } finally {
      mock.timers.reset();
    }
  });
});
