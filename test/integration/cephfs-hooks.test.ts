/**
 * The CephFS example hooks (share/examples/env_start/cephfs) run LIVE through berth's hook
 * runner against the one-node cluster of scripts/ceph-up, as a node whose cephx key has path
 * caps on a fresh test tree: per-env sub-directory mounts by ceph-fuse (the kernel has no ceph
 * file system here, so `auto` picks ceph-fuse and says so), or bind mounts from the node's one
 * mount; idempotent start and stop; a file written through the env's mount read back through a
 * separate admin mount; a wrong key, a wrong monitor and a path outside the caps fail with the
 * cause named and nothing mounted. Needs root and the cluster (`scripts/ceph-up`).
 */
import { strict as assert } from 'node:assert';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BerthError } from '../../src/errors.js';
import { runStorageHook, type HookAction, type HookEnv } from '../../src/hooks.js';
import { tempDir } from '../helpers/cli.js';
import { cephTree, clientId, unmountCeph, type CephTree } from '../helpers/ceph.js';

const EX = resolve(import.meta.dirname, '..', '..', 'share', 'examples', 'env_start');

/** Mounts at or under dir: "source[root] target fstype" (root shown when not /; target relative to `rel`). */
function mountsUnder(dir: string, rel = dir): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map((l) => {
    const f = l.split(' ');
    const sep = f.indexOf('-', 6);
    return { root: f[3]!, target: f[4]!, fstype: f[sep + 1]!, source: f[sep + 2]! };
  }).filter((m) => m.target === dir || m.target.startsWith(dir + '/'))
    .map((m) => `${m.source}${m.root === '/' ? '' : `[${m.root}]`} ${m.target.slice(rel.length) || '/'} ${m.fstype}`);
}

/** ceph-fuse processes whose command line names a path under dir, once they had 5 s to exit. */
async function clientsGone(dir: string): Promise<string[]> {
  const list = () => readdirSync('/proc').filter((n) => /^\d+$/.test(n)).flatMap((p) => {
    let cmd = '';
    try { cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' '); } catch { return []; }
    return cmd.startsWith('ceph-fuse') && cmd.includes(dir) ? [`${p}: ${cmd}`] : [];
  });
  for (let i = 0; i < 50 && list().length; i++) await new Promise((r) => setTimeout(r, 100));
  return list();
}

async function rejects(p: Promise<unknown>): Promise<BerthError> {
  try { await p; } catch (e) { assert.ok(e instanceof BerthError, String(e)); return e; }
  assert.fail('expected the hook to fail');
}

