/**
 * src/inventory.ts on a real SQLite file (a temp workdir made by the initenv library): the
 * listing fast paths must say exactly what the general ones say. `jls --json` prints
 * listEnvsJson (serialised by SQLite); it must equal JSON.stringify of listEnvs' objects for
 * every kind of row: off, on, on with its process gone (Maintenance), a claim in progress,
 * missing and extra settings, awkward characters, globs, and descriptors waiting in
 * jails-rcconf/.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { initenv } from '../../src/initenv.js';
import { openNode, type NodeCtx } from '../../src/node.js';
import { listEnvs, listEnvsJson } from '../../src/lifecycle/list.js';
import { liveMonitorPid, monitorPidFile } from '../../src/lifecycle/run-monitor.js';
import { writeDescriptor } from '../../src/descriptor.js';
import { Inventory, SCHEMA_VERSION, STATUS, SUMMARY_KEYS, summaryOf } from '../../src/inventory.js';
import Database from 'better-sqlite3';

let dir: string;
let ctx: NodeCtx;

/** A pid that is certainly gone: a child that already exited and was reaped. */
function deadPid(): number {
  return Number(spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).stdout.trim());
}

let beat: NodeJS.Timeout;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-inv-'));
  await initenv({ workdir: join(dir, 'wd'), nodename: 'inv1' });
  ctx = openNode(join(dir, 'wd'));
  // The rows below are made up (no container runs): listing them must not start a real run
  // monitor, which would tear 'gone' down under the test. This process poses as the monitor.
  const pidFile = monitorPidFile(ctx);
  writeFileSync(pidFile, `${process.pid}\n`);
  beat = setInterval(() => utimesSync(pidFile, new Date(), new Date()), 1000);
  const wd = ctx.wd.root;
  const add = (jname: string, conf: Record<string, string>, uuid = `uuid-${jname}`) =>
    ctx.inv.insert({ jname, uuid, emulator: 'runc', generation: 3, conf: { jname, ...conf } });
  add('web1', { base: 'bb', baserw: '0', host_hostname: 'web1.example', ip4_addr: '0', path: `${wd}/jails/web1`, data: `${wd}/jails-data/web1-data`, exec_start: 'x', astart: '1' });
  add('web2', { host_hostname: 'quote " back\\slash ünïcode \u0001 tab\t', vnet: '1', ip4_addr: '10.0.0.2/24' }, 'u"\\2');
  add('db', { baserw: '1' }); // most summary keys missing
  add('alive', { base: 'bb' });
  add('gone', { base: 'bb' });
  add('busy', { base: 'bb' });
  // alive: On with a process that exists (this test); gone: On with a process that exited
  ctx.inv.claimStart('alive', 'run-a');
  ctx.inv.setRunning('alive', 'run-a', process.pid);
  ctx.inv.claimStart('gone', 'run-g');
  ctx.inv.setRunning('gone', 'run-g', deadPid());
  ctx.inv.claimStart('busy', 'run-b');
  // descriptors waiting for jregister; one has the name of a registered env and is not listed
  await writeDescriptor(join(ctx.wd.jailsRcconf, 'rc.conf_web9'), { jname: 'web9', uuid: 'u9', emulator: 'runc', host_hostname: 'nine' }, wd);
  await writeDescriptor(join(ctx.wd.jailsRcconf, 'rc.conf_db'), { jname: 'db', uuid: 'other', emulator: 'runc' }, wd);
});

