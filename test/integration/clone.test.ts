/**
 * jclone end to end on real runc envs (issue 3 item 7): berth's local copy (file written
 * inside old appears in new; modes, owners, links, nodes and times kept; new uuid, hostname,
 * fstab rewritten), clone hooks (clone-local.d and clone_script=: berth's own copy not used),
 * a failing hook leaving no trace of the new env (mnt_stop run for it), clones of envs
 * whose storage is mounted by mnt_start hooks (local copy and storage-side hook), and
 * refusals (old running, new existing, bad names, new dirs holding files) that change nothing.
 * Needs root, runc, busybox-static (make test installs them).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync, linkSync } from 'node:fs';
import { join } from 'node:path';
import { berth, berthOk, isRoot, mountTable, tempDir } from '../helpers/cli.js';
import { devNumbers, zfsClonePlan } from '../../src/lifecycle/clone.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

let top: string; // temp dir holding the workdir and the test's storage/hooks
let wd: string;
let ctl: string; // root-owned dir of test hooks and their call log
const env = () => ({ workdir: wd });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Writes an executable root-owned test hook (0755) and returns its path. */
function hook(name: string, body: string): string {
  const p = join(ctl, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

/** `find -printf` listing of a tree: path type mode owner links size mtime(s) link-target. */
function listing(dir: string): string[] {
  const r = spawnSync('find', [dir, '-mindepth', '1', '-printf', '%P %y %m %U:%G %n %s %T@ %l\n'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).map((l) => {
    const f = l.split(' ');
    f[6] = f[6]!.split('.')[0]!; // whole seconds
    if (f[1] === 'd') f[5] = '-'; // directory sizes depend on history
    return f.join(' ');
  }).sort();
}

/** Everything a refused clone must not change. */
function snapshot(): Record<string, unknown> {
  const ls = (d: string) => (existsSync(join(wd, d)) ? readdirSync(join(wd, d)).sort() : []);
  return {
    mounts: mountTable(top),
    envs: berthOk(['jls', '--json'], env()).json.envs.map((e: any) => `${e.jname}:${e.status}:${e.uuid}:${e.generation}`),
    dirs: ['jails', 'jails-data', 'jails-system', 'jails-fstab', 'jails-rcconf', 'var/log'].map((d) => `${d}: ${ls(d).join(',')}`),
    store: existsSync(join(ctl, 'store')) ? spawnSync('find', [join(ctl, 'store')], { encoding: 'utf8' }).stdout.split('\n').sort() : [],
  };
}

/** Asserts that nothing of env `j` exists on this node. */
function assertNoTrace(j: string): void {
  for (const p of [`jails-data/${j}-data`, `jails-system/${j}`, `jails-fstab/${j}`, `jails/${j}`, `jails-rcconf/rc.conf_${j}`, `jails-lease/envs/${j}`, `var/log/${j}.log`]) {
    assert.equal(existsSync(join(wd, p)), false, `${p} must not exist after a failed clone`);
  }
  assert.equal(berth(['jget', `jname=${j}`], env()).code, 3, `${j} must not be registered`);
}

function calls(): string[] {
  const f = join(ctl, 'calls.log');
  return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean) : [];
}

// Storage hooks standing in for a DFS: per-env dirs under <ctl>/store bind-mounted on the env's
// data dir and sysdir; each call logged as "<hook> <action> <jname>".
let mntStart: string;
let mntStop: string;

before(() => {
  top = tempDir('berth-clone-');
  wd = join(top, 'wd');
  ctl = join(top, 'ctl');
  mkdirSync(ctl, { mode: 0o755 });
  berthOk(['initenv', `workdir=${wd}`, 'nodename=node1']);
  berthOk(['base', 'busybox', 'name=bb'], env());
  const parse = `while getopts 'd:f:j:r:s:' o; do case $o in d) d=$OPTARG;; f) f=$OPTARG;; j) j=$OPTARG;; r) :;; s) s=$OPTARG;; *) exit 2;; esac; done`;
  mntStart = hook('mnt_start.sh', `set -u\n${parse}\nprintf '%s\\n' "mnt_start $BERTH_ACTION $j" >> ${ctl}/calls.log
mkdir -p ${ctl}/store/data/$j ${ctl}/store/system/$j || exit 1
mountpoint -q "$d" || mount --bind ${ctl}/store/data/$j "$d" || exit 1
mountpoint -q "$s" || mount --bind ${ctl}/store/system/$j "$s" || exit 1
exit 0`);
  mntStop = hook('mnt_stop.sh', `set -u\n${parse}\nprintf '%s\\n' "mnt_stop $BERTH_ACTION $j" >> ${ctl}/calls.log
if [ -e ${ctl}/fail-stop.$j ]; then echo "mnt_stop of $j fails on purpose" >&2; exit 9; fi
for m in "$s" "$d"; do if mountpoint -q "$m"; then umount "$m" || exit 1; fi; done
exit 0`);
});

after(() => {
  const r = berth(['jls', '--json'], env());
  for (const e of r.json?.envs ?? []) if (e.status === 'On') berth(['jstop', `jname=${e.jname}`], env());
  for (const m of mountTable(top).filter((t) => t.startsWith(top + '/')).sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', m]);
  rmSync(top, { recursive: true, force: true });
});

describe('jclone by berth\'s local copy', () => {
  test('a file written inside old appears in new; new uuid and hostname; fstab rewritten; modes, owners, links, nodes and times kept', () => {
    berthOk(['jcreate', 'jname=src1', 'base=bb', 'host_hostname=src1.example'], env());
    writeFileSync(join(wd, 'jails-fstab/src1/fstab.local'), `${join(wd, 'jails-data/src1-data/root')} /home/shared nullfs ro 0 0\n`);
    berthOk(['jstart', 'jname=src1'], env());
    berthOk(['jexec', 'jname=src1', 'sh', '-c', 'echo "written inside src1" > /etc/motd.local && mkdir -p /root/deep/er && echo x > /root/deep/er/f'], env());
    berthOk(['jstop', 'jname=src1'], env());
    // odd entries only berth's copier has to get right
    const d = join(wd, 'jails-data/src1-data');
    writeFileSync(join(d, 'root/suid'), 'x');
    chownSync(join(d, 'root/suid'), 1234, 5678);
    chmodSync(join(d, 'root/suid'), 0o4750);
    linkSync(join(d, 'root/suid'), join(d, 'root/hardlink'));
    symlinkSync('../etc/motd.local', join(d, 'root/motd-link'));
    spawnSync('chown', ['-h', '4321:8765', join(d, 'root/motd-link')]);
    mkdirSync(join(d, 'tmp/sticky'));
    chmodSync(join(d, 'tmp/sticky'), 0o1777);
    utimesSync(join(d, 'tmp/sticky'), 1_000_000_000, 1_000_000_000);
    utimesSync(join(d, 'root/deep/er/f'), 1_100_000_000, 1_100_000_000);
    assert.equal(spawnSync('mkfifo', [join(d, 'root/fifo')]).status, 0);
    assert.equal(spawnSync('mknod', [join(d, 'root/nulldev'), 'c', '1', '3']).status, 0);
    const sock = spawnSync('python3', ['-c', `import socket; socket.socket(socket.AF_UNIX).bind(${JSON.stringify(join(d, 'root/sock'))})`]);
    assert.equal(sock.status, 0, String(sock.stderr));
    const before = mountTable(top);

    const r = berthOk(['jclone', 'old=src1', 'new=cl1', 'host_hostname=cl1.example', '--json'], env());
    const c = r.json.clone;
    assert.equal(c.method, 'copy');
    assert.equal(c.env.jname, 'cl1');
    assert.match(c.env.uuid, /^[0-9a-f-]{36}$/);
    const oldUuid = berthOk(['jget', 'jname=src1', 'key=uuid'], env()).stdout.trim();
    assert.notEqual(c.env.uuid, oldUuid, 'the clone gets a new uuid');
    assert.equal(c.env.conf.host_hostname, 'cl1.example');
    assert.ok(c.bytes > 0);
    assert.match(c.warnings.join('\n'), /socket\(s\) not copied/);
    assert.deepEqual(mountTable(top), before, 'no mount left behind');

    // the data, entry by entry (the socket is not copied)
    const want = listing(d).filter((l) => !l.startsWith('root/sock '));
    assert.deepEqual(listing(join(wd, 'jails-data/cl1-data')), want);
    assert.equal(statSync(join(wd, 'jails-data/cl1-data/root/nulldev')).rdev, statSync(join(d, 'root/nulldev')).rdev);
    assert.equal(statSync(join(wd, 'jails-data/cl1-data/root/suid')).ino, statSync(join(wd, 'jails-data/cl1-data/root/hardlink')).ino, 'hard link kept');
    assert.equal(statSync(join(wd, 'jails-data/cl1-data')).mode, statSync(d).mode);

    // descriptor, fstab, sysdir
    const desc = readFileSync(join(wd, 'jails-system/cl1/rc.conf_cl1'), 'utf8');
    assert.match(desc, new RegExp(`uuid="${c.env.uuid}";`));
    assert.match(desc, /host_hostname="cl1\.example";/);
    assert.match(desc, /data="CBSDROOT\/jails-data\/cl1-data";/);
    assert.match(desc, /jname="cl1"/);
    assert.doesNotMatch(desc, /src1/);
    const fstab = readFileSync(join(wd, 'jails-fstab/cl1/fstab'), 'utf8');
    assert.match(fstab, /CBSDROOT\/jails-data\/cl1-data\/etc\t\/etc\tnullfs\trw/);
    assert.doesNotMatch(fstab, /src1/);
    assert.equal(readFileSync(join(wd, 'jails-fstab/cl1/fstab.local'), 'utf8'), `${join(wd, 'jails-data/cl1-data/root')} /home/shared nullfs ro 0 0\n`);
    assert.ok(existsSync(join(wd, 'jails-system/cl1/master_prestart.d')));
    assert.ok(existsSync(join(wd, 'jails-system/cl1/clone-local.d')));
    assert.equal(existsSync(join(wd, 'jails-system/cl1/rc.conf_src1')), false, 'old\'s descriptor not copied');
    const lease = readdirSync(join(wd, 'jails-lease/envs/cl1'));
    assert.ok(lease.includes('gen.1'), `a fresh lease of its own: ${lease}`);
    assert.match(readFileSync(join(wd, 'jails-lease/envs/cl1/gen.1'), 'utf8'), new RegExp(c.env.uuid));

    // old untouched, new runs with its own hostname and the copied file
    assert.equal(berthOk(['jget', 'jname=src1', 'key=host_hostname'], env()).stdout.trim(), 'src1.example');
    berthOk(['jstart', 'jname=cl1'], env());
    assert.equal(berthOk(['jexec', 'jname=cl1', 'hostname'], env()).stdout.trim(), 'cl1.example');
    assert.equal(berthOk(['jexec', 'jname=cl1', 'cat', '/etc/motd.local'], env()).stdout, 'written inside src1\n');
    berthOk(['jexec', 'jname=cl1', 'sh', '-c', 'echo only-in-clone > /etc/motd.local'], env());
    berthOk(['jstop', 'jname=cl1'], env());
    assert.equal(readFileSync(join(d, 'etc/motd.local'), 'utf8'), 'written inside src1\n', 'the clone\'s data is its own');
    berthOk(['jremove', 'jname=cl1'], env());
    rmSync(join(d, 'root/sock'));
  });

  test('a local copy that runs out of space fails and leaves no trace of the new env', () => {
    berthOk(['jcreate', 'jname=big1', 'base=bb'], env());
    writeFileSync(join(wd, 'jails-data/big1-data/root/filler'), Buffer.alloc(3 << 20, 1));
    const small = join(wd, 'jails-data/big2-data');
    mkdirSync(small);
    assert.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', small]).status, 0);
    try {
      const before = mountTable(top);
      const r = berth(['jclone', 'old=big1', 'new=big2'], env());
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /copying .*big1-data to .*big2-data failed: ENOSPC/);
      assert.deepEqual(readdirSync(small), [], 'the partial copy is removed');
      assert.deepEqual(mountTable(top), before);
      for (const p of ['jails-system/big2', 'jails-fstab/big2', 'jails/big2', 'var/log/big2.log']) assert.equal(existsSync(join(wd, p)), false, p);
      assert.equal(berth(['jget', 'jname=big2'], env()).code, 3);
    } finally {
      spawnSync('umount', [small]);
    }
    rmSync(small, { recursive: true });
    assertNoTrace('big2');
    berthOk(['jremove', 'jname=big1'], env());
  });

  test('defaults: hostname = the new name, ip4_addr inherited with a warning', () => {
    berthOk(['jcreate', 'jname=vn1', 'base=bb', 'vnet=1', 'ip4_addr=10.213.78.2/24', 'interface=berthnobr0'], env());
    const r = berthOk(['jclone', 'old=vn1', 'new=vn2'], env());
    assert.match(r.stdout, /cloned: vn1 -> vn2 .*host_hostname vn2, ip4_addr 10\.213\.78\.2\/24/);
    assert.match(r.stderr, /warning: vn2 has the same ip4_addr as vn1 \(10\.213\.78\.2\/24\); with vnet=1 the two cannot run at the same time/);
    const r2 = berthOk(['jclone', 'old=vn1', 'new=vn3', 'ip4_addr=10.213.78.3/24', '--json'], env());
    assert.deepEqual(r2.json.clone.warnings, []);
    assert.equal(berthOk(['jget', 'jname=vn3', 'key=ip4_addr'], env()).stdout.trim(), '10.213.78.3/24');
    assert.equal(berthOk(['jget', 'jname=vn3', 'key=host_hostname'], env()).stdout.trim(), 'vn3');
    const bad = berth(['jclone', 'old=vn1', 'new=vn4', 'ip4_addr=nonsense'], env());
    assert.equal(bad.code, 2, bad.stderr);
    assertNoTrace('vn4');
    for (const j of ['vn1', 'vn2', 'vn3']) berthOk(['jremove', `jname=${j}`], env());
  });
});

describe('jclone through a clone hook', () => {
  test('clone-local.d: the hook makes the copy, berth\'s own copy is not used, the hook gets CBSD\'s variables', () => {
    berthOk(['jcreate', 'jname=hk1', 'base=bb'], env());
    writeFileSync(join(wd, 'jails-data/hk1-data/etc/keep'), 'kept\n');
    writeFileSync(join(wd, 'jails-data/hk1-data/etc/not-by-hook'), 'the hook leaves this out\n');
    const h = join(wd, 'jails-system/hk1/clone-local.d/10-storage-copy');
    writeFileSync(h, `#!/bin/sh
set -e
cp -a "$data/." "$newdata/"
rm "$newdata/etc/not-by-hook"
touch "$newdata/.cloned-by-hook"
printf '%s\\n' "jname=$jname newjname=$newjname data=$data newdata=$newdata action=$BERTH_ACTION node=$BERTH_NODE host=$host_hostname" > ${ctl}/hook-ran
`);
    chmodSync(h, 0o755);
    rmSync(join(ctl, 'hook-ran'), { force: true });
    const r = berthOk(['jclone', 'old=hk1', 'new=hk2', '--json'], env());
    assert.equal(r.json.clone.method, 'hook');
    assert.deepEqual(r.json.clone.hooks, [h]);
    assert.equal(r.json.clone.bytes, undefined, 'berth copied nothing');
    assert.equal(readFileSync(join(ctl, 'hook-ran'), 'utf8'),
      `jname=hk1 newjname=hk2 data=${join(wd, 'jails-data/hk1-data')} newdata=${join(wd, 'jails-data/hk2-data')} action=clone node=node1 host=hk1\n`);
    const nd = join(wd, 'jails-data/hk2-data');
    assert.ok(existsSync(join(nd, '.cloned-by-hook')), 'marker of the hook');
    assert.equal(existsSync(join(nd, 'etc/not-by-hook')), false, 'berth did not copy after the hook');
    assert.equal(readFileSync(join(nd, 'etc/keep'), 'utf8'), 'kept\n');
    assert.match(readFileSync(join(wd, 'var/log/hk1.log'), 'utf8'), /clone-local\.d\/10-storage-copy/, 'hook run logged in old\'s log');
    // the clone inherits the hook dir (CBSD copies the sysdir)
    assert.ok(existsSync(join(wd, 'jails-system/hk2/clone-local.d/10-storage-copy')));
    berthOk(['jstart', 'jname=hk2'], env());
    assert.equal(berthOk(['jexec', 'jname=hk2', 'cat', '/etc/keep'], env()).stdout, 'kept\n');
    berthOk(['jstop', 'jname=hk2'], env());
    berthOk(['jremove', 'jname=hk2'], env());
  });

  test('clone_script=: runs like a clone-local.d script', () => {
    const s = hook('clone-script.sh', `set -e\ncp -a "$data/." "$newdata/"\necho "$jname -> $newjname" > "$newdata/.by-clone-script"`);
    berthOk(['jcreate', 'jname=cs1', 'base=bb', `clone_script=${s}`], env());
    const r = berthOk(['jclone', 'old=cs1', 'new=cs2', '--json'], env());
    assert.equal(r.json.clone.method, 'hook');
    assert.deepEqual(r.json.clone.hooks, [s]);
    assert.equal(readFileSync(join(wd, 'jails-data/cs2-data/.by-clone-script'), 'utf8'), 'cs1 -> cs2\n');
    assert.equal(berthOk(['jget', 'jname=cs2', 'key=clone_script'], env()).stdout.trim(), s, 'the clone keeps the hook');
    berthOk(['jremove', 'jname=cs2'], env());
  });

  test('a clone hook exiting non-zero fails the clone (exit 1, the hook\'s code in error.details.hookExitCode) and leaves no trace of the new env', () => {
    const h = join(wd, 'jails-system/hk1/clone-local.d/20-fails');
    writeFileSync(h, '#!/bin/sh\necho "storage says no" >&2\nexit 3\n');
    chmodSync(h, 0o755);
    const s0 = snapshot();
    const r = berth(['jclone', 'old=hk1', 'new=hk3', '--json'], env());
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.json.error.code, 'E_HOOK_FAILED');
    assert.equal(r.json.error.details.hookExitCode, 3);
    assert.match(r.stderr, /20-fails .*failed with exit code 3/);
    assert.match(r.stderr, /storage says no/);
    assertNoTrace('hk3');
    assert.deepEqual(snapshot(), s0);
    rmSync(h);
    // a hook that exits 0 but makes no data
    writeFileSync(join(wd, 'jails-system/hk1/clone-local.d/10-storage-copy'), '#!/bin/sh\nexit 0\n');
    const r2 = berth(['jclone', 'old=hk1', 'new=hk3'], env());
    assert.equal(r2.code, 1, r2.stderr);
    assert.match(r2.stderr, /left .*hk3-data empty/);
    assertNoTrace('hk3');
    assert.deepEqual(snapshot(), s0);
    // a hook writable by others is refused before anything happens, naming the file
    chmodSync(join(wd, 'jails-system/hk1/clone-local.d/10-storage-copy'), 0o757);
    const r3 = berth(['jclone', 'old=hk1', 'new=hk3'], env());
    assert.equal(r3.code, 1, r3.stderr);
    assert.match(r3.stderr, /refusing to run hook .*10-storage-copy.*others/);
    assertNoTrace('hk3');
    assert.deepEqual(snapshot(), s0);
    // old is still usable
    berthOk(['jstart', 'jname=hk1'], env());
    berthOk(['jstop', 'jname=hk1'], env());
    berthOk(['jremove', 'jname=hk1'], env());
  });
});

describe('jclone of envs whose storage is mounted by mnt_start', () => {
  test('local copy through the mounts: old and new mounted (action clone) around the copy, nothing left mounted', () => {
    const before = mountTable(top);
    berthOk(['jcreate', 'jname=ds1', 'base=bb', `mnt_start=${mntStart}`, `mnt_stop=${mntStop}`], env());
    writeFileSync(join(ctl, 'store/data/ds1/etc/on-storage'), 'on the storage\n');
    writeFileSync(join(ctl, 'calls.log'), '');
    const r = berthOk(['jclone', 'old=ds1', 'new=ds2', '--json'], env());
    assert.equal(r.json.clone.method, 'copy');
    assert.deepEqual(calls(), ['mnt_start clone ds1', 'mnt_start clone ds2', 'mnt_stop clone ds2', 'mnt_stop clone ds1']);
    assert.deepEqual(mountTable(top), before);
    assert.equal(readFileSync(join(ctl, 'store/data/ds2/etc/on-storage'), 'utf8'), 'on the storage\n', 'copied onto new\'s storage');
    assert.ok(existsSync(join(ctl, 'store/system/ds2/rc.conf_ds2')), 'descriptor on new\'s storage');
    assert.deepEqual(readdirSync(join(wd, 'jails-data/ds2-data')), [], 'nothing on the local disk');
    assert.equal(berthOk(['jget', 'jname=ds2', 'key=mnt_start'], env()).stdout.trim(), mntStart, 'hooks inherited');
    berthOk(['jstart', 'jname=ds2'], env());
    assert.equal(berthOk(['jexec', 'jname=ds2', 'cat', '/etc/on-storage'], env()).stdout, 'on the storage\n');
    berthOk(['jstop', 'jname=ds2'], env());
    berthOk(['jremove', 'jname=ds2'], env());
    assert.deepEqual(mountTable(top), before);
  });

  test('storage-side clone hook with mnt_start set: the hook copies on the storage, berth copies nothing', () => {
    const before = mountTable(top);
    const h = join(ctl, 'store/system/ds1/clone-local.d/10-server-side');
    writeFileSync(h, `#!/bin/sh\nset -e\ncp -a ${ctl}/store/data/$jname/. ${ctl}/store/data/$newjname/\necho server-side > ${ctl}/store/data/$newjname/.server-side\n`);
    chmodSync(h, 0o755);
    writeFileSync(join(ctl, 'calls.log'), '');
    const r = berthOk(['jclone', 'old=ds1', 'new=ds3', '--json'], env());
    assert.equal(r.json.clone.method, 'hook');
    assert.deepEqual(calls(), ['mnt_start clone ds1', 'mnt_start clone ds3', 'mnt_stop clone ds3', 'mnt_stop clone ds1']);
    assert.deepEqual(mountTable(top), before);
    assert.equal(readFileSync(join(ctl, 'store/data/ds3/.server-side'), 'utf8'), 'server-side\n');
    berthOk(['jstart', 'jname=ds3'], env());
    assert.equal(berthOk(['jexec', 'jname=ds3', 'cat', '/etc/on-storage'], env()).stdout, 'on the storage\n');
    berthOk(['jstop', 'jname=ds3'], env());
    berthOk(['jremove', 'jname=ds3'], env());
  });

  test('a failing clone hook: new\'s mnt_stop still runs, and neither berth nor the storage keeps anything of it', () => {
    const h = join(ctl, 'store/system/ds1/clone-local.d/20-fails');
    writeFileSync(h, '#!/bin/sh\necho "half copied" > "$newdata/partial"\nexit 4\n');
    chmodSync(h, 0o755);
    writeFileSync(join(ctl, 'calls.log'), '');
    const s0 = snapshot();
    const r = berth(['jclone', 'old=ds1', 'new=ds4'], env());
    assert.equal(r.code, 1, 'a hook exiting 4 is not berth\'s 4 (owned by another node): ' + r.stderr);
    assert.match(r.stderr, /failed with exit code 4/);
    assert.deepEqual(calls(), ['mnt_start clone ds1', 'mnt_start clone ds4', 'mnt_stop clone ds4', 'mnt_stop clone ds1']);
    assertNoTrace('ds4');
    assert.deepEqual(readdirSync(join(ctl, 'store/data/ds4')), [], 'partial data removed from the storage');
    assert.deepEqual(readdirSync(join(ctl, 'store/system/ds4')), [], 'no lease left on the storage');
    rmSync(join(ctl, 'store/data/ds4'), { recursive: true });
    rmSync(join(ctl, 'store/system/ds4'), { recursive: true });
    assert.deepEqual(snapshot(), s0);
    rmSync(h);
  });

  test('old\'s mnt_stop failing after the copy: the clone fails and is undone (new mounted again to delete it)', () => {
    const before = mountTable(top);
    writeFileSync(join(ctl, 'fail-stop.ds1'), '');
    writeFileSync(join(ctl, 'calls.log'), '');
    const r = berth(['jclone', 'old=ds1', 'new=ds6'], env());
    rmSync(join(ctl, 'fail-stop.ds1'));
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /exit code 9/);
    assert.match(r.stderr, /mnt_stop of ds1 fails on purpose/);
    assert.deepEqual(calls(), ['mnt_start clone ds1', 'mnt_start clone ds6', 'mnt_stop clone ds6', 'mnt_stop clone ds1',
      'mnt_start clone ds6', 'mnt_stop clone ds6']);
    assertNoTrace('ds6');
    assert.deepEqual(readdirSync(join(ctl, 'store/data/ds6')), []);
    assert.deepEqual(readdirSync(join(ctl, 'store/system/ds6')), []);
    rmSync(join(ctl, 'store/data/ds6'), { recursive: true });
    rmSync(join(ctl, 'store/system/ds6'), { recursive: true });
    // old's storage stayed mounted (its hook failed); a start/stop cycle with the hook fixed cleans it up
    berthOk(['jstart', 'jname=ds1'], env());
    berthOk(['jstop', 'jname=ds1'], env());
    assert.deepEqual(mountTable(top), before);
  });

  test('new\'s storage already holding files: refused, nothing deleted', () => {
    mkdirSync(join(ctl, 'store/data/ds5'), { recursive: true });
    writeFileSync(join(ctl, 'store/data/ds5/precious'), 'do not delete\n');
    const s0 = snapshot();
    const r = berth(['jclone', 'old=ds1', 'new=ds5'], env());
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /ds5-data already holds files; refusing .*nothing was deleted/);
    assert.equal(readFileSync(join(ctl, 'store/data/ds5/precious'), 'utf8'), 'do not delete\n');
    const s1 = snapshot() as { store: string[] };
    assert.deepEqual({ ...s1, store: s1.store.filter((l) => !l.includes('/store/system/ds5')) }, s0);
    assertNoTrace('ds5');
    berthOk(['jremove', 'jname=ds1'], env());
  });
});

