/**
 * src/doctor.ts and the `doctor` command handler on a real temp workdir (made by the initenv
 * library): the probes (O_EXCL, link, fcntl locks through perl, free space), var/db, pkg.conf
 * parsing, hooks and hook-dir scripts, and the exit code. GlusterFS cases (fuse.glusterfs type,
 * pkg.conf fix on a gluster-backed env) are in test/integration/doctor-gluster.test.ts.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { doctor, needsPkgLocking, pkgConfHasProperLocking, probeExclusiveCreate, probeRecordLocks, freeSpace, humanBytes } from '../../src/doctor.js';
import { command as doctorCommand } from '../../src/cli/commands/doctor.js';

const doctorCmd = doctorCommand.handler;
import { initenv } from '../../src/initenv.js';
import { openNode } from '../../src/node.js';
import { BerthError } from '../../src/errors.js';

let dir: string;
const io = { interactive: false, verbose: false, note: () => {} };

before(() => {
  assert.equal(process.getuid?.(), 0, 'run as root (hook ownership checks)');
  dir = mkdtempSync(join(tmpdir(), 'berth-doctor-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('probes', () => {
  test('exclusive create and link refuse an existing name on a local fs; no probe file is left', () => {
    const d = join(dir, 'probe');
    mkdirSync(d);
    assert.deepEqual(probeExclusiveCreate(d), { exclusiveCreate: true, link: true });
    assert.deepEqual(readdirSync(d), []);
  });

  test('exclusive create on a read-only dir reports the error', () => {
    const r = probeExclusiveCreate('/proc/self');
    assert.equal(r.exclusiveCreate, false);
    assert.ok(r.error, 'error code expected');
  });

  test('fcntl record locks work between two processes on a local fs (perl probe)', async () => {
    const d = join(dir, 'locks');
    mkdirSync(d);
    assert.deepEqual(await probeRecordLocks(d), { result: 'ok', detail: 'fcntl locks ok' });
    assert.deepEqual(readdirSync(d), []);
  });

  test('the lock probe reports a failure instead of passing when it cannot lock', async () => {
    const r = await probeRecordLocks('/proc/self');
    assert.equal(r.result, 'failed');
    assert.match(r.detail, /open/);
  });

  test('free space in bytes', () => {
    const s = freeSpace(dir);
    assert.ok(s.freeBytes > 0 && s.totalBytes >= s.freeBytes);
    assert.equal(humanBytes(1536), '1.5 KiB');
    assert.equal(humanBytes(512), '512 B');
  });

  test('pkg.conf parsing and which file systems need NFS_WITH_PROPER_LOCKING', () => {
    assert.equal(pkgConfHasProperLocking('NFS_WITH_PROPER_LOCKING = true;\n'), true);
    assert.equal(pkgConfHasProperLocking('  NFS_WITH_PROPER_LOCKING: yes\n'), true);
    assert.equal(pkgConfHasProperLocking('NFS_WITH_PROPER_LOCKING = "true";'), true);
    assert.equal(pkgConfHasProperLocking('# NFS_WITH_PROPER_LOCKING = true;\n'), false);
    assert.equal(pkgConfHasProperLocking('NFS_WITH_PROPER_LOCKING = true;\nNFS_WITH_PROPER_LOCKING = false;\n'), false);
    assert.equal(pkgConfHasProperLocking('REPOS_DIR = ["/etc/pkg"];\n'), false);
    assert.equal(needsPkgLocking('nfs'), true);
    assert.equal(needsPkgLocking('nfs', 'rw,nfsv4'), false);
    assert.equal(needsPkgLocking('nfs4'), false);
    assert.equal(needsPkgLocking('fuse.glusterfs'), true);
    assert.equal(needsPkgLocking('ext4'), false);
    assert.equal(needsPkgLocking('zfs'), false);
    // CephFS: the MDS grants POSIX record locks across clients (kernel client and ceph-fuse)
    assert.equal(needsPkgLocking('ceph'), false);
    assert.equal(needsPkgLocking('fuse.ceph-fuse'), false);
  });
});

describe('doctor on a temp workdir', () => {
  let wd: string;
  before(async () => {
    wd = join(dir, 'wd');
    await initenv({ workdir: wd, nodename: 'doc1' });
  });

  test('a fresh local workdir passes: four shared dirs, the ownership dir (local: a warning) and var/db', async () => {
    const ctx = openNode(wd);
    try {
      const r = await doctor(ctx);
      assert.equal(r.ok, true);
      assert.deepEqual(r.checks.map((c) => [c.check, c.subject.slice(wd.length + 1), c.status]), [
        ['shared dir', 'jails-data', 'ok'], ['shared dir', 'jails-system', 'ok'], ['shared dir', 'jails-rcconf', 'ok'],
        ['shared dir', 'jails-fstab', 'ok'], ['ownership dir', 'jails-lease', 'ok'], ['ownership shared', 'jails-lease', 'warn'], ['var/db', 'var/db', 'ok'],
        ['engine', '', 'ok'],
      ]);
      assert.match(r.checks[5]!.detail, /local file system .* no other node is known/);
      // the engines report themselves (src/engines/registry.ts): qemu its accelerator
      assert.equal(r.checks[7]!.subject, 'qemu');
      assert.match(r.checks[7]!.detail, /^qemu uses (KVM|TCG)/);
      assert.ok(['kvm', 'tcg'].includes(String(r.checks[7]!.data!.accel)));
      const d = r.checks[0]!.data!;
      assert.equal(d.exclusiveCreate, true);
      assert.equal(d.link, true);
      assert.equal(d.recordLocks, 'ok');
      assert.equal(typeof d.freeBytes, 'number');
      assert.equal(typeof d.fsType, 'string');
      for (const c of r.checks.slice(0, 4)) assert.deepEqual(readdirSync(c.subject).filter((n) => n.startsWith('.berth-doctor')), []);
    } finally { ctx.close(); }
  });

  test('unsafe hooks and hook-dir scripts fail naming the file; a non-executable script warns; the command exits 1', async () => {
    const hooks = join(dir, 'hooks');
    mkdirSync(hooks);
    const good = join(hooks, 'start.sh');
    const ww = join(hooks, 'stop.sh');
    writeFileSync(good, '#!/bin/sh\nexit 0\n'); chmodSync(good, 0o755);
    writeFileSync(ww, '#!/bin/sh\nexit 0\n'); chmodSync(ww, 0o777);
    const ctx = openNode(wd);
    try {
      ctx.inv.insert({ jname: 'web1', uuid: '11111111-2222-4333-8444-555555555555', emulator: 'runc', generation: 1,
        conf: { jname: 'web1', mnt_start: good, mnt_stop: ww, clone_script: join(hooks, 'missing.sh') } });
    } finally { ctx.close(); }
    const sys = join(wd, 'jails-system', 'web1');
    mkdirSync(join(sys, 'master_prestart.d'), { recursive: true });
    mkdirSync(join(sys, 'master_poststop.d'), { recursive: true });
    writeFileSync(join(sys, 'master_prestart.d', '10-ok'), '#!/bin/sh\n'); chmodSync(join(sys, 'master_prestart.d', '10-ok'), 0o755);
    writeFileSync(join(sys, 'master_prestart.d', '20-nobody'), '#!/bin/sh\n'); chmodSync(join(sys, 'master_prestart.d', '20-nobody'), 0o755);
    chownSync(join(sys, 'master_prestart.d', '20-nobody'), 65534, 65534);
    writeFileSync(join(sys, 'master_poststop.d', 'notes.txt'), 'not a script');

    const out = await doctorCmd({ workdir: wd }, [], io);
    assert.equal(out.exitCode, 1);
    const checks = (out.data.checks as { check: string; subject: string; status: string; detail: string }[]).filter((c) => c.check === 'hook');
    const by = (p: string) => checks.find((c) => c.subject === p);
    assert.equal(by(good)?.status, 'ok');
    assert.equal(by(ww)?.status, 'fail');
    assert.match(by(ww)!.detail, /mnt_stop of web1: refusing to run hook .*stop\.sh: mode 0777 lets group and others change it/);
    assert.equal(by(join(hooks, 'missing.sh'))?.status, 'fail');
    assert.match(by(join(hooks, 'missing.sh'))!.detail, /clone_script of web1: .*does not exist/);
    assert.equal(by(join(sys, 'master_prestart.d', '10-ok'))?.status, 'ok');
    assert.equal(by(join(sys, 'master_prestart.d', '20-nobody'))?.status, 'fail');
    assert.match(by(join(sys, 'master_prestart.d', '20-nobody'))!.detail, /owned by uid 65534, not root/);
    assert.equal(by(join(sys, 'master_poststop.d', 'notes.txt'))?.status, 'warn');
    assert.match(out.text!, /^CHECK\s+SUBJECT\s+STATUS\s+DETAIL$/m);
    assert.match(out.text!, /^hook\s+jails-system\/web1\/master_prestart\.d\/20-nobody\s+FAIL\s+/m);
    assert.match(out.text!, /failed, \d+ warnings, 0 fixed$/);

    // fixed: the command passes again
    chmodSync(ww, 0o755);
    chownSync(join(sys, 'master_prestart.d', '20-nobody'), 0, 0);
    const ctx2 = openNode(wd);
    try {
      const row = ctx2.inv.get('web1')!;
      ctx2.inv.updateConf('web1', { ...row.conf, clone_script: '0' });
    } finally { ctx2.close(); }
    const again = await doctorCmd({ workdir: wd }, [], io);
    assert.equal(again.exitCode, 0, again.text);
  });

  test('a waiting descriptor that cannot be parsed fails, naming the file and why; one that parses is not reported', async () => {
    const rc = join(wd, 'jails-rcconf');
    writeFileSync(join(rc, 'rc.conf_odd1'), 'jname="odd1";\nhost_hostname="$(id)";\n');
    writeFileSync(join(rc, 'rc.conf_fine1'), 'jname="fine1";\nemulator="runc";\nbase="bb";\n');
    const ctx = openNode(wd);
    try {
      const r = await doctor(ctx);
      assert.equal(r.ok, false);
      const d = r.checks.filter((c) => c.check === 'descriptor');
      assert.deepEqual(d.map((c) => [c.subject, c.status]), [[join(rc, 'rc.conf_odd1'), 'fail']]);
      assert.match(d[0]!.detail, /cannot be parsed, so jls does not list it and jregister refuses it: .+/);
    } finally {
      ctx.close();
      rmSync(join(rc, 'rc.conf_odd1'));
      rmSync(join(rc, 'rc.conf_fine1'));
    }
  });

  test('node default hooks are checked', async () => {
    const ctx = openNode(wd);
    try {
      ctx.settings.default_mnt_start = join(dir, 'no-such-default.sh');
      const r = await doctor(ctx);
      const c = r.checks.find((x) => x.subject === join(dir, 'no-such-default.sh'))!;
      assert.equal(c.status, 'fail');
      assert.match(c.detail, /^node default_mnt_start: /);
      assert.equal(r.ok, false);
    } finally { ctx.close(); }
  });

  test('jname=: adds the env dirs; an unknown name exits 3; a bad one exits 2', async () => {
    mkdirSync(join(wd, 'jails-data', 'web1-data'), { recursive: true });
    const ctx = openNode(wd);
    try {
      const r = await doctor(ctx, { jname: 'web1' });
      const env = r.checks.filter((c) => c.check === 'env dir');
      assert.deepEqual(env.map((c) => [c.subject.slice(wd.length + 1), c.status]), [
        ['jails-data/web1-data', 'ok'], ['jails-system/web1', 'ok'], ['jails-fstab/web1', 'warn'],
      ]);
      assert.match(env[2]!.detail, /missing/);
      await assert.rejects(doctor(ctx, { jname: 'nope' }), (e: BerthError) => e.code === 'E_NO_SUCH_ENV' && e.exitCode === 3);
      await assert.rejects(doctor(ctx, { jname: '../x' }), (e: BerthError) => e.exitCode === 2);
    } finally { ctx.close(); }
  });

  test('an env pkg database on a local fs needs no setting; a symlinked var in the env is not followed', async () => {
    const data = join(wd, 'jails-data', 'web1-data');
    mkdirSync(join(data, 'var', 'db', 'pkg'), { recursive: true });
    writeFileSync(join(data, 'var', 'db', 'pkg', 'local.sqlite'), '');
    const ctx = openNode(wd);
    try {
      let r = await doctor(ctx, { jname: 'web1' });
      let c = r.checks.find((x) => x.check === 'pkg locking')!;
      assert.equal(c.status, 'ok');
      assert.match(c.detail, /no setting needed/);
      rmSync(join(data, 'var'), { recursive: true });
      symlinkSync('/var', join(data, 'var'));
      r = await doctor(ctx, { jname: 'web1' });
      c = r.checks.find((x) => x.check === 'pkg locking')!;
      assert.equal(c.status, 'warn');
      assert.match(c.detail, /web1-data\/var is a symlink; not followed/);
      rmSync(join(data, 'var'));
    } finally { ctx.close(); }
  });
});
