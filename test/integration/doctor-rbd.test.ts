/**
 * doctor's RBD checks (src/storage/rbd-check.ts) against the one-node cluster of scripts/ceph-up:
 * a node whose berth.conf names a cephx client with `profile rbd` caps on the `rbd` pool
 * (rbd_id, rbd_keyring, rbd_mon_host, rbd_conf=/dev/null) gets ok rows for its keyring, the
 * pool and qemu's rbd driver; a pool the client may not read and monitors that do not answer
 * are warnings naming them (the hanging rbd killed after the timeout).
 * Needs root, ceph-common, qemu-utils and qemu-block-extra.
 */
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { doctor } from '../../src/doctor.js';
import { initenv } from '../../src/initenv.js';
import { openNode } from '../../src/node.js';
import { readSettings, writeSettings } from '../../src/settings.js';
import { checkRbd } from '../../src/storage/rbd-check.js';
import { isRoot, tempDir } from '../helpers/cli.js';
import { ceph, cephMonitors, requireCeph } from '../helpers/ceph.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

const id = `bt${process.pid}-doc`;
let keyring: string;
let wd: string;

before(async () => {
  await requireCeph();
  const r = await ceph(['auth', 'get-or-create', `client.${id}`, 'mon', 'profile rbd', 'osd', 'profile rbd pool=rbd']);
  const dir = tempDir('berth-docrbd-');
  keyring = join(dir, 'doc.keyring');
  writeFileSync(keyring, r.stdout, { mode: 0o600 });
  wd = join(dir, 'wd');
  await initenv({ workdir: wd, nodename: 'docrbd1' });
  const conf = join(wd, 'etc', 'berth.conf');
  await writeSettings(conf, { ...readSettings(conf).raw, rbd_id: id, rbd_keyring: keyring, rbd_mon_host: cephMonitors(), rbd_conf: '/dev/null' });
});

after(async () => { await ceph(['auth', 'del', `client.${id}`], false); });

describe('doctor: RBD access against the running cluster', () => {
  test('the node\'s client reaches the rbd pool and qemu has its rbd driver: ok rows', async () => {
    const ctx = openNode(wd);
    try {
      const r = await doctor(ctx);
      const rows = r.checks.filter((c) => c.check === 'rbd');
      assert.deepEqual(rows.map((c) => [c.subject, c.status]), [[keyring, 'ok'], ['pool rbd', 'ok'], ['qemu rbd driver', 'ok']], JSON.stringify(rows));
      assert.match(rows[1]!.detail, new RegExp(`answers as client\\.${id} \\(\\d+ images?`));
    } finally {
      ctx.close();
    }
  });

  test('a pool the client has no caps on, and monitors that do not answer: warnings naming them', async () => {
    const settings = { rbd_id: id, rbd_keyring: keyring, rbd_mon_host: cephMonitors(), rbd_conf: '/dev/null' };
    const nocaps = await checkRbd(settings, ['cephfs_data'], { timeoutSec: 20 });
    assert.equal(nocaps.find((c) => c.subject === 'pool cephfs_data')?.status, 'warn', JSON.stringify(nocaps));
    assert.match(nocaps.find((c) => c.subject === 'pool cephfs_data')!.detail, new RegExp(`rbd ls -p cephfs_data failed as client\\.${id}: .*(Operation not permitted|\\(1\\))`));

    // a port that accepts connections and never answers: rbd waits for the monitor until killed
    const silent: Server = createServer(() => undefined);
    await new Promise<void>((res) => silent.listen(0, '127.0.0.1', () => res()));
    const port = (silent.address() as { port: number }).port;
    try {
      const rows = await checkRbd({ ...settings, rbd_mon_host: `127.0.0.1:${port}` }, ['rbd'], { timeoutSec: 3 });
      const pool = rows.find((c) => c.subject === 'pool rbd')!;
      assert.equal(pool.status, 'warn');
      assert.match(pool.detail, new RegExp(`did not answer within 3 s: are the monitors \\(127\\.0\\.0\\.1:${port}\\) up and reachable`));
    } finally {
      silent.close();
    }
  });
});