describe('cephfs example hooks, live', () => {
  let tree: CephTree;
  let base: string;
  let wd: string;
  let hooks: string;
  let keyring: string;
  const confs: Record<string, string> = {};

  const henv = (jname: string, conf: string): HookEnv => ({
    jname, nodename: 'n1',
    data: join(wd, 'jails-data', `${jname}-data`), fstabDir: join(wd, 'jails-fstab', jname), rcconfDir: join(wd, 'jails-rcconf'),
    sysdir: join(wd, 'jails-system', jname), logFile: join(wd, 'var', 'log', `${jname}.log`), timeoutSec: 60,
    extraEnv: { BERTH_HOOK_CONF: conf, TMPDIR: join(base, 'tmp') },
  });
  const start = (j: string, conf: string, action: HookAction = 'start') => runStorageHook('mnt_start', join(hooks, 'env_start_cephfs.sh'), action, henv(j, conf));
  const stop = (j: string, conf: string, action: HookAction = 'stop') => runStorageHook('mnt_stop', join(hooks, 'env_stop_cephfs.sh'), action, henv(j, conf));
  const envMounts = (j: string) => [join(wd, 'jails-data', `${j}-data`), join(wd, 'jails-system', j), join(wd, 'jails-fstab', j)]
    .flatMap((d) => mountsUnder(d, wd));
  const conf = (name: string, text: string) => {
    const p = join(base, `${name}.conf`);
    writeFileSync(p, text);
    chmodSync(p, 0o644);
    confs[name] = p;
    return p;
  };

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'run as root (FUSE mounts, root-owned hooks)');
    tree = await cephTree();
    base = tempDir('berth-hooks-cephfs-');
    wd = join(base, 'wd');
    hooks = join(base, 'hooks', 'cephfs');
    for (const d of ['jails-data', 'jails-system', 'jails-fstab', 'jails-rcconf', 'var/log']) mkdirSync(join(wd, d), { recursive: true });
    mkdirSync(hooks, { recursive: true });
    mkdirSync(join(base, 'hooks', 'lib'));
    mkdirSync(join(base, 'tmp'));
    for (const f of ['env_start_cephfs.sh', 'env_stop_cephfs.sh']) { copyFileSync(join(EX, 'cephfs', f), join(hooks, f)); chmodSync(join(hooks, f), 0o755); }
    copyFileSync(join(EX, 'lib', 'berth-hook.sh'), join(base, 'hooks', 'lib', 'berth-hook.sh'));
    chmodSync(join(base, 'hooks', 'lib', 'berth-hook.sh'), 0o644);
    keyring = await tree.authorize('n1');
    const common = `CEPH_MONITORS="${tree.monitors}"\nCEPHFS_NAME="${tree.fsName}"\nCEPHFS_ROOT="${tree.root}"\nCEPH_CLIENT_ID="${clientId('n1')}"\nMOUNT_FSTAB=1\nCEPHFS_MOUNT_TIMEOUT=12\nCEPHFS_BASE_DIR="${join(base, 'cbase')}"\n`;
    conf('subdir', `${common}CEPH_KEYRING="${keyring}"\n`);
    conf('bind', `${common}CEPH_KEYRING="${keyring}"\nCEPHFS_MOUNT_MODE=bind\n`);
  });

  after(async () => {
    try {
      const left = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '')
        .filter((t) => base && t.startsWith(base + '/')).sort((a, b) => b.length - a.length);
      for (const m of left) await unmountCeph(m);
    } finally {
      await tree?.remove();
      if (base) rmSync(base, { recursive: true, force: true });
    }
  });

  test('subdir mode: create mounts data, system and fstab by ceph-fuse -r, named ceph:<fs>:<path>; start again changes nothing; stop leaves nothing', async () => {
    await start('web1', confs.subdir!, 'create');
    const src = `ceph:${tree.fsName}:${tree.root}`;
    assert.deepEqual(envMounts('web1'), [
      `${src}/data/web1 /jails-data/web1-data fuse.ceph-fuse`,
      `${src}/system/web1 /jails-system/web1 fuse.ceph-fuse`,
      `${src}/fstab/web1 /jails-fstab/web1 fuse.ceph-fuse`,
    ]);
    const log = readFileSync(henv('web1', '').logFile, 'utf8');
    assert.match(log, /through ceph-fuse \(the kernel has no ceph file system\) \(subdir mounts\)/);
    assert.deepEqual(readdirSync(join(base, 'tmp')), [], 'the temporary mount point and the output files are removed');
    writeFileSync(join(wd, 'jails-data', 'web1-data', 'hello.txt'), 'written through the env mount\n');
    await start('web1', confs.subdir!);
    assert.equal(envMounts('web1').length, 3, 'a second start must not stack mounts');
    assert.match(readFileSync(henv('web1', '').logFile, 'utf8'), /already mounted from .*\/data\/web1, skipped/);
    await stop('web1', confs.subdir!);
    assert.deepEqual(envMounts('web1'), []);
    assert.deepEqual(await clientsGone(wd), [], 'no ceph-fuse client left for the env mounts');
    assert.equal(existsSync(join(wd, 'jails-data', 'web1-data', 'hello.txt')), false, 'the file is not on the local disk');
    await stop('web1', confs.subdir!);
    await tree.withAdminMount((m) => {
      assert.equal(readFileSync(join(m, 'data', 'web1', 'hello.txt'), 'utf8'), 'written through the env mount\n');
      assert.ok(existsSync(join(m, 'system', 'web1')));
      assert.ok(existsSync(join(m, 'fstab', 'web1')));
    });
  });

  test('bind mode: the node mounts the tree once and binds the env\'s dirs from it; a change of mode needs no restart', async () => {
    await start('web1', confs.bind!);
    const src = `ceph:${tree.fsName}:${tree.root}`;
    assert.deepEqual(envMounts('web1'), [
      `${src}[/data/web1] /jails-data/web1-data fuse.ceph-fuse`,
      `${src}[/system/web1] /jails-system/web1 fuse.ceph-fuse`,
      `${src}[/fstab/web1] /jails-fstab/web1 fuse.ceph-fuse`,
    ]);
    const nodeMount = join(base, 'cbase', `${tree.fsName}_${clientId('n1')}`);
    assert.deepEqual(mountsUnder(nodeMount), [`${src} / fuse.ceph-fuse`]);
    assert.equal(readFileSync(join(wd, 'jails-data', 'web1-data', 'hello.txt'), 'utf8'), 'written through the env mount\n');
    await start('web2', confs.bind!, 'create');
    assert.equal(mountsUnder(nodeMount).length, 1, 'a second env reuses the node\'s mount');
    await start('web1', confs.subdir!);
    assert.equal(envMounts('web1').length, 3, 'subdir hooks take the binds as mounted');
    await stop('web1', confs.subdir!);
    await stop('web2', confs.bind!);
    assert.deepEqual(envMounts('web1'), []);
    assert.deepEqual(envMounts('web2'), []);
    assert.equal(mountsUnder(nodeMount).length, 1, 'the node\'s mount stays');
    await unmountCeph(nodeMount);
  });

  test('a wrong key, a wrong monitor, a path outside the caps: exit 1, the cause named, nothing mounted', async () => {
    const bad = join(tree.tempRoot, 'bad.keyring');
    writeFileSync(bad, readFileSync(keyring, 'utf8').replace(/key = (\S)/, (_m, c: string) => `key = ${c === 'A' ? 'B' : 'A'}`), { mode: 0o600 });
    const subdir = readFileSync(confs.subdir!, 'utf8').replace(/CEPHFS_MOUNT_TIMEOUT=\d+/, 'CEPHFS_MOUNT_TIMEOUT=6');
    const other = await tree.authorize('other', { path: `${tree.root}/system` });
    const cases: [string, string, RegExp][] = [
      ['wrong key', subdir.replace(/CEPH_KEYRING=.*/, `CEPH_KEYRING="${bad}"`), /the monitors refused the key of client\.\S+ in \S+bad\.keyring/],
      ['wrong monitor', subdir.replace(/CEPH_MONITORS=.*/, 'CEPH_MONITORS="127.0.0.1:1"'), /no monitor answered at 127\.0\.0\.1:1/],
      ['outside the caps', subdir.replace(/CEPH_KEYRING=.*/, `CEPH_KEYRING="${other}"`).replace(/CEPH_CLIENT_ID=.*/, `CEPH_CLIENT_ID="${clientId('other')}"`), /client\.\S+other may not mount that path/],
    ];
    for (const mode of ['subdir', 'bind']) {
      for (const [what, text, cause] of cases) {
        const c = conf(`bad-${mode}`, mode === 'bind' ? `${text}CEPHFS_MOUNT_MODE=bind\n` : text);
        const e = await rejects(start('web3', c, 'create'));
        assert.equal(e.exitCode, 1, `${mode}, ${what}: ${e.message}`);
        assert.match(e.message, cause, `${mode}, ${what}`);
        assert.deepEqual(mountsUnder(base), [], `${mode}, ${what}: nothing mounted`);
      }
    }
    assert.deepEqual(readdirSync(join(base, 'tmp')), [], 'no temporary mount point or output file left');
  });

  test('a keyring others can read is refused before anything is mounted', async () => {
    const loose = join(tree.tempRoot, 'loose.keyring');
    copyFileSync(keyring, loose);
    chmodSync(loose, 0o644);
    const c = conf('loose', readFileSync(confs.subdir!, 'utf8').replace(/CEPH_KEYRING=.*/, `CEPH_KEYRING="${loose}"`));
    const e = await rejects(start('web1', c));
    assert.equal(e.exitCode, 1);
    assert.match(e.message, /refusing keyring .*loose\.keyring: it must be owned by root and readable by root only/);
    assert.deepEqual(mountsUnder(base), []);
  });
});
