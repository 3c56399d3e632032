/**
 * An env on GlusterFS end to end (issue 3 item 6): glusterd runs (scripts/gluster-up), the
 * test makes a volume on a brick under a temp dir, configures the example glusterfs hooks as
 * `initenv` installed them (<workdir>/share/examples/env_start/glusterfs, root-owned), and an
 * env is created, started, written to from inside, stopped and removed entirely through its
 * per-env sub-directory mounts. After stop nothing of the env is mounted; the file written
 * inside is on the volume (seen through a second, separate mount); the env is cloned through
 * the mounts (jclone with mnt_start set); after jremove its data on the volume is gone; the
 * volume is deleted at the end. Needs root, runc, busybox-static and a running glusterd.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { berth, berthOk, isRoot, mountTable, tempDir } from '../helpers/cli.js';
import { glusterVolume, unmountGluster, type GlusterVolume } from '../helpers/gluster.js';
import { parseMountinfo } from '../../src/mounts/linux.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

let vol: GlusterVolume;
let top: string;
let wd: string;
let hooks: string;
const env = () => ({ workdir: wd });
const ROOTDIR = 'berth';

/** fuse.glusterfs mounts under the workdir: "source target" */
function glusterMounts(): string[] {
  return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'))
    .filter((m) => m.fstype === 'fuse.glusterfs' && m.target.startsWith(wd + '/'))
    .map((m) => `${m.source} ${m.target.slice(wd.length)}`);
}

/** glusterfs client processes whose command line names a path under the workdir */
function clientsUnderWorkdir(): string[] {
  const out: string[] = [];
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    let cmd = '';
    try { cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' '); } catch { continue; }
    if (cmd.includes('glusterfs') && cmd.includes(wd + '/')) out.push(`${p}: ${cmd}`);
  }
  return out;
}

