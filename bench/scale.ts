/**
 * bench/scale (issue #11): ownership at the size of a real site. Three nodes on this machine
 * share one GlusterFS volume (every shared dir mounted whole, the ownership directory
 * included) and register 500, then 2,000, then 10,000 envs between them, with their agents
 * running at lease_ttl 6. At each size:
 *  - `cluster ls` from every node: its time (with and without what the node read last time)
 *    and whether all three see the same owner, generation and state of every env
 *    (target <= 1 s at 10,000 envs, the same on every node);
 *  - over a window of 5 lease_ttl with nothing else running: the file operations per second
 *    the volume serves (`gluster volume profile`, all of them the agents'), the brick's CPU
 *    and the agents' CPU (target: flat in the number of envs);
 *  - during that window, each node's heartbeat as another mount sees it: the worst time it
 *    stayed unchanged (target <= lease_ttl/2 = 3 s).
 * The baseline of each figure is the same figure at 500 envs, measured in the same run.
 * Needs root and glusterd (scripts/gluster-up). BENCH_SCALE_SIZES (default 500,2000,10000),
 * BENCH_SCALE_TTL (6), BENCH_SCALE_WINDOW (seconds, default 5 x ttl).
 */
import { readFileSync, rmSync } from 'node:fs';
import { readSharedText } from '../src/sharedfs.js';
import { join } from 'node:path';
import { berthAsync, pool, report, sh, writeUnregistered } from './common.js';
import { TestNode, freePort } from '../test/integration/cluster-twonode.js';
import { glusterVolume } from '../test/helpers/gluster.js';
import { berthOk, tempDir } from '../test/helpers/cli.js';

const SIZES = (process.env.BENCH_SCALE_SIZES ?? '500,2000,10000').split(',').map(Number);
const TTL = Number(process.env.BENCH_SCALE_TTL ?? 6);
const WINDOW = Number(process.env.BENCH_SCALE_WINDOW ?? 5 * TTL);
const SHARED = [['jails-data', 'data'], ['jails-system', 'system'], ['jails-rcconf', 'rcconf'], ['jails-fstab', 'fstab'], ['jails-lease', 'lease']] as const;
const PREFIX = ['sa', 'sb', 'sc'];

sh(['scripts/gluster-up']);
const base = tempDir('berth-scale-');
const vol = await glusterVolume();
const nodes = [0, 1, 2].map((i) => new TestNode(`node${i + 1}`, join(base, `n${i + 1}`, 'wd')));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The volume's brick process (glusterfsd) and the total of its user+system CPU ticks. */
function brickPid(): number {
  const out = sh(['pgrep', '-f', '--', `--volfile-id ${vol.name}\.`]).trim().split('\n')[0];
  return Number(out);
}
const ticks = (pid: number): number => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]); // utime, stime (fields 14, 15)
};
/** Sum of "No. of calls" of an interval of `gluster volume profile info incremental`. */
function profileCalls(text: string): number {
  let n = 0;
  for (const line of text.split('\n')) {
    const m = /^\s*[\d.]+\s+[\d.]+\s+[nu]s\s+[\d.]+\s+[nu]s\s+[\d.]+\s+[nu]s\s+(\d+)\s+\S+/.exec(line);
    if (m) n += Number(m[1]);
  }
  return n;
}

interface Row { size: number; lsCold: number[]; lsWarm: number[]; same: boolean; opsPerSec: number; brickCpu: number; agentCpu: number; worstBeatMs: number }
const rows: Row[] = [];

