/** The progress event producer (src/progress.ts watchTree) and the CLI renderer's rate (src/cli/progress.ts). */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { treeSize, watchTree, type ProgressEvent } from '../../src/progress.js';
import { progressRenderer, rate } from '../../src/cli/progress.js';

const dir = mkdtempSync(join(tmpdir(), 'deb-progress-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('watchTree', () => {
  test('reports the growing size of the tree, with the total, and a final event on stop', async () => {
    const d = mkdtempSync(join(dir, 'grow-'));
    const ev: ProgressEvent[] = [];
    const w = watchTree(d, (e) => ev.push(e), { phase: 'copying', total: 3000, intervalMs: 20 });
    assert.equal(ev.length, 1, 'one event at once');
    assert.deepEqual(ev[0], { phase: 'copying', done: 0, total: 3000, unit: 'bytes' });
    writeFileSync(join(d, 'a'), Buffer.alloc(1000));
    await sleep(120);
    writeFileSync(join(d, 'b'), Buffer.alloc(2000));
    await sleep(120);
    w.stop();
    w.stop(); // idempotent
    const last = ev.at(-1)!;
    assert.deepEqual(last, { phase: 'copying', done: 3000, total: 3000, unit: 'bytes', final: true });
    assert.equal(ev.filter((e) => e.final).length, 1);
    assert.ok(ev.some((e) => e.done === 1000), 'an event between the two writes');
    const dones = ev.map((e) => e.done);
    assert.deepEqual(dones, [...dones].sort((a, b) => a - b), 'never goes back');
  });

  test('a tree that outgrows the expected total raises the total; no total stays undefined', async () => {
    const d = mkdtempSync(join(dir, 'over-'));
    writeFileSync(join(d, 'a'), Buffer.alloc(500));
    const ev: ProgressEvent[] = [];
    watchTree(d, (e) => ev.push(e), { phase: 'x', total: 100 }).stop();
    assert.deepEqual(ev.map((e) => [e.done, e.total]), [[500, 500], [500, 500]]);
    const ev2: ProgressEvent[] = [];
    watchTree(d, (e) => ev2.push(e), { phase: 'extracting' }).stop();
    assert.equal(ev2.at(-1)!.total, undefined);
    assert.equal(ev2.at(-1)!.done, 500);
  });

  test('without a callback nothing is measured and stop() is harmless', () => {
    const w = watchTree(join(dir, 'does-not-exist'), undefined, { phase: 'x' });
    w.stop();
    assert.equal(treeSize(join(dir, 'does-not-exist')), 0);
  });
});

describe('CLI renderer', () => {
  test('rate is MiB per second between the first and the latest sample', () => {
    assert.equal(rate(undefined, { t: 1000, done: 5 }), 0);
    assert.equal(rate({ t: 0, done: 0 }, { t: 2000, done: 4 * 1048576 }), 2);
  });

  test('not interactive (no terminal, or --json): no callback at all, so the library measures nothing', async () => {
    const r = await progressRenderer({ interactive: false, verbose: true, note: () => undefined });
    assert.equal(r.on, undefined);
    r.stop();
  });
});
