/**
 * readRecordDescriptor (src/lifecycle/adopt.ts): a jmigrate destination reads the env's
 * descriptor from its ownership record in the version the source holds (its digest), waiting
 * out a DFS client that still serves the previous version; it refuses another env of that
 * name, a record it does not see, and a version that never shows up.
 */
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Engine, EngineInfo } from '../../src/engines/types.js';
import { initenv } from '../../src/initenv.js';
import { readRecordDescriptor } from '../../src/lifecycle/adopt.js';
import { createEnv } from '../../src/lifecycle/create.js';
import { openNode, type NodeCtx } from '../../src/node.js';
import { recordDescriptorDigest } from '../../src/ownership/leases.js';
import { textDigest } from '../../src/sharedfs.js';

const root = mkdtempSync(join(tmpdir(), 'berth-adopt-record-'));
after(() => rmSync(root, { recursive: true, force: true }));
const INFO: EngineInfo = { name: 'fake', summary: 'fake', platforms: ['linux', 'freebsd'], root: 'tree', exec: false, console: 'none', liveMigration: false, network: ['host'], verified: 'live', family: 'j', settings: [] };
const engine: Engine = { info: INFO, name: 'fake', validate() {}, async start() { return { jid: 1 }; }, async stop() {}, async isRunning() { return false; }, async cleanup() {} };
let ctx: NodeCtx;
let file: string;
before(async () => {
  process.env.BERTH_PLATFORM = 'linux';
  const wd = join(root, 'wd');
  await initenv({ workdir: wd, nodename: 'node1' });
  for (const d of ['etc', 'root', 'tmp', 'home', 'var', 'usr/local']) mkdirSync(join(wd, 'bases', 'b', d), { recursive: true });
  ctx = openNode(wd, { engine: async () => engine, mounts: { platform: 'linux', concurrent: true, async bind() {}, async mount() {}, async unmount() {}, async list() { return []; }, async fsType() { return 'ext4'; } }, runMonitor: false });
  await createEnv(ctx, { jname: 'x', emulator: 'fake', settings: { base: 'b' } });
  file = ctx.wd.env('x').recordDescriptor;
});

test('the version the source holds is read at once; its digest is what the source computes', async () => {
  const digest = recordDescriptorDigest(ctx, 'x');
  assert.equal(digest, textDigest(readFileSync(file, 'utf8')));
  const r = await readRecordDescriptor(ctx, 'x', digest, ctx.inv.get('x')!.uuid);
  assert.equal(r.digest, digest);
  assert.equal(r.conf.jname, 'x');
  assert.equal(r.conf.base, 'b');
});

test('a newer version that shows up late (a cached DFS entry) is waited for, not the old one taken', async () => {
  const old = readFileSync(file, 'utf8');
  const newer = old.replace('jname="x"', 'mnt_start="/hooks/start";\njname="x"');
  const t = setTimeout(() => writeFileSync(file, newer), 400);
  try {
    const r = await readRecordDescriptor(ctx, 'x', textDigest(newer));
    assert.equal(r.conf.mnt_start, '/hooks/start');
    assert.equal(r.digest, textDigest(newer));
  } finally {
    clearTimeout(t);
    writeFileSync(file, old);
  }
});

test('a version that never shows up: E_RECORD_STALE after the wait, naming the node and the file', async () => {
  const t0 = performance.now();
  await assert.rejects(readRecordDescriptor(ctx, 'x', textDigest('not this one')), (e: any) => {
    assert.equal(e.code, 'E_RECORD_STALE');
    assert.equal(e.exitCode, 1);
    assert.match(e.message, /node node1 still reads another version of the descriptor of x/);
    assert.ok(e.message.includes(file), e.message);
    return true;
  });
  assert.ok(performance.now() - t0 >= 2500, 'it waited about 3 s first');
});

test('another env of that name (uuid differs) and a record not seen are E_NOT_SHARED', async () => {
  await assert.rejects(readRecordDescriptor(ctx, 'x', recordDescriptorDigest(ctx, 'x'), 'ffffffff-0000-4000-8000-000000000000'),
    (e: any) => e.code === 'E_NOT_SHARED' && /sees another env named x/.test(e.message));
  await assert.rejects(readRecordDescriptor(ctx, 'x', textDigest('other'), 'ffffffff-0000-4000-8000-000000000000'),
    (e: any) => e.code === 'E_NOT_SHARED' && /sees another env named x/.test(e.message));
  renameSync(file, `${file}.away`);
  try {
    await assert.rejects(readRecordDescriptor(ctx, 'x', undefined), (e: any) => e.code === 'E_NOT_SHARED' && /does not see the ownership record of x/.test(e.message));
  } finally {
    renameSync(`${file}.away`, file);
  }
});