try {
  // three nodes, every shared dir mounted whole
  for (const [, sub] of SHARED) await vol.mkdirOnVolume(sub);
  for (const n of nodes) {
    berthOk(['initenv', `workdir=${n.wd}`, `nodename=${n.name}`, `lease_ttl=${TTL}`]);
    for (const [dir, sub] of SHARED) await vol.mount(join(n.wd, dir), sub);
    n.ok(['base', 'busybox', 'name=bb']);
  }
  for (const n of nodes) { n.port = await freePort(); await n.startAgent(); }
  for (const a of nodes) for (const b of nodes) if (a !== b) a.ok(['node', 'add', `name=${b.name}`, `url=${b.url}`, `token=${b.token}`]);
  sh(['gluster', '--mode=script', 'volume', 'profile', vol.name, 'start']);

  let have = 0;
  for (const size of SIZES) {
    // grow to `size` envs, a third registered on each node
    const t0 = performance.now();
    const names: string[][] = [[], [], []];
    for (let i = have; i < size; i++) names[i % 3]!.push(`${PREFIX[i % 3]}${String(i).padStart(6, '0')}`);
    await pool(names.flat(), 32, (j) => writeUnregistered(nodes[0]!.wd, j));
    const tw = performance.now();
    await Promise.all(nodes.map(async (n, k) => {
      if (!names[k]!.length) return;
      // register the new ones (a glob over this node's prefix picks only unregistered descriptors)
      await berthAsync(n, ['jregister', `jname=${PREFIX[k]}*`]);
    }));
    console.log(`# ${size} envs: wrote ${size - have} unregistered envs in ${((tw - t0) / 1000).toFixed(1)} s, registered them in ${((performance.now() - tw) / 1000).toFixed(1)} s`);
    have = size;

    // cluster ls from every node: without and with what it read last time
    const lsCold: number[] = [];
    const lsWarm: number[] = [];
    const views: string[] = [];
    for (const n of nodes) {
      rmSync(join(n.wd, 'var', 'run', 'cluster-index.json'), { force: true });
      let t = performance.now();
      const v = n.ok(['cluster', 'ls', '--json'], 600_000).json.envs as { jname: string; owner: string; generation: number; state: string }[];
      lsCold.push(performance.now() - t);
      t = performance.now();
      n.ok(['cluster', 'ls', '--json'], 600_000);
      lsWarm.push(performance.now() - t);
      views.push(JSON.stringify(v.map((e) => [e.jname, e.owner, e.generation, e.state])));
    }
    const same = views.every((v) => v === views[0]) && JSON.parse(views[0]!).length === size;

    // a quiet window: what the agents cost the volume, and how fresh their heartbeats stay
    const bp = brickPid();
    const agentPids = nodes.map((n) => n.agent!.pid!);
    sh(['gluster', '--mode=script', 'volume', 'profile', vol.name, 'info', 'incremental']); // resets the interval
    const b0 = ticks(bp);
    const a0 = agentPids.map(ticks);
    const w0 = performance.now();
    const last = nodes.map(() => ({ text: '', at: performance.now(), worst: 0 }));
    while (performance.now() - w0 < WINDOW * 1000) {
      for (const [k, n] of nodes.entries()) {
        let text = '';
        try { text = readSharedText(join(nodes[(k + 1) % 3]!.wd, 'jails-lease', 'nodes', n.name, 'hb')); } catch { /* between rename and read */ }
        const now = performance.now();
        if (text && text !== last[k]!.text) { last[k]!.text = text; last[k]!.at = now; }
        last[k]!.worst = Math.max(last[k]!.worst, now - last[k]!.at);
      }
      await sleep(100);
    }
    const secs = (performance.now() - w0) / 1000;
    const calls = profileCalls(sh(['gluster', '--mode=script', 'volume', 'profile', vol.name, 'info', 'incremental']));
    const brickCpu = (ticks(bp) - b0) / 100 / secs;
    const agentCpu = agentPids.reduce((s, p, i) => s + (ticks(p) - a0[i]!), 0) / 100 / secs;
    rows.push({ size, lsCold, lsWarm, same, opsPerSec: calls / secs, brickCpu, agentCpu, worstBeatMs: Math.max(...last.map((l) => l.worst)) });
  }

  const b = rows[0]!;
  for (const r of rows) {
    const lsMax = Math.max(...r.lsCold, ...r.lsWarm);
    report(`cluster ls, ${r.size} envs over 3 nodes (cold / warm, max of 3 nodes)`, `${Math.max(...r.lsCold).toFixed(0)} / ${Math.max(...r.lsWarm).toFixed(0)} ms`, '<= 1000 ms', lsMax <= 1000);
    report(`  the same view on every node (${r.size} envs)`, r.same ? 'yes' : 'NO', 'yes', r.same);
    report(`  volume operations/s of the 3 agents (vs ${b.size})`, `${r.opsPerSec.toFixed(1)}/s = ${(r.opsPerSec / b.opsPerSec).toFixed(2)}x`, 'flat', r.opsPerSec <= b.opsPerSec * 1.5 + 5);
    report(`  brick CPU (vs ${b.size})`, `${(r.brickCpu * 100).toFixed(1)}% of a core = ${(r.brickCpu / Math.max(b.brickCpu, 0.001)).toFixed(2)}x`, 'flat', r.brickCpu <= b.brickCpu * 1.5 + 0.02);
    report(`  agents' CPU, 3 agents (vs ${b.size})`, `${(r.agentCpu * 100).toFixed(1)}% of a core = ${(r.agentCpu / Math.max(b.agentCpu, 0.001)).toFixed(2)}x`, 'flat', r.agentCpu <= b.agentCpu * 1.5 + 0.02);
    report(`  worst heartbeat staleness seen (lease_ttl ${TTL} s)`, `${(r.worstBeatMs / 1000).toFixed(2)} s`, `<= ${TTL / 2} s`, r.worstBeatMs <= (TTL / 2) * 1000);
  }
} finally {
  for (const n of nodes) await n.stopAgent('SIGKILL').catch(() => undefined);
  await vol.remove().catch((e) => console.error(String(e)));
  rmSync(base, { recursive: true, force: true });
}
