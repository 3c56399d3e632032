/**
 * The glusterfs example hooks (share/examples/env_start/glusterfs) run LIVE through berth's hook
 * runner (src/hooks.ts) against a real volume on a local brick: per-env sub-directory mounts of
 * data, system and fstab; sub-directories created on create; idempotent start and stop; a start
 * that fails half way leaves nothing mounted; data written through the env's mount is on the
 * volume (seen through a second, separate mount). Needs root and a running glusterd
 * (`scripts/gluster-up`).
 */
import { strict as assert } from 'node:assert';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BerthError } from '../../src/errors.js';
import { runStorageHook, type HookAction, type HookEnv } from '../../src/hooks.js';
import { parseMountinfo } from '../../src/mounts/linux.js';
import { tempDir } from '../helpers/cli.js';
import { glusterVolume, unmountGluster, type GlusterVolume } from '../helpers/gluster.js';

const EX = resolve(import.meta.dirname, '..', '..', 'share', 'examples', 'env_start', 'glusterfs');

/** Mounts at or under dir with the sub-directory of their file system they show (mountinfo field 4). */
function mountsWithRoot(dir: string): { target: string; root: string; source: string; fstype: string }[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map((l) => {
    const f = l.split(' ');
    const sep = f.indexOf('-', 6);
    return { root: f[3]!, target: f[4]!, fstype: f[sep + 1]!, source: f[sep + 2]! };
  }).filter((m) => m.target === dir || m.target.startsWith(dir + '/'));
}

function mountsUnder(dir: string) {
  return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'))
    .filter((m) => m.target === dir || m.target.startsWith(dir + '/'));
}

/** glusterfs client processes whose command line names a path under dir */
/** The glusterfs clients still serving mounts under `dir` once they had up to 5 s to exit (a FUSE client exits shortly after its umount). */
async function clientsGone(dir: string): Promise<string[]> {
  for (let i = 0; i < 50; i++) {
    const left = clientsUnder(dir);
    if (left.length === 0) return left;
    await new Promise((r) => setTimeout(r, 100));
  }
  return clientsUnder(dir);
}

function clientsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    let cmd = '';
    try { cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' '); } catch { continue; }
    if (cmd.includes('glusterfs') && cmd.includes(dir)) out.push(`${p}: ${cmd}`);
  }
  return out;
}

