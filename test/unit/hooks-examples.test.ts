/**
 * The example storage hooks in share/examples/env_start/: shellcheck-clean, and the nfsv4 pair
 * driven through runStorageHook against fake mount/umount/mount_nfs/uname commands (NFS kernel
 * mounts do not work on this machine). The fakes keep a mount table in a file (printed by
 * `mount` in the Linux or FreeBSD format) and append every mount/umount argv to a transcript.
 * The glusterfs pair runs live in test/integration/hooks-gluster.test.ts.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BerthError } from '../../src/errors.js';
import { HOOK_PATH, runStorageHook, type HookAction, type HookEnv } from '../../src/hooks.js';

const EX = resolve(import.meta.dirname, '..', '..', 'share', 'examples', 'env_start');

test('example hooks, their library and configs are clean under shellcheck (POSIX sh, sourced files followed)', () => {
  const files = ['nfsv4', 'glusterfs', 'cephfs', 'lib'].flatMap((d) => readdirSync(join(EX, d)).filter((f) => /\.(sh|conf)$/.test(f)).map((f) => join(EX, d, f)));
  assert.equal(files.length, 11);
  const r = spawnSync('shellcheck', ['-s', 'sh', '-x', ...files], { encoding: 'utf8' });
  assert.equal(r.error, undefined, 'shellcheck must be installed');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  for (const f of files.filter((x) => x.endsWith('.sh') && !x.includes('/lib/'))) assert.match(readFileSync(f, 'utf8'), /^#!\/bin\/sh\n/);
});

/** Fake mount tools. State: $FAKE_MNT_STATE (one "src dst type opts" line per mount). */
const FAKES: Record<string, string> = {
  mount: `#!/bin/sh
if [ $# -eq 0 ]; then
  [ -f "$FAKE_MNT_STATE" ] || exit 0
  while read -r src dst type opts; do
    if [ "\${FAKE_UNAME:-Linux}" = FreeBSD ]; then echo "$src on $dst ($type, $opts)"; else echo "$src on $dst type $type ($opts)"; fi
  done < "$FAKE_MNT_STATE"
  exit 0
fi
echo "mount $*" >> "$FAKE_MNT_LOG"
type=auto opts=defaults
while getopts 't:o:' o; do case $o in t) type=$OPTARG ;; o) opts=$OPTARG ;; *) exit 1 ;; esac; done
shift $((OPTIND - 1))
exec "$FAKE_BIN/fake-do-mount" "$type" "$opts" "$1" "$2"
`,
  mount_nfs: `#!/bin/sh
echo "mount_nfs $*" >> "$FAKE_MNT_LOG"
opts=defaults
while getopts 'o:' o; do case $o in o) opts=$OPTARG ;; *) exit 1 ;; esac; done
shift $((OPTIND - 1))
exec "$FAKE_BIN/fake-do-mount" nfs "$opts" "$1" "$2"
`,
  'fake-do-mount': `#!/bin/sh
type=$1 opts=$2 src=$3 dst=$4
case "$src" in *"\${FAKE_MOUNT_HANG:-//none//}"*) echo $$ > "$FAKE_MNT_LOG.hang"; sleep 30; exit 32 ;; esac
case "$src" in *"\${FAKE_MOUNT_FAIL:-//none//}"*) echo "mount.nfs4: access denied by server while mounting $src" >&2; exit 32 ;; esac
[ -d "$dst" ] || { echo "mount point $dst does not exist" >&2; exit 32; }
echo "$src $dst $type $opts" >> "$FAKE_MNT_STATE"
`,
  umount: `#!/bin/sh
echo "umount $*" >> "$FAKE_MNT_LOG"
force=0
[ "$1" = -f ] && { force=1; shift; }
dst=$1
if [ $force -eq 0 ] && [ "\${FAKE_UMOUNT_BUSY:-//none//}" = "$dst" ]; then echo "umount: $dst: target is busy" >&2; exit 32; fi
n=$(awk -v d="$dst" '$2 == d { n = NR } END { print n + 0 }' "$FAKE_MNT_STATE" 2>/dev/null)
[ "$n" -gt 0 ] || { echo "umount: $dst: not mounted" >&2; exit 32; }
awk -v n="$n" 'NR != n' "$FAKE_MNT_STATE" > "$FAKE_MNT_STATE.new" && mv "$FAKE_MNT_STATE.new" "$FAKE_MNT_STATE"
# what was written under a temporary mount of the server root "goes to the server"
case $dst in */berth-hook-nfs.*) mkdir -p "$FAKE_SERVER" && cp -R "$dst"/. "$FAKE_SERVER"/ && rm -rf "\${dst:?}"/* ;; esac
`,
  uname: `#!/bin/sh
echo "\${FAKE_UNAME:-Linux}"
`,
};

