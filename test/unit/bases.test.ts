/**
 * bases: source classification, applet list, ELF static check, mount-point dirs, tree size,
 * and import/list/remove through the library on a temp workdir (no root needed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BASE_MOUNT_DIRS, elfIsStatic, ensureMountDirs, importBase, listBases, parseAppletList, removeBase, sourceKind, treeSize, busyboxBase, type BaseCtx,
} from '../../src/bases.js';
import { BerthError } from '../../src/errors.js';
import { initenv } from '../../src/initenv.js';
import { Inventory } from '../../src/inventory.js';
import { Workdir } from '../../src/paths.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'berth-unit-bases-'));

function isBerthError(code: string, exitCode: number, re?: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof BerthError, String(e));
    assert.equal(e.code, code, e.message);
    assert.equal(e.exitCode, exitCode);
    if (re) assert.match(e.message, re);
    return true;
  };
}

async function node(d: string): Promise<BaseCtx & { close(): void }> {
  const root = join(d, 'wd');
  await initenv({ workdir: root, nodename: 'n1' }, {
    hostname: () => 'n1', isZfs: async () => false, isHammer: async () => false, fsType: async () => 'ext4', examplesDir: () => undefined,
  });
  const wd = new Workdir(root);
  const inv = Inventory.open(wd.dbFile);
  return { wd, inv, close: () => inv.close() };
}

test('sourceKind: dirs, known archive names, and clear errors for the rest', () => {
  const d = tmp();
  try {
    for (const n of ['a.tar', 'a.tar.gz', 'a.tgz', 'a.tar.xz', 'base.txz', 'A.TAR.XZ', 'a.tar.bz2']) {
      writeFileSync(join(d, n), '');
      assert.equal(sourceKind(join(d, n)), 'tar', n);
    }
    assert.equal(sourceKind(d), 'dir');
    writeFileSync(join(d, 'a.zip'), '');
    assert.throws(() => sourceKind(join(d, 'a.zip')), isBerthError('E_BAD_SOURCE', 2, /a\.zip.*unknown archive type/));
    assert.throws(() => sourceKind(join(d, 'nope.tar')), isBerthError('E_BAD_SOURCE', 2, /nope\.tar.*does not exist/));
    assert.throws(() => sourceKind('/dev/null'), isBerthError('E_BAD_SOURCE', 2, /neither/));
  } finally { rmSync(d, { recursive: true, force: true }); }
});

test('parseAppletList keeps relative applet paths only', () => {
  const list = parseAppletList('usr/bin/[\nbin/sh\nlinuxrc\n/bin/abs\n../x/y\nbin/busybox\nbin/sh\n\nsbin/ifconfig\n');
  assert.deepEqual(list, ['usr/bin/[', 'bin/sh', 'sbin/ifconfig']);
});

test('elfIsStatic: busybox-static is static, node is dynamic, text is not ELF', () => {
  const head = (f: string): Buffer => readFileSync(f).subarray(0, 4096);
  assert.equal(elfIsStatic(head('/bin/busybox')), true);
  assert.equal(elfIsStatic(head(process.execPath)), false);
  assert.equal(elfIsStatic(Buffer.from('#!/bin/sh\necho hi\n'.padEnd(100))), undefined);
});

test('ensureMountDirs adds the missing dirs with the right modes and keeps existing ones', async () => {
  const d = tmp();
  try {
    mkdirSync(join(d, 'etc'));
    writeFileSync(join(d, 'etc', 'keep'), 'x');
    symlinkSync('usr/src/sys', join(d, 'sys'));
    const added = await ensureMountDirs(d);
    assert.deepEqual(added, ['root', 'tmp', 'home', 'var', 'usr', 'usr/local', 'proc', 'dev']);
    for (const rel of BASE_MOUNT_DIRS.filter((x) => x !== 'sys')) assert.ok(statSync(join(d, rel)).isDirectory(), rel);
    assert.ok(lstatSync(join(d, 'sys')).isSymbolicLink(), 'a relative link inside the base is kept');
    assert.equal(statSync(join(d, 'tmp')).mode & 0o7777, 0o1777);
    assert.equal(statSync(join(d, 'root')).mode & 0o777, 0o700);
    assert.equal(readFileSync(join(d, 'etc', 'keep'), 'utf8'), 'x');
    assert.deepEqual(await ensureMountDirs(d), []);
  } finally { rmSync(d, { recursive: true, force: true }); }
});

test('ensureMountDirs refuses links that leave the base and files where a dir is needed', async () => {
  for (const [setup, re] of [
    [(d: string) => symlinkSync('/etc', join(d, 'etc')), /etc -> \/etc/],
    [(d: string) => { mkdirSync(join(d, 'usr')); symlinkSync('../../outside', join(d, 'usr', 'local')); }, /usr\/local -> \.\.\/\.\.\/outside/],
    [(d: string) => symlinkSync('/usr', join(d, 'usr')), /usr -> \/usr/],
    [(d: string) => writeFileSync(join(d, 'var'), ''), /\/var as a file/],
  ] as [(d: string) => void, RegExp][]) {
    const d = tmp();
    try {
      setup(d);
      await assert.rejects(ensureMountDirs(d), isBerthError('E_BAD_BASE', 2, re));
    } finally { rmSync(d, { recursive: true, force: true }); }
  }
});

test('treeSize counts files and links, hard links once', () => {
  const d = tmp();
  try {
    mkdirSync(join(d, 'a', 'b'), { recursive: true });
    writeFileSync(join(d, 'a', 'f1'), 'x'.repeat(1000));
    writeFileSync(join(d, 'a', 'b', 'f2'), 'y'.repeat(24));
    linkSync(join(d, 'a', 'f1'), join(d, 'hard'));
    symlinkSync('a/f1', join(d, 'sym'));
    assert.equal(treeSize(d), 1000 + 24 + 'a/f1'.length);
    assert.equal(treeSize(join(d, 'missing')), 0);
  } finally { rmSync(d, { recursive: true, force: true }); }
});

test('import from a dir and a tar.gz, list with env counts, remove refused while used', async () => {
  const d = tmp();
  const ctx = await node(d);
  try {
    const src = join(d, 'src');
    mkdirSync(join(src, 'bin'), { recursive: true });
    writeFileSync(join(src, 'bin', 'hello'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
    const r = await importBase(ctx, 'b1', src);
    assert.equal(r.kind, 'dir');
    assert.equal(readFileSync(join(ctx.wd.bases, 'b1', 'bin', 'hello'), 'utf8'), '#!/bin/sh\necho hi\n');
    assert.equal(statSync(join(ctx.wd.bases, 'b1', 'bin', 'hello')).mode & 0o777, 0o755);
    assert.ok(r.addedDirs.includes('usr/local'));
    assert.equal(spawnSync('tar', ['-czf', join(d, 'b.tar.gz'), '-C', src, '.']).status, 0);
    const r2 = await importBase(ctx, 'b2.tgz-base', join(d, 'b.tar.gz'));
    assert.equal(r2.kind, 'tar');
    assert.ok(existsSync(join(ctx.wd.bases, 'b2.tgz-base', 'bin', 'hello')));

    ctx.inv.insert({ jname: 'web1', uuid: 'u', emulator: 'runc', generation: 0, conf: { jname: 'web1', base: 'b1' } });
    const l = listBases(ctx);
    assert.deepEqual(l.map((b) => [b.name, b.envs]), [['b1', ['web1']], ['b2.tgz-base', []]]);
    assert.ok(l[0]!.size > 0);
    await assert.rejects(removeBase(ctx, 'b1'), isBerthError('E_BASE_IN_USE', 1, /web1/));
    assert.ok(existsSync(join(ctx.wd.bases, 'b1', 'bin', 'hello')));
    await assert.rejects(removeBase(ctx, 'nope'), isBerthError('E_NO_SUCH_BASE', 3, /"nope"/));
    await removeBase(ctx, 'b2.tgz-base');
    assert.deepEqual(readdirSync(ctx.wd.bases), ['b1']);
  } finally { ctx.close(); rmSync(d, { recursive: true, force: true }); }
});

test('refused or failed imports leave nothing under bases/', async () => {
  const d = tmp();
  const ctx = await node(d);
  try {
    const src = join(d, 'src');
    mkdirSync(src);
    symlinkSync('/etc', join(src, 'etc'));
    await assert.rejects(importBase(ctx, 'evil', src), isBerthError('E_BAD_BASE', 2, /etc -> \/etc/));
    writeFileSync(join(d, 'junk.tar.xz'), 'not an archive');
    await assert.rejects(importBase(ctx, 'junk', join(d, 'junk.tar.xz')), isBerthError('E_IMPORT_FAILED', 1, /tar/));
    await assert.rejects(importBase(ctx, '../up', src), isBerthError('E_BAD_BASE_NAME', 2, /"\.\.\/up"/));
    await assert.rejects(importBase(ctx, 'x', join(d, 'missing')), isBerthError('E_BAD_SOURCE', 2, /missing/));
    await assert.rejects(importBase(ctx, 'x', ctx.wd.root), isBerthError('E_BAD_SOURCE', 2, /contains/));
    assert.deepEqual(readdirSync(ctx.wd.bases), []);
    await busyboxBase(ctx, 'bb');
    await assert.rejects(importBase(ctx, 'bb', join(d, 'src')), isBerthError('E_BASE_EXISTS', 1, /"bb"/));
    await assert.rejects(busyboxBase(ctx, 'bb2', { busybox: process.execPath }), isBerthError('E_NO_BUSYBOX', 1, /dynamically linked/));
    await assert.rejects(busyboxBase(ctx, 'bb2', { busybox: join(d, 'nobusybox') }), isBerthError('E_NO_BUSYBOX', 1, /not found/));
    assert.deepEqual(readdirSync(ctx.wd.bases), ['bb']);
  } finally { ctx.close(); rmSync(d, { recursive: true, force: true }); }
});

test('busybox base: applets link to /bin/busybox, minimal passwd/group, mount-point dirs', async () => {
  const d = tmp();
  const ctx = await node(d);
  try {
    const r = await busyboxBase(ctx, 'bb');
    const b = join(ctx.wd.bases, 'bb');
    assert.equal(r.kind, 'busybox');
    assert.equal(statSync(join(b, 'bin', 'busybox')).mode & 0o777, 0o755);
    for (const a of ['bin/sh', 'bin/ls', 'usr/bin/env', 'sbin/ifconfig']) {
      assert.equal(lstatSync(join(b, a)).isSymbolicLink(), true, a);
    }
    assert.match(readFileSync(join(b, 'etc', 'passwd'), 'utf8'), /^root:x:0:0:root:\/root:\/bin\/sh$/m);
    assert.match(readFileSync(join(b, 'etc', 'group'), 'utf8'), /^root:x:0:$/m);
    assert.equal(existsSync(join(b, 'etc', 'hostname')), false);
    for (const rel of BASE_MOUNT_DIRS) assert.ok(statSync(join(b, rel)).isDirectory(), rel);
  } finally { ctx.close(); rmSync(d, { recursive: true, force: true }); }
});
