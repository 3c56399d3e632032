/**
 * `berth doctor` (the built CLI) on a workdir whose jails-data and jails-system are a real
 * GlusterFS volume: the fs type is reported as fuse.glusterfs with O_EXCL, link(2) and fcntl
 * record locks working through FUSE; an env whose FreeBSD pkg database lies on the volume
 * fails until `fix=1` adds NFS_WITH_PROPER_LOCKING to its pkg.conf; var/db on GlusterFS
 * fails. Needs root, a running glusterd (scripts/gluster-up) and `npm run build`.
 */
import { strict as assert } from 'node:assert';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openNode } from '../../src/node.js';
import { berth, berthOk, tempDir } from '../helpers/cli.js';
import { glusterVolume, type GlusterVolume } from '../helpers/gluster.js';

type Check = { check: string; subject: string; status: string; detail: string; data?: Record<string, unknown> };

describe('doctor on GlusterFS', () => {
  let vol: GlusterVolume;
  let base: string;
  let wd: string;

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'run as root (FUSE mounts)');
    vol = await glusterVolume();
    base = tempDir('berth-doctor-gluster-');
    wd = join(base, 'wd');
    berthOk(['initenv', `workdir=${wd}`, 'nodename=g1']);
    await vol.mkdirOnVolume('data');
    await vol.mkdirOnVolume('system');
    await vol.mount(join(wd, 'jails-data'), 'data');
    await vol.mount(join(wd, 'jails-system'), 'system');
    const ctx = openNode(wd);
    try {
      ctx.inv.insert({ jname: 'bsd1', uuid: '11111111-2222-4333-8444-666666666666', emulator: 'jail', generation: 1, conf: { jname: 'bsd1' } });
    } finally { ctx.close(); }
    const data = join(wd, 'jails-data', 'bsd1-data');
    mkdirSync(join(data, 'var', 'db', 'pkg'), { recursive: true });
    writeFileSync(join(data, 'var', 'db', 'pkg', 'local.sqlite'), '');
    mkdirSync(join(data, 'usr', 'local', 'etc'), { recursive: true });
    writeFileSync(join(data, 'usr', 'local', 'etc', 'pkg.conf'), 'REPOS_DIR = ["/etc/pkg"];');
  });

  after(async () => {
    try { await vol?.remove(); } finally { if (base) rmSync(base, { recursive: true, force: true }); }
  });

  test('shared dirs on the volume: fuse.glusterfs, O_EXCL, link and fcntl locks work', () => {
    const r = berth(['doctor', `workdir=${wd}`, '--json']);
    const checks = r.json.checks as Check[];
    const data = checks.find((c) => c.subject === join(wd, 'jails-data'))!;
    assert.equal(data.data!.fsType, 'fuse.glusterfs');
    assert.equal(data.data!.exclusiveCreate, true);
    assert.equal(data.data!.link, true);
    assert.equal(data.data!.recordLocks, 'ok', data.detail);
    assert.equal(data.status, 'ok');
    assert.equal(checks.find((c) => c.subject === join(wd, 'jails-rcconf'))!.data!.fsType !== 'fuse.glusterfs', true);
  });

  test('pkg database on GlusterFS: fails without NFS_WITH_PROPER_LOCKING, fix=1 adds it, then passes', () => {
    const conf = join(wd, 'jails-data', 'bsd1-data', 'usr', 'local', 'etc', 'pkg.conf');
    let r = berth(['doctor', `workdir=${wd}`, 'jname=bsd1']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /pkg locking\s+jails-data\/bsd1-data\/usr\/local\/etc\/pkg\.conf\s+FAIL\s+env bsd1: pkg database on fuse\.glusterfs but pkg\.conf lacks 'NFS_WITH_PROPER_LOCKING = true;'/);
    r = berth(['doctor', `workdir=${wd}`, 'jname=bsd1', 'fix=1', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal((r.json.checks as Check[]).find((c) => c.check === 'pkg locking')!.status, 'fixed');
    assert.equal(readFileSync(conf, 'utf8'), 'REPOS_DIR = ["/etc/pkg"];\n# added by berth doctor fix=1: pkg database on fuse.glusterfs\nNFS_WITH_PROPER_LOCKING = true;\n');
    r = berth(['doctor', `workdir=${wd}`, 'jname=bsd1']);
    assert.equal(r.code, 0, r.stdout);
    assert.match(r.stdout, /pkg locking\s+\S+pkg\.conf\s+OK\s+env bsd1: pkg database on fuse\.glusterfs; pkg\.conf sets NFS_WITH_PROPER_LOCKING/);
  });

  test('var/db on GlusterFS fails', async () => {
    // mounted over var/db after initenv made the inventory: doctor must see the network fs
    await vol.mkdirOnVolume('vardb');
    const varDb = join(wd, 'var', 'db');
    const keep = join(base, 'vardb-copy');
    mkdirSync(keep);
    // the inventory file must stay reachable for openNode: copy it onto the volume first
    await vol.mount(keep, 'vardb');
    writeFileSync(join(keep, 'local.sqlite'), readFileSync(join(varDb, 'local.sqlite')));
    await vol.mount(varDb, 'vardb');
    const r = berth(['doctor', `workdir=${wd}`, '--json']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const c = (r.json.checks as Check[]).find((x) => x.check === 'var/db')!;
    assert.equal(c.status, 'fail');
    assert.match(c.detail, /on fuse\.glusterfs: the inventory \(SQLite WAL\) must be on a local file system/);
  });
});
