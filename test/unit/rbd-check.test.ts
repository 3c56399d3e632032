/**
 * doctor's RBD checks (src/storage/rbd-check.ts) without a cluster: `rbd` and `qemu-img` are
 * fakes (sh scripts first on PATH) that answer as the real ones do when a pool is missing, a
 * monitor does not answer, or qemu-block-extra is not installed; and doctor() of a temp node
 * adds the rows only when berth.conf has rbd_* settings. The same checks against the running
 * cluster are in test/integration/doctor-rbd.test.ts.
 */
import { strict as assert } from 'node:assert';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { doctor } from '../../src/doctor.js';
import { initenv } from '../../src/initenv.js';
import { openNode } from '../../src/node.js';
import { readSettings, writeSettings } from '../../src/settings.js';
import { checkQemuRbdDriver, checkRbd } from '../../src/storage/rbd-check.js';

let dir: string;
let bin: string;
const PATH = process.env.PATH;

/** Installs fake commands: name -> sh script body. */
function fakes(cmds: Record<string, string>): void {
  rmSync(bin, { recursive: true, force: true });
  mkdirSync(bin);
  for (const [name, body] of Object.entries(cmds)) {
    writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(bin, name), 0o755);
  }
}

const QEMU_OK = 'echo "qemu-img: Could not open \'$3\': error reading conf file /nonexistent/berth-doctor-probe.conf: No such file or directory" >&2; exit 1';
const QEMU_NO_DRIVER = 'echo "qemu-img: Could not open \'$3\': Unknown driver \'rbd\'" >&2; exit 1';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-rbdcheck-'));
  bin = join(dir, 'bin');
  process.env.PATH = `${bin}:${PATH}`;
});
after(() => {
  process.env.PATH = PATH;
  rmSync(dir, { recursive: true, force: true });
});

describe('doctor: RBD access', () => {
  test('all readable, the pool answers, qemu has the driver: ok rows naming the client; rbd gets the node\'s access options', async () => {
    const conf = join(dir, 'ceph.conf');
    const keyring = join(dir, 'k.keyring');
    writeFileSync(conf, '[global]\n');
    writeFileSync(keyring, '[client.n1]\n', { mode: 0o600 });
    const args = join(dir, 'rbd-args');
    fakes({ rbd: `echo "$@" > ${args}; echo img1; echo img2`, 'qemu-img': QEMU_OK });
    const rows = await checkRbd({ rbd_conf: conf, rbd_id: 'n1', rbd_keyring: keyring }, ['vms', 'rbd', 'vms']);
    assert.deepEqual(rows.map((r) => [r.subject, r.status]), [[conf, 'ok'], [keyring, 'ok'], ['pool rbd', 'ok'], ['pool vms', 'ok'], ['qemu rbd driver', 'ok']]);
    assert.match(rows[2]!.detail, /answers as client\.n1 \(2 images/);
    assert.equal((await import('node:fs')).readFileSync(args, 'utf8'), `-c ${conf} --id n1 --keyring ${keyring} ls -p vms\n`);
  });

  test('a missing ceph.conf, a failing pool, a monitor that does not answer, no rbd driver: each a warning naming what is wrong', async () => {
    fakes({ rbd: 'case "$*" in *nopool*) echo "rbd: error opening pool \'nopool\': (2) No such file or directory" >&2; exit 2;; *) exec sleep 30;; esac', 'qemu-img': QEMU_NO_DRIVER });
    const t0 = Date.now();
    const rows = await checkRbd({ rbd_conf: join(dir, 'missing.conf') }, ['nopool', 'slow'], { timeoutSec: 1 });
    assert.ok(Date.now() - t0 < 20_000, 'the hanging rbd was killed');
    assert.deepEqual(rows.map((r) => [r.subject, r.status]), [[join(dir, 'missing.conf'), 'warn'], ['pool nopool', 'warn'], ['pool slow', 'warn'], ['qemu rbd driver', 'warn']]);
    assert.match(rows[0]!.detail, /ceph\.conf of rbd_conf cannot be read \(ENOENT\)/);
    assert.match(rows[1]!.detail, /rbd ls -p nopool failed as client\.admin: rbd: error opening pool 'nopool': \(2\) No such file or directory/);
    assert.match(rows[2]!.detail, /did not answer within 1 s: are the monitors .* up and reachable/);
    assert.match(rows[3]!.detail, /qemu has no rbd block driver \(qemu-img: .*Unknown driver 'rbd'\).*install qemu-block-extra/);
  });

  test('bad rbd_* settings fail naming the key; rbd and qemu-img missing altogether are warnings', async () => {
    fakes({});
    process.env.PATH = bin;
    try {
      const rows = await checkRbd({ rbd_keyring: join(dir, 'nokey') }, []);
      assert.deepEqual(rows.map((r) => [r.subject, r.status]), [['berth.conf rbd_*', 'fail'], ['qemu rbd driver', 'warn']]);
      assert.match(rows[0]!.detail, /bad rbd_keyring=".*nokey" in berth\.conf: no such file/);
      assert.match(rows[1]!.detail, /qemu-img cannot be run/);
      const r2 = await checkRbd({ rbd_mon_host: '127.0.0.1:1' }, []);
      assert.deepEqual(r2.map((r) => [r.subject, r.status]), [['pool rbd', 'warn'], ['qemu rbd driver', 'warn']], 'monitors given: no ceph.conf is needed');
      assert.match(r2[0]!.detail, /rbd cannot be run .*install ceph-common/);
    } finally {
      process.env.PATH = `${bin}:${PATH}`;
    }
  });

  test('doctor adds the RBD rows only when berth.conf has rbd_* settings (or an env has an RBD disk)', async () => {
    fakes({ rbd: 'echo vm1-dsk1', 'qemu-img': QEMU_OK });
    const wd = join(dir, 'wd');
    await initenv({ workdir: wd, nodename: 'rc1' });
    let ctx = openNode(wd);
    try {
      assert.deepEqual((await doctor(ctx)).checks.filter((c) => c.check === 'rbd'), []);
    } finally { ctx.close(); }
    const s = readSettings(join(wd, 'etc', 'berth.conf'));
    await writeSettings(join(wd, 'etc', 'berth.conf'), { ...s.raw, rbd_mon_host: '127.0.0.1:13300' });
    ctx = openNode(wd);
    try {
      const r = await doctor(ctx);
      assert.deepEqual(r.checks.filter((c) => c.check === 'rbd').map((c) => [c.subject, c.status]), [['pool rbd', 'ok'], ['qemu rbd driver', 'ok']]);
    } finally { ctx.close(); }
  });
});