after(() => {
  clearInterval(beat);
  ctx?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('jls --json fast path (listEnvsJson)', () => {
  test('the rows cover every status (and no run monitor was started for them)', async () => {
    assert.equal(liveMonitorPid(ctx), process.pid);
    const st = Object.fromEntries((await listEnvs(ctx, { summary: true })).map((e) => [e.jname, e.status]));
    assert.deepEqual(st, { alive: 'On', busy: 'Maintenance', db: 'Off', gone: 'Maintenance', web1: 'Off', web2: 'Off' });
    assert.equal(ctx.inv.get('gone')!.status, STATUS.ON, 'the inventory still says On: the listing says Maintenance');
  });

  for (const [name, opts] of [
    ['every env and waiting descriptors', { unregistered: true }],
    ['registered envs only', {}],
    ['a glob', { patterns: ['web*'], unregistered: true }],
    ['two patterns', { patterns: ['db', 'g?ne'], unregistered: true }],
    ['a glob that matches nothing', { patterns: ['zz*'], unregistered: true }],
  ] as const) {
    test(`equals JSON.stringify(listEnvs(summary)): ${name}`, async () => {
      const want = JSON.stringify(await listEnvs(ctx, { ...opts, patterns: opts.patterns ? [...opts.patterns] : undefined, summary: true }));
      const got = await listEnvsJson(ctx, { ...opts, patterns: opts.patterns ? [...opts.patterns] : undefined });
      assert.equal(got, want);
      JSON.parse(got);
    });
  }

  test('the waiting descriptor is listed as Unregister; the one named like a registered env is not', async () => {
    const envs = JSON.parse(await listEnvsJson(ctx, { unregistered: true })) as { jname: string; status: string }[];
    assert.deepEqual(envs.filter((e) => e.status === 'Unregister').map((e) => e.jname), ['web9']);
    assert.equal(envs.filter((e) => e.jname === 'db').length, 1);
  });

  test('a bad pattern is refused before anything is read', async () => {
    await assert.rejects(listEnvsJson(ctx, { patterns: ['a.b'] }), /a\.b/);
  });

  test('an empty inventory is an empty array', async () => {
    const wd2 = join(dir, 'wd2');
    await initenv({ workdir: wd2, nodename: 'inv2' });
    const c2 = openNode(wd2);
    try {
      assert.equal(await listEnvsJson(c2, { unregistered: true }), '[]');
      assert.equal(c2.inv.db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
      assert.ok((c2.inv.db.prepare("SELECT name FROM sqlite_master WHERE type = 'index'").pluck().all() as string[]).includes('jails_status'));
    } finally {
      c2.close();
    }
  });
});

describe('the summary column (migration 4)', () => {
  test('the summary listing holds exactly the SUMMARY_KEYS of each full conf', async () => {
    const full = new Map((await listEnvs(ctx)).map((e) => [e.jname, e.conf]));
    for (const e of await listEnvs(ctx, { summary: true })) {
      const want = Object.fromEntries(SUMMARY_KEYS.filter((k) => full.get(e.jname)![k] !== undefined).map((k) => [k, full.get(e.jname)![k]]));
      assert.deepEqual(e.conf, want, e.jname);
    }
  });

  test('jset-style updates keep it current', async () => {
    const before = ctx.inv.get('db')!.conf;
    ctx.inv.updateConf('db', { ...before, host_hostname: 'renamed', ip4_addr: '0' });
    const e = JSON.parse(await listEnvsJson(ctx, { patterns: ['db'] }))[0];
    assert.deepEqual(e.conf, { ip4_addr: '0', host_hostname: 'renamed', baserw: '1' });
    ctx.inv.updateConf('db', before);
  });

  test('an inventory of schema 3 is migrated: the column is filled by SQLite exactly as summaryOf writes it', () => {
    const file = join(dir, 'v3.sqlite');
    const db = new Database(file);
    // schema 3 as it was: migrations 1-3
    db.exec(`CREATE TABLE jails (jname TEXT PRIMARY KEY, uuid TEXT NOT NULL, emulator TEXT NOT NULL, status INTEGER NOT NULL DEFAULT 0,
      jid INTEGER NOT NULL DEFAULT 0, run_id TEXT, generation INTEGER NOT NULL DEFAULT 0, conf TEXT NOT NULL, state_time INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE nodes (name TEXT PRIMARY KEY, url TEXT NOT NULL, token TEXT NOT NULL, added_at INTEGER NOT NULL);
      ALTER TABLE jails ADD COLUMN claim_pid INTEGER NOT NULL DEFAULT 0;
      CREATE INDEX jails_status ON jails (status);
      PRAGMA user_version = 3;`);
    const confs: Record<string, Record<string, string>> = {
      a: { jname: 'a', ip4_addr: '10.0.0.1/24', host_hostname: 'quote " back\\slash ünïcode \u0001 tab\t </script>', exec_start: 'x', vnet: '1' },
      b: { jname: 'b' },
      c: { jname: 'c', path: '/w/jails/c', data: '/w/jails-data/c-data', baserw: '0', base: 'bb', astart: '0', ip4_addr: '0', host_hostname: 'c', vnet: '0', extra: 'y' },
    };
    for (const [j, c] of Object.entries(confs)) db.prepare("INSERT INTO jails (jname, uuid, emulator, conf) VALUES (?, 'u', 'runc', ?)").run(j, JSON.stringify(c));
    db.close();
    const inv = Inventory.open(file);
    try {
      assert.equal(inv.db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
      for (const [j, c] of Object.entries(confs)) {
        assert.equal(inv.db.prepare('SELECT summary FROM jails WHERE jname = ?').pluck().get(j), summaryOf(c), j);
      }
    } finally {
      inv.close();
    }
  });
});
