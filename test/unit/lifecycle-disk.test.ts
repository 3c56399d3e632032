/**
 * The lifecycle of a disk engine (EngineInfo.root = 'disk': qemu, bhyve) over a fake engine
 * and fake mounts injected into openNode (src/node.ts NodeParts): jcreate has the engine make
 * its disks in the env's data dir and assembles no root tree; jstart mounts nothing and starts
 * the engine; jexec is refused (E_NO_EXEC, exit 2) naming the env; however the VM ends (jstop,
 * the guest powering off, a failed start) it is torn down exactly once.
 */
import { strict as assert } from 'node:assert';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { BerthError } from '../../src/errors.js';
import type { Engine, EngineEnv, EngineInfo } from '../../src/engines/types.js';
import { initenv } from '../../src/initenv.js';
import { createEnv } from '../../src/lifecycle/create.js';
import { execInEnv } from '../../src/lifecycle/exec.js';
import { removeEnv } from '../../src/lifecycle/remove.js';
import { startEnv } from '../../src/lifecycle/start.js';
import { stopEnv } from '../../src/lifecycle/stop.js';
import { reconcileEnv, teardownRun } from '../../src/lifecycle/teardown.js';
import type { MountEntry, MountPrimitive } from '../../src/mounts/types.js';
import { openNode, type NodeCtx } from '../../src/node.js';

const root = mkdtempSync(join(tmpdir(), 'berth-qemu-disk-'));
after(() => rmSync(root, { recursive: true, force: true }));

let calls: string[] = [];

const INFO: EngineInfo = {
  name: 'fakevm', summary: 'a fake disk engine', platforms: ['linux', 'freebsd'], root: 'disk', exec: false, console: 'serial',
  liveMigration: false, network: ['tap'], verified: 'live', family: 'b',
  settings: [{ key: 'base', help: 'the tree the first disk is made from' }, { key: 'imgsize', help: 'bytes' }],
};

const GiB = 1024 ** 3;

/** A disk engine that runs nothing: create makes a sparse dsk1.vhd; the "VM" ends when `running` forgets it. */
class FakeVmEngine implements Engine {
  readonly info = INFO;
  readonly name = 'fakevm';
  running = new Set<string>();
  failStart = false;
  failCreate = false;
  validate(): void {}
  async create(env: EngineEnv, input: { baseDir?: string }) {
    calls.push(`engine create ${env.jname} base=${input.baseDir ? input.baseDir.replace(root, '') : '-'}`);
    const f = join(env.paths.data, 'dsk1.vhd');
    const h = await open(f, 'w');
    try { await h.truncate(Number(env.conf.imgsize ?? GiB)); } finally { await h.close(); }
    env.conf.dsk_path1 = 'dsk1.vhd';
    if (this.failCreate) throw new BerthError('E_ENGINE', 'mkfs failed', 5);
  }
  async start(env: EngineEnv) {
    calls.push(`engine start ${env.jname}`);
    if (this.failStart) throw new BerthError('E_ENGINE', 'qemu failed to start', 5);
    this.running.add(env.jname);
    return { jid: 777 };
  }
  async stop(env: EngineEnv, timeoutSec: number) { calls.push(`engine stop ${env.jname} ${timeoutSec}`); this.running.delete(env.jname); }
  async isRunning(env: EngineEnv) { return this.running.has(env.jname); }
  async cleanup(env: EngineEnv) { calls.push(`engine cleanup ${env.jname}`); }
}

class FakeMounts implements MountPrimitive {
  readonly platform = 'linux' as const;
  readonly concurrent = true;
  table: MountEntry[] = [];
  async bind(src: string, dst: string) { calls.push(`bind ${src} ${dst}`); this.table.push({ source: src, target: dst, fstype: 'bind', options: 'rw' }); }
  async mount(device: string, dst: string, fstype: string) { calls.push(`mount ${fstype} ${device} ${dst}`); this.table.push({ source: device, target: dst, fstype, options: 'rw' }); }
  async unmount(target: string) { calls.push(`unmount ${target}`); this.table = this.table.filter((m) => m.target !== target); }
  async list() { return [...this.table]; }
  async fsType() { return 'ext4'; }
}

let ctx: NodeCtx;
let engine: FakeVmEngine;
let mounts: FakeMounts;
let n = 0;

before(() => { process.env.BERTH_PLATFORM = 'linux'; });

beforeEach(async () => {
  const wd = join(root, `wd${++n}`);
  await initenv({ workdir: wd, nodename: 'node1' });
  mkdirSync(join(wd, 'bases', 'tree', 'etc'), { recursive: true });
  writeFileSync(join(wd, 'bases', 'tree', 'etc', 'motd'), 'hello\n');
  engine = new FakeVmEngine();
  mounts = new FakeMounts();
  ctx = openNode(wd, { engine: async () => engine, mounts, runMonitor: false });
  calls = [];
});

const isErr = (code: string, exit: number, re?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof BerthError, String(e));
  assert.equal(e.code, code, e.message);
  assert.equal(e.exitCode, exit);
  if (re) assert.match(e.message, re);
  return true;
};

