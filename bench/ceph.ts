/**
 * bench/ceph (issue #16), from one run against the one-node cluster of scripts/ceph-up:
 *  - jstart+jstop of an env whose data, system and fstab dirs are on CephFS through the example
 *    cephfs hooks, in both mount modes (`subdir`: one ceph-fuse per sub-directory, made in
 *    parallel; `bind`: bind mounts from the node's one ceph-fuse mount), against the same env
 *    on local disk; measures taken in turns (medians); then the hooks' own share of one run;
 *  - jclone of an env on CephFS holding BENCH_CLONE_MIB of data: the clone hook clone_cephfs.sh
 *    (from a CephFS snapshot, and from the live tree) against berth's own copy through the same
 *    mounts (bind mode), in turns (medians of up to 3).
 *  - an RBD clone of a 1 GiB image holding BENCH_RBD_FILL_MIB of data (src/storage/rbd.ts
 *    rbdClone: snap create + protect + clone, what bclone does for a VM disk on RBD) against a
 *    full copy (`rbd cp`, which copies the allocated data), in turns (medians of 3), each clone
 *    and copy removed again.
 * Needs root, runc and the cluster (scripts/ceph-up; memstore keeps the data in RAM, 2 GiB in
 * all, so the clone data is small). BENCH_N (default 7), BENCH_CLONE_MIB (default 256),
 * BENCH_RBD_FILL_MIB (default 256).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BIN, berth, freshNode, medians, report, sh } from './common.js';
import { cephTree, clientId, CEPH_CONF, unmountCeph } from '../test/helpers/ceph.js';
import { rbdClone, rbdCopy, rbdImport, rbdRemove, type RbdAccess, type RbdImage } from '../src/storage/rbd.js';

const N = Number(process.env.BENCH_N ?? 7);
const MIB = Number(process.env.BENCH_CLONE_MIB ?? 256);
const RBD_FILL = Number(process.env.BENCH_RBD_FILL_MIB ?? 256);

/** rbd clone vs rbd cp of a 1 GiB image with RBD_FILL MiB written (sparse file imported). */
async function rbdBench(tmp: string): Promise<void> {
  const a: RbdAccess = { conf: CEPH_CONF };
  const img = (n: string): RbdImage => ({ pool: 'rbd', image: `bench${process.pid}-${n}` });
  const src = img('src');
  const file = join(tmp, 'rbd-src.raw');
  sh(['dd', 'if=/dev/urandom', `of=${file}`, 'bs=1M', `count=${RBD_FILL}`, 'status=none']);
  sh(['truncate', '-s', '1G', file]);
  await rbdImport(a, file, src);
  const made: RbdImage[] = [src];
  try {
    const cloneMs: number[] = [];
    const copyMs: number[] = [];
    for (let i = 0; i < 3; i++) {
      for (const [kind, times] of [['clone', cloneMs], ['copy', copyMs]] as const) {
        const dst = img(`${kind}${i}`);
        made.push(dst);
        const t0 = performance.now();
        await (kind === 'clone' ? rbdClone(a, src, dst) : rbdCopy(a, src, dst));
        times.push(performance.now() - t0);
        await rbdRemove(a, dst);
        made.pop();
      }
    }
    const med = (x: number[]) => [...x].sort((p, q) => p - q)[1]!;
    const [c, f] = [med(cloneMs), med(copyMs)];
    report(`RBD clone (snap create + protect + clone) of a 1 GiB image holding ${RBD_FILL} MiB vs a full copy (rbd cp)`, `${c.toFixed(0)} / ${f.toFixed(0)} ms = ${(c / f).toFixed(3)}x`, '<= 0.05x', c / f <= 0.05);
    // the clone takes the same time whatever the data; rbd cp copies what is allocated: what a
    // fully written 1 GiB image would cost at the rate measured (memstore: RAM, no network)
    const full = (f * 1024) / RBD_FILL;
    console.log(`      rbd cp ${(RBD_FILL / (f / 1000)).toFixed(0)} MiB/s here; a fully written 1 GiB image: ~${full.toFixed(0)} ms, clone/copy ~${(c / full).toFixed(3)}x (extrapolated)`);
    console.log(`      clone runs (ms): ${cloneMs.map((x) => x.toFixed(0)).join(', ')}; copy runs (ms): ${copyMs.map((x) => x.toFixed(0)).join(', ')}`);
  } finally {
    for (const i of made.reverse()) await rbdRemove(a, i).catch(() => undefined);
  }
}

/** Hook durations (ms) of one berth command, from its debug log. */
function hookTimes(wd: string, args: string[]): { totalMs: number; hooks: Record<string, number> } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, BERTH_WORKDIR: wd, BERTH_DEBUG: '1' }, encoding: 'utf8' });
  const totalMs = performance.now() - t0;
  if (r.status !== 0) throw new Error(`berth ${args.join(' ')} exited ${r.status}: ${r.stderr.slice(0, 2000)}`);
  const hooks: Record<string, number> = {};
  for (const line of r.stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const j = JSON.parse(line) as { msg?: string; hook?: string; durationMs?: number };
      if (j.msg === 'hook' && j.hook) hooks[j.hook] = (hooks[j.hook] ?? 0) + (j.durationMs ?? 0);
    } catch { /* not a log line */ }
  }
  return { totalMs, hooks };
}

