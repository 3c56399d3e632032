/**
 * bench/migrate (issues #4 and #11), from one run on two nodes of this machine sharing one
 * GlusterFS volume, in the two layouts berth supports (test/integration/cluster-twonode.ts):
 *  - whole directories: jails-data, jails-system, jails-rcconf, jails-fstab and jails-lease of
 *    each node are FUSE mounts of the volume's sub-directories;
 *  - per env: each env's data, system and fstab dirs are sub-directory mounts made by the
 *    example GlusterFS hooks while it is in use; only jails-lease and jails-rcconf are whole.
 * Measures, per layout:
 *  - jmigrate downtime of a running runc env with 10 MiB and with 2 GiB of data (median of
 *    BENCH_ROUNDS there-and-back moves; target <= 150 ms), against the copy-based way (CBSD
 *    jcoldmigrate, Bastille migrate: rsync of the data into the other node's workdir) of the
 *    same 2 GiB in the same run (target >= 80x); and where the downtime goes, step by step;
 *  - takeover after the owner's death: node1's agent killed with -9 while its container runs,
 *    then `jregister --force` on node2 (target <= 1.2 x lease_ttl in the per-env layout);
 * and, in the whole-directory layout, `jregister jname='u*'` of 500 unregistered envs with both
 * agents running at the default lease_ttl: adopted on node1 from hand-written descriptors, let
 * go, then adopted on node2 from what junregister left (target <= 5 s); and the junregisters.
 * Needs root, runc, glusterd. BENCH_BIG_MIB (default 2048), BENCH_REGISTER_N (500), BENCH_TTL
 * (5), BENCH_ROUNDS (5), BENCH_LAYOUTS (whole,per-env).
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { report, sh } from './common.js';
import { perEnvNodes, twoNodes, type TestNode, type TwoNodes } from '../test/integration/cluster-twonode.js';
import { formatDescriptor } from '../src/descriptor.js';
import { med, moves as movesOf, whereItGoes, type Move } from './moves.js';

const BIG = Number(process.env.BENCH_BIG_MIB ?? 2048);
const NREG = Number(process.env.BENCH_REGISTER_N ?? 500);
const TTL = Number(process.env.BENCH_TTL ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const LAYOUTS = (process.env.BENCH_LAYOUTS ?? 'whole,per-env').split(',');

sh(['scripts/gluster-up']);

async function layout(name: string, fx: TwoNodes): Promise<void> {
  const { n1, n2 } = fx;
  await n1.startAgent();
  await n2.startAgent();
  n1.ok(['node', 'add', 'name=node2', `url=${n2.url}`, `token=${n2.token}`]);
  n2.ok(['node', 'add', 'name=node1', `url=${n1.url}`, `token=${n1.token}`]);
  const rows: [string, number, Move[]][] = [];
  let rsyncMs = 0;
  for (const [jname, mib] of [['small', 10], ['big', BIG]] as const) {
    n1.ok(['jcreate', `jname=${jname}`, 'base=bb']);
    n1.ok(['jstart', `jname=${jname}`]);
    n1.ok(['jexec', `jname=${jname}`, 'dd', 'if=/dev/urandom', 'of=/root/blob', 'bs=1M', `count=${mib}`], 600_000);
    const ms = movesOf(n1, n2, jname, ROUNDS);
    rows.push([`${mib} MiB`, med(ms.map((m) => m.downtimeMs)), ms]);
    n1.ok(['jstop', `jname=${jname}`]);
    if (jname === 'big') {
      // the copy-based way: rsync of the (stopped) env's data into the other node's local disk;
      // its data is reached through a mount of the volume's data dir
      const src = join(fx.base, 'rsync-src');
      const dst = join(fx.base, 'rsync-dst');
      mkdirSync(dst, { recursive: true });
      await fx.vol.mount(src, `data/${name === 'whole' ? `${jname}-data` : jname}`);
      const t0 = performance.now();
      sh(['rsync', '-a', '--numeric-ids', src + '/', dst + '/']);
      rsyncMs = performance.now() - t0;
      rmSync(dst, { recursive: true, force: true });
    }
    n1.ok(['jremove', `jname=${jname}`]);
  }
  for (const [size, d, ms] of rows) {
    report(`${name}: jmigrate downtime, ${size} (median of ${ms.length} moves)`, `${d.toFixed(0)} ms`, '<= 150 ms', d <= 150);
    console.log(`      where it goes (median move): ${whereItGoes(ms)}`);
  }
  const big = rows[1]![1];
  report(`${name}: rsync of the ${BIG} MiB vs jmigrate downtime`, `${rsyncMs.toFixed(0)} / ${big.toFixed(0)} ms = ${(rsyncMs / big).toFixed(0)}x`, '>= 80x', rsyncMs / big >= 80);
  report(`${name}: downtime ${BIG} MiB / 10 MiB (nothing copied)`, `${(big / rows[0]![1]).toFixed(2)}`, '~1', big / rows[0]![1] < 2);

  if (name === 'whole') await registerMany(fx);

  // takeover after the owner's death, at the short lease_ttl (agents restarted to read it)
  for (const n of [n1, n2]) {
    await n.stopAgent();
    n.ok(['initenv', `lease_ttl=${TTL}`]);
    await n.startAgent();
  }
  n1.ok(['jcreate', 'jname=owned', 'base=bb']);
  n1.ok(['jstart', 'jname=owned']);
  await new Promise((r) => setTimeout(r, (TTL / 3 + 1) * 1000)); // a heartbeat or two
  await n1.stopAgent('SIGKILL');
  const t2 = performance.now();
  n2.ok(['jregister', 'jname=owned', '--force', '--start'], 600_000);
  const takeMs = performance.now() - t2;
  report(`${name}: takeover after the owner's death, started (lease_ttl ${TTL} s)`, `${(takeMs / 1000).toFixed(1)} s = ${(takeMs / 1000 / TTL).toFixed(2)} x lease_ttl`, '<= 1.2 x lease_ttl', takeMs <= 1.2 * TTL * 1000);
  await n1.startAgent();
  n2.ok(['jstop', 'jname=owned']);
}

/**
 * `jregister jname='u*'` of NREG envs, the CBSD way of moving stopped envs between nodes:
 * descriptors written directly (data and sysdir only, as an administrator or another tool leaves
 * them) are adopted by node1 (its first adoption: every descriptor and record copy written) and
 * let go by its junregister; then node2 adopts what junregister left (the target) and lets it go.
 */
