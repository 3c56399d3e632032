/**
 * initenv: the pure rules (network fs types, settings merge) and the library run against a
 * temp dir with fake host probes (no root, no ZFS, no mounts needed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initenv, isNetworkFs, mergeSettings, nearestExisting, copyMissing, type InitenvProbes } from '../../src/initenv.js';
import { BerthError } from '../../src/errors.js';
import { Inventory, SCHEMA_VERSION } from '../../src/inventory.js';
import { readKV } from '../../src/kvfile.js';
import { Workdir } from '../../src/paths.js';

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'berth-unit-initenv-'));
}

function probes(over: Partial<InitenvProbes> = {}): InitenvProbes {
  return {
    hostname: () => 'host-a.example',
    isZfs: async () => false,
    isHammer: async () => false,
    fsType: async () => 'ext4',
    examplesDir: () => undefined,
    ...over,
  };
}

/** Asserts that `fn` rejects with a BerthError of `code` and `exitCode`. */
async function rejectsWith(fn: () => Promise<unknown>, code: string, exitCode: number, msg?: RegExp): Promise<BerthError> {
  let err: unknown;
  try { await fn(); } catch (e) { err = e; }
  assert.ok(err instanceof BerthError, `expected BerthError ${code}, got ${String(err)}`);
  assert.equal(err.code, code);
  assert.equal(err.exitCode, exitCode);
  if (msg) assert.match(err.message, msg);
  return err;
}

test('network and FUSE file systems are refused for var/db, local ones are not', () => {
  for (const t of ['nfs', 'nfs4', 'cifs', 'smb3', 'ceph', 'glusterfs', 'fuse.glusterfs', 'fuse.ceph', 'fuse.sshfs', 'fuse', 'fusefs.sshfs', 'NFS4', '9p', 'ocfs2', 'gfs2']) {
    assert.equal(isNetworkFs(t), true, t);
  }
  for (const t of ['ext4', 'xfs', 'btrfs', 'zfs', 'ufs', 'tmpfs', 'overlay', 'hammer2', 'unknown', 'fuseblk']) {
    assert.equal(isNetworkFs(t), false, t);
  }
});

test('mergeSettings: defaults, overrides, unknown keys kept, bad values named', () => {
  const m = mergeSettings({ lease_ttl: '45', custom: 'x' }, { mnt_timeout: '0', default_mnt_start: '/usr/local/bin/hook' });
  assert.equal(m.lease_ttl, '45');
  assert.equal(m.mnt_timeout, '0');
  assert.equal(m.zfsfeat, '0');
  assert.equal(m.custom, 'x');
  assert.equal(m.default_mnt_start, '/usr/local/bin/hook');
  const bad: [Record<string, string>, RegExp][] = [
    [{ zfsfeat: '2' }, /zfsfeat="2"/], [{ lease_ttl: '0' }, /lease_ttl="0"/], [{ lease_ttl: 'abc' }, /lease_ttl/],
    [{ mnt_timeout: '-1' }, /mnt_timeout/], [{ api_port: '70000' }, /api_port="70000"/],
    [{ default_mnt_stop: 'relative/hook' }, /default_mnt_stop="relative\/hook"/], [{ hammerfeat: 'yes' }, /hammerfeat/],
  ];
  for (const [given, re] of bad) {
    assert.throws(() => mergeSettings({}, given), (e: unknown) => e instanceof BerthError && e.code === 'E_BAD_SETTING' && e.exitCode === 2 && re.test(e.message));
  }
});

test('nearestExisting walks up to an existing dir', () => {
  const d = tmp();
  try {
    assert.equal(nearestExisting(join(d, 'a', 'b', 'c')), d);
    assert.equal(nearestExisting(d), d);
  } finally { rmSync(d, { recursive: true, force: true }); }
});

test('first init creates the layout, nodename from the hostname, berth.conf, inventory and a 0600 token', async () => {
  const d = tmp();
  try {
    const root = join(d, 'parent', 'wd');
    const r = await initenv({ workdir: root }, probes());
    const wd = new Workdir(root);
    assert.equal(r.firstInit, true);
    assert.equal(r.nodename, 'host-a.example');
    assert.equal(readFileSync(wd.nodenameFile, 'utf8'), 'host-a.example\n');
    for (const dir of wd.layoutDirs) assert.ok(statSync(dir).isDirectory(), dir);
    assert.equal(statSync(wd.varDb).mode & 0o777, 0o700);
    assert.ok(r.created.includes(join(d, 'parent')), 'missing parents are created and reported');
    assert.deepEqual(readKV(wd.conf), { zfsfeat: '0', hammerfeat: '0', lease_ttl: '30', mnt_timeout: '300', default_mnt_start: '0', default_mnt_stop: '0', api_port: '0', lease_dir: '' });
    const token = readFileSync(wd.apiToken, 'utf8');
    assert.match(token, /^[0-9a-f]{64}\n$/);
    assert.equal(statSync(wd.apiToken).mode & 0o777, 0o600);
    const inv = Inventory.open(wd.dbFile, { readonly: true });
    try { assert.equal(inv.db.pragma('user_version', { simple: true }), SCHEMA_VERSION); } finally { inv.close(); }
    assert.equal(r.inventory.schemaVersion, SCHEMA_VERSION);
    assert.equal(JSON.stringify(r).includes(token.trim()), false, 'the token itself is never in the result');
  } finally { rmSync(d, { recursive: true, force: true }); }
});

