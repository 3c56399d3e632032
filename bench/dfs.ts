/**
 * bench/dfs (issue #3), from one run:
 *  - jstart+jstop of an env whose data, system and fstab dirs are per-env GlusterFS
 *    sub-directory mounts (the example glusterfs hooks as mnt_start/mnt_stop), against the
 *    same env on local disk: ratio;
 *  - jclone with a clone hook (storage-side copy: here a reflink-free `cp -al` hard-link
 *    tree standing in for a NAS/CephFS snapshot) against berth's full copy of 1 GiB: ratio.
 * Needs root, runc, glusterd (scripts/gluster-up). BENCH_N (default 7), BENCH_CLONE_MIB (1024).
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { berth, freshNode, median, report, sh } from './common.js';
import { glusterServer, glusterVolume } from '../test/helpers/gluster.js';

const N = Number(process.env.BENCH_N ?? 7);
const MIB = Number(process.env.BENCH_CLONE_MIB ?? 1024);

sh(['scripts/gluster-up']);
const vol = await glusterVolume();
try {
  const wd = freshNode('dfs1');
  berth(wd, ['base', 'busybox', 'name=bb']);
  const hooks = join(wd, 'share/examples/env_start/glusterfs');
  const conf = join(hooks, 'env_start_gluster.conf');
  sh(['sed', '-i', '-e', `s|^GLUSTER_SERVER=.*|GLUSTER_SERVER="${glusterServer()}"|`, '-e', `s|^GLUSTER_VOLUME=.*|GLUSTER_VOLUME="${vol.name}"|`, conf]);
  chmodSync(conf, 0o644);
  berth(wd, ['jcreate', 'jname=local1', 'base=bb']);
  berth(wd, ['jcreate', 'jname=dfs1', 'base=bb', `mnt_start=${hooks}/env_start_gluster.sh`, `mnt_stop=${hooks}/env_stop_gluster.sh`]);
  const pair = (j: string) => () => { berth(wd, ['jstart', `jname=${j}`]); berth(wd, ['jstop', `jname=${j}`]); };
  const localMs = await median(N, pair('local1'));
  const dfsMs = await median(N, pair('dfs1'));
  report('jstart+jstop on GlusterFS (hooks) vs local disk', `${dfsMs.toFixed(0)} / ${localMs.toFixed(0)} ms = ${(dfsMs / localMs).toFixed(2)}x`, 'report', true);

  // clone: 1 GiB of data in the source env
  berth(wd, ['jcreate', 'jname=big', 'base=bb']);
  const blob = join(wd, 'jails-data/big-data/root/blob');
  sh(['dd', 'if=/dev/urandom', `of=${blob}`, 'bs=1M', `count=${MIB}`, 'status=none']);
  const t0 = performance.now();
  berth(wd, ['jclone', 'old=big', 'new=bigcopy']);
  const copyMs = performance.now() - t0;
  const hookDir = join(wd, 'jails-system/big/clone-local.d');
  mkdirSync(hookDir, { recursive: true });
  writeFileSync(join(hookDir, '10-hardlink'), '#!/bin/sh\n# storage-side clone stand-in: a hard-link tree (no data copied)\nmkdir -p "$newdata" && cp -al "$data/." "$newdata/"\n');
  chmodSync(join(hookDir, '10-hardlink'), 0o755);
  const t1 = performance.now();
  berth(wd, ['jclone', 'old=big', 'new=biglink']);
  const hookMs = performance.now() - t1;
  report(`jclone ${MIB} MiB: clone hook vs berth's full copy`, `${hookMs.toFixed(0)} / ${copyMs.toFixed(0)} ms = ${(hookMs / copyMs).toFixed(3)}x`, 'report', true);
  for (const j of ['local1', 'dfs1', 'big', 'bigcopy', 'biglink']) berth(wd, ['jremove', `jname=${j}`]);
} finally {
  await vol.remove();
}