describe('jclone refusals change nothing', () => {
  test('old running (1), new registered (1), new unregistered (1), new dirs holding files (1), bad names (2), no such old (3)', async () => {
    berthOk(['jcreate', 'jname=r1', 'base=bb'], env());
    berthOk(['jcreate', 'jname=r2', 'base=bb'], env());
    berthOk(['jcreate', 'jname=r3', 'base=bb'], env());
    berthOk(['junregister', 'jname=r3'], env());
    mkdirSync(join(wd, 'jails-data/r4-data'));
    writeFileSync(join(wd, 'jails-data/r4-data/leftover'), 'mine\n');
    berthOk(['jstart', 'jname=r1'], env());
    const s0 = snapshot();
    const cases: [string[], number, RegExp][] = [
      [['jclone', 'old=r1', 'new=x1'], 1, /r1 is running; stop it before cloning/],
      [['jclone', 'old=r2', 'new=r1'], 1, /env r1 already exists/],
      [['jclone', 'old=r2', 'new=r3'], 1, /an unregistered env r3 exists/],
      [['jclone', 'old=r2', 'new=r4'], 1, /r4-data already holds files/],
      [['jclone', 'old=r2', 'new=bad.name'], 2, /bad jname "bad\.name"/],
      [['jclone', 'old=r2', 'new=r2'], 2, /give the clone another name/],
      [['jclone', 'old=nosuch', 'new=x1'], 3, /no env "nosuch"/],
      [['jclone', 'old=r2'], 2, /jclone needs/],
      [['jclone', 'old=r2', 'new=x1', 'host_hostname=-bad'], 2, /bad host_hostname/],
    ];
    for (const [args, code, msg] of cases) {
      const r = berth(args, env());
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, msg, args.join(' '));
      assert.deepEqual(snapshot(), s0, `${args.join(' ')} changed something`);
    }
    assert.equal(readFileSync(join(wd, 'jails-data/r4-data/leftover'), 'utf8'), 'mine\n');
    const j = berth(['jclone', 'old=r1', 'new=x1', '--json'], env());
    assert.equal(j.json.error.code, 'E_RUNNING');
    berthOk(['jstop', 'jname=r1'], env());
    await sleep(10);
    for (const j2 of ['r1', 'r2']) berthOk(['jremove', `jname=${j2}`], env());
  });
});