/** Runs fn with the whole volume mounted on a fresh dir (a second, separate mount). */
async function throughSecondMount<T>(fn: (dir: string) => T): Promise<T> {
  const dir = join(top, `check-${Date.now()}`);
  await vol.mount(dir);
  try {
    return fn(dir);
  } finally {
    await vol.unmountAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

before(async () => {
  vol = await glusterVolume();
  top = tempDir('berth-dfs-gluster-');
  wd = join(top, 'wd');
  berthOk(['initenv', `workdir=${wd}`, 'nodename=node1']);
  berthOk(['base', 'busybox', 'name=bb'], env());
  hooks = join(wd, 'share/examples/env_start/glusterfs');
  for (const f of ['env_start_gluster.sh', 'env_stop_gluster.sh']) {
    const st = statSync(join(hooks, f));
    assert.equal(st.uid, 0, `${f} installed by initenv is root-owned`);
    assert.equal(st.mode & 0o022, 0, `${f} is not writable by group or others`);
  }
  const conf = join(hooks, 'env_start_gluster.conf');
  writeFileSync(conf, `GLUSTER_SERVER="${vol.server}"\nGLUSTER_VOLUME="${vol.name}"\nGLUSTER_ROOT_DIR="${ROOTDIR}"\nMOUNT_FSTAB=1\nGLUSTER_MOUNT_TIMEOUT=60\nGLUSTER_CREATE_DIRS=1\n`);
});

after(async () => {
  try {
    const r = berth(['jls', '--json'], env());
    for (const e of r.json?.envs ?? []) if (e.status === 'On') berth(['jstop', `jname=${e.jname}`], env());
    for (const m of parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter((x) => x.target.startsWith(top + '/')).map((x) => x.target).sort((a, b) => b.length - a.length)) {
      await unmountGluster(m).catch(() => undefined);
    }
  } finally {
    await vol?.remove();
    if (top) rmSync(top, { recursive: true, force: true });
  }
});

describe('an env on GlusterFS through the example hooks', () => {
  test('create, start, write inside, stop (nothing mounted), the file is on the volume, clone, remove (data gone from the volume)', async (t) => {
    const before = mountTable(top);
    const start = join(hooks, 'env_start_gluster.sh');
    const stop = join(hooks, 'env_stop_gluster.sh');
    berthOk(['jcreate', 'jname=g1', 'base=bb', `mnt_start=${start}`, `mnt_stop=${stop}`], env());
    assert.deepEqual(glusterMounts(), [], 'create unmounts again');
    assert.deepEqual(readdirSync(join(wd, 'jails-data/g1-data')), [], 'the data is not on the local disk');

    let t0 = performance.now();
    berthOk(['jstart', 'jname=g1'], env());
    const startMs = performance.now() - t0;
    const src = `${vol.server}:/${vol.name}/${ROOTDIR}`;
    assert.deepEqual(glusterMounts().filter((m) => !m.includes(' /jails/')).sort(), [
      `${src}/data/g1 /jails-data/g1-data`,
      `${src}/fstab/g1 /jails-fstab/g1`,
      `${src}/system/g1 /jails-system/g1`,
    ], 'the hooks\' three sub-directory mounts (plus the env\'s bind mounts of them under jails/g1)');
    berthOk(['jexec', 'jname=g1', 'sh', '-c', 'echo "written inside g1" > /etc/dfs-note && sync'], env());
    t0 = performance.now();
    berthOk(['jstop', 'jname=g1'], env());
    const stopMs = performance.now() - t0;
    t.diagnostic(`jstart ${startMs.toFixed(0)} ms, jstop ${stopMs.toFixed(0)} ms on GlusterFS`);

    assert.deepEqual(glusterMounts(), [], 'nothing of the env is mounted after stop');
    assert.deepEqual(mountTable(top), before);
    // a FUSE client exits shortly after its umount: give it up to 5 s
    for (let i = 0; i < 50 && clientsUnderWorkdir().length; i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(clientsUnderWorkdir(), [], 'no glusterfs client left for the env\'s mounts');
    assert.equal(existsSync(join(wd, 'jails-data/g1-data/etc')), false, 'the file is not on the local disk');

    const uuid = berthOk(['jget', 'jname=g1', 'key=uuid'], env()).stdout.trim();
    // the ownership record is in the ownership dir (lease_dir, mounted whole on every node), not in the per-env mounts
    assert.ok(readdirSync(join(wd, 'jails-lease/envs/g1')).includes('gen.1'), 'the lease lives in the ownership dir');
    assert.match(readFileSync(join(wd, 'jails-lease/envs/g1/rc.conf_g1'), 'utf8'), new RegExp(`uuid="${uuid}"`), 'with a copy of the descriptor');
    await throughSecondMount((m) => {
      assert.equal(readFileSync(join(m, ROOTDIR, 'data/g1/etc/dfs-note'), 'utf8'), 'written inside g1\n');
      assert.match(readFileSync(join(m, ROOTDIR, 'system/g1/rc.conf_g1'), 'utf8'), new RegExp(`uuid="${uuid}"`));
      assert.match(readFileSync(join(m, ROOTDIR, 'fstab/g1/fstab'), 'utf8'), /jails-data\/g1-data\/etc/);
    });

    // a clone through the mounts: old and new mounted by the hooks (action clone), berth copies
    t0 = performance.now();
    const c = berthOk(['jclone', 'old=g1', 'new=g2', '--json'], env());
    t.diagnostic(`jclone (local copy through FUSE, ${c.json.clone.bytes} bytes) ${(performance.now() - t0).toFixed(0)} ms`);
    assert.equal(c.json.clone.method, 'copy');
    assert.deepEqual(glusterMounts(), []);
    berthOk(['jstart', 'jname=g2'], env());
    assert.equal(berthOk(['jexec', 'jname=g2', 'cat', '/etc/dfs-note'], env()).stdout, 'written inside g1\n');
    assert.equal(berthOk(['jexec', 'jname=g2', 'hostname'], env()).stdout.trim(), 'g2');
    berthOk(['jstop', 'jname=g2'], env());
    await throughSecondMount((m) => {
      assert.equal(readFileSync(join(m, ROOTDIR, 'data/g2/etc/dfs-note'), 'utf8'), 'written inside g1\n');
      assert.match(readFileSync(join(m, ROOTDIR, 'fstab/g2/fstab'), 'utf8'), /jails-data\/g2-data\/etc/);
    });

    for (const j of ['g1', 'g2']) berthOk(['jremove', `jname=${j}`], env());
    assert.deepEqual(glusterMounts(), []);
    assert.deepEqual(mountTable(top), before);
    for (const d of ['jails-data/g1-data', 'jails-system/g1', 'jails-fstab/g1']) assert.equal(existsSync(join(wd, d)), false, d);
    await throughSecondMount((m) => {
      for (const kind of ['data', 'system', 'fstab']) {
        for (const j of ['g1', 'g2']) {
          const d = join(m, ROOTDIR, kind, j);
          assert.deepEqual(existsSync(d) ? readdirSync(d) : [], [], `${kind}/${j} on the volume is empty after jremove`);
        }
      }
    });
  });
});
