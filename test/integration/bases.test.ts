/**
 * `berth base busybox|import|list|remove` through the built CLI, as root: bases that really
 * run (chroot), imports from a dir, .tar.gz and .tar.xz, refusals that leave bases/ as it was.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { berth, berthOk, isRoot, newNode, tempDir } from '../helpers/cli.js';
import { Inventory } from '../../src/inventory.js';

const dirs: string[] = [];
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

let wd: string;
let work: string;
before(() => {
  wd = newNode('basenode');
  dirs.push(join(wd, '..'));
  work = tempDir('berth-it-bases-');
  dirs.push(work);
});

const bases = (): string[] => readdirSync(join(wd, 'bases')).sort();

/** Runs `cmd` inside `root` with chroot; returns stdout. */
function inChroot(root: string, ...cmd: string[]): string {
  const r = spawnSync('chroot', [root, ...cmd], { encoding: 'utf8' });
  assert.equal(r.status, 0, `chroot ${root} ${cmd.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

test('integration tests run as root', () => {
  assert.ok(isRoot, 'run the integration tests as root (make test does)');
});

test('base busybox makes a root that runs, with the mount points berth needs', () => {
  const r = berthOk(['base', 'busybox', 'name=bb', '--json'], { workdir: wd });
  assert.equal(r.json.base.name, 'bb');
  assert.equal(r.json.base.kind, 'busybox');
  const root = join(wd, 'bases', 'bb');
  assert.equal(r.json.base.path, root);
  for (const d of ['bin', 'sbin', 'etc', 'root', 'tmp', 'home', 'var', 'usr/local', 'proc', 'sys', 'dev']) {
    assert.ok(statSync(join(root, d)).isDirectory(), d);
  }
  assert.equal(readlinkSync(join(root, 'bin', 'sh')), '/bin/busybox');
  assert.equal(inChroot(root, '/bin/sh', '-c', 'echo hello; id -un; ls /usr/local && echo listed').trim(), 'hello\nroot\nlisted');
});

test('base list shows name, path, size in bytes and env count (text and --json)', () => {
  const j = berthOk(['base', 'list', '--json'], { workdir: wd }).json;
  const bb = j.bases.find((b: { name: string }) => b.name === 'bb');
  assert.ok(bb);
  assert.equal(typeof bb.size, 'number');
  assert.ok(bb.size > 1_000_000, 'busybox itself is > 1 MB');
  assert.equal(bb.envCount, 0);
  const t = berthOk(['base', 'list'], { workdir: wd }).stdout.trimEnd().split('\n');
  assert.match(t[0]!, /^NAME\s+PATH\s+SIZE\s+ENVS$/);
  const line = t.find((l) => l.startsWith('bb '));
  assert.ok(line, t.join('\n'));
  assert.deepEqual(line!.split(/\s+/), ['bb', join(wd, 'bases', 'bb'), String(bb.size), '0']);
});

test('base import from a dir, a .tar.gz and a .tar.xz; each imported root runs', () => {
  const src = join(wd, 'bases', 'bb');
  assert.equal(spawnSync('tar', ['-czf', join(work, 'bb.tar.gz'), '-C', src, '.']).status, 0);
  assert.equal(spawnSync('tar', ['-cJf', join(work, 'bb.tar.xz'), '-C', src, '.']).status, 0);
  // a source without the mount-point dirs gets them
  const bare = join(work, 'bare');
  mkdirSync(join(bare, 'bin'), { recursive: true });
  assert.equal(spawnSync('cp', ['-a', join(src, 'bin', 'busybox'), join(bare, 'bin', 'busybox')]).status, 0);
  writeFileSync(join(bare, 'marker'), 'from-dir\n');
  const cases: [string, string, string][] = [['fromdir', bare, 'dir'], ['fromgz', join(work, 'bb.tar.gz'), 'tar'], ['fromxz', join(work, 'bb.tar.xz'), 'tar']];
  for (const [name, source, kind] of cases) {
    const r = berthOk(['base', 'import', `name=${name}`, `source=${source}`, '--json'], { workdir: wd });
    assert.equal(r.json.base.kind, kind);
    const root = join(wd, 'bases', name);
    for (const d of ['etc', 'root', 'tmp', 'home', 'var', 'usr/local', 'proc', 'sys', 'dev']) {
      assert.ok(statSync(join(root, d)).isDirectory(), `${name}: ${d}`);
    }
    assert.equal(inChroot(root, '/bin/busybox', 'echo', 'ok').trim(), 'ok');
  }
  assert.deepEqual(berthOk(['base', 'import', 'name=fromdir2', `source=${bare}`, '--json'], { workdir: wd }).json.base.addedDirs,
    ['etc', 'root', 'tmp', 'home', 'var', 'usr', 'usr/local', 'proc', 'sys', 'dev']);
  assert.equal(statSync(join(wd, 'bases', 'fromdir', 'tmp')).mode & 0o7777, 0o1777);
  assert.ok(existsSync(join(wd, 'bases', 'fromdir', 'marker')));
  assert.ok(!existsSync(join(bare, 'etc')), 'the source is not changed');
  // owners and links survive the tar round trip
  assert.equal(lstatSync(join(wd, 'bases', 'fromxz', 'bin', 'sh')).isSymbolicLink(), true);
  berthOk(['base', 'remove', 'fromdir2'], { workdir: wd });
});

test('bad input gets a clear error naming the value, its exit code, and leaves bases/ as it was', () => {
  const before = bases();
  writeFileSync(join(work, 'notes.zip'), 'x');
  writeFileSync(join(work, 'broken.tar.gz'), 'this is not gzip');
  mkdirSync(join(work, 'evil'), { recursive: true });
  spawnSync('ln', ['-s', '/etc', join(work, 'evil', 'etc')]);
  const cases: [string[], number, string, RegExp][] = [
    [['base', 'import', 'name=../x', `source=${join(work, 'bare')}`], 2, 'E_BAD_BASE_NAME', /"\.\.\/x"/],
    [['base', 'import', 'name=n1', `source=${join(work, 'missing')}`], 2, 'E_BAD_SOURCE', /missing/],
    [['base', 'import', 'name=n1', `source=${join(work, 'notes.zip')}`], 2, 'E_BAD_SOURCE', /notes\.zip.*unknown archive type/],
    [['base', 'import', 'name=n1', `source=${join(work, 'broken.tar.gz')}`], 1, 'E_IMPORT_FAILED', /broken\.tar\.gz/],
    [['base', 'import', 'name=n1', `source=${join(work, 'evil')}`], 2, 'E_BAD_BASE', /etc -> \/etc/],
    [['base', 'import', 'name=n1', 'source=/'], 2, 'E_BAD_SOURCE', /contains/],
    [['base', 'import', 'name=bb', `source=${join(work, 'bare')}`], 1, 'E_BASE_EXISTS', /"bb"/],
    [['base', 'busybox', 'name=bb'], 1, 'E_BASE_EXISTS', /"bb"/],
    [['base', 'busybox', 'name=.hidden'], 2, 'E_BAD_BASE_NAME', /"\.hidden"/],
    [['base', 'import', 'name=n1'], 2, 'E_BAD_SOURCE', /source=/],
    [['base', 'remove', 'name=nosuch'], 3, 'E_NO_SUCH_BASE', /"nosuch"/],
    [['base', 'remove'], 2, 'E_NO_NAME', /name=/],
  ];
  for (const [args, code, ecode, re] of cases) {
    const r = berth([...args, '--json'], { workdir: wd });
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stdout} ${r.stderr}`);
    assert.equal(r.json?.error?.code, ecode, args.join(' '));
    assert.match(r.json.error.message, re);
    assert.deepEqual(bases(), before, `${args.join(' ')} left bases/ as it was (no temp dirs either)`);
  }
});

