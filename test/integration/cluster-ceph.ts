/**
 * Test fixture (not a test file): two berth nodes on this machine on one CephFS test tree
 * (test/helpers/ceph.ts cephTree) in the per-env hook layout, as `make demo-ceph` builds it.
 * Each node has its own cephx client (path caps on the tree, its own ceph-fuse client id) and
 * its own copy of the example cephfs hooks as `default_mnt_start` / `default_mnt_stop`, so an
 * env's data, system and fstab dirs are ceph-fuse sub-directory mounts made only while it is in
 * use; the tree's `rcconf` and `lease` dirs are mounted whole on each node's jails-rcconf and
 * jails-lease (the ownership directory) by that node's client, before initenv. Nodes are
 * {@link TestNode}s of cluster-twonode.ts (agents on loopback ports). Needs root, runc,
 * busybox-static and the cluster of scripts/ceph-up.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../src/proc.js';
import { berthOk, tempDir } from '../helpers/cli.js';
import { cephTree, clientId, unmountCeph, type CephTree } from '../helpers/ceph.js';
import { TestNode } from './cluster-twonode.js';

/** The fixture. */
export interface CephNodes {
  tree: CephTree;
  base: string;
  n1: TestNode;
  n2: TestNode;
  /** each node's keyring file (client.<clientId(node name)>) */
  keyrings: Record<string, string>;
  /** stops agents and envs, unmounts what is left under base, removes the tree and the temp dirs */
  cleanup(): Promise<void>;
}

/**
 * Makes the two nodes (node1, node2) with `initenvArgs` (e.g. lease_ttl=3) and a busybox base
 * `bb` on each; their agents are started and know each other (node add) when `agents` is true.
 */
export async function cephNodes(initenvArgs: string[] = [], agents = true): Promise<CephNodes> {
  const tree = await cephTree();
  const base = tempDir('berth-cephfs-2n-');
  const n1 = new TestNode('node1', join(base, 'n1', 'wd'));
  const n2 = new TestNode('node2', join(base, 'second-node', 'wd'));
  const fx: CephNodes = { tree, base, n1, n2, keyrings: {}, cleanup: () => cleanupCephNodes(fx) };
  try {
    for (const n of [n1, n2]) {
      const hooks = join(n.wd, 'share/examples/env_start/cephfs');
      const keyring = await tree.authorize(n.name);
      fx.keyrings[n.name] = keyring;
      for (const [dir, sub] of [['jails-rcconf', 'rcconf'], ['jails-lease', 'lease']] as const) {
        mkdirSync(join(n.wd, dir), { recursive: true });
        await run(['ceph-fuse', '-c', '/dev/null', '-m', tree.monitors, '--id', clientId(n.name), '-k', keyring, '--client_fs', tree.fsName,
          '-r', `${tree.root}/${sub}`, join(n.wd, dir)], { timeoutSec: 60 });
      }
      berthOk(['initenv', `workdir=${n.wd}`, `nodename=${n.name}`, ...initenvArgs,
        `default_mnt_start=${hooks}/env_start_cephfs.sh`, `default_mnt_stop=${hooks}/env_stop_cephfs.sh`]);
      const conf = join(hooks, 'env_start_cephfs.conf');
      writeFileSync(conf, readFileSync(conf, 'utf8')
        .replace(/^CEPH_MONITORS=.*$/m, `CEPH_MONITORS="${tree.monitors}"`).replace(/^CEPHFS_ROOT=.*$/m, `CEPHFS_ROOT="${tree.root}"`)
        .replace(/^CEPH_CLIENT_ID=.*$/m, `CEPH_CLIENT_ID="${clientId(n.name)}"`).replace(/^CEPH_KEYRING=.*$/m, `CEPH_KEYRING="${keyring}"`));
      n.ok(['base', 'busybox', 'name=bb']);
    }
    if (agents) {
      await n1.startAgent();
      await n2.startAgent();
      n1.ok(['node', 'add', 'name=node2', `url=${n2.url}`, `token_file=${n2.wd}/etc/api.token`]);
      n2.ok(['node', 'add', 'name=node1', `url=${n1.url}`, `token_file=${n1.wd}/etc/api.token`]);
    }
  } catch (e) {
    await fx.cleanup().catch(() => undefined);
    throw e;
  }
  return fx;
}

async function cleanupCephNodes(fx: CephNodes): Promise<void> {
  try {
    for (const n of [fx.n1, fx.n2]) await n.stopAgent('SIGKILL').catch(() => undefined);
    for (const n of [fx.n1, fx.n2]) {
      const r = n.run(['jls', '--json']);
      for (const e of r.json?.envs ?? []) if (e.status !== 'Off') n.run(['jstop', `jname=${e.jname}`]);
    }
    const left = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '')
      .filter((t) => t.startsWith(fx.base + '/')).sort((a, b) => b.length - a.length);
    for (const m of left) await unmountCeph(m).catch(() => undefined);
  } finally {
    await fx.tree.remove();
    // never delete through a mount: a dir still mounted keeps the temp dir (cli.ts's exit hook skips it too)
    const still = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => (l.split(' ')[4] ?? '').startsWith(fx.base + '/'));
    if (!still) rmSync(fx.base, { recursive: true, force: true });
  }
}

/** ceph-fuse mounts of an env's data, system and fstab dirs on a node: "source target" (target relative to the workdir), sorted. */
export function envMounts(n: TestNode, jname: string): string[] {
  const dirs = [`jails-data/${jname}-data`, `jails-system/${jname}`, `jails-fstab/${jname}`].map((d) => join(n.wd, d));
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).map((l) => {
    const f = l.split(' ');
    return { target: f[4]!, source: f[f.indexOf('-', 6) + 2]! };
  }).filter((m) => dirs.includes(m.target)).map((m) => `${m.source} ${m.target.slice(n.wd.length)}`).sort();
}