let dir: string;
let bin: string;
let wd: string;
let hooks: string;

function conf(name: string, text: string, mode = 0o644): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  chmodSync(p, mode);
  return p;
}

const BASE_CONF = 'NFS_SERVER="nfs1"\nNFS_SERVER_ROOT_DIR="/export/berth/"\nMOUNT_FSTAB=1\nMOUNT_RCCONF=0\nNFS_MOUNT_TIMEOUT=10\n';

function henv(jname: string, vars: Record<string, string>, over: Partial<HookEnv> = {}): HookEnv {
  return {
    jname, nodename: 'n1',
    data: join(wd, 'jails-data', `${jname}-data`), fstabDir: join(wd, 'jails-fstab', jname), rcconfDir: join(wd, 'jails-rcconf'),
    sysdir: join(wd, 'jails-system', jname), logFile: join(wd, 'var', 'log', `${jname}.log`), timeoutSec: 30,
    extraEnv: {
      PATH: `${bin}:${HOOK_PATH}`, FAKE_BIN: bin, FAKE_SERVER: join(dir, 'server'), FAKE_MNT_STATE: join(dir, 'mtab'), FAKE_MNT_LOG: join(dir, 'transcript'),
      TMPDIR: join(dir, 'tmp'), ...vars,
    },
    ...over,
  };
}

const transcript = () => (existsSync(join(dir, 'transcript')) ? readFileSync(join(dir, 'transcript'), 'utf8') : '')
  .replaceAll(wd, '<wd>').replace(/berth-hook-nfs\.\w+/g, 'berth-hook-nfs.X').split('\n').filter(Boolean);
const table = () => (existsSync(join(dir, 'mtab')) ? readFileSync(join(dir, 'mtab'), 'utf8') : '')
  .replaceAll(wd, '<wd>').split('\n').filter(Boolean).map((l) => l.split(' ').slice(0, 2).join(' '));
const reset = () => { rmSync(join(dir, 'transcript'), { force: true }); rmSync(join(dir, 'mtab'), { force: true }); };

async function start(jname: string, vars: Record<string, string>, action: HookAction = 'start', over: Partial<HookEnv> = {}) {
  return runStorageHook('mnt_start', join(hooks, 'env_start_nfs.sh'), action, henv(jname, vars, over));
}
async function stop(jname: string, vars: Record<string, string>, action: HookAction = 'stop') {
  return runStorageHook('mnt_stop', join(hooks, 'env_stop_nfs.sh'), action, henv(jname, vars));
}
async function rejects(p: Promise<unknown>): Promise<BerthError> {
  try { await p; } catch (e) { assert.ok(e instanceof BerthError, String(e)); return e; }
  assert.fail('expected a BerthError');
}

const LINUX_OPTS = 'rw,vers=4,hard,proto=tcp,rsize=32768,wsize=32768,acregmax=3,acdirmin=3,acdirmax=3';