describe('a disk engine through the one lifecycle', () => {
  test('jcreate: the engine makes a sparse dsk1.vhd in the data dir; no root tree, no fstab; the rows it adds reach the descriptor', async () => {
    const e = await createEnv(ctx, { jname: 'vm1', emulator: 'fakevm', settings: { imgsize: String(10 * GiB) } });
    assert.equal(e.status, 'Off');
    assert.deepEqual(calls, ['engine create vm1 base=-']);
    const p = ctx.wd.env('vm1');
    const st = statSync(join(p.data, 'dsk1.vhd'));
    assert.equal(st.size, 10 * GiB);
    assert.ok(st.blocks * 512 < 1024 * 1024, 'sparse: no blocks written');
    assert.deepEqual(readdirSync(p.data), ['dsk1.vhd'], 'nothing from a base in the data dir');
    assert.ok(!existsSync(p.path), 'no root mount point jails/<vm>');
    assert.ok(!existsSync(p.fstab), 'no fstab');
    assert.match(readFileSync(p.descriptor, 'utf8'), /dsk_path1="dsk1\.vhd"/);
    assert.equal(ctx.inv.get('vm1')!.conf.dsk_path1, 'dsk1.vhd');
  });

  test('jcreate base=<tree>: the engine gets the base dir; a missing base is E_NO_SUCH_BASE (3) and changes nothing', async () => {
    await createEnv(ctx, { jname: 'vm2', emulator: 'fakevm', settings: { base: 'tree' } });
    assert.deepEqual(calls, [`engine create vm2 base=/wd${n}/bases/tree`]);
    calls = [];
    await assert.rejects(createEnv(ctx, { jname: 'vm3', emulator: 'fakevm', settings: { base: 'nope' } }), isErr('E_NO_SUCH_BASE', 3, /nope/));
    assert.deepEqual(calls, []);
    assert.equal(ctx.inv.get('vm3'), undefined);
    assert.ok(!existsSync(ctx.wd.env('vm3').data));
  });

  test('a failing Engine.create undoes everything: no row, no disk, no dirs', async () => {
    engine.failCreate = true;
    await assert.rejects(createEnv(ctx, { jname: 'vm4', emulator: 'fakevm', settings: {} }), isErr('E_ENGINE', 5));
    const p = ctx.wd.env('vm4');
    assert.equal(ctx.inv.get('vm4'), undefined);
    for (const d of [p.data, p.sysdir, p.rcconfFile]) assert.ok(!existsSync(d), `${d} is gone`);
  });

  test('jstart mounts nothing and starts the engine; jstop stops and cleans up once; nothing is unmounted', async () => {
    await createEnv(ctx, { jname: 'vm5', emulator: 'fakevm', settings: { stop_timeout: '7' } });
    calls = [];
    const s = await startEnv(ctx, 'vm5');
    assert.equal(s.status, 'On');
    assert.equal(s.jid, 777);
    assert.deepEqual(calls, ['engine start vm5']);
    calls = [];
    assert.equal((await stopEnv(ctx, 'vm5')).status, 'Off');
    assert.deepEqual(calls, ['engine stop vm5 7', 'engine cleanup vm5']);
    assert.deepEqual(mounts.table, []);
  });

  test('jexec on an engine without exec: E_NO_EXEC (exit 2) naming the env and pointing at its console', async () => {
    await createEnv(ctx, { jname: 'vm6', emulator: 'fakevm', settings: {} });
    await startEnv(ctx, 'vm6');
    await assert.rejects(execInEnv(ctx, 'vm6', ['/bin/sh']), isErr('E_NO_EXEC', 2, /vm6.*bconsole jname=vm6/));
    await stopEnv(ctx, 'vm6');
  });

  test('the guest powering off by itself is torn down exactly once, however many see it', async () => {
    await createEnv(ctx, { jname: 'vm7', emulator: 'fakevm', settings: {} });
    await startEnv(ctx, 'vm7');
    const runId = ctx.inv.get('vm7')!.run_id!;
    calls = [];
    engine.running.delete('vm7'); // the guest powered off; qemu exited
    const row = ctx.inv.get('vm7')!;
    const did = await Promise.all([reconcileEnv(ctx, row), reconcileEnv(ctx, row), teardownRun(ctx, 'vm7', runId, { engineStarted: true, reason: 'exited' })]);
    assert.equal(did.filter(Boolean).length, 1, 'one caller tore it down');
    assert.deepEqual(calls, ['engine stop vm7 10', 'engine cleanup vm7']);
    assert.equal(ctx.inv.get('vm7')!.status, 0);
    await assert.rejects(stopEnv(ctx, 'vm7'), isErr('E_NOT_RUNNING', 1));
  });

  test('a failed start is torn down once and leaves the VM Off; jremove deletes its disk', async () => {
    await createEnv(ctx, { jname: 'vm8', emulator: 'fakevm', settings: {} });
    engine.failStart = true;
    calls = [];
    await assert.rejects(startEnv(ctx, 'vm8'), isErr('E_ENGINE', 5));
    assert.deepEqual(calls, ['engine start vm8', 'engine stop vm8 10', 'engine cleanup vm8']);
    assert.equal(ctx.inv.get('vm8')!.status, 0);
    await removeEnv(ctx, 'vm8');
    assert.ok(!existsSync(join(ctx.wd.env('vm8').data, 'dsk1.vhd')));
  });
});
