/**
 * Review findings turned into tests: symlinks inside an env never lead a mount or a delete
 * outside it; unknown keys are refused; adopted descriptors are validated; a claim left by a
 * berth command that died mid-operation is recovered by the next command.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { berth, berthOk, isRoot, mountTable, newNode, tempDir } from '../helpers/cli.js';
import { readLeaseState } from '../../src/ownership/record.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');
let wd: string;
const env = () => ({ workdir: wd });

before(() => {
  wd = newNode('safe1');
  berthOk(['base', 'busybox', 'name=bb'], env());
});

test('an fstab.local mount point that is a symlink inside the env is refused; nothing is mounted outside', () => {
  const victim = tempDir('berth-victim-');
  writeFileSync(join(victim, 'keep'), 'x');
  const src = tempDir('berth-src-');
  berthOk(['jcreate', 'jname=sl1', 'base=bb'], env());
  // the tenant (who owns the data) replaced /var/www by a symlink to a host dir
  symlinkSync(victim, join(wd, 'jails-data/sl1-data/var/www'));
  writeFileSync(join(wd, 'jails-fstab/sl1/fstab.local'), `${src} /var/www nullfs rw 0 0\n`);
  const before = mountTable(wd);
  const r = berth(['jstart', 'jname=sl1'], env());
  assert.equal(r.code, 5, r.stderr);
  assert.match(r.stderr, /is a symlink; refusing to follow it/);
  assert.deepEqual(mountTable(wd), before);
  assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${victim} `), 'the host dir must not be covered');
  berthOk(['jremove', 'jname=sl1'], env());
  assert.equal(readFileSync(join(victim, 'keep'), 'utf8'), 'x', 'jremove did not delete through the symlink');
  rmSync(victim, { recursive: true }); rmSync(src, { recursive: true });
});

test('jremove refuses a symlinked data dir and deletes nothing it points to', () => {
  const victim = tempDir('berth-victim-');
  writeFileSync(join(victim, 'IMPORTANT'), 'data');
  berthOk(['jcreate', 'jname=sl2', 'base=bb'], env());
  const data = join(wd, 'jails-data/sl2-data');
  spawnSync('cp', ['-a', `${data}/.`, `${victim}/`]);
  rmSync(data, { recursive: true });
  symlinkSync(victim, data);
  const r = berth(['jremove', 'jname=sl2'], env());
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /symlink/);
  assert.equal(readFileSync(join(victim, 'IMPORTANT'), 'utf8'), 'data');
  assert.ok(berthOk(['jls', '--json'], env()).json.envs.some((e: any) => e.jname === 'sl2'), 'the env is still registered');
  rmSync(data); mkdirSync(data); spawnSync('cp', ['-a', `${victim}/.`, `${data}/`]);
  berthOk(['jremove', 'jname=sl2'], env());
  rmSync(victim, { recursive: true });
});

test('unknown keys are refused with exit 2 naming them, and change nothing', () => {
  berthOk(['jcreate', 'jname=k1', 'base=bb'], env());
  const before = readFileSync(join(wd, 'jails-system/k1/rc.conf_k1'), 'utf8');
  for (const args of [['jset', 'jname=k1', 'foo=bar', 'astart=1'], ['jset', 'jname=k1', 'uuid=x'], ['jset', 'jname=k1', 'emulator=jail'], ['jcreate', 'jname=k2', 'base=bb', 'hostnme=x']]) {
    const r = berth(args, env());
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, /unknown setting/);
  }
  assert.equal(readFileSync(join(wd, 'jails-system/k1/rc.conf_k1'), 'utf8'), before);
  assert.ok(!existsSync(join(wd, 'jails-data/k2-data')));
  berthOk(['jremove', 'jname=k1'], env());
});

test('jregister validates the adopted descriptor (a base that walks out of bases/ is refused)', () => {
  writeFileSync(join(wd, 'jails-rcconf/rc.conf_evil'), 'jname="evil";\nemulator="runc";\nbase="../../../../../..";\nbaserw="0";\n');
  const r = berth(['jregister', 'jname=evil'], env());
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /bad base name/);
  assert.equal(berthOk(['jls', '--json'], env()).json.envs.find((e: any) => e.jname === 'evil')?.status, 'Unregister');
  rmSync(join(wd, 'jails-rcconf/rc.conf_evil'));
});

test('jregister refuses a descriptor whose uuid is not a uuid (exit 2, naming it) and changes nothing', () => {
  for (const [i, uuid] of ['../../etc', 'not-a-uuid', '12345678-1234-1234-1234-1234567890123', 'ABCDEF01-2345-4678-9ABC-DEF012345678'].entries()) {
    const j = `baduuid${i}`;
    mkdirSync(join(wd, `jails-data/${j}-data/etc`), { recursive: true });
    writeFileSync(join(wd, `jails-rcconf/rc.conf_${j}`), `jname="${j}";\nemulator="runc";\nbase="bb";\nbaserw="0";\nuuid="${uuid}";\n`);
    const before = readdirSync(wd, { recursive: true }).sort();
    const r = berth(['jregister', `jname=${j}`], env());
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.includes(`bad uuid ${JSON.stringify(uuid)}`), r.stderr);
    assert.deepEqual(readdirSync(wd, { recursive: true }).sort(), before, 'no dir, lease or row file made');
    assert.equal(berthOk(['jls', '--json'], env()).json.envs.find((e: any) => e.jname === j)?.status, 'Unregister');
    rmSync(join(wd, `jails-rcconf/rc.conf_${j}`));
    rmSync(join(wd, `jails-data/${j}-data`), { recursive: true });
  }
});

test('a failed jregister of a CBSD descriptor (no uuid) leaves the sysdir as it was', () => {
  // CBSD writes no uuid: berth gives one and writes the sysdir copy, then checks identity; the
  // data dir is empty here (storage not mounted?), so the check fails and nothing may remain.
  mkdirSync(join(wd, 'jails-system/cbsd1'), { recursive: true });
  mkdirSync(join(wd, 'jails-data/cbsd1-data'), { recursive: true });
  writeFileSync(join(wd, 'jails-rcconf/rc.conf_cbsd1'), 'jname="cbsd1";\nemulator="runc";\nbase="bb";\nbaserw="0";\nhost_hostname="cbsd1.example";\n');
  const r = berth(['jregister', 'jname=cbsd1'], env());
  assert.equal(r.code, 5, r.stderr);
  assert.deepEqual(readdirSync(join(wd, 'jails-system/cbsd1')), [], 'no descriptor (or lease) left in the sysdir');
  assert.ok(existsSync(join(wd, 'jails-rcconf/rc.conf_cbsd1')), 'the waiting descriptor is kept');
  assert.equal(berthOk(['jls', '--json'], env()).json.envs.find((e: any) => e.jname === 'cbsd1')?.status, 'Unregister');
  assert.ok(!existsSync(join(wd, 'jails-fstab/cbsd1')), 'the fstab dir it made is removed again');
  assert.ok(existsSync(join(wd, 'jails-data/cbsd1-data')), 'the data dir that was there stays');
  rmSync(join(wd, 'jails-rcconf/rc.conf_cbsd1'));
});

test('a jregister that fails at its last step (consuming the waiting descriptor) undoes the row and the lease', async () => {
  berthOk(['jcreate', 'jname=last', 'base=bb'], env());
  berthOk(['junregister', 'jname=last'], env());
  const rcconf = join(wd, 'jails-rcconf');
  // append-only directory: the descriptor cannot be unlinked (EPERM), everything else works
  const chattr = (flag: string) => assert.equal(spawnSync('chattr', [flag, rcconf]).status, 0, `chattr ${flag}`);
  chattr('+a');
  try {
    const r = berth(['jregister', 'jname=last'], env());
    assert.notEqual(r.code, 0, r.stdout);
    assert.equal(berthOk(['jls', '--json'], env()).json.envs.find((e: any) => e.jname === 'last')?.status, 'Unregister', 'no row left');
    assert.equal((await readLeaseState(join(wd, 'jails-system/last/lease'))).holder, undefined, 'the lease is not held');
  } finally {
    chattr('-a');
  }
  // the lease was released again: a plain jregister (no --force) takes it
  berthOk(['jregister', 'jname=last'], env());
  berthOk(['jremove', 'jname=last'], env());
});

test('a claim left by a berth command that died mid-start is recovered by the next command (or the run monitor)', () => {
  berthOk(['jcreate', 'jname=st1', 'base=bb'], env());
  const before = mountTable(wd);
  berthOk(['jstart', 'jname=st1'], env());
  // simulate `kill -9` of a jstop after it claimed the teardown: the row is Maintenance, held by a dead pid
  const dead = spawnSync('sh', ['-c', 'echo $$']).stdout.toString().trim();
  const db = new Database(join(wd, 'var/db/local.sqlite'));
  db.prepare("UPDATE jails SET status = 3, run_id = NULL, claim_pid = ? WHERE jname = 'st1'").run(Number(dead));
  db.close();
  // the node's run monitor recovers such a claim too (every 250 ms): whichever comes first
  assert.ok(['Maintenance', 'Off'].includes(berthOk(['jls', '--json'], env()).json.envs.find((e: any) => e.jname === 'st1').status));
  berthOk(['jstart', 'jname=st1'], env());
  assert.equal(berthOk(['jexec', 'jname=st1', 'hostname'], env()).stdout.trim(), 'st1');
  berthOk(['jstop', 'jname=st1'], env());
  assert.deepEqual(mountTable(wd), before);
  berthOk(['jremove', 'jname=st1'], env());
});
