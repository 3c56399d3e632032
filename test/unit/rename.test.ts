/**
 * jrename (src/lifecycle/rename.ts) over a fake engine and fake mounts (as
 * lifecycle-order.test.ts): what moves, what each refusal leaves (nothing changed), and the
 * crash safety: a failure injected at each step, and a "crash" at each step (the command hangs
 * there and its pid is dead), always leave exactly one of the two names working.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { BerthError } from '../../src/errors.js';
import type { Engine, EngineEnv, EngineInfo } from '../../src/engines/types.js';
import { initenv } from '../../src/initenv.js';
import { createEnv } from '../../src/lifecycle/create.js';
import { RENAME_STEPS, renameEnv, renameFstabText, type RenameStep } from '../../src/lifecycle/rename.js';
import { startEnv } from '../../src/lifecycle/start.js';
import { stopEnv } from '../../src/lifecycle/stop.js';
import { verifyIdentity } from '../../src/lifecycle/storage.js';
import { recoverStaleClaim } from '../../src/lifecycle/teardown.js';
import type { MountEntry, MountPrimitive } from '../../src/mounts/types.js';
import { openNode, type NodeCtx } from '../../src/node.js';
import { requireLease, releaseEnvLease } from '../../src/ownership/leases.js';
import { acquireLease } from '../../src/ownership/record.js';

const root = mkdtempSync(join(tmpdir(), 'berth-rename-'));
after(() => rmSync(root, { recursive: true, force: true }));

const INFO: EngineInfo = {
  name: 'fake', summary: 'a fake tree engine', platforms: ['linux', 'freebsd'], root: 'tree', exec: false, console: 'none',
  liveMigration: false, network: ['host'], verified: 'live', family: 'j', settings: [],
};
class FakeEngine implements Engine {
  readonly info = INFO;
  readonly name = 'fake';
  running = new Set<string>();
  validate(): void {}
  async start(env: EngineEnv) { this.running.add(env.jname); return { jid: 4242 }; }
  async stop(env: EngineEnv) { this.running.delete(env.jname); }
  async isRunning(env: EngineEnv) { return this.running.has(env.jname); }
  async cleanup() {}
}
class FakeMounts implements MountPrimitive {
  readonly platform = 'linux' as const;
  readonly concurrent = true;
  table: MountEntry[] = [];
  async bind(src: string, dst: string, opts: { readonly: boolean }) { this.table.push({ source: src, target: dst, fstype: 'bind', options: opts.readonly ? 'ro' : 'rw' }); }
  async mount(device: string, dst: string, fstype: string, options: string) { this.table.push({ source: device, target: dst, fstype, options }); }
  async unmount(target: string) { const i = this.table.map((m) => m.target).lastIndexOf(target); if (i >= 0) this.table.splice(i, 1); }
  async list() { return [...this.table]; }
  async fsType() { return 'ext4'; }
}

let ctx: NodeCtx;
let n = 0;
let wd = '';
before(() => { process.env.BERTH_PLATFORM = 'linux'; });
beforeEach(async () => {
  wd = join(root, `wd${++n}`);
  await initenv({ workdir: wd, nodename: 'node1' });
  for (const d of ['etc', 'root', 'tmp', 'home', 'var', 'usr/local', 'bin']) mkdirSync(join(wd, 'bases', 'b', d), { recursive: true });
  ctx = openNode(wd, { engine: async () => new FakeEngine(), mounts: new FakeMounts(), runMonitor: false });
});

/** An env with its own data named in fstab and fstab.local, and an unrelated entry. */
async function makeEnv(jname: string): Promise<void> {
  await createEnv(ctx, { jname, emulator: 'fake', settings: { base: 'b' } });
  const p = ctx.wd.env(jname);
  mkdirSync(join(p.data, 'srv'), { recursive: true });
  writeFileSync(join(p.data, 'srv', 'marker'), jname);
  writeFileSync(p.fstab, `# own data\n${p.data}/srv /srv nullfs rw 0 0\n/elsewhere/${jname}-data /mnt nullfs ro 0 0\n`);
  writeFileSync(p.fstabLocal, `jails-data/${jname}-data/srv /srv2 nullfs rw 0 0\n`);
}

