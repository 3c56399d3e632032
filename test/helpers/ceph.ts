/**
 * Test helpers: throw-away trees on the one-node Ceph cluster of scripts/ceph-up (`make test`
 * starts it; its state is in $CEPH_UP_DIR, default /var/tmp/berth-ceph), cephx clients with
 * path caps, and admin mounts to look at what the hooks wrote, with cleanup that always runs.
 *
 * Facts checked on this machine (Debian 12, Ceph 16.2 Pacific, memstore OSD), which the helpers
 * and the CephFS hook tests rely on:
 * - the kernel has no ceph file system here: CephFS is mounted with ceph-fuse; a mount takes
 *   70–150 ms, an unmount 6–30 ms; each ceph-fuse is a client process of its own (~86 MB);
 * - `ceph fs authorize cephfs client.X /path rw` prints a keyring whose MDS caps let
 *   client.X mount only under /path (outside: "mds.0 rejected us (non-allowable root)",
 *   exit 1 at once); two mounts with one client id work side by side;
 * - with a wrong key or monitor ceph-fuse retries until `client_mount_timeout` (then exit 1);
 * - `-o fsname=NAME,subtype=ceph-fuse` names the mount in the mount table (type stays
 *   fuse.ceph-fuse); snapshots (`mkdir d/.snap/s`) need the `s` flag in the caps (`rws`).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/proc.js';

/** Where scripts/ceph-up keeps the cluster. */
export const CEPH_DIR = process.env.CEPH_UP_DIR || '/var/tmp/berth-ceph';
/** The cluster's conf and its client.admin keyring. */
export const CEPH_CONF = join(CEPH_DIR, 'ceph.conf');

/** `ceph -c <conf> ...args`; throws with its output when it fails. */
export async function ceph(args: string[], check = true): Promise<{ stdout: string; stderr: string; exitCode: number }> {
  return run(['ceph', '-c', CEPH_CONF, ...args], { check, timeoutSec: 60, errorCode: 'E_COMMAND_FAILED' });
}

/** The monitor address clients use (the v2 address of `mon host` in the conf), e.g. 127.0.0.1:13300. */
export function cephMonitors(): string {
  const text = readFileSync(CEPH_CONF, 'utf8');
  const m = /^mon host = \[v2:([^,\]]+)/m.exec(text);
  if (!m) throw new Error(`no v2 monitor address in ${CEPH_CONF}`);
  return m[1]!;
}

/** Throws unless the cluster of scripts/ceph-up answers. */
export async function requireCeph(): Promise<void> {
  if (!existsSync(CEPH_CONF)) throw new Error(`${CEPH_CONF} is missing: start the cluster with scripts/ceph-up`);
  const r = await ceph(['health'], false);
  if (r.exitCode !== 0) throw new Error(`the Ceph cluster of ${CEPH_DIR} does not answer (run scripts/ceph-up): ${r.stderr}`);
}

function isMounted(dir: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === dir);
}

/** Unmounts `dir` (lazily when busy); no-op when not mounted. */
export async function unmountCeph(dir: string): Promise<void> {
  for (let i = 0; i < 5 && isMounted(dir); i++) {
    const r = await run(['umount', dir], { check: false });
    if (r.exitCode === 0) return;
    await new Promise((res) => setTimeout(res, 100 * (i + 1)));
  }
  if (isMounted(dir)) await run(['umount', '-l', dir], { check: false });
  if (isMounted(dir)) throw new Error(`cannot unmount ${dir}`);
}

/** A test tree `/berthtest_<pid>_<hex>` in the file system `cephfs`. */
export interface CephTree {
  /** the path in the file system, e.g. /berthtest_123_ab12cd */
  root: string;
  fsName: string;
  monitors: string;
  /** temp dir holding keyrings and admin mount points; removed by remove() */
  tempRoot: string;
  /**
   * Makes cephx client `client.<id>` allowed under `path` (default: the tree) with `caps`
   * (`rw`, or `rws` for snapshots) by `ceph fs authorize`; returns its keyring file (root, 0600).
   */
  authorize(id: string, opts?: { path?: string; caps?: string }): Promise<string>;
  /** Runs fn with the tree mounted as client.admin on a fresh dir (a separate client). */
  withAdminMount<T>(fn: (dir: string) => T | Promise<T>): Promise<T>;
  /** Removes the tree (through an admin mount) and the clients made by authorize. Idempotent. */
  remove(): Promise<void>;
}