describe('glusterfs example hooks, live', () => {
  let vol: GlusterVolume;
  let base: string;
  let wd: string;
  let hooks: string;
  let conf: string;
  let bindConf: string;

  const henv = (jname: string, over: Partial<HookEnv> = {}): HookEnv => ({
    jname, nodename: 'n1',
    data: join(wd, 'jails-data', `${jname}-data`), fstabDir: join(wd, 'jails-fstab', jname), rcconfDir: join(wd, 'jails-rcconf'),
    sysdir: join(wd, 'jails-system', jname), logFile: join(wd, 'var', 'log', `${jname}.log`), timeoutSec: 120,
    extraEnv: { BERTH_HOOK_CONF: conf, TMPDIR: join(base, 'tmp') }, ...over,
  });
  const withConf = (j: string, c?: string) => (c ? henv(j, { extraEnv: { BERTH_HOOK_CONF: c, TMPDIR: join(base, 'tmp') } }) : henv(j));
  const start = (j: string, action: HookAction = 'start', c?: string) => runStorageHook('mnt_start', join(hooks, 'env_start_gluster.sh'), action, withConf(j, c));
  const stop = (j: string, action: HookAction = 'stop', c?: string) => runStorageHook('mnt_stop', join(hooks, 'env_stop_gluster.sh'), action, withConf(j, c));
  const envMounts = (j: string) => [join(wd, 'jails-data', `${j}-data`), join(wd, 'jails-system', j), join(wd, 'jails-fstab', j)]
    .flatMap((d) => mountsUnder(d).map((m) => `${m.source} ${m.target.slice(wd.length)} ${m.fstype}`));

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'run as root (FUSE mounts, root-owned hooks)');
    vol = await glusterVolume();
    base = tempDir('berth-hooks-gluster-');
    wd = join(base, 'wd');
    hooks = join(base, 'hooks');
    for (const d of ['jails-data', 'jails-system', 'jails-fstab', 'jails-rcconf', 'var/log']) mkdirSync(join(wd, d), { recursive: true });
    mkdirSync(hooks);
    mkdirSync(join(base, 'tmp'));
    for (const f of ['env_start_gluster.sh', 'env_stop_gluster.sh']) { copyFileSync(join(EX, f), join(hooks, f)); chmodSync(join(hooks, f), 0o755); }
    mkdirSync(join(base, 'lib'));
    copyFileSync(join(EX, '..', 'lib', 'berth-hook.sh'), join(base, 'lib', 'berth-hook.sh'));
    chmodSync(join(base, 'lib', 'berth-hook.sh'), 0o644);
    conf = join(hooks, 'gluster.conf');
    writeFileSync(conf, `GLUSTER_SERVER="${vol.server}"\nGLUSTER_VOLUME="${vol.name}"\nGLUSTER_ROOT_DIR="envs"\nMOUNT_FSTAB=1\nGLUSTER_MOUNT_TIMEOUT=60\n`);
    chmodSync(conf, 0o644);
    bindConf = join(hooks, 'gluster-bind.conf');
    writeFileSync(bindConf, `${readFileSync(conf, 'utf8')}GLUSTER_MOUNT_MODE=bind\nGLUSTER_BASE_DIR="${join(base, 'gbase')}"\n`);
    chmodSync(bindConf, 0o644);
  });

  after(async () => {
    try {
      for (const m of mountsUnder(base).sort((a, b) => b.target.length - a.target.length)) await unmountGluster(m.target);
    } finally {
      await vol?.remove();
      if (base) rmSync(base, { recursive: true, force: true });
    }
  });

  test('create mounts data, system and fstab as sub-directories; data lands on the volume; start again changes nothing; stop leaves nothing', async () => {
    await start('web1', 'create');
    const src = `${vol.server}:/${vol.name}/envs`;
    assert.deepEqual(envMounts('web1'), [
      `${src}/data/web1 /jails-data/web1-data fuse.glusterfs`,
      `${src}/system/web1 /jails-system/web1 fuse.glusterfs`,
      `${src}/fstab/web1 /jails-fstab/web1 fuse.glusterfs`,
    ]);
    assert.deepEqual(readdirSync(join(base, 'tmp')), [], 'temporary whole-volume mount point removed');
    writeFileSync(join(wd, 'jails-data', 'web1-data', 'hello.txt'), 'written through the env mount\n');

    await start('web1');
    assert.equal(envMounts('web1').length, 3, 'a second start must not stack mounts');
    assert.match(readFileSync(henv('web1').logFile, 'utf8'), /already mounted from .*\/data\/web1, skipped/);

    await stop('web1');
    assert.deepEqual(envMounts('web1'), []);
    assert.deepEqual(await clientsGone(wd), [], 'no glusterfs client left for the env mounts');
    assert.equal(existsSync(join(wd, 'jails-data', 'web1-data', 'hello.txt')), false, 'the file is not on the local disk');
    await stop('web1');

    const check = join(base, 'check');
    await vol.mount(check);
    try {
      assert.equal(readFileSync(join(check, 'envs', 'data', 'web1', 'hello.txt'), 'utf8'), 'written through the env mount\n');
      assert.ok(existsSync(join(check, 'envs', 'system', 'web1')));
      assert.ok(existsSync(join(check, 'envs', 'fstab', 'web1')));
    } finally {
      await vol.unmountAll();
    }
  });

  test('a start that mounts one dir and then fails leaves nothing mounted and reports the failure', async () => {
    await vol.mkdirOnVolume('envs/data/half'); // data exists on the volume, system does not
    let err: unknown;
    try { await start('half'); } catch (e) { err = e; }
    assert.ok(err instanceof BerthError, String(err));
    assert.equal(err.code, 'E_HOOK_FAILED');
    assert.equal(err.exitCode, 1);
    // mount.glusterfs of a missing sub-directory either exits 0 without mounting (the hook
    // checks the mount table) or exits 1 ("Mount failed"), depending on timing: both must fail
    assert.match(err.message, /system\/half .* (returned 0 but .* is not mounted|failed \(exit \d+\))/);
    assert.match(err.message, /undoing the mounts of this run/);
    assert.deepEqual(envMounts('half'), []);
    assert.deepEqual(await clientsGone(join(wd, 'jails-data', 'half-data')), []);
  });

  test('start of an env that does not exist on the volume fails and mounts nothing', async () => {
    let err: unknown;
    try { await start('ghost'); } catch (e) { err = e; }
    assert.ok(err instanceof BerthError);
    assert.equal(err.exitCode, 1);
    assert.deepEqual(envMounts('ghost'), []);
  });

  describe('GLUSTER_MOUNT_MODE=bind: bind mounts from the node\'s one mount of the volume', () => {
    const baseMount = () => join(base, 'gbase', `${vol.server}_${vol.name}`);
    const binds = (j: string) => [join(wd, 'jails-data', `${j}-data`), join(wd, 'jails-system', j), join(wd, 'jails-fstab', j)]
      .flatMap((d) => mountsWithRoot(d).map((m) => `${m.source}[${m.root}] ${m.target.slice(wd.length)} ${m.fstype}`));

    test('create mounts the volume once for the node and binds data, system and fstab from it; start again changes nothing; stop leaves only the node\'s mount', async () => {
      await start('b1', 'create', bindConf);
      const src = `${vol.server}:/${vol.name}`;
      assert.deepEqual(mountsWithRoot(baseMount()).map((m) => `${m.source} ${m.root} ${m.fstype}`), [`${src} / fuse.glusterfs`]);
      assert.deepEqual(binds('b1'), [
        `${src}[/envs/data/b1] /jails-data/b1-data fuse.glusterfs`,
        `${src}[/envs/system/b1] /jails-system/b1 fuse.glusterfs`,
        `${src}[/envs/fstab/b1] /jails-fstab/b1 fuse.glusterfs`,
      ]);
      assert.equal(statSync(join(base, 'gbase')).mode & 0o777, 0o700, 'only root may enter the node\'s mount of every env');
      writeFileSync(join(wd, 'jails-data', 'b1-data', 'hello.txt'), 'through a bind\n');
      await start('b1', 'start', bindConf);
      assert.equal(binds('b1').length, 3, 'a second start must not stack mounts');
      await start('b2', 'create', bindConf);
      assert.equal(mountsWithRoot(baseMount()).length, 1, 'a second env reuses the node\'s mount');
      await stop('b1', 'stop', bindConf);
      await stop('b2', 'stop', bindConf);
      assert.deepEqual(binds('b1'), []);
      assert.deepEqual(binds('b2'), []);
      assert.equal(mountsWithRoot(baseMount()).length, 1, 'the node\'s mount stays');
      assert.equal(readFileSync(join(baseMount(), 'envs', 'data', 'b1', 'hello.txt'), 'utf8'), 'through a bind\n');
      await stop('b1', 'stop', bindConf);
    });

    test('an env missing on the volume fails before anything of it is mounted', async () => {
      await vol.mkdirOnVolume('envs/data/bhalf');
      let err: unknown;
      try { await start('bhalf', 'start', bindConf); } catch (e) { err = e; }
      assert.ok(err instanceof BerthError, String(err));
      assert.equal(err.exitCode, 1);
      assert.match(err.message, /\/envs\/system\/bhalf does not exist on .*the env is not on this volume/);
      assert.deepEqual(binds('bhalf'), []);
    });

    test('a change of mode needs no restart: subdir mounts are taken as mounted and unmounted by the bind hooks, and the other way round', async () => {
      await start('m1', 'create'); // subdir mode
      await start('m1', 'start', bindConf);
      assert.match(readFileSync(henv('m1').logFile, 'utf8'), /already mounted from .*\/envs\/data\/m1, skipped/);
      assert.equal(envMounts('m1').length, 3);
      await stop('m1', 'stop', bindConf);
      assert.deepEqual(envMounts('m1'), []);
      await start('m1', 'start', bindConf);
      await start('m1', 'start');
      assert.equal(binds('m1').length, 3);
      await stop('m1');
      assert.deepEqual(binds('m1'), []);
    });

    test('a node\'s mount whose client died is detached and made anew by the next start', async () => {
      await start('d1', 'start', bindConf).catch(() => start('d1', 'create', bindConf));
      await stop('d1', 'stop', bindConf);
      const client = clientsUnder(baseMount());
      assert.equal(client.length, 1, client.join('; '));
      process.kill(Number(client[0]!.split(':')[0]), 'SIGKILL');
      for (let i = 0; i < 50 && clientsUnder(baseMount()).length; i++) await new Promise((r) => setTimeout(r, 100));
      await start('d1', 'start', bindConf);
      assert.match(readFileSync(henv('d1').logFile, 'utf8'), /is dead \(its client is gone\): detaching it/);
      assert.equal(mountsWithRoot(baseMount()).length, 1);
      assert.equal(binds('d1').length, 3);
      assert.ok(existsSync(join(wd, 'jails-system', 'd1', '.')));
      await stop('d1', 'stop', bindConf);
    });
  });
});