/** Every file and dir under the workdir (not var/log) with its content hash, and the inventory rows. */
function snapshot(): string {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d).sort()) {
      const f = join(d, e);
      if (f.startsWith(join(wd, 'var'))) continue;
      const st = lstatSync(f);
      if (st.isDirectory()) { out.push(f + '/'); walk(f); } else out.push(`${f} ${createHash('sha256').update(readFileSync(f)).digest('hex')}`);
    }
  };
  walk(wd);
  return out.join('\n') + '\n' + JSON.stringify(ctx.inv.list().map((r) => [r.jname, r.status, r.generation, r.conf]));
}

/** `jname` works (row Off, identity, lease, a start and a stop) and `other` left nothing behind. */
async function works(jname: string, other: string): Promise<void> {
  const row = ctx.inv.get(jname);
  assert.ok(row, `${jname} is registered`);
  assert.equal(row.status, 0, `${jname} is Off`);
  verifyIdentity(ctx, jname, row.uuid);
  await requireLease(ctx, row);
  assert.equal(readFileSync(join(ctx.wd.env(jname).data, 'srv', 'marker'), 'utf8').length > 0, true);
  assert.equal((await startEnv(ctx, jname)).status, 'On');
  await stopEnv(ctx, jname);
  assert.equal(ctx.inv.get(other), undefined, `${other} has no row`);
  const o = ctx.wd.env(other);
  for (const d of [o.data, o.sysdir, o.fstabDir, o.lease]) assert.ok(!existsSync(d), `${d} is gone`);
}

