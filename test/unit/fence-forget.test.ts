/**
 * forgetFencedEnv (src/ownership/fence.ts): the stale row of an env this node was fenced from
 * goes when its new owner removed it (record gone, ownership directory there); it stays when
 * nothing proves that (no fence marker, or the ownership directory itself missing).
 */
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, test } from 'node:test';
import type { Engine, EngineInfo } from '../../src/engines/types.js';
import { initenv } from '../../src/initenv.js';
import { createEnv } from '../../src/lifecycle/create.js';
import { openNode, type NodeCtx } from '../../src/node.js';
import { forgetFencedEnv, readFenceMarker, writeFenceMarker } from '../../src/ownership/fence.js';

const root = mkdtempSync(join(tmpdir(), 'berth-forget-'));
after(() => rmSync(root, { recursive: true, force: true }));
const INFO: EngineInfo = { name: 'fake', summary: 'fake', platforms: ['linux', 'freebsd'], root: 'tree', exec: false, console: 'none', liveMigration: false, network: ['host'], verified: 'live', family: 'j', settings: [] };
const engine: Engine = { info: INFO, name: 'fake', validate() {}, async start() { return { jid: 1 }; }, async stop() {}, async isRunning() { return false; }, async cleanup() {} };
let ctx: NodeCtx;
let n = 0;
beforeEach(async () => {
  process.env.BERTH_PLATFORM = 'linux';
  const wd = join(root, `wd${++n}`);
  await initenv({ workdir: wd, nodename: 'node1' });
  for (const d of ['etc', 'root', 'tmp', 'home', 'var', 'usr/local']) mkdirSync(join(wd, 'bases', 'b', d), { recursive: true });
  ctx = openNode(wd, { engine: async () => engine, mounts: { platform: 'linux', concurrent: true, async bind() {}, async mount() {}, async unmount() {}, async list() { return []; }, async fsType() { return 'ext4'; } }, runMonitor: false });
  await createEnv(ctx, { jname: 'x', emulator: 'fake', settings: { base: 'b' } });
});
const fence = async () => {
  const row = ctx.inv.get('x')!;
  await writeFenceMarker(ctx.wd, { jname: 'x', uuid: row.uuid, generation: row.generation, reason: 'E_LEASE_SUPERSEDED', at: new Date().toISOString(), stopped: false, owner: 'node2' });
};

test('fenced, then removed by its new owner (record gone): the stale row and the marker go', async () => {
  await fence();
  rmSync(ctx.wd.env('x').lease, { recursive: true });
  assert.equal(await forgetFencedEnv(ctx, 'x'), true);
  assert.equal(ctx.inv.get('x'), undefined);
  assert.equal(readFenceMarker(ctx.wd, 'x'), undefined);
});

test('record gone but never fenced: the row stays', async () => {
  rmSync(ctx.wd.env('x').lease, { recursive: true });
  assert.equal(await forgetFencedEnv(ctx, 'x'), false);
  assert.ok(ctx.inv.get('x'));
});

test('fenced, but the ownership directory is not there (not mounted): the row stays', async () => {
  await fence();
  renameSync(join(ctx.wd.leaseDir, 'envs'), join(ctx.wd.leaseDir, 'envs.away'));
  assert.equal(await forgetFencedEnv(ctx, 'x'), false);
  assert.ok(ctx.inv.get('x'));
});

test('fenced while its record is still there and current for this node: the row stays', async () => {
  await fence();
  assert.equal(await forgetFencedEnv(ctx, 'x'), false);
  assert.ok(ctx.inv.get('x'));
});