sh(['scripts/ceph-up']);
const tree = await cephTree();
let cbase = '';
try {
  const wd = freshNode('ceph1');
  cbase = join(dirname(wd), 'ceph-base');
  berth(wd, ['base', 'busybox', 'name=bb']);
  const keyring = await tree.authorize('bench', { caps: 'rws' });
  const ex = join(wd, 'share/examples/env_start');
  const hooks: Record<string, string> = { subdir: join(ex, 'cephfs'), bind: join(ex, 'cephfs-bind') };
  cpSync(hooks.subdir!, hooks.bind!, { recursive: true });
  const live = join(ex, 'cephfs-live'); // the clone hook with CEPHFS_CLONE_FROM=live
  cpSync(hooks.subdir!, live, { recursive: true });
  for (const [mode, dir] of [...Object.entries(hooks), ['bind', live] as const]) {
    const conf = join(dir, 'env_start_cephfs.conf');
    writeFileSync(conf, readFileSync(conf, 'utf8')
      .replace(/^CEPH_MONITORS=.*$/m, `CEPH_MONITORS="${tree.monitors}"`).replace(/^CEPHFS_ROOT=.*$/m, `CEPHFS_ROOT="${tree.root}"`)
      .replace(/^CEPH_CLIENT_ID=.*$/m, `CEPH_CLIENT_ID="${clientId('bench')}"`).replace(/^CEPH_KEYRING=.*$/m, `CEPH_KEYRING="${keyring}"`)
      .replace(/^CEPHFS_MOUNT_MODE=.*$/m, `CEPHFS_MOUNT_MODE=${mode}`).replace(/^CEPHFS_BASE_DIR=.*$/m, `CEPHFS_BASE_DIR="${cbase}"`)
      .replace(/^CEPHFS_CLONE_FROM=.*$/m, `CEPHFS_CLONE_FROM=${dir === live ? 'live' : 'snapshot'}`));
  }
  berth(wd, ['jcreate', 'jname=local1', 'base=bb']);
  for (const [mode, dir] of Object.entries(hooks)) {
    berth(wd, ['jcreate', `jname=${mode}1`, 'base=bb', `mnt_start=${dir}/env_start_cephfs.sh`, `mnt_stop=${dir}/env_stop_cephfs.sh`]);
  }
  const pair = (j: string) => () => { berth(wd, ['jstart', `jname=${j}`]); berth(wd, ['jstop', `jname=${j}`]); };
  const [localMs, subdirMs, bindMs] = await medians(N, [pair('local1'), pair('subdir1'), pair('bind1')]);
  report('jstart+jstop on CephFS, subdir mounts vs local disk', `${subdirMs!.toFixed(0)} / ${localMs!.toFixed(0)} ms = ${(subdirMs! / localMs!).toFixed(2)}x`, '<= 1.5x', subdirMs! / localMs! <= 1.5);
  report('jstart+jstop on CephFS, bind mounts vs local disk', `${bindMs!.toFixed(0)} / ${localMs!.toFixed(0)} ms = ${(bindMs! / localMs!).toFixed(2)}x`, '<= 1.5x', bindMs! / localMs! <= 1.5);
  for (const j of ['local1', 'subdir1', 'bind1']) {
    const s = hookTimes(wd, ['jstart', `jname=${j}`]);
    const t = hookTimes(wd, ['jstop', `jname=${j}`]);
    const ms = (x: number | undefined) => (x ?? 0).toFixed(0);
    console.log(`      ${j.padEnd(8)} jstart ${ms(s.totalMs)} ms (mnt_start ${ms(s.hooks.mnt_start)}), jstop ${ms(t.totalMs)} ms (mnt_stop ${ms(t.hooks.mnt_stop)})`);
  }

  // clones of an env on CephFS (bind mode) holding MIB of data: berth's copy, then the clone hook
  const bind = hooks.bind!;
  berth(wd, ['jcreate', 'jname=big', 'base=bb', `mnt_start=${bind}/env_start_cephfs.sh`, `mnt_stop=${bind}/env_stop_cephfs.sh`]);
  berth(wd, ['jstart', 'jname=big']);
  sh([process.execPath, BIN, 'jexec', 'jname=big', 'sh', '-c', `dd if=/dev/urandom of=/root/blob bs=1048576 count=${MIB} 2>/dev/null && sync`], { env: { ...process.env, BERTH_WORKDIR: wd } });
  berth(wd, ['jstop', 'jname=big']);
  // in turns, each clone removed again (memstore holds the data in RAM)
  const clone = (script: string) => () => {
    berth(wd, ['jset', 'jname=big', `clone_script=${script}`]);
    berth(wd, ['jclone', 'old=big', 'new=bigclone']);
    berth(wd, ['jremove', 'jname=bigclone']);
  };
  const [copyMs, snapMs, liveMs] = await medians(Math.max(1, Math.min(N, 3)), [clone('0'), clone(`${bind}/clone_cephfs.sh`), clone(`${live}/clone_cephfs.sh`)]);
  report(`jclone ${MIB} MiB on CephFS: clone_cephfs.sh from a snapshot vs berth's copy`, `${snapMs!.toFixed(0)} / ${copyMs!.toFixed(0)} ms = ${(snapMs! / copyMs!).toFixed(2)}x`, 'report', true);
  report(`jclone ${MIB} MiB on CephFS: clone_cephfs.sh from the live tree vs berth's copy`, `${liveMs!.toFixed(0)} / ${copyMs!.toFixed(0)} ms = ${(liveMs! / copyMs!).toFixed(2)}x`, 'report', true);
  for (const j of ['local1', 'subdir1', 'bind1', 'big']) berth(wd, ['jremove', `jname=${j}`]);
  await rbdBench(dirname(wd));
} finally {
  const mi = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '');
  for (const m of mi.filter((t) => cbase && t.startsWith(cbase + '/'))) await unmountCeph(m).catch(() => undefined);
  await tree.remove();
}