describe('jrename', () => {
  test('moves the dirs, the descriptor, the row, the record and the fstab entries that name its own dirs', async () => {
    await makeEnv('r1');
    const uuid = ctx.inv.get('r1')!.uuid;
    const r = await renameEnv(ctx, 'r1', 'r2');
    assert.equal(r.jname, 'r2');
    assert.equal(r.oldJname, 'r1');
    const p = ctx.wd.env('r2');
    const row = ctx.inv.get('r2')!;
    assert.equal(row.uuid, uuid);
    assert.equal(row.conf.data, p.data);
    assert.equal(row.conf.path, p.path);
    assert.ok(existsSync(p.descriptor) && existsSync(p.recordDescriptor));
    assert.ok(!existsSync(join(p.sysdir, 'rc.conf_r1')));
    assert.match(readFileSync(p.descriptor, 'utf8'), /jname="r2"/);
    assert.match(readFileSync(p.recordDescriptor, 'utf8'), /data="CBSDROOT\/jails-data\/r2-data"/);
    assert.equal(readFileSync(p.fstab, 'utf8'), `# own data\n${p.data}/srv /srv nullfs rw 0 0\n/elsewhere/r1-data /mnt nullfs ro 0 0\n`);
    assert.equal(readFileSync(p.fstabLocal, 'utf8'), 'jails-data/r2-data/srv /srv2 nullfs rw 0 0\n');
    await works('r2', 'r1');
    assert.ok(!existsSync(ctx.wd.env('r1').path));
  });

  test('refusals change nothing: running, not owned, new name taken (row, record, rcconf, dir), bad or same name', async () => {
    await makeEnv('q1');
    await makeEnv('q2');
    const is = (code: string, exit: number) => (e: unknown) => e instanceof BerthError && e.code === code && e.exitCode === exit;
    // taken in every way, bad names
    const cases: [string, string, string, number, (() => void)?][] = [
      ['q1', 'q2', 'E_NAME_TAKEN', 1],
      ['q1', 'q3', 'E_NAME_TAKEN', 1, () => mkdirSync(join(ctx.wd.leaseDir, 'envs', 'q3'))],
      ['q1', 'q4', 'E_NAME_TAKEN', 1, () => writeFileSync(ctx.wd.env('q4').rcconfFile, 'jname="q4"\n')],
      ['q1', 'q5', 'E_NAME_TAKEN', 1, () => { mkdirSync(ctx.wd.env('q5').data); writeFileSync(join(ctx.wd.env('q5').data, 'x'), ''); }],
      ['q1', 'bad.name', 'E_BAD_JNAME', 2],
      ['q1', 'q1', 'E_SAME_NAME', 2],
      ['nosuch', 'q6', 'E_NO_SUCH_ENV', 3],
    ];
    for (const [o, nw, code, exit, prep] of cases) {
      prep?.();
      const before = snapshot();
      await assert.rejects(renameEnv(ctx, o, nw), is(code, exit), `${o} -> ${nw}`);
      assert.equal(snapshot(), before, `${o} -> ${nw} changed nothing`);
    }
    // running
    await startEnv(ctx, 'q1');
    let before = snapshot();
    await assert.rejects(renameEnv(ctx, 'q1', 'q7'), is('E_RUNNING', 1));
    assert.equal(snapshot(), before);
    await stopEnv(ctx, 'q1');
    // not owned: another node took the lease
    const row = ctx.inv.get('q1')!;
    await releaseEnvLease(ctx, row);
    await acquireLease(ctx.wd.env('q1').lease, { node: 'node2', uuid: row.uuid });
    before = snapshot();
    await assert.rejects(renameEnv(ctx, 'q1', 'q7'), (e: unknown) => e instanceof BerthError && e.exitCode === 4);
    assert.equal(snapshot(), before);
  });

  const afterCommit = (s: RenameStep) => RENAME_STEPS.indexOf(s) > RENAME_STEPS.indexOf('commit');

  for (const s of RENAME_STEPS) {
    test(`a failure at step ${s} leaves ${afterCommit(s) ? 'the new' : 'the old'} name working`, async () => {
      await makeEnv('f1');
      await assert.rejects(renameEnv(ctx, 'f1', 'f2', { onStep: (x) => { if (x === s) throw new Error(`injected at ${x}`); } }), /injected/);
      if (afterCommit(s)) await works('f2', 'f1'); else await works('f1', 'f2');
    });

    test(`a crash at step ${s} is finished by the next command: ${afterCommit(s) ? 'the new' : 'the old'} name works`, async () => {
      await makeEnv('c1');
      let reached = false;
      void renameEnv(ctx, 'c1', 'c2', { onStep: (x) => (x === s ? new Promise<void>(() => { reached = true; }) : undefined) });
      for (let i = 0; i < 200 && !reached; i++) await new Promise((r) => setTimeout(r, 5));
      assert.ok(reached, `the rename reached ${s}`);
      // the command "died" there: its claim now names a pid that is gone
      const dead = spawnSync('true').pid!;
      ctx.inv.db.prepare('UPDATE jails SET claim_pid = ? WHERE status = 3').run(dead);
      const row = ctx.inv.get('c1') ?? ctx.inv.get('c2')!;
      assert.equal(row.jname, afterCommit(s) ? 'c2' : 'c1');
      assert.ok(await recoverStaleClaim(ctx, row));
      if (afterCommit(s)) await works('c2', 'c1'); else await works('c1', 'c2');
      // and the surviving name can be renamed again
      const name = afterCommit(s) ? 'c2' : 'c1';
      await renameEnv(ctx, name, 'c3');
      await works('c3', name);
    });
  }

  test('renameFstabText: only the device field, only the env\'s own dirs, exact to the segment, idempotent', () => {
    const from = { data: '/w/jails-data/a-data', sysdir: '/w/jails-system/a', fstabDir: '/w/jails-fstab/a', path: '/w/jails/a' };
    const to = { data: '/w/jails-data/a-data-data', sysdir: '/w/jails-system/a-data', fstabDir: '/w/jails-fstab/a-data', path: '/w/jails/a-data' };
    const text = '/w/jails-data/a-data/x /x nullfs rw 0 0\nCBSDROOT/jails-data/a-data /y nullfs rw 0 0\n/w/jails-data/a-data2 /z nullfs rw\n# /w/jails-data/a-data/x\n/src /w/jails-data/a-data nullfs rw\n';
    const once = renameFstabText(text, '/w', from, to);
    assert.equal(once, '/w/jails-data/a-data-data/x /x nullfs rw 0 0\nCBSDROOT/jails-data/a-data-data /y nullfs rw 0 0\n/w/jails-data/a-data2 /z nullfs rw\n# /w/jails-data/a-data/x\n/src /w/jails-data/a-data nullfs rw\n');
    assert.equal(renameFstabText(once, '/w', from, to), once);
  });
});
