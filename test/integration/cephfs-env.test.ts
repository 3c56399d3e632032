/**
 * An env on CephFS end to end (issue #16 items 2, 4, 5): the one-node cluster of scripts/ceph-up,
 * a fresh test tree, a node key with path caps on it (`rws`: snapshots for the clone hook), the
 * example cephfs hooks as `initenv` installed them (<workdir>/share/examples/env_start/cephfs,
 * root-owned). An env is created, started, written to from inside, checked by `doctor` while its
 * dirs are ceph-fuse mounts (type, O_EXCL, link, record locks), stopped (nothing of it mounted,
 * no ceph-fuse client left), read back through a separate admin mount, cloned with
 * clone_cephfs.sh (snapshot + copy: the clone holds the data, the snapshot is gone) and removed
 * (its data gone from CephFS). Needs root, runc, busybox-static and the cluster.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { berth, berthOk, isRoot, mountTable, tempDir } from '../helpers/cli.js';
import { cephTree, clientId, unmountCeph, type CephTree } from '../helpers/ceph.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

let tree: CephTree;
let top: string;
let wd: string;
let hooks: string;
const env = () => ({ workdir: wd });

/** fuse.ceph-fuse mounts under the workdir: "source target" */
function cephMounts(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map((l) => {
    const f = l.split(' ');
    const sep = f.indexOf('-', 6);
    return { target: f[4]!, fstype: f[sep + 1]!, source: f[sep + 2]! };
  }).filter((m) => m.fstype === 'fuse.ceph-fuse' && m.target.startsWith(wd + '/')).map((m) => `${m.source} ${m.target.slice(wd.length)}`);
}

function clientsUnderWorkdir(): string[] {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).flatMap((p) => {
    let cmd = '';
    try { cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' '); } catch { return []; }
    return cmd.startsWith('ceph-fuse') && cmd.includes(wd + '/') ? [`${p}: ${cmd}`] : [];
  });
}

before(async () => {
  tree = await cephTree();
  top = tempDir('berth-cephfs-env-');
  wd = join(top, 'wd');
  berthOk(['initenv', `workdir=${wd}`, 'nodename=node1']);
  berthOk(['base', 'busybox', 'name=bb'], env());
  hooks = join(wd, 'share/examples/env_start/cephfs');
  for (const f of ['env_start_cephfs.sh', 'env_stop_cephfs.sh', 'clone_cephfs.sh', '../lib/berth-hook.sh']) {
    const st = statSync(join(hooks, f));
    assert.equal(st.uid, 0, `${f} installed by initenv is root-owned`);
    assert.equal(st.mode & 0o022, 0, `${f} is not writable by group or others`);
  }
  const keyring = await tree.authorize('node1', { caps: 'rws' });
  const conf = join(hooks, 'env_start_cephfs.conf');
  const text = readFileSync(conf, 'utf8')
    .replace(/^CEPH_MONITORS=.*$/m, `CEPH_MONITORS="${tree.monitors}"`).replace(/^CEPHFS_ROOT=.*$/m, `CEPHFS_ROOT="${tree.root}"`)
    .replace(/^CEPH_CLIENT_ID=.*$/m, `CEPH_CLIENT_ID="${clientId('node1')}"`).replace(/^CEPH_KEYRING=.*$/m, `CEPH_KEYRING="${keyring}"`);
  writeFileSync(conf, text);
});

after(async () => {
  try {
    const r = berth(['jls', '--json'], env());
    for (const e of r.json?.envs ?? []) if (e.status === 'On') berth(['jstop', `jname=${e.jname}`], env());
    const left = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '')
      .filter((t) => top && t.startsWith(top + '/')).sort((a, b) => b.length - a.length);
    for (const m of left) await unmountCeph(m).catch(() => undefined);
  } finally {
    await tree?.remove();
    if (top) rmSync(top, { recursive: true, force: true });
  }
});