/** The clients of trees of test processes that no longer run, and their trees. */
async function removeStale(): Promise<void> {
  const r = await ceph(['auth', 'ls', '--format', 'json'], false);
  if (r.exitCode !== 0) return;
  let entries: { entity: string }[] = [];
  try { entries = (JSON.parse(r.stdout) as { auth_dump: { entity: string }[] }).auth_dump; } catch { return; }
  for (const e of entries) {
    const m = /^client\.bt(\d+)-/.exec(e.entity);
    if (!m) continue;
    try { process.kill(Number(m[1]), 0); continue; } catch { /* gone */ }
    await ceph(['auth', 'del', e.entity], false);
  }
}

/**
 * Makes a fresh tree (its `data`, `system`, `fstab`, `rcconf` and `lease` dirs too) through a short-lived
 * admin mount. Call `remove()` in an `after`; a process exit hook unmounts what is left.
 * Client ids made by authorize are prefixed `bt<pid>-` so a later run can remove stale ones.
 */
export async function cephTree(fsName = 'cephfs'): Promise<CephTree> {
  await requireCeph();
  await removeStale();
  const root = `/berthtest_${process.pid}_${randomBytes(3).toString('hex')}`;
  const tempRoot = mkdtempSync(join(tmpdir(), 'berth-ceph-'));
  const monitors = cephMonitors();
  const clients: string[] = [];
  const mounts = new Set<string>();
  let removed = false;
  process.on('exit', () => {
    for (const m of mounts) if (isMounted(m)) spawnSync('umount', ['-l', m]);
  });

  const adminMount = async (sub: string): Promise<string> => {
    const dir = mkdtempSync(join(tempRoot, 'admin-'));
    await run(['ceph-fuse', '-c', CEPH_CONF, '--client_fs', fsName, '-r', sub, dir], { timeoutSec: 60, errorCode: 'E_COMMAND_FAILED' });
    if (!isMounted(dir)) throw new Error(`ceph-fuse -r ${sub} ${dir} exited 0 but nothing is mounted`);
    mounts.add(dir);
    return dir;
  };
  const adminUnmount = async (dir: string): Promise<void> => {
    await unmountCeph(dir);
    mounts.delete(dir);
    rmSync(dir, { recursive: true, force: true });
  };

  const top = await adminMount('/');
  try {
    for (const d of ['data', 'system', 'fstab', 'rcconf', 'lease']) mkdirSync(join(top, root, d), { recursive: true });
  } finally {
    await adminUnmount(top);
  }

  const tree: CephTree = {
    root, fsName, monitors, tempRoot,
    async authorize(id, opts = {}) {
      const entity = `client.bt${process.pid}-${id}`;
      const r = await ceph(['fs', 'authorize', fsName, entity, opts.path ?? root, opts.caps ?? 'rw']);
      clients.push(entity);
      const file = join(tempRoot, `${id}.keyring`);
      writeFileSync(file, r.stdout, { mode: 0o600 });
      chmodSync(file, 0o600);
      return file;
    },
    async withAdminMount(fn) {
      const dir = await adminMount(root);
      try { return await fn(dir); } finally { await adminUnmount(dir); }
    },
    async remove() {
      if (removed) return;
      removed = true;
      try {
        const t = await adminMount('/');
        try { rmSync(join(t, root), { recursive: true, force: true }); } finally { await adminUnmount(t); }
      } finally {
        for (const c of clients) await ceph(['auth', 'del', c], false);
        for (const m of mounts) await unmountCeph(m).catch(() => undefined);
        rmSync(tempRoot, { recursive: true, force: true });
      }
    },
  };
  return tree;
}

/** The id prefix authorize gives a client id (ceph-fuse --id takes the part after `client.`). */
export function clientId(id: string): string {
  return `bt${process.pid}-${id}`;
}
