/**
 * What the run monitor does with a guest its engine holds halted (src/lifecycle/guest-end.ts),
 * over a fake VM engine injected into openNode: on_poweroff=restart / on_crash=restart power it
 * on again in the same run (same run id, same jid, no teardown), at most RESTART_LIMIT times
 * in RESTART_WINDOW_MS (the clock is the test's); destroy, a restart past the bound, a lost
 * lease and a failing restart tear the run down once; a stop that claimed the run first wins.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, test } from 'node:test';
import { BerthError } from '../../src/errors.js';
import type { Engine, EngineEnv, EngineInfo } from '../../src/engines/types.js';
import { initenv } from '../../src/initenv.js';
import { createEnv } from '../../src/lifecycle/create.js';
import { handleGuestEnd, RESTART_LIMIT, RESTART_WINDOW_MS } from '../../src/lifecycle/guest-end.js';
import { startEnv } from '../../src/lifecycle/start.js';
import { STATUS } from '../../src/inventory.js';
import type { MountEntry, MountPrimitive } from '../../src/mounts/types.js';
import { openNode, type NodeCtx } from '../../src/node.js';
import { handoverLease } from '../../src/ownership/record.js';

const root = mkdtempSync(join(tmpdir(), 'berth-guest-end-'));
after(() => rmSync(root, { recursive: true, force: true }));

const INFO: EngineInfo = {
  name: 'fakevm', summary: 'a fake VM engine', platforms: ['linux', 'freebsd'], root: 'disk', exec: false, console: 'serial',
  liveMigration: false, network: ['tap'], verified: 'live', family: 'b',
  settings: ['on_poweroff', 'on_reboot', 'on_crash'].map((key) => ({ key, help: key })),
};

let calls: string[] = [];

/** Runs nothing; restartGuest is recorded (and fails when told to). */
class FakeVmEngine implements Engine {
  readonly info = INFO;
  readonly name = 'fakevm';
  failRestart = false;
  validate(): void {}
  async create(env: EngineEnv) { writeFileSync(join(env.paths.data, 'dsk1.vhd'), ''); }
  async start() { return { jid: 4242 }; }
  async stop(env: EngineEnv) { calls.push(`stop ${env.jname}`); }
  async isRunning() { return true; }
  async cleanup(env: EngineEnv) { calls.push(`cleanup ${env.jname}`); }
  async restartGuest(env: EngineEnv) {
    calls.push(`restart ${env.jname}`);
    if (this.failRestart) throw new BerthError('E_QMP', 'qemu did not answer', 5);
  }
}

class NoMounts implements MountPrimitive {
  readonly platform = 'linux' as const;
  readonly concurrent = true;
  async bind() {}
  async mount() {}
  async unmount() {}
  async list(): Promise<MountEntry[]> { return []; }
  async fsType() { return 'ext4'; }
}

let ctx: NodeCtx;
let engine: FakeVmEngine;
let n = 0;

before(() => { process.env.BERTH_PLATFORM = 'linux'; });
beforeEach(async () => {
  const wd = join(root, `wd${++n}`);
  await initenv({ workdir: wd, nodename: 'node1' });
  engine = new FakeVmEngine();
  ctx = openNode(wd, { engine: async () => engine, mounts: new NoMounts(), runMonitor: false });
  calls = [];
});

async function running(jname: string, settings: Record<string, string>): Promise<string> {
  await createEnv(ctx, { jname, emulator: 'fakevm', settings });
  await startEnv(ctx, jname);
  calls = [];
  return ctx.inv.get(jname)!.run_id!;
}