describe('an env on CephFS through the example hooks', () => {
  test('create, start, write inside, doctor, stop (nothing mounted), read back, clone by snapshot, remove (data gone)', async (t) => {
    const before = mountTable(top);
    const start = join(hooks, 'env_start_cephfs.sh');
    const stop = join(hooks, 'env_stop_cephfs.sh');
    berthOk(['jcreate', 'jname=c1', 'base=bb', `mnt_start=${start}`, `mnt_stop=${stop}`, `clone_script=${join(hooks, 'clone_cephfs.sh')}`], env());
    assert.deepEqual(cephMounts(), [], 'create unmounts again');
    assert.deepEqual(readdirSync(join(wd, 'jails-data/c1-data')), [], 'the data is not on the local disk');

    let t0 = performance.now();
    berthOk(['jstart', 'jname=c1'], env());
    const startMs = performance.now() - t0;
    const src = `ceph:${tree.fsName}:${tree.root}`;
    assert.deepEqual(cephMounts().filter((m) => !m.includes(' /jails/')).sort(), [
      `${src}/data/c1 /jails-data/c1-data`, `${src}/fstab/c1 /jails-fstab/c1`, `${src}/system/c1 /jails-system/c1`,
    ], 'the hooks\' three sub-directory mounts (plus the env\'s bind mounts of them under jails/c1)');
    berthOk(['jexec', 'jname=c1', 'sh', '-c', 'echo "written inside c1" > /etc/ceph-note && sync'], env());

    // doctor knows the ceph-fuse mounts: exclusive create, link and record locks work on them
    const doc = berthOk(['doctor', 'jname=c1', '--json'], env()).json;
    const rows = doc.checks.filter((c: any) => c.check === 'env dir');
    assert.equal(rows.length, 3, JSON.stringify(doc.checks));
    for (const r of rows) {
      assert.equal(r.data.fsType, 'fuse.ceph-fuse', r.subject);
      assert.equal(r.data.exclusiveCreate, true, r.subject);
      assert.equal(r.data.link, true, r.subject);
      assert.equal(r.data.recordLocks, 'ok', `${r.subject}: ${r.data.recordLocksDetail}`);
    }

    t0 = performance.now();
    berthOk(['jstop', 'jname=c1'], env());
    const stopMs = performance.now() - t0;
    t.diagnostic(`jstart ${startMs.toFixed(0)} ms, jstop ${stopMs.toFixed(0)} ms on CephFS`);
    assert.deepEqual(cephMounts(), [], 'nothing of the env is mounted after stop');
    assert.deepEqual(mountTable(top), before);
    for (let i = 0; i < 50 && clientsUnderWorkdir().length; i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(clientsUnderWorkdir(), [], 'no ceph-fuse client left for the env\'s mounts');
    assert.equal(existsSync(join(wd, 'jails-data/c1-data/etc')), false, 'the file is not on the local disk');
    const uuid = berthOk(['jget', 'jname=c1', 'key=uuid'], env()).stdout.trim();
    await tree.withAdminMount((m) => {
      assert.equal(readFileSync(join(m, 'data/c1/etc/ceph-note'), 'utf8'), 'written inside c1\n');
      assert.match(readFileSync(join(m, 'system/c1/rc.conf_c1'), 'utf8'), new RegExp(`uuid="${uuid}"`));
    });

    // a clone by the clone hook: snapshot of c1's data, copied into c2's
    const c = berthOk(['jclone', 'old=c1', 'new=c2', '--json'], env());
    assert.equal(c.json.clone.method, 'hook');
    assert.deepEqual(cephMounts(), []);
    assert.match(readFileSync(join(wd, 'var/log/c1.log'), 'utf8'), /clone_cephfs\.sh: snapshot .*\.snap\/berth-clone-c2 made/);
    await tree.withAdminMount((m) => {
      assert.equal(readFileSync(join(m, 'data/c2/etc/ceph-note'), 'utf8'), 'written inside c1\n');
      assert.deepEqual(readdirSync(join(m, 'data/c1/.snap')), [], 'the snapshot is removed');
    });
    berthOk(['jstart', 'jname=c2'], env());
    assert.equal(berthOk(['jexec', 'jname=c2', 'cat', '/etc/ceph-note'], env()).stdout, 'written inside c1\n');
    berthOk(['jstop', 'jname=c2'], env());

    for (const j of ['c1', 'c2']) berthOk(['jremove', `jname=${j}`], env());
    assert.deepEqual(cephMounts(), []);
    assert.deepEqual(mountTable(top), before);
    await tree.withAdminMount((m) => {
      for (const kind of ['data', 'system', 'fstab']) {
        for (const j of ['c1', 'c2']) {
          const d = join(m, kind, j);
          assert.deepEqual(existsSync(d) ? readdirSync(d) : [], [], `${kind}/${j} on CephFS is empty after jremove`);
        }
      }
    });
  });
});