describe('pure helpers', () => {
  test('zfs clone plan: snapshot + clone into a sibling dataset, undo destroys both', () => {
    assert.deepEqual(zfsClonePlan('zroot/berth/jails-data/web1-data', 'web2', '/usr/jails/jails-data/web2-data'), {
      snapshot: 'zroot/berth/jails-data/web1-data@berth-clone-web2',
      dataset: 'zroot/berth/jails-data/web2-data',
      argv: [
        ['zfs', 'snapshot', 'zroot/berth/jails-data/web1-data@berth-clone-web2'],
        ['zfs', 'clone', '-o', 'mountpoint=/usr/jails/jails-data/web2-data', 'zroot/berth/jails-data/web1-data@berth-clone-web2', 'zroot/berth/jails-data/web2-data'],
      ],
      undo: [['zfs', 'destroy', 'zroot/berth/jails-data/web2-data'], ['zfs', 'destroy', 'zroot/berth/jails-data/web1-data@berth-clone-web2']],
    });
  });

  test('device numbers decoded as glibc encodes them', () => {
    const enc = (M: bigint, m: bigint) => Number(((M & 0xfffn) << 8n) | ((M & ~0xfffn) << 32n) | (m & 0xffn) | ((m & ~0xffn) << 12n));
    for (const [M, m] of [[1, 3], [8, 0], [259, 65536], [4095, 255], [5000, 300000]] as const) {
      assert.deepEqual(devNumbers(enc(BigInt(M), BigInt(m))), [M, m]);
    }
    assert.deepEqual(devNumbers(lstatSync('/dev/null').rdev), [1, 3]);
  });
});