test('a re-run keeps settings, nodename and token unless new ones are given; unknown keys survive', async () => {
  const d = tmp();
  try {
    const root = join(d, 'wd');
    const wd = new Workdir(root);
    await initenv({ workdir: root, nodename: 'n1', settings: { lease_ttl: '60', api_port: '8099' } }, probes());
    const token = readFileSync(wd.apiToken, 'utf8');
    writeFileSync(wd.conf, readFileSync(wd.conf, 'utf8') + 'operator_note="keep me";\n');
    const r2 = await initenv({ workdir: root }, probes({ hostname: () => 'other-host' }));
    assert.equal(r2.firstInit, false);
    assert.equal(r2.nodename, 'n1');
    assert.deepEqual(r2.changedSettings, []);
    assert.deepEqual(r2.created, []);
    const kv = readKV(wd.conf);
    assert.equal(kv.lease_ttl, '60');
    assert.equal(kv.api_port, '8099');
    assert.equal(kv.operator_note, 'keep me');
    assert.equal(readFileSync(wd.apiToken, 'utf8'), token);
    const r3 = await initenv({ workdir: root, settings: { mnt_timeout: '10' } }, probes());
    assert.deepEqual(r3.changedSettings, ['mnt_timeout']);
    assert.equal(readKV(wd.conf).lease_ttl, '60');
    assert.equal(readKV(wd.conf).mnt_timeout, '10');
  } finally { rmSync(d, { recursive: true, force: true }); }
});

test('bad input changes nothing: the workdir is not even created', async () => {
  const d = tmp();
  try {
    const root = join(d, 'wd');
    await rejectsWith(() => initenv({ workdir: root, nodename: 'bad name' }, probes()), 'E_BAD_NODENAME', 2, /"bad name"/);
    await rejectsWith(() => initenv({ workdir: root, nodename: '-x' }, probes()), 'E_BAD_NODENAME', 2);
    await rejectsWith(() => initenv({ workdir: root }, probes({ hostname: () => 'bad/host' })), 'E_BAD_NODENAME', 2, /hostname "bad\/host"/);
    await rejectsWith(() => initenv({ workdir: root, settings: { lease_ttl: 'x' } }, probes()), 'E_BAD_SETTING', 2);
    await rejectsWith(() => initenv({ workdir: root, settings: { zfsfeat: '1' } }, probes()), 'E_NO_ZFS', 2, /zfsfeat=1/);
    await rejectsWith(() => initenv({ workdir: root, settings: { hammerfeat: '1' } }, probes()), 'E_NO_HAMMER', 2);
    await rejectsWith(() => initenv({ workdir: root }, probes({ fsType: async () => 'fuse.glusterfs' })), 'E_VARDB_NETWORK_FS', 2, /fuse\.glusterfs/);
    await rejectsWith(() => initenv({ workdir: root }, probes({ fsType: async () => 'nfs4' })), 'E_VARDB_NETWORK_FS', 2, /SQLite/);
    await rejectsWith(() => initenv({ workdir: '/' }, probes()), 'E_BAD_WORKDIR', 2);
    assert.deepEqual(readdirSync(d), []);
    writeFileSync(join(d, 'file'), 'x');
    await rejectsWith(() => initenv({ workdir: join(d, 'file') }, probes()), 'E_BAD_WORKDIR', 2, /not a directory/);
  } finally { rmSync(d, { recursive: true, force: true }); }
});

test('zfsfeat=1 is accepted on ZFS, and refused later when the conf says 1 but the dir is not ZFS', async () => {
  const d = tmp();
  try {
    const root = join(d, 'wd');
    const seen: string[] = [];
    const r = await initenv({ workdir: root, nodename: 'z', settings: { zfsfeat: '1' } }, probes({ isZfs: async (p) => { seen.push(p); return true; } }));
    assert.equal(r.settings.zfsfeat, '1');
    assert.equal(r.fs.zfs, true);
    assert.deepEqual(seen, [d], 'the probe gets the nearest existing dir of the workdir');
    const before = readFileSync(join(root, 'etc', 'berth.conf'), 'utf8');
    await rejectsWith(() => initenv({ workdir: root }, probes()), 'E_NO_ZFS', 2, /berth\.conf/);
    assert.equal(readFileSync(join(root, 'etc', 'berth.conf'), 'utf8'), before);
    const r2 = await initenv({ workdir: root, settings: { zfsfeat: '0' } }, probes());
    assert.equal(r2.settings.zfsfeat, '0');
  } finally { rmSync(d, { recursive: true, force: true }); }
});