describe('nfsv4 example hooks (fake mount commands)', () => {
  let cf: string;
  before(() => {
    assert.equal(process.getuid?.(), 0, 'hooks must be root-owned: run as root');
    dir = mkdtempSync(join(tmpdir(), 'berth-nfshook-'));
    bin = join(dir, 'bin');
    wd = join(dir, 'wd');
    hooks = join(dir, 'hooks');
    for (const d of [bin, hooks, join(dir, 'tmp'), join(wd, 'jails-data'), join(wd, 'jails-system'), join(wd, 'jails-fstab'), join(wd, 'jails-rcconf')]) mkdirSync(d, { recursive: true });
    for (const [n, body] of Object.entries(FAKES)) { writeFileSync(join(bin, n), body); chmodSync(join(bin, n), 0o755); }
    for (const f of ['env_start_nfs.sh', 'env_stop_nfs.sh']) { copyFileSync(join(EX, 'nfsv4', f), join(hooks, f)); chmodSync(join(hooks, f), 0o755); }
    mkdirSync(join(dir, 'lib'));
    copyFileSync(join(EX, 'lib', 'berth-hook.sh'), join(dir, 'lib', 'berth-hook.sh'));
    chmodSync(join(dir, 'lib', 'berth-hook.sh'), 0o644);
    cf = conf('nfs.conf', BASE_CONF);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('Linux: start mounts data, system, fstab with mount -t nfs4; again is a no-op; stop unmounts in reverse, twice is fine', async () => {
    reset();
    const v = { BERTH_HOOK_CONF: cf };
    await start('web1', v);
    assert.deepEqual(transcript(), [
      `mount -t nfs4 -o ${LINUX_OPTS} nfs1:/export/berth/data/web1 <wd>/jails-data/web1-data`,
      `mount -t nfs4 -o ${LINUX_OPTS} nfs1:/export/berth/system/web1 <wd>/jails-system/web1`,
      `mount -t nfs4 -o ${LINUX_OPTS} nfs1:/export/berth/fstab/web1 <wd>/jails-fstab/web1`,
    ]);
    assert.deepEqual(table(), [
      'nfs1:/export/berth/data/web1 <wd>/jails-data/web1-data',
      'nfs1:/export/berth/system/web1 <wd>/jails-system/web1',
      'nfs1:/export/berth/fstab/web1 <wd>/jails-fstab/web1',
    ]);
    await start('web1', v);
    assert.equal(transcript().length, 3, 'second start must not mount again');
    assert.match(readFileSync(join(wd, 'var', 'log', 'web1.log'), 'utf8'), /already mounted from nfs1:\/export\/berth\/data\/web1, skipped/);
    await stop('web1', v);
    assert.deepEqual(transcript().slice(3), [
      'umount <wd>/jails-fstab/web1', 'umount <wd>/jails-system/web1', 'umount <wd>/jails-data/web1-data',
    ]);
    assert.deepEqual(table(), []);
    await stop('web1', v);
    assert.equal(transcript().length, 6, 'second stop must not unmount anything');
  });

  test('FreeBSD: mount_nfs with the CBSD option style converted to one -o list', async () => {
    reset();
    const c = conf('nfs-bsd.conf', `${BASE_CONF}MOUNT_FSTAB=0\nMOUNT_NFS_OPT="-orw -onfsv4 -ohard -otimeout=300"\n`);
    const v = { BERTH_HOOK_CONF: c, FAKE_UNAME: 'FreeBSD' };
    await start('bsd1', v);
    assert.deepEqual(transcript(), [
      'mount_nfs -o rw,nfsv4,hard,timeout=300 nfs1:/export/berth/data/bsd1 <wd>/jails-data/bsd1-data',
      'mount_nfs -o rw,nfsv4,hard,timeout=300 nfs1:/export/berth/system/bsd1 <wd>/jails-system/bsd1',
    ]);
    await stop('bsd1', v);
    assert.deepEqual(table(), []);
  });

  test('a failed mount fails the hook (berth exit 1, the hook\'s 32 in details.hookExitCode), and what the run mounted is unmounted', async () => {
    reset();
    const e = await rejects(start('web2', { BERTH_HOOK_CONF: cf, FAKE_MOUNT_FAIL: '/system/web2' }));
    assert.equal(e.code, 'E_HOOK_FAILED');
    assert.equal(e.exitCode, 1);
    assert.equal(e.details?.hookExitCode, 32);
    assert.match(e.message, /access denied by server/);
    assert.match(e.message, /undoing the mounts of this run/);
    assert.deepEqual(transcript(), [
      `mount -t nfs4 -o ${LINUX_OPTS} nfs1:/export/berth/data/web2 <wd>/jails-data/web2-data`,
      `mount -t nfs4 -o ${LINUX_OPTS} nfs1:/export/berth/system/web2 <wd>/jails-system/web2`,
      'umount <wd>/jails-data/web2-data',
    ]);
    assert.deepEqual(table(), []);
  });

  test('a rerun after a partial failure mounts only what is missing; the undo spares earlier mounts', async () => {
    reset();
    await start('web3', { BERTH_HOOK_CONF: conf('nofstab.conf', `${BASE_CONF}MOUNT_FSTAB=0\n`) });
    // now with fstab, and the fstab mount failing: data and system were there before this run
    const e = await rejects(start('web3', { BERTH_HOOK_CONF: cf, FAKE_MOUNT_FAIL: '/fstab/web3' }));
    assert.equal(e.exitCode, 1);
    assert.equal(e.details?.hookExitCode, 32);
    assert.deepEqual(table(), ['nfs1:/export/berth/data/web3 <wd>/jails-data/web3-data', 'nfs1:/export/berth/system/web3 <wd>/jails-system/web3']);
    await stop('web3', { BERTH_HOOK_CONF: cf });
    assert.deepEqual(table(), []);
  });

  test('a dir mounted from another source is refused and left alone by start and stop', async () => {
    reset();
    mkdirSync(join(wd, 'jails-data', 'web4-data'), { recursive: true });
    writeFileSync(join(dir, 'mtab'), `other:/x ${join(wd, 'jails-data', 'web4-data')} nfs4 rw\n`);
    const e = await rejects(start('web4', { BERTH_HOOK_CONF: cf }));
    assert.equal(e.exitCode, 1);
    assert.match(e.message, /already mounted from other:\/x, not nfs1:\/export\/berth\/data\/web4/);
    await stop('web4', { BERTH_HOOK_CONF: cf });
    assert.match(readFileSync(join(wd, 'var', 'log', 'web4.log'), 'utf8'), /mounted from other:\/x, not .*: left alone/);
    assert.deepEqual(table(), ['other:/x <wd>/jails-data/web4-data']);
    assert.deepEqual(transcript(), []);
  });

  test('create: makes the per-env dirs through a temporary mount of the server root first', async () => {
    reset();
    await start('web5', { BERTH_HOOK_CONF: cf }, 'create');
    const t = transcript();
    assert.deepEqual(t.slice(0, 2), [
      `mount -t nfs4 -o ${LINUX_OPTS} nfs1:/export/berth <tmp>/berth-hook-nfs.X`.replace('<tmp>', join(dir, 'tmp')),
      `umount ${join(dir, 'tmp')}/berth-hook-nfs.X`,
    ]);
    assert.equal(t.length, 5);
    assert.deepEqual(readdirSync(join(dir, 'tmp')), [], 'the temporary mount point is removed');
    for (const k of ['data', 'system', 'fstab']) assert.ok(existsSync(join(dir, 'server', k, 'web5')), `${k}/web5 made on the server`);
    assert.equal(existsSync(join(dir, 'server', 'rcconf')), false, 'rcconf only with MOUNT_RCCONF=1');
    await stop('web5', { BERTH_HOOK_CONF: cf }, 'remove');
    assert.deepEqual(table(), []);
  });

  test('MOUNT_RCCONF=1: the shared <root>/rcconf is mounted once on jails-rcconf and never unmounted by stop', async () => {
    reset();
    const c = conf('rcconf.conf', `${BASE_CONF}MOUNT_FSTAB=0\nMOUNT_RCCONF=1\n`);
    await start('a1', { BERTH_HOOK_CONF: c });
    await start('a2', { BERTH_HOOK_CONF: c });
    assert.deepEqual(table(), [
      'nfs1:/export/berth/data/a1 <wd>/jails-data/a1-data', 'nfs1:/export/berth/system/a1 <wd>/jails-system/a1',
      'nfs1:/export/berth/rcconf <wd>/jails-rcconf',
      'nfs1:/export/berth/data/a2 <wd>/jails-data/a2-data', 'nfs1:/export/berth/system/a2 <wd>/jails-system/a2',
    ]);
    await stop('a1', { BERTH_HOOK_CONF: c });
    await stop('a2', { BERTH_HOOK_CONF: c });
    assert.deepEqual(table(), ['nfs1:/export/berth/rcconf <wd>/jails-rcconf']);
    writeFileSync(join(dir, 'mtab'), '');
  });

  test('stop: a busy mount is retried and then forced', async () => {
    reset();
    await start('web6', { BERTH_HOOK_CONF: cf });
    await stop('web6', { BERTH_HOOK_CONF: cf, FAKE_UMOUNT_BUSY: join(wd, 'jails-system', 'web6') });
    assert.deepEqual(transcript().slice(3), [
      'umount <wd>/jails-fstab/web6', 'umount <wd>/jails-system/web6', 'umount <wd>/jails-system/web6', 'umount -f <wd>/jails-system/web6', 'umount <wd>/jails-data/web6-data',
    ]);
    assert.deepEqual(table(), []);
  });

  test('NFS_MOUNT_TIMEOUT cuts a hanging mount (the hook exits 124, berth 1: its own timeout, not berth\'s) and the run is undone', async () => {
    reset();
    const c = conf('short.conf', `${BASE_CONF}NFS_MOUNT_TIMEOUT=1\n`);
    const e = await rejects(start('web7', { BERTH_HOOK_CONF: c, FAKE_MOUNT_HANG: '/system/web7' }));
    assert.equal(e.code, 'E_HOOK_FAILED');
    assert.equal(e.exitCode, 1);
    assert.equal(e.details?.hookExitCode, 124);
    assert.deepEqual(table(), []);
  });

  test('berth\'s mnt_timeout (SIGTERM to the group) during a hanging mount: the trap undoes the run', async () => {
    reset();
    const c = conf('notimeout.conf', `${BASE_CONF}NFS_MOUNT_TIMEOUT=0\n`);
    const e = await rejects(start('web8', { BERTH_HOOK_CONF: c, FAKE_MOUNT_HANG: '/system/web8' }, 'start', { timeoutSec: 2 }));
    assert.equal(e.code, 'E_HOOK_TIMEOUT');
    assert.equal(e.exitCode, 124);
    assert.match(e.message, /undoing the mounts of this run/);
    assert.deepEqual(table(), []);
    assert.equal(transcript().at(-1), 'umount <wd>/jails-data/web8-data');
    const hung = Number(readFileSync(join(dir, 'transcript.hang'), 'utf8'));
    assert.equal(existsSync(`/proc/${hung}`) && !/\) Z/.test(readFileSync(`/proc/${hung}/stat`, 'utf8')), false, 'the hanging mount is killed');
  });

  test('a config others can write is refused; a missing one is named; usage errors exit 2', async () => {
    reset();
    const bad = conf('ww.conf', BASE_CONF, 0o666);
    chmodSync(bad, 0o666);
    let e = await rejects(start('web9', { BERTH_HOOK_CONF: bad }));
    assert.equal(e.exitCode, 1);
    assert.match(e.message, /refusing config .*ww\.conf: it must be owned by root and not writable by group or others/);
    e = await rejects(start('web9', { BERTH_HOOK_CONF: join(dir, 'nope.conf') }));
    assert.match(e.message, /cannot read config .*nope\.conf/);
    assert.deepEqual(transcript(), []);
    const r = spawnSync(join(hooks, 'env_start_nfs.sh'), ['-d', '/x'], { encoding: 'utf8', env: { PATH: HOOK_PATH } });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /missing -j <jname>/);
  });

  test('the config next to the script is used when BERTH_HOOK_CONF is unset', async () => {
    reset();
    copyFileSync(cf, join(hooks, 'env_start_nfs.conf'));
    chmodSync(join(hooks, 'env_start_nfs.conf'), 0o644);
    try {
      await start('web10', {});
      assert.equal(table().length, 3);
      await stop('web10', {});
      assert.deepEqual(table(), []);
    } finally {
      rmSync(join(hooks, 'env_start_nfs.conf'));
    }
  });
  test('the shared library is found next to the hook before ../lib, and refused unless only root can change it', async () => {
    reset();
    const lib = join(dir, 'lib', 'berth-hook.sh');
    const next = join(hooks, 'berth-hook.sh');
    try {
      chmodSync(lib, 0o664);
      let e = await rejects(start('web11', { BERTH_HOOK_CONF: cf }));
      assert.equal(e.exitCode, 1);
      assert.match(e.message, /refusing library .*\/hooks\/\.\.\/lib\/berth-hook\.sh: it must be owned by root and not writable by group or others/);
      // a copy next to the hook wins over ../lib (here: a safe one, so the hook runs)
      copyFileSync(lib, next);
      chmodSync(next, 0o644);
      await start('web11', { BERTH_HOOK_CONF: cf });
      assert.equal(table().length, 3);
      await stop('web11', { BERTH_HOOK_CONF: cf });
      chmodSync(next, 0o646);
      e = await rejects(stop('web11', { BERTH_HOOK_CONF: cf }));
      assert.match(e.message, /refusing library .*\/hooks\/berth-hook\.sh:/);
      rmSync(next);
      rmSync(lib);
      e = await rejects(start('web11', { BERTH_HOOK_CONF: cf }));
      assert.match(e.message, /cannot read .*\/lib\/berth-hook\.sh/);
      assert.deepEqual(table(), []);
    } finally {
      rmSync(next, { force: true });
      copyFileSync(join(EX, 'lib', 'berth-hook.sh'), lib);
      chmodSync(lib, 0o644);
    }
  });
});
