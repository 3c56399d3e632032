/**
 * bench/ceph (issue #16), from one run against the one-node cluster of scripts/ceph-up:
 *  - jstart+jstop of an env whose data, system and fstab dirs are on CephFS through the example
 *    cephfs hooks, in both mount modes (`subdir`: one ceph-fuse per sub-directory, made in
 *    parallel; `bind`: bind mounts from the node's one ceph-fuse mount), against the same env
 *    on local disk; measures taken in turns (medians); then the hooks' own share of one run;
 *  - jclone of an env on CephFS holding BENCH_CLONE_MIB of data: the clone hook clone_cephfs.sh
 *    (from a CephFS snapshot, and from the live tree) against berth's own copy through the same
 *    mounts (bind mode), in turns (medians of up to 3).
 *  - bclone's disk step (src/storage/rbd.ts rbdClone: rbd snap create + snap protect + rbd
 *    clone) of a 1 GiB RBD image filled with random data against the full copy an administrator
 *    makes (`rbd cp`; `qemu-img convert` printed beside it), in turns (medians of 5), each clone
 *    and copy removed again, the time of each rbd process of the clone printed; then the clone
 *    again with the monitors' paxos_propose_interval lowered to 0.1 s for the run (restored);
 *  - jmigrate downtime of a running runc env between two nodes on CephFS per-env mounts (the
 *    example cephfs hooks, a ceph-fuse client id per node), median of 2 x BENCH_ROUNDS moves,
 *    and where it goes step by step (jmigrate --json).
 * Needs root, runc and the cluster (scripts/ceph-up; memstore keeps the data in RAM: the RBD
 * part raises the OSD's capacity to 4 GiB at run time if it is smaller, and removes its images
 * at the end). BENCH_N (default 7), BENCH_CLONE_MIB (default 256), BENCH_ROUNDS (default 3),
 * BENCH_CEPH (the parts, default start,clone,rbd,migrate).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BIN, berth, freshNode, medians, report, sh } from './common.js';
import { med, moves, whereItGoes } from './moves.js';
import { ceph, cephTree, clientId, CEPH_CONF, unmountCeph } from '../test/helpers/ceph.js';
import { cephNodes } from '../test/integration/cluster-ceph.js';
import { run } from '../src/proc.js';
import { rbdClone, rbdCopy, rbdImport, rbdRemove, rbdSpec, type RbdAccess, type RbdImage } from '../src/storage/rbd.js';

const N = Number(process.env.BENCH_N ?? 7);
const MIB = Number(process.env.BENCH_CLONE_MIB ?? 256);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PARTS = (process.env.BENCH_CEPH ?? 'start,clone,rbd,migrate').split(',');

const GiB = 1 << 30;

/** The memstore OSD's capacity (bytes): raised at run time to `bytes` when below (RAM is used only as data is written). */
async function ensureOsdCapacity(bytes: number): Promise<void> {
  const df = JSON.parse((await ceph(['df', '--format', 'json'])).stdout) as { stats: { total_bytes: number } };
  if (df.stats.total_bytes >= bytes) return;
  await ceph(['tell', 'osd.*', 'config', 'set', 'memstore_device_bytes', String(bytes)]);
  console.log(`      memstore OSD capacity raised from ${(df.stats.total_bytes / GiB).toFixed(1)} to ${bytes / GiB} GiB for the 1 GiB image and its copy`);
  // the monitors learn the OSD's new size from its next statfs report
  for (let i = 0; i < 60; i++) {
    const d = JSON.parse((await ceph(['df', '--format', 'json'])).stdout) as { stats: { total_bytes: number } };
    if (d.stats.total_bytes >= bytes) return;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The monitors' names (`ceph mon dump`). */
async function monNames(): Promise<string[]> {
  return (JSON.parse((await ceph(['mon', 'dump', '--format', 'json'])).stdout) as { mons: { name: string }[] }).mons.map((m) => m.name);
}

/**
 * bclone's disk step (rbdClone: snap create + protect + clone, three rbd processes) of a 1 GiB
 * image filled with random data against the full copy an administrator makes (`rbd cp`, which
 * reads and writes every allocated byte: all of it here), in turns, each clone and copy removed
 * again; each rbd invocation of the clone timed. Then the same clones with the monitors'
 * `paxos_propose_interval` lowered to 0.1 s for the run (restored after): the share of `snap
 * create` that is the monitor batching its commits. The images are removed at the end.
 */
async function rbdBench(tmp: string): Promise<void> {
  const a: RbdAccess = { conf: CEPH_CONF };
  const img = (n: string): RbdImage => ({ pool: 'rbd', image: `bench${process.pid}-${n}` });
  const src = img('src');
  await ensureOsdCapacity(4 * GiB);
  const file = join(tmp, 'rbd-src.raw');
  const made: RbdImage[] = [];
  try {
    const t0 = performance.now();
    sh(['dd', 'if=/dev/urandom', `of=${file}`, 'bs=4M', 'count=256', 'status=none']);
    await rbdImport(a, file, src);
    made.push(src);
    rmSync(file, { force: true });
    const du = JSON.parse((await run(['rbd', '-c', CEPH_CONF, 'du', '--format', 'json', rbdSpec(src)])).stdout) as { images: { used_size: number; provisioned_size: number }[] };
    const used = du.images[0]!.used_size;
    console.log(`      source rbd/${src.image}: ${(du.images[0]!.provisioned_size / GiB).toFixed(2)} GiB, ${(used / GiB).toFixed(2)} GiB written (random data, filled in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    const steps: Record<string, number[]> = {};
    const cloneOnce = async (name: string) => {
      const dst = img(name);
      const t = performance.now();
      const st = await rbdClone(a, src, dst);
      const ms = performance.now() - t;
      made.push(dst);
      for (const x of st) (steps[x.step] ??= []).push(x.ms);
      await rbdRemove(a, dst);
      made.pop();
      return ms;
    };
    const cloneMs: number[] = [];
    const copyMs: number[] = [];
    for (let i = 0; i < 5; i++) {
      cloneMs.push(await cloneOnce(`clone${i}`));
      const dst = img(`copy${i}`);
      const t = performance.now();
      await rbdCopy(a, src, dst);
      copyMs.push(performance.now() - t);
      made.push(dst);
      await rbdRemove(a, dst);
      made.pop();
    }
    // the other full copy an administrator might make: qemu-img convert into a new image
    const qdst = img('qemu-img');
    const tq = performance.now();
    await run(['qemu-img', 'convert', '-f', 'raw', '-O', 'raw', `rbd:${rbdSpec(src)}:conf=${CEPH_CONF}`, `rbd:${rbdSpec(qdst)}:conf=${CEPH_CONF}`], { timeoutSec: 600 });
    const qemuImgMs = performance.now() - tq;
    made.push(qdst);
    await rbdRemove(a, qdst);
    made.pop();

    const [c, f] = [med(cloneMs), med(copyMs)];
    report('bclone\'s rbd clone of a filled 1 GiB image vs a full copy (rbd cp)', `${c.toFixed(0)} / ${f.toFixed(0)} ms = ${(c / f).toFixed(3)}x`, '<= 0.05x', c / f <= 0.05);
    report('the same clone vs a full copy by qemu-img convert (one run)', `${c.toFixed(0)} / ${qemuImgMs.toFixed(0)} ms = ${(c / qemuImgMs).toFixed(3)}x`, 'report', true);
    console.log(`      clone runs (ms): ${cloneMs.map((x) => x.toFixed(0)).join(', ')}; rbd cp runs (ms): ${copyMs.map((x) => x.toFixed(0)).join(', ')} (${(used / (1 << 20) / (f / 1000)).toFixed(0)} MiB/s); qemu-img convert: ${qemuImgMs.toFixed(0)} ms`);
    console.log(`      where the clone goes (median ms per rbd process): ${Object.entries(steps).map(([k, v]) => `${k} ${med(v).toFixed(0)}`).join(', ')}`);

    // the monitor's batching: snap create waits for the next paxos commit
    const mons = await monNames();
    const was = await Promise.all(mons.map(async (m) => (JSON.parse((await ceph(['tell', `mon.${m}`, 'config', 'get', 'paxos_propose_interval'])).stdout) as { paxos_propose_interval: string }).paxos_propose_interval));
    const fast: number[] = [];
    for (const k of Object.keys(steps)) steps[k] = [];
    try {
      for (const m of mons) await ceph(['tell', `mon.${m}`, 'config', 'set', 'paxos_propose_interval', '0.1']);
      for (let i = 0; i < 3; i++) fast.push(await cloneOnce(`fast${i}`));
    } finally {
      for (const [i, m] of mons.entries()) await ceph(['tell', `mon.${m}`, 'config', 'set', 'paxos_propose_interval', was[i]!]);
    }
    const cf = med(fast);
    report('the same, monitors at paxos_propose_interval 0.1 s (default 1)', `${cf.toFixed(0)} / ${f.toFixed(0)} ms = ${(cf / f).toFixed(3)}x`, '<= 0.05x', cf / f <= 0.05);
    console.log(`      where the clone goes (median ms per rbd process): ${Object.entries(steps).map(([k, v]) => `${k} ${med(v).toFixed(0)}`).join(', ')}`);
  } finally {
    rmSync(file, { force: true });
    for (const i of made.reverse()) await rbdRemove(a, i).catch((e) => console.log(`      cleanup of ${i.image}: ${(e as Error).message}`));
  }
}

/**
 * jmigrate of a running runc env between two nodes on CephFS per-env mounts (the example
 * cephfs hooks, one ceph-fuse client id per node: test/integration/cluster-ceph.ts), there and
 * back ROUNDS times; the downtime (jmigrate --json downtimeMs) and where it goes.
 */
async function migrateBench(): Promise<void> {
  const fx = await cephNodes(['lease_ttl=5']);
  try {
    const { n1, n2 } = fx;
    n1.ok(['jcreate', 'jname=mig', 'base=bb']);
    n1.ok(['jstart', 'jname=mig']);
    n1.ok(['jexec', 'jname=mig', 'sh', '-c', 'dd if=/dev/urandom of=/root/blob bs=1M count=10 2>/dev/null && sync']);
    const ms = moves(n1, n2, 'mig', ROUNDS);
    const d = med(ms.map((m) => m.downtimeMs));
    report(`jmigrate downtime on CephFS per-env mounts (median of ${ms.length} moves)`, `${d.toFixed(0)} ms`, '<= 150 ms', d <= 150);
    console.log(`      downtimes (ms): ${ms.map((m) => m.downtimeMs).join(', ')}; total per move (median) ${med(ms.map((m) => m.totalMs)).toFixed(0)} ms`);
    console.log(`      where it goes (median move): ${whereItGoes(ms)}`);
    const mid = [...ms].sort((x, y) => x.downtimeMs - y.downtimeMs)[Math.floor(ms.length / 2)]!;
    console.log(`      outside the downtime (median move): ${mid.steps.filter((s) => s.step !== 'stop' && s.step !== 'handover' && s.step !== 'adopt').map((s) => `${s.step}@${s.node} ${s.ms} ms`).join(', ')}`);
    n1.ok(['jstop', 'jname=mig']);
    n1.ok(['jremove', 'jname=mig']);
  } finally {
    await fx.cleanup();
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
  if (PARTS.includes('start')) {
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
    for (const j of ['local1', 'subdir1', 'bind1']) berth(wd, ['jremove', `jname=${j}`]);
  }

  // clones of an env on CephFS (bind mode) holding MIB of data: berth's copy, then the clone hook
  if (PARTS.includes('clone')) {
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
    berth(wd, ['jremove', 'jname=big']);
  }
  if (PARTS.includes('rbd')) await rbdBench(dirname(wd));
  if (PARTS.includes('migrate')) await migrateBench();
} finally {
  const mi = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '');
  for (const m of mi.filter((t) => cbase && t.startsWith(cbase + '/'))) await unmountCeph(m).catch(() => undefined);
  await tree.remove();
}
