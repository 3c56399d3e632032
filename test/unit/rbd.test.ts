/**
 * src/storage/rbd.ts without a cluster: image names, the rbd access options, QEMU's rbd
 * filename and its escaping, and a qemu argv with an RBD disk (src/engines/qemu/argv.ts
 * diskFiles). The commands against a real cluster are in test/integration/rbd-qemu.test.ts.
 */
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { buildQemuArgv } from '../../src/engines/qemu/argv.js';
import { isRbdDisk, parseVmSpec, vmSpecToConf } from '../../src/engines/vm/spec.js';
import { BerthError, EXIT } from '../../src/errors.js';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cloneSnapshotName, parseRbdImage, qemuRbdFile, rbdAccessArgs, rbdAccessFromSettings, rbdCreate, rbdSpec } from '../../src/storage/rbd.js';

describe('rbd names and QEMU specs', () => {
  test('pool/image parses; anything else is refused naming the value and the key', () => {
    assert.deepEqual(parseRbdImage('rbd/vm1-dsk1'), { pool: 'rbd', image: 'vm1-dsk1' });
    assert.equal(rbdSpec(parseRbdImage('p_1/i.2')), 'p_1/i.2');
    for (const bad of ['vm1', 'rbd/', '/img', 'a/b/c', 'rbd/.hidden', 'rbd/-x', 'rbd/a b', 'rbd/a:b', 'rbd/a@s', '../x', `rbd/${'x'.repeat(101)}`]) {
      assert.throws(() => parseRbdImage(bad, 'dsk_path1'), (e: unknown) => e instanceof BerthError && e.code === 'E_BAD_VALUE' && e.exitCode === EXIT.USAGE
        && e.message.includes(`dsk_path1="${bad}"`), bad);
    }
  });

  test('a size below one byte is refused before rbd runs', async () => {
    await assert.rejects(rbdCreate({ conf: '/nonexistent' }, { pool: 'rbd', image: 'x' }, 0), (e: unknown) => e instanceof BerthError && e.code === 'E_BAD_VALUE' && e.exitCode === EXIT.USAGE);
  });

  test('access options for rbd and for QEMU, with QEMU\'s escaping of : @ = and \\', () => {
    assert.deepEqual(rbdAccessArgs({}), []);
    assert.deepEqual(rbdAccessArgs({ conf: '/c', id: 'u', keyring: '/k', monitors: '127.0.0.1:1' }), ['-c', '/c', '--id', 'u', '--keyring', '/k', '-m', '127.0.0.1:1']);
    const img = { pool: 'rbd', image: 'vm1' };
    assert.equal(qemuRbdFile({}, img), 'rbd:rbd/vm1');
    assert.equal(qemuRbdFile({ conf: '/etc/ceph/ceph.conf', id: 'berth-node1', keyring: '/etc/ceph/k' }, img),
      'rbd:rbd/vm1:id=berth-node1:conf=/etc/ceph/ceph.conf:keyring=/etc/ceph/k');
    // monitors without a conf: no default ceph.conf is read (conf=/dev/null)
    assert.equal(qemuRbdFile({ id: 'u', monitors: '127.0.0.1:13300,127.0.0.2:13300' }, img), 'rbd:rbd/vm1:id=u:conf=/dev/null:mon_host=127.0.0.1\\:13300,127.0.0.2\\:13300');
    assert.equal(qemuRbdFile({ keyring: '/a:b@c=d\\e' }, img), 'rbd:rbd/vm1:keyring=/a\\:b\\@c\\=d\\\\e');
  });

  test('the clone\'s snapshot is named after the clone', () => {
    assert.equal(cloneSnapshotName({ pool: 'rbd', image: 'vm2-dsk1' }), 'berth-clone-rbd-vm2-dsk1');
  });

  test('buildQemuArgv opens disk 1 by its RBD file= spec, commas doubled; other disks stay files', () => {
    const spec = parseVmSpec({ jname: 'r1', emulator: 'qemu', vm_ram: '256m', vm_vnc_port: '1', dsk_path1: 'dsk1.vhd', dsk_path2: 'dsk2.vhd' });
    const run = { qmpSocket: '/r/q', consoleSocket: '/r/c', consoleLog: '/l/c', pidFile: '/r/p', qemuLog: '/l/q' };
    const file = qemuRbdFile({ id: 'u', monitors: '127.0.0.1:1,127.0.0.1:2' }, { pool: 'rbd', image: 'r1' });
    const argv = buildQemuArgv({ spec, dataDir: '/d', run, accel: { accel: 'tcg' }, diskFiles: { 1: file } });
    const drives = argv.filter((_, i) => argv[i - 1] === '-drive');
    assert.deepEqual(drives, [
      'file=rbd:rbd/r1:id=u:conf=/dev/null:mon_host=127.0.0.1\\:1,,127.0.0.1\\:2,format=raw,if=none,id=dsk1,cache=none,discard=unmap',
      'file=/d/dsk2.vhd,format=raw,if=none,id=dsk2,cache=none,discard=unmap',
    ]);
  });

  test('dsk_type=rbd: the row names pool/image (qemu only); bad names, bhyve and a second row on one image are refused', () => {
    const spec = parseVmSpec({ jname: 'r1', emulator: 'qemu', dsk_path1: 'rbd/r1-dsk1', dsk_type1: 'rbd', dsk_path2: 'rbd/r1', dsk_type2: 'vhd' });
    assert.deepEqual(spec.disks.map((d) => [d.path, d.type, isRbdDisk(d), d.format]), [['rbd/r1-dsk1', 'rbd', true, 'raw'], ['rbd/r1', 'vhd', false, 'raw']]);
    assert.equal(vmSpecToConf(spec).dsk_type1, 'rbd', 'written back as it was given');
    assert.equal(vmSpecToConf(spec).dsk_path1, 'rbd/r1-dsk1');
    const usage = (re: RegExp) => (e: unknown) => e instanceof BerthError && e.code === 'E_BAD_VALUE' && e.exitCode === EXIT.USAGE && re.test(e.message);
    assert.throws(() => parseVmSpec({ jname: 'r1', emulator: 'qemu', dsk_path1: 'dsk1.vhd', dsk_type1: 'rbd' }), usage(/dsk_path1="dsk1\.vhd" is not an RBD image name/));
    assert.throws(() => parseVmSpec({ jname: 'r1', emulator: 'qemu', dsk_path1: '/abs/img', dsk_type1: 'rbd' }), usage(/dsk_path1="\/abs\/img"/));
    assert.throws(() => parseVmSpec({ jname: 'r1', emulator: 'bhyve', dsk_path1: 'rbd/r1', dsk_type1: 'rbd' }), usage(/dsk_type1="rbd"/));
    assert.throws(() => parseVmSpec({ jname: 'r1', emulator: 'qemu', dsk_path1: 'rbd/x', dsk_type1: 'rbd', dsk_path2: 'rbd/x', dsk_type2: 'rbd' }), usage(/dsk_path2="rbd\/x".*a disk other than dsk_path1/));
    assert.throws(() => parseVmSpec({ jname: 'r1', emulator: 'qemu', dsk_type1: 'ceph' }), usage(/dsk_type1="ceph".*rbd/));
  });

  test('the node\'s rbd_* settings: paths absolute, a keyring only root can read, a user name without client.', () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-rbd-unit-'));
    try {
      const k = join(dir, 'k');
      writeFileSync(k, '[client.x]\n', { mode: 0o600 });
      assert.deepEqual(rbdAccessFromSettings({}), {});
      assert.deepEqual(rbdAccessFromSettings({ rbd_conf: '/etc/ceph/ceph.conf', rbd_id: 'berth-node1', rbd_keyring: k, rbd_mon_host: '10.0.0.1:3300,[::1]:3300' }),
        { conf: '/etc/ceph/ceph.conf', id: 'berth-node1', keyring: k, monitors: '10.0.0.1:3300,[::1]:3300' });
      const bad = (raw: Record<string, string>, re: RegExp) => assert.throws(() => rbdAccessFromSettings(raw), (e: unknown) => e instanceof BerthError && e.code === 'E_BAD_SETTING' && e.exitCode === EXIT.USAGE && re.test(e.message), JSON.stringify(raw));
      bad({ rbd_conf: 'ceph.conf' }, /rbd_conf="ceph\.conf".*absolute/);
      bad({ rbd_id: 'client.admin' }, /rbd_id="client\.admin"/);
      bad({ rbd_id: 'a b' }, /rbd_id="a b"/);
      bad({ rbd_keyring: join(dir, 'nope') }, /rbd_keyring=.*no such file/);
      bad({ rbd_mon_host: 'a;b' }, /rbd_mon_host="a;b"/);
      chmodSync(k, 0o644);
      if (process.getuid?.() === 0) bad({ rbd_keyring: k }, /owned by root with mode 0600/);
      else bad({ rbd_keyring: k }, /owned by root/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
