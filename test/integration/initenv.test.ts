/**
 * `berth initenv` through the built CLI, as root: layout, re-runs, refusals that change
 * nothing, var/db on a real GlusterFS volume (refused) and on tmpfs (accepted).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { berth, berthOk, isRoot, mountTable, ROOT, tempDir } from '../helpers/cli.js';
import { glusterVolume } from '../helpers/gluster.js';
import { Inventory } from '../../src/inventory.js';

const dirs: string[] = [];
const tmp = (): string => { const d = tempDir('berth-it-initenv-'); dirs.push(d); return d; };
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

/** Every path under `dir` with its type, size and mode: a snapshot to compare before/after. */
function snapshot(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      const st = statSync(p);
      out.push(`${relative(dir, p)} ${st.isDirectory() ? 'd' : 'f'} ${st.mode.toString(8)} ${st.isDirectory() ? '' : readFileSync(p).toString('base64')}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

/** Files under the repository's share/examples (relative paths). */
function repoExamples(): string[] {
  const base = join(ROOT, 'share', 'examples');
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name)); else out.push(relative(base, join(d, e.name)));
    }
  };
  walk(base);
  return out.sort();
}

test('integration tests run as root', () => {
  assert.ok(isRoot, 'run the integration tests as root (make test does)');
});

test('initenv creates the workdir layout, nodename, berth.conf, inventory, token and examples', () => {
  const wd = join(tmp(), 'wd');
  const r = berthOk(['initenv', `workdir=${wd}`, 'nodename=node-a', 'lease_ttl=45', '--json']);
  assert.equal(r.json.ok, true);
  assert.equal(r.json.nodename, 'node-a');
  assert.equal(r.json.firstInit, true);
  assert.equal(r.json.settings.lease_ttl, '45');
  for (const d of ['etc', 'bases', 'jails', 'jails-data', 'jails-system', 'jails-rcconf', 'jails-fstab', 'var/db', 'var/log', 'var/run', 'share']) {
    assert.ok(statSync(join(wd, d)).isDirectory(), d);
  }
  assert.equal(readFileSync(join(wd, 'nodename'), 'utf8'), 'node-a\n');
  assert.match(readFileSync(join(wd, 'etc', 'berth.conf'), 'utf8'), /^lease_ttl="45";$/m);
  assert.match(readFileSync(join(wd, 'etc', 'api.token'), 'utf8'), /^[0-9a-f]{64}\n$/);
  assert.equal(statSync(join(wd, 'etc', 'api.token')).mode & 0o777, 0o600);
  assert.ok(existsSync(join(wd, 'var', 'db', 'local.sqlite')));
  assert.equal(r.json.inventory.schemaVersion > 0, true);
  const ex = repoExamples();
  assert.ok(ex.length > 0, 'the repository has share/examples');
  for (const f of ex) assert.ok(existsSync(join(wd, 'share', 'examples', f)), `share/examples/${f} copied`);
  // the workdir is a usable node: other commands open it
  berthOk(['base', 'list'], { workdir: wd });
  // text output names the node and the workdir
  const t = berthOk(['initenv', `workdir=${wd}`]);
  assert.match(t.stdout, /re-initialised berth node node-a at /);
});

test('a re-run keeps settings, nodename and token unless new ones are given', () => {
  const wd = join(tmp(), 'wd');
  berthOk(['initenv', `workdir=${wd}`, 'nodename=keepme', 'mnt_timeout=77', 'api_port=8123']);
  const token = readFileSync(join(wd, 'etc', 'api.token'), 'utf8');
  const r = berthOk(['initenv', '--json'], { workdir: wd });
  assert.equal(r.json.firstInit, false);
  assert.equal(r.json.nodename, 'keepme');
  assert.deepEqual(r.json.changedSettings, []);
  assert.equal(r.json.settings.mnt_timeout, '77');
  assert.equal(r.json.settings.api_port, '8123');
  assert.equal(readFileSync(join(wd, 'etc', 'api.token'), 'utf8'), token);
  const r2 = berthOk(['initenv', 'lease_ttl=90', '--json'], { workdir: wd });
  assert.deepEqual(r2.json.changedSettings, ['lease_ttl']);
  const conf = readFileSync(join(wd, 'etc', 'berth.conf'), 'utf8');
  assert.match(conf, /^mnt_timeout="77";$/m);
  assert.match(conf, /^lease_ttl="90";$/m);
  // an edited example survives, a deleted one comes back
  const f = repoExamples()[0]!;
  const p = join(wd, 'share', 'examples', f);
  rmSync(p);
  berthOk(['initenv'], { workdir: wd });
  assert.ok(existsSync(p));
});

test('a bad nodename changes nothing: the workdir is not even created', () => {
  const parent = tmp();
  const wd = join(parent, 'wd');
  for (const bad of ['bad/name', '-lead', 'a..b', 'x'.repeat(65), 'sp ace']) {
    const r = berth(['initenv', `workdir=${wd}`, `nodename=${bad}`, '--json']);
    assert.equal(r.code, 2, `${bad}: ${r.stderr}`);
    assert.equal(r.json.error.code, 'E_BAD_NODENAME');
    assert.ok(r.json.error.message.includes(JSON.stringify(bad)), r.json.error.message);
  }
  const r = berth(['initenv', `workdir=${wd}`, 'nodename=ok', 'lease_ttl=soon']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /lease_ttl="soon"/);
  assert.deepEqual(readdirSync(parent), []);
});

test('zfsfeat=1 on a workdir that is not ZFS is refused (exit 2) and changes nothing', () => {
  const parent = tmp();
  const wd = join(parent, 'wd');
  const r = berth(['initenv', `workdir=${wd}`, 'nodename=z', 'zfsfeat=1', '--json']);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(r.json.error.code, 'E_NO_ZFS');
  assert.match(r.json.error.message, /not on a ZFS dataset/);
  assert.deepEqual(readdirSync(parent), []);
  berthOk(['initenv', `workdir=${wd}`, 'nodename=z']);
  const before = snapshot(wd);
  const r2 = berth(['initenv', 'zfsfeat=1'], { workdir: wd });
  assert.equal(r2.code, 2);
  assert.match(r2.stderr, /zfsfeat=1 needs the workdir on ZFS/);
  assert.deepEqual(snapshot(wd), before);
  const r3 = berth(['initenv', 'hammerfeat=1'], { workdir: wd });
  assert.equal(r3.code, 2);
  assert.match(r3.stderr, /hammerfeat=1/);
  assert.deepEqual(snapshot(wd), before);
});

test('renaming a node that has envs is refused (exit 1); without envs it is allowed', () => {
  const wd = join(tmp(), 'wd');
  berthOk(['initenv', `workdir=${wd}`, 'nodename=first']);
  const r = berthOk(['initenv', 'nodename=second', '--json'], { workdir: wd });
  assert.equal(r.json.previousNodename, 'first');
  const inv = Inventory.open(join(wd, 'var', 'db', 'local.sqlite'));
  inv.insert({ jname: 'web1', uuid: 'u-1', emulator: 'runc', generation: 1, conf: { jname: 'web1', base: 'bb' } });
  inv.close();
  const before = snapshot(join(wd, 'etc')).concat(readFileSync(join(wd, 'nodename'), 'utf8'));
  const r2 = berth(['initenv', 'nodename=third', '--json'], { workdir: wd });
  assert.equal(r2.code, 1, r2.stderr);
  assert.equal(r2.json.error.code, 'E_NODENAME_IN_USE');
  assert.deepEqual(snapshot(join(wd, 'etc')).concat(readFileSync(join(wd, 'nodename'), 'utf8')), before);
});

test('var/db on a GlusterFS volume is refused and nothing is written', async () => {
  const vol = await glusterVolume();
  try {
    const base = tmp();
    // (a) the whole workdir on the volume
    const mnt = join(base, 'gluster');
    await vol.mount(mnt);
    const r = berth(['initenv', `workdir=${join(mnt, 'wd')}`, 'nodename=g1', '--json']);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.json.error.code, 'E_VARDB_NETWORK_FS');
    assert.match(r.json.error.message, /fuse\.glusterfs/);
    assert.deepEqual(readdirSync(mnt), [], 'nothing was created on the volume');
    // (b) a local workdir whose var/db is a GlusterFS mount
    const wd = join(base, 'wd');
    berthOk(['initenv', `workdir=${wd}`, 'nodename=g2']);
    const dbdir = join(wd, 'var', 'db');
    rmSync(dbdir, { recursive: true });
    mkdirSync(dbdir);
    await vol.mkdirOnVolume('db2');
    await vol.mount(dbdir, 'db2');
    const before = snapshot(join(wd, 'etc'));
    const r2 = berth(['initenv', 'lease_ttl=99'], { workdir: wd });
    assert.equal(r2.code, 2, r2.stderr);
    assert.match(r2.stderr, /var\/db would be on a fuse\.glusterfs file system/);
    assert.deepEqual(snapshot(join(wd, 'etc')), before);
    assert.deepEqual(readdirSync(dbdir), [], 'no inventory was created on the volume');
  } finally {
    await vol.remove();
  }
});

test('var/db on a local tmpfs is accepted and reported', () => {
  const wd = join(tmp(), 'wd');
  berthOk(['initenv', `workdir=${wd}`, 'nodename=t']);
  const dbdir = join(wd, 'var', 'db');
  rmSync(dbdir, { recursive: true });
  mkdirSync(dbdir);
  assert.equal(spawnSync('mount', ['-t', 'tmpfs', 'berth-test', dbdir]).status, 0);
  try {
    const r = berthOk(['initenv', '--json'], { workdir: wd });
    assert.equal(r.json.fs.varDb, 'tmpfs');
    assert.ok(existsSync(join(dbdir, 'local.sqlite')));
  } finally {
    spawnSync('umount', [dbdir]);
  }
  // only this test's mount is checked: other tests may mount things meanwhile
  assert.deepEqual(mountTable().filter((t) => t === wd || t.startsWith(wd + '/')), []);
});

test('a user other than root is told that berth runs as root, not that the node is not initialised', () => {
  const top = tmp();
  chmodSync(top, 0o755); // mkdtemp makes it 0700: let the user see the node
  const wd = join(top, 'wd');
  berthOk(['initenv', `workdir=${wd}`, 'nodename=rootonly']);
  // the CLI, copied where that user can read it (the checkout may be under a private home)
  const cli = join(top, 'cli');
  for (const f of ['package.json', 'bin/berth', 'bin/package.json', 'dist/bundle/berth.cjs']) {
    mkdirSync(dirname(join(cli, f)), { recursive: true, mode: 0o755 });
    copyFileSync(join(ROOT, f), join(cli, f));
  }
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, join(cli, 'bin', 'berth'), 'jls'],
    { encoding: 'utf8', env: { ...process.env, BERTH_WORKDIR: wd } });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /is a berth node, but its inventory .* is root's alone: berth runs as root/);
  assert.doesNotMatch(r.stderr, /not an initialised/);
});