async function registerMany(fx: TwoNodes): Promise<void> {
  const { n1, n2 } = fx;
  for (let i = 0; i < NREG; i++) {
    const jname = `u${i}`;
    const conf = { jname, uuid: randomUUID(), emulator: 'runc', base: 'bb', baserw: '0', host_hostname: jname, ip4_addr: '0', vnet: '0', astart: '0' };
    const p = { data: join(n1.wd, 'jails-data', `${jname}-data`), sys: join(n1.wd, 'jails-system', jname) };
    mkdirSync(join(p.data, 'etc'), { recursive: true });
    mkdirSync(p.sys, { recursive: true });
    writeFileSync(join(p.data, 'etc', 'hostname'), jname + '\n');
    const text = formatDescriptor(conf, n1.wd);
    writeFileSync(join(p.sys, `rc.conf_${jname}`), text);
    writeFileSync(join(n1.wd, 'jails-rcconf', `rc.conf_${jname}`), text);
  }
  const timedOk = (n: TestNode, args: string[]) => { const t = performance.now(); n.ok(args, 600_000); return performance.now() - t; };
  const line = (ms: number) => `${(ms / 1000).toFixed(1)} s (${(ms / NREG).toFixed(1)} ms/env)`;
  const firstMs = timedOk(n1, ['jregister', 'jname=u*']);
  report(`whole: jregister jname='u*' on node1 of ${NREG} hand-written descriptors (first adoption)`, line(firstMs), 'report', true);
  const leaveMs = timedOk(n1, ['junregister', 'jname=u*']);
  report(`whole: junregister jname='u*' of the ${NREG} envs on node1`, line(leaveMs), 'report', true);
  const regMs = timedOk(n2, ['jregister', 'jname=u*']);
  report(`whole: jregister jname='u*' on node2 of the ${NREG} envs node1 let go, agents at lease_ttl 30`, line(regMs), '<= 5 s', regMs <= 5000);
  const unregMs = timedOk(n2, ['junregister', 'jname=u*']);
  report(`whole: junregister jname='u*' of the ${NREG} envs on node2`, line(unregMs), 'report', true);
}

for (const name of LAYOUTS) {
  const fx = name === 'whole' ? await twoNodes() : await perEnvNodes();
  try {
    await layout(name, fx);
  } finally {
    await fx.cleanup();
  }
}
console.log('for comparison: CBSD stale lock 30 min, sanlock ~140 s, Proxmox HA ~120 s');
