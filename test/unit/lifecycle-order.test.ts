/**
 * The lifecycle's order and rollback, with a fake engine and a fake mount primitive injected
 * into openNode (src/node.ts NodeParts): no root, no runc, no mount(8). Each fake records
 * what it was asked to do in one shared list, so the tests read the order of the calls. The
 * real parts are covered by the integration tests (runc-lifecycle, hook-contract ...).
 */
import { strict as assert } from 'node:assert';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { BerthError } from '../../src/errors.js';
import type { Engine, EngineEnv, EngineInfo } from '../../src/engines/types.js';
import { initenv } from '../../src/initenv.js';
import { createEnv } from '../../src/lifecycle/create.js';
import { removeEnv } from '../../src/lifecycle/remove.js';
import { setEnv } from '../../src/lifecycle/set.js';
import { startEnv } from '../../src/lifecycle/start.js';
import { stopEnv } from '../../src/lifecycle/stop.js';
import type { MountEntry, MountPrimitive } from '../../src/mounts/types.js';
import { openNode, type NodeCtx } from '../../src/node.js';

const root = mkdtempSync(join(tmpdir(), 'berth-order-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** What the fakes were asked, in order. */
let calls: string[] = [];
const rel = (p: string) => p.replace(root, '');

const INFO: EngineInfo = {
  name: 'fake', summary: 'a fake tree engine', platforms: ['linux', 'freebsd'], root: 'tree', exec: false, console: 'none',
  liveMigration: false, network: ['host'], verified: 'live', family: 'j', settings: [],
};

/** A tree engine that runs nothing: start records and returns a jid; `failStart` makes it throw. */
class FakeEngine implements Engine {
  readonly info = INFO;
  readonly name = 'fake';
  running = new Set<string>();
  failStart = false;
  validate(): void {}
  async start(env: EngineEnv) {
    calls.push(`engine start ${env.jname}`);
    if (this.failStart) throw new BerthError('E_ENGINE', 'the fake engine failed', 5);
    this.running.add(env.jname);
    return { jid: 4242 };
  }
  async stop(env: EngineEnv, timeoutSec: number) { calls.push(`engine stop ${env.jname} ${timeoutSec}`); this.running.delete(env.jname); }
  async isRunning(env: EngineEnv) { return this.running.has(env.jname); }
  async cleanup(env: EngineEnv) { calls.push(`engine cleanup ${env.jname}`); }
}

/** A mount table in memory. */
class FakeMounts implements MountPrimitive {
  readonly platform = 'linux' as const;
  readonly concurrent = true;
  table: MountEntry[] = [];
  async bind(src: string, dst: string, opts: { readonly: boolean }) {
    calls.push(`bind ${rel(src)} ${rel(dst)}${opts.readonly ? ' ro' : ''}`);
    this.table.push({ source: src, target: dst, fstype: 'bind', options: opts.readonly ? 'ro' : 'rw' });
  }
  async mount(device: string, dst: string, fstype: string, options: string) {
    if (fstype === 'nullfs' || fstype === 'bind') return this.bind(device, dst, { readonly: options.split(',').includes('ro') });
    calls.push(`mount ${fstype} ${device} ${rel(dst)}`);
    this.table.push({ source: device, target: dst, fstype, options });
  }
  async unmount(target: string) {
    calls.push(`unmount ${rel(target)}`);
    const i = this.table.map((m) => m.target).lastIndexOf(target);
    if (i >= 0) this.table.splice(i, 1);
  }
  async list() { return [...this.table]; }
  async fsType() { return 'ext4'; }
}

let ctx: NodeCtx;
let engine: FakeEngine;
let mounts: FakeMounts;
let n = 0;

before(() => { process.env.BERTH_PLATFORM = 'linux'; });

beforeEach(async () => {
  const wd = join(root, `wd${++n}`);
  await initenv({ workdir: wd, nodename: 'node1' });
  // a base tree
  for (const d of ['etc', 'root', 'tmp', 'home', 'var', 'usr/local', 'bin']) mkdirSync(join(wd, 'bases', 'b', d), { recursive: true });
  writeFileSync(join(wd, 'bases', 'b', 'etc', 'motd'), 'hello\n');
  engine = new FakeEngine();
  mounts = new FakeMounts();
  ctx = openNode(wd, { engine: async () => engine, mounts, runMonitor: false });
  calls = [];
});

const DATA_DIRS = ['etc', 'root', 'tmp', 'home', 'var', 'usr/local'];

describe('the lifecycle over a fake engine and fake mounts', () => {
  test('jcreate fills the data from the base and writes the row, the record and the descriptors; nothing is mounted or started', async () => {
    const e = await createEnv(ctx, { jname: 'a1', emulator: 'fake', settings: { base: 'b' } });
    assert.equal(e.status, 'Off');
    assert.equal(e.generation, 1);
    assert.deepEqual(calls, []);
    const p = ctx.wd.env('a1');
    assert.ok(existsSync(join(p.data, 'etc', 'motd')));
    assert.ok(existsSync(p.descriptor) && existsSync(p.recordDescriptor));
    assert.deepEqual(readdirSync(p.lease).filter((f) => f.startsWith('gen.')), ['gen.1']);
  });

  test('jstart: the base read-only first, then the data sub-dirs (side by side), then the engine; jstop: engine stopped, its state cleaned up, everything unmounted deepest first', async () => {
    await createEnv(ctx, { jname: 'a2', emulator: 'fake', settings: { base: 'b', stop_timeout: '3' } });
    const started = await startEnv(ctx, 'a2');
    assert.equal(started.status, 'On');
    assert.equal(started.jid, 4242);
    const d = '/wd' + n;
    assert.equal(calls[0], `bind ${d}/bases/b ${d}/jails/a2 ro`, 'the base first, read-only');
    assert.deepEqual(calls.slice(1, 7).sort(), DATA_DIRS.map((x) => `bind ${d}/jails-data/a2-data/${x} ${d}/jails/a2/${x}`).sort(), 'then the data sub-dirs, in any order');
    assert.deepEqual(calls.slice(7), ['engine start a2'], 'then the engine, and nothing after');
    calls = [];
    const stopped = await stopEnv(ctx, 'a2');
    assert.equal(stopped.status, 'Off');
    assert.deepEqual(calls.slice(0, 2), ['engine stop a2 3', 'engine cleanup a2']);
    const unmounts = calls.slice(2);
    assert.equal(unmounts.length, 7);
    assert.equal(unmounts.at(-1), `unmount ${d}/jails/a2`, 'the base last: deepest first');
    assert.deepEqual(mounts.table, [], 'the mount table as before');
  });

  test('a failing engine start is torn down: nothing stays mounted, the env is Off, the start\'s error is thrown', async () => {
    await createEnv(ctx, { jname: 'a3', emulator: 'fake', settings: { base: 'b' } });
    engine.failStart = true;
    await assert.rejects(startEnv(ctx, 'a3'), (e: unknown) => e instanceof BerthError && e.code === 'E_ENGINE' && e.exitCode === 5);
    assert.deepEqual(mounts.table, []);
    assert.equal(ctx.inv.get('a3')!.status, 0);
    const i = calls.indexOf('engine start a3');
    assert.deepEqual(calls.slice(i + 1, i + 3), ['engine stop a3 10', 'engine cleanup a3'], 'the teardown runs the engine\'s stop and cleanup');
    engine.failStart = false;
    await startEnv(ctx, 'a3');
    await stopEnv(ctx, 'a3');
  });

  test('a missing base at jstart: E_NO_SUCH_BASE (3), the engine is never asked, nothing mounted', async () => {
    await createEnv(ctx, { jname: 'a4', emulator: 'fake', settings: { base: 'b' } });
    rmSync(ctx.wd.base('b'), { recursive: true });
    await assert.rejects(startEnv(ctx, 'a4'), (e: unknown) => e instanceof BerthError && e.code === 'E_NO_SUCH_BASE' && e.exitCode === 3);
    assert.ok(!calls.some((c) => c.startsWith('engine start')));
    assert.deepEqual(mounts.table, []);
  });

  test('fstab.local entries come after the base and the data dirs; a nested one waits for its parent', async () => {
    await createEnv(ctx, { jname: 'a5', emulator: 'fake', settings: { base: 'b' } });
    const src = join(root, `shared${n}`);
    mkdirSync(join(src, 'sub'), { recursive: true });
    writeFileSync(ctx.wd.env('a5').fstabLocal, `${src} /mnt/x nullfs ro 0 0\n${join(src, 'sub')} /mnt/x/sub nullfs rw 0 0\n`);
    await startEnv(ctx, 'a5');
    const d = '/wd' + n;
    assert.deepEqual(calls.slice(-3), [`bind /shared${n} ${d}/jails/a5/mnt/x ro`, `bind /shared${n}/sub ${d}/jails/a5/mnt/x/sub`, 'engine start a5']);
    await stopEnv(ctx, 'a5');
    assert.deepEqual(mounts.table, []);
  });

  test('bad input changes nothing: an unknown key, a key of another engine, a bad value', async () => {
    const before = readdirSync(ctx.wd.jailsData);
    for (const [settings, code] of [[{ base: 'b', bogus: '1' }, 'E_UNKNOWN_KEY'], [{ base: 'b', allow_mount: '1' }, 'E_UNKNOWN_KEY'], [{ base: 'b', astart: 'yes' }, 'E_BAD_VALUE']] as const) {
      await assert.rejects(createEnv(ctx, { jname: 'bad1', emulator: 'fake', settings }), (e: unknown) => e instanceof BerthError && e.code === code && e.exitCode === 2);
    }
    const e = await createEnv(ctx, { jname: 'a6', emulator: 'fake', settings: { base: 'b' } }).then(() => undefined, (x) => x);
    assert.equal(e, undefined);
    await assert.rejects(setEnv(ctx, 'a6', { allow_mount: '1' }), (x: unknown) => x instanceof BerthError && x.code === 'E_UNKNOWN_KEY' && /jail envs/.test(x.message));
    assert.deepEqual(readdirSync(ctx.wd.jailsData).sort(), [...before, 'a6-data'].sort(), 'only a6 exists');
    assert.equal(ctx.inv.get('bad1'), undefined);
    assert.deepEqual(calls, []);
  });

  test('jremove of a stopped env deletes its data, record and row; of a running one is refused and changes nothing', async () => {
    await createEnv(ctx, { jname: 'a7', emulator: 'fake', settings: { base: 'b' } });
    await startEnv(ctx, 'a7');
    await assert.rejects(removeEnv(ctx, 'a7'), (e: unknown) => e instanceof BerthError && e.code === 'E_RUNNING');
    assert.equal(ctx.inv.get('a7')!.status, 1);
    await stopEnv(ctx, 'a7');
    const p = ctx.wd.env('a7');
    await removeEnv(ctx, 'a7');
    assert.equal(ctx.inv.get('a7'), undefined);
    assert.ok(!existsSync(p.data) && !existsSync(p.lease) && !existsSync(p.sysdir));
  });
});
