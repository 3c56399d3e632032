/**
 * bench/dfs (issues #3, #11), from one run:
 *  - jstart+jstop of an env whose data, system and fstab dirs are on one GlusterFS volume
 *    through the example glusterfs hooks as mnt_start/mnt_stop, against the same env on local
 *    disk, in both mount modes of the hooks: `subdir` (one FUSE mount per sub-directory, made
 *    in parallel) and `bind` (bind mounts from the node's one mount of the volume); the
 *    measures taken in turns (medians), so that a machine whose speed drifts slows all alike.
 *    Then where the time of one jstart/jstop goes: the hooks' own time (from berth's debug log)
 *    and the rest;
 *  - jclone with a clone hook (storage-side copy: here a reflink-free `cp -al` hard-link
 *    tree standing in for a NAS/CephFS snapshot) against berth's full copy of 1 GiB: ratio.
 * Needs root, runc, glusterd (scripts/gluster-up). BENCH_N (default 7), BENCH_CLONE_MIB (1024).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { BIN, berth, freshNode, medians, report, sh } from './common.js';
import { glusterServer, glusterVolume, unmountGluster } from '../test/helpers/gluster.js';

const N = Number(process.env.BENCH_N ?? 7);
const MIB = Number(process.env.BENCH_CLONE_MIB ?? 1024);

/** Hook durations (ms) of one berth command, from its debug log: { mnt_start: 12, ... }. */
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

sh(['scripts/gluster-up']);
const vol = await glusterVolume();
let base = '';
try {
  const wd = freshNode('dfs1');
  base = join(dirname(wd), 'gluster-base');
  berth(wd, ['base', 'busybox', 'name=bb']);
  const ex = join(wd, 'share/examples/env_start');
  const hooks: Record<string, string> = { subdir: join(ex, 'glusterfs'), bind: join(ex, 'glusterfs-bind') };
  cpSync(hooks.subdir!, hooks.bind!, { recursive: true });
  for (const [mode, dir] of Object.entries(hooks)) {
    const conf = join(dir, 'env_start_gluster.conf');
    const text = readFileSync(conf, 'utf8').replace(/^GLUSTER_SERVER=.*$/m, `GLUSTER_SERVER="${glusterServer()}"`).replace(/^GLUSTER_VOLUME=.*$/m, `GLUSTER_VOLUME="${vol.name}"`);
    writeFileSync(conf, `${text}\nGLUSTER_MOUNT_MODE=${mode}\nGLUSTER_BASE_DIR="${base}"\n`);
    chmodSync(conf, 0o644);
  }
  berth(wd, ['jcreate', 'jname=local1', 'base=bb']);
  for (const [mode, dir] of Object.entries(hooks)) {
    berth(wd, ['jcreate', `jname=${mode}1`, 'base=bb', `mnt_start=${dir}/env_start_gluster.sh`, `mnt_stop=${dir}/env_stop_gluster.sh`]);
  }
  const pair = (j: string) => () => { berth(wd, ['jstart', `jname=${j}`]); berth(wd, ['jstop', `jname=${j}`]); };
  const [localMs, subdirMs, bindMs] = await medians(N, [pair('local1'), pair('subdir1'), pair('bind1')]);
  report('jstart+jstop on GlusterFS, subdir mounts vs local disk', `${subdirMs!.toFixed(0)} / ${localMs!.toFixed(0)} ms = ${(subdirMs! / localMs!).toFixed(2)}x`, '<= 1.5x', subdirMs! / localMs! <= 1.5);
  report('jstart+jstop on GlusterFS, bind mounts vs local disk', `${bindMs!.toFixed(0)} / ${localMs!.toFixed(0)} ms = ${(bindMs! / localMs!).toFixed(2)}x`, '<= 1.5x', bindMs! / localMs! <= 1.5);
  for (const j of ['local1', 'subdir1', 'bind1']) {
    const s = hookTimes(wd, ['jstart', `jname=${j}`]);
    const t = hookTimes(wd, ['jstop', `jname=${j}`]);
    const ms = (x: number | undefined) => (x ?? 0).toFixed(0);
    console.log(`      ${j.padEnd(8)} jstart ${ms(s.totalMs)} ms (mnt_start ${ms(s.hooks.mnt_start)}), jstop ${ms(t.totalMs)} ms (mnt_stop ${ms(t.hooks.mnt_stop)})`);
  }

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
  for (const j of ['local1', 'subdir1', 'bind1', 'big', 'bigcopy', 'biglink']) berth(wd, ['jremove', `jname=${j}`]);
} finally {
  // the bind mode's node-wide mount of the volume stays after the hooks: unmount it here
  const mi = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4] ?? '');
  for (const m of mi.filter((t) => base && t.startsWith(base + '/'))) await unmountGluster(m).catch(() => undefined);
  await vol.remove();
}
