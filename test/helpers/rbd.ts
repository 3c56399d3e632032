/**
 * The setup the RBD VM tests share (test/integration/rbd-qemu.test.ts, qemu-rbd.test.ts): the
 * cluster of scripts/ceph-up answering, a cephx client `client.<id>` with `profile rbd` caps on
 * the `rbd` pool and its keyring (mode 0600, a temp dir), a guest node (kernel base k1, busybox
 * base bb: test/helpers/vmguest.ts), optionally with the client in the node's berth.conf
 * (rbd_id, rbd_keyring, rbd_mon_host, rbd_conf=/dev/null); and the clean-up: qemu of the named
 * VMs killed, the images the test made removed (clones first), the client deleted.
 */
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { qemuRunPaths } from '../../src/engines/qemu/argv.js';
import { qemuPid, waitPidGone } from '../../src/engines/qemu/process.js';
import { BerthError } from '../../src/errors.js';
import { readSettings, writeSettings } from '../../src/settings.js';
import { rbdRemove, type RbdAccess, type RbdImage } from '../../src/storage/rbd.js';
import { tempDir } from './cli.js';
import { ceph, CEPH_CONF, cephMonitors, requireCeph } from './ceph.js';
import { Console, guestNode, type GuestNode } from './vmguest.js';

/** What {@link rbdGuestSetup} made. */
export interface RbdGuestSetup {
  /** the cephx user without `client.` */
  id: string;
  keyring: string;
  /** how the test's client reaches the cluster (no ceph.conf: id, keyring, monitors) */
  access: RbdAccess;
  /** client.admin through the cluster's conf (for checks and clean-up) */
  admin: RbdAccess;
  node: GuestNode;
  /** images to remove at clean-up, in the order made (removed in reverse: clones first) */
  images: RbdImage[];
  /** kills qemu of `vms` (jnames on the node), removes `images`, deletes the client, closes the node */
  cleanup(vms: string[]): Promise<void>;
}

/** An image in the `rbd` pool. */
export const rbdImg = (image: string): RbdImage => ({ pool: 'rbd', image });

/**
 * The shared setup: client `client.<id>`, its keyring, a guest node (`prefix` names its temp
 * dir); with `nodeSettings`, the client in the node's berth.conf.
 */
export async function rbdGuestSetup(id: string, prefix: string, opts: { nodeSettings?: boolean } = {}): Promise<RbdGuestSetup> {
  await requireCeph();
  const r = await ceph(['auth', 'get-or-create', `client.${id}`, 'mon', 'profile rbd', 'osd', 'profile rbd pool=rbd']);
  const keyring = join(tempDir(`${prefix}key-`), `${id}.keyring`);
  writeFileSync(keyring, r.stdout, { mode: 0o600 });
  const node = await guestNode(prefix);
  if (opts.nodeSettings) {
    const s = readSettings(node.wd.conf);
    await writeSettings(node.wd.conf, { ...s.raw, rbd_id: id, rbd_keyring: keyring, rbd_mon_host: cephMonitors(), rbd_conf: '/dev/null' });
  }
  const admin: RbdAccess = { conf: CEPH_CONF };
  const setup: RbdGuestSetup = {
    id, keyring, access: { id, keyring, monitors: cephMonitors() }, admin, node, images: [],
    async cleanup(vms: string[]) {
      for (const j of vms) {
        const p = qemuPid(qemuRunPaths(node.wd, j));
        if (p) { process.kill(p, 'SIGKILL'); await waitPidGone(p, 5000); }
      }
      for (const i of [...setup.images].reverse()) await rbdRemove(admin, i).catch((e) => console.log(`# cleanup of ${i.image}: ${(e as Error).message}`));
      await ceph(['auth', 'del', `client.${id}`], false);
      node.close();
    },
  };
  return setup;
}

/** An assert.rejects predicate: a BerthError with `code` (and a message matching `re`). */
export const isErr = (code: string, re?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof BerthError, String(e));
  assert.equal(e.code, code, e.message);
  if (re) assert.match(e.message, re);
  return true;
};

/** Connects to a VM's serial console and waits (up to 120 s) for the busybox guest's shell prompt. */
export async function guestShell(consoleSocket: string): Promise<Console> {
  const c = await Console.connect(consoleSocket);
  c.write('\n');
  await c.waitFor(/# $|# \S*$/m, 120_000);
  return c;
}