test(`on_poweroff=restart: restarted in the same run up to ${RESTART_LIMIT} times in ${RESTART_WINDOW_MS / 1000} s; the next poweroff in that window tears it down once`, async () => {
  const runId = await running('vm1', { on_poweroff: 'restart' });
  const history: number[] = [];
  const t0 = 1_000_000;
  for (let i = 1; i <= RESTART_LIMIT; i++) {
    const r = await handleGuestEnd(ctx, 'vm1', runId, 'poweroff', history, t0 + i * 1000);
    assert.equal(r.action, 'restarted');
    assert.equal(r.why, `on_poweroff=restart, ${i} of ${RESTART_LIMIT} in ${RESTART_WINDOW_MS / 1000} s`);
    const row = ctx.inv.get('vm1')!;
    assert.equal(row.status, STATUS.ON);
    assert.equal(row.run_id, runId, 'the same run');
    assert.equal(row.jid, 4242);
    assert.equal(row.claim_pid, 0);
  }
  assert.deepEqual(calls, Array(RESTART_LIMIT).fill('restart vm1'));
  calls = [];
  const r = await handleGuestEnd(ctx, 'vm1', runId, 'poweroff', history, t0 + (RESTART_LIMIT + 1) * 1000);
  assert.equal(r.action, 'destroyed');
  assert.match(r.why, new RegExp(`restarted ${RESTART_LIMIT} times in the last 60 s`));
  assert.deepEqual(calls, ['stop vm1', 'cleanup vm1'], 'torn down, not restarted');
  assert.equal(ctx.inv.get('vm1')!.status, STATUS.OFF);
  assert.equal((await handleGuestEnd(ctx, 'vm1', runId, 'poweroff', history)).action, 'none', 'a second report of the same run does nothing');
});

test('restarts further apart than the window are never bounded', async () => {
  const runId = await running('vm2', { on_poweroff: 'restart' });
  const history: number[] = [];
  for (let i = 0; i < RESTART_LIMIT * 3; i++) {
    assert.equal((await handleGuestEnd(ctx, 'vm2', runId, 'poweroff', history, i * (RESTART_WINDOW_MS / 2))).action, 'restarted', `restart ${i + 1}`);
  }
  assert.equal(ctx.inv.get('vm2')!.status, STATUS.ON);
});

test('on_crash decides a crash, on_poweroff a poweroff: destroy tears the run down', async () => {
  const runId = await running('vm3', { on_poweroff: 'restart', on_crash: 'destroy' });
  const r = await handleGuestEnd(ctx, 'vm3', runId, 'crash', []);
  assert.deepEqual(r, { action: 'destroyed', why: 'on_crash=destroy' });
  assert.deepEqual(calls, ['stop vm3', 'cleanup vm3']);
  const run4 = await running('vm4', { on_crash: 'restart' });
  assert.equal((await handleGuestEnd(ctx, 'vm4', run4, 'crash', [])).action, 'restarted');
  assert.deepEqual((await handleGuestEnd(ctx, 'vm4', run4, 'poweroff', [])), { action: 'destroyed', why: 'on_poweroff=destroy' });
});

test('a node that lost the lease does not restart the guest: torn down', async () => {
  const runId = await running('vm5', { on_poweroff: 'restart' });
  const row = ctx.inv.get('vm5')!;
  await handoverLease(ctx.wd.env('vm5').lease, { node: 'node1', generation: row.generation, uuid: row.uuid }, { node: 'node2', uuid: row.uuid });
  const r = await handleGuestEnd(ctx, 'vm5', runId, 'poweroff', []);
  assert.equal(r.action, 'destroyed');
  assert.match(r.why, /does not hold the lease/);
  assert.deepEqual(calls, ['stop vm5', 'cleanup vm5']);
});

test('a failing restart tears the run down; a stop that claimed the run first wins', async () => {
  const runId = await running('vm6', { on_poweroff: 'restart' });
  engine.failRestart = true;
  const r = await handleGuestEnd(ctx, 'vm6', runId, 'poweroff', []);
  assert.equal(r.action, 'destroyed');
  assert.match(r.why, /the restart failed: qemu did not answer/);
  assert.deepEqual(calls, ['restart vm6', 'stop vm6', 'cleanup vm6']);
  assert.equal(ctx.inv.get('vm6')!.status, STATUS.OFF);

  engine.failRestart = false;
  await startEnv(ctx, 'vm6');
  const run2 = ctx.inv.get('vm6')!.run_id!;
  assert.ok(ctx.inv.claimTeardown('vm6', run2), 'a bstop claims the run');
  calls = [];
  assert.equal((await handleGuestEnd(ctx, 'vm6', run2, 'poweroff', [])).action, 'none');
  assert.deepEqual(calls, [], 'nothing restarted or torn down by the monitor');
});