test('the fs type is taken from var/db when it exists (a mount there counts)', async () => {
  const d = tmp();
  try {
    const root = join(d, 'wd');
    await initenv({ workdir: root, nodename: 'n' }, probes());
    const asked: string[] = [];
    await rejectsWith(() => initenv({ workdir: root, settings: { lease_ttl: '99' } }, probes({
      fsType: async (p) => { asked.push(p); return p.endsWith('/var/db') ? 'nfs4' : 'ext4'; },
    })), 'E_VARDB_NETWORK_FS', 2);
    assert.deepEqual(asked, [join(root, 'var', 'db')]);
    assert.equal(readKV(join(root, 'etc', 'berth.conf')).lease_ttl, '30', 'refused run changed nothing');
  } finally { rmSync(d, { recursive: true, force: true }); }
});

test('renaming a node: allowed without envs, refused (exit 1) while the inventory holds envs', async () => {
  const d = tmp();
  try {
    const root = join(d, 'wd');
    const wd = new Workdir(root);
    await initenv({ workdir: root, nodename: 'old' }, probes());
    const r = await initenv({ workdir: root, nodename: 'new' }, probes());
    assert.equal(r.previousNodename, 'old');
    assert.equal(readFileSync(wd.nodenameFile, 'utf8'), 'new\n');
    const inv = Inventory.open(wd.dbFile);
    inv.insert({ jname: 'web1', uuid: 'u1', emulator: 'runc', generation: 1, conf: { jname: 'web1', base: 'bb' } });
    inv.close();
    await rejectsWith(() => initenv({ workdir: root, nodename: 'third' }, probes()), 'E_NODENAME_IN_USE', 1, /1 env/);
    assert.equal(readFileSync(wd.nodenameFile, 'utf8'), 'new\n');
    const same = await initenv({ workdir: root, nodename: 'new' }, probes());
    assert.equal(same.previousNodename, undefined);
  } finally { rmSync(d, { recursive: true, force: true }); }
});

test('examples: only missing files are copied; edited ones are kept, deleted ones come back', async () => {
  const d = tmp();
  try {
    const ex = join(d, 'examples');
    mkdirSync(join(ex, 'env_start', 'nfsv4'), { recursive: true });
    writeFileSync(join(ex, 'env_start', 'nfsv4', 'mnt_start'), '#!/bin/sh\n', { mode: 0o777 });
    chmodSync(join(ex, 'env_start', 'nfsv4', 'mnt_start'), 0o777);
    writeFileSync(join(ex, 'README.md'), 'v1');
    symlinkSync('README.md', join(ex, 'link'));
    const root = join(d, 'wd');
    const dst = join(root, 'share', 'examples');
    await initenv({ workdir: root, nodename: 'n' }, probes({ examplesDir: () => ex }));
    assert.equal(readFileSync(join(dst, 'README.md'), 'utf8'), 'v1');
    assert.equal(statSync(join(dst, 'env_start', 'nfsv4', 'mnt_start')).mode & 0o777, 0o755, 'group/other write dropped');
    assert.equal(readFileSync(join(dst, 'link'), 'utf8'), 'v1');
    writeFileSync(join(dst, 'README.md'), 'edited');
    rmSync(join(dst, 'env_start', 'nfsv4', 'mnt_start'));
    writeFileSync(join(ex, 'README.md'), 'v2');
    const r = await initenv({ workdir: root }, probes({ examplesDir: () => ex }));
    assert.equal(readFileSync(join(dst, 'README.md'), 'utf8'), 'edited');
    assert.ok(existsSync(join(dst, 'env_start', 'nfsv4', 'mnt_start')));
    assert.deepEqual(r.created, [join(dst, 'env_start', 'nfsv4', 'mnt_start')]);
  } finally { rmSync(d, { recursive: true, force: true }); }
});

test('a write that fails half way removes what the run created', async () => {
  const d = tmp();
  try {
    const root = join(d, 'wd');
    // an examples dir that cannot be read makes the copy step (after dirs, inventory, token) fail
    await rejectsWith(() => initenv({ workdir: root, nodename: 'n' }, probes({ examplesDir: () => join(d, 'missing-examples') })), 'E_INITENV_WRITE', 1);
    assert.deepEqual(readdirSync(d), [], 'nothing of the failed first init is left');
  } finally { rmSync(d, { recursive: true, force: true }); }
});

test('copyMissing does not replace a file by a directory or follow into it', async () => {
  const d = tmp();
  try {
    mkdirSync(join(d, 'src', 'x'), { recursive: true });
    writeFileSync(join(d, 'src', 'x', 'f'), '1');
    mkdirSync(join(d, 'dst'));
    writeFileSync(join(d, 'dst', 'x'), 'a file where src has a dir');
    const created: string[] = [];
    await copyMissing(join(d, 'src'), join(d, 'dst'), created);
    assert.deepEqual(created, []);
    assert.equal(readFileSync(join(d, 'dst', 'x'), 'utf8'), 'a file where src has a dir');
  } finally { rmSync(d, { recursive: true, force: true }); }
});