test('base remove is refused (exit 1) while an env uses the base, and works once it is gone', () => {
  const db = join(wd, 'var', 'db', 'local.sqlite');
  const inv = Inventory.open(db);
  inv.insert({ jname: 'user1', uuid: 'u-1', emulator: 'runc', generation: 0, conf: { jname: 'user1', base: 'fromgz', baserw: '0' } });
  inv.close();
  const list = berthOk(['base', 'list', '--json'], { workdir: wd }).json.bases;
  assert.deepEqual(list.find((b: { name: string }) => b.name === 'fromgz').envs, ['user1']);
  const r = berth(['base', 'remove', 'name=fromgz', '--json'], { workdir: wd });
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.json.error.code, 'E_BASE_IN_USE');
  assert.match(r.json.error.message, /user1/);
  assert.ok(existsSync(join(wd, 'bases', 'fromgz', 'bin', 'busybox')), 'the base is untouched');
  const inv2 = Inventory.open(db);
  inv2.delete('user1');
  inv2.close();
  const ok = berthOk(['base', 'remove', 'fromgz', '--json'], { workdir: wd });
  assert.equal(ok.json.removed.name, 'fromgz');
  assert.ok(!bases().includes('fromgz'));
  assert.ok(!bases().some((n) => n.startsWith('.')), 'no temp dir left');
});

test('base remove is refused while something is mounted under the base', () => {
  const root = join(wd, 'bases', 'fromxz');
  const tgt = join(root, 'tmp');
  assert.equal(spawnSync('mount', ['-t', 'tmpfs', 'berth-test', tgt]).status, 0);
  try {
    const r = berth(['base', 'remove', 'fromxz', '--json'], { workdir: wd });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.json.error.code, 'E_BASE_MOUNTED');
    assert.ok(existsSync(join(root, 'bin', 'busybox')));
  } finally {
    spawnSync('umount', [tgt]);
  }
  berthOk(['base', 'remove', 'fromxz'], { workdir: wd });
});
