/**
 * bench/migrate (issue #4), from one run on two nodes of this machine sharing one GlusterFS
 * volume (test/integration/cluster-twonode.ts: jails-data, jails-system, jails-rcconf and
 * jails-fstab of each node are FUSE mounts of the volume's sub-directories):
 *  - jmigrate downtime of a running env with 10 MiB and with 2 GiB of data (ratio ~1:
 *    nothing is copied), against the copy-based way (CBSD jcoldmigrate, Bastille migrate:
 *    rsync of the data into the other node's workdir) on the same data;
 *  - `jregister jname='*'` of 500 unregistered envs on the volume (target <= 15 s), with both
 *    agents running at the default lease_ttl (30 s); then, for reference, the same at the
 *    short lease_ttl of the takeover measure, where the agent heartbeats each of the
 *    registered envs' leases every lease_ttl/3 while the others are still being registered;
 *  - takeover time after the owner's death: node1's agent killed with -9, then
 *    `jregister --force` on node2 (target <= 2 x lease_ttl), at lease_ttl = BENCH_TTL so that
 *    the run stays short.
 * Needs root, runc, glusterd. BENCH_BIG_MIB (default 2048), BENCH_REGISTER_N (500), BENCH_TTL (5).
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { report, sh } from './common.js';
import { twoNodes } from '../test/integration/cluster-twonode.js';
import { formatDescriptor } from '../src/descriptor.js';

const BIG = Number(process.env.BENCH_BIG_MIB ?? 2048);
const NREG = Number(process.env.BENCH_REGISTER_N ?? 500);
const TTL = Number(process.env.BENCH_TTL ?? 5);

sh(['scripts/gluster-up']);
const fx = await twoNodes();
const { n1, n2 } = fx;

/** Writes what junregister leaves for NREG envs u0..: a descriptor in jails-rcconf/, the sysdir with its copy, a data dir. */
function writeUnregistered(): void {
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
}

/** `jregister jname='u*'` on node2: its time in ms. */
function timeRegister(): number {
  const t = performance.now();
  n2.ok(['jregister', 'jname=u*'], 600_000);
  return performance.now() - t;
}
try {
  await n1.startAgent();
  await n2.startAgent();
  n1.ok(['node', 'add', 'name=node2', `url=${n2.url}`, `token=${n2.token}`]);
  n2.ok(['node', 'add', 'name=node1', `url=${n1.url}`, `token=${n1.token}`]);

  const migrate = (from: typeof n1, jname: string, dst: string): number =>
    from.ok(['jmigrate', `jname=${jname}`, `dst=${dst}`, '--json'], 600_000).json.migration.downtimeMs as number;
  const rows: [string, number, number][] = [];
  for (const [jname, mib] of [['small', 10], ['big', BIG]] as const) {
    n1.ok(['jcreate', `jname=${jname}`, 'base=bb']);
    sh(['dd', 'if=/dev/urandom', `of=${join(n1.wd, 'jails-data', `${jname}-data`, 'root', 'blob')}`, 'bs=1M', `count=${mib}`, 'status=none']);
    n1.ok(['jstart', `jname=${jname}`]);
    const there = migrate(n1, jname, 'node2');
    const back = migrate(n2, jname, 'node1');
    const downtime = (there + back) / 2;
    // the copy-based way: rsync of the (stopped) env's data into the other node's local workdir
    const dst = join(fx.base, `rsync-${jname}`);
    mkdirSync(dst, { recursive: true });
    n1.ok(['jstop', `jname=${jname}`]);
    const t0 = performance.now();
    sh(['rsync', '-a', '--numeric-ids', join(n1.wd, 'jails-data', `${jname}-data`) + '/', dst + '/']);
    const rsyncMs = performance.now() - t0;
    rmSync(dst, { recursive: true, force: true });
    rows.push([`${mib} MiB`, downtime, rsyncMs]);
    n1.ok(['jremove', `jname=${jname}`]);
  }
  for (const [size, d, r] of rows) {
    report(`jmigrate downtime, ${size} (median of there and back)`, `${d.toFixed(0)} ms; rsync copy ${r.toFixed(0)} ms = ${(r / d).toFixed(1)}x`, 'report', true);
  }
  report('jmigrate downtime 2 GiB / 10 MiB (nothing copied)', `${(rows[1]![1] / rows[0]![1]).toFixed(2)}`, '~1', rows[1]![1] / rows[0]![1] < 2);

  // 500 unregistered envs on the volume: what junregister leaves (descriptor in jails-rcconf/,
  // sysdir with the descriptor copy, non-empty data dir), written directly for speed.
  writeUnregistered();
  const regMs = timeRegister();
  report(`jregister jname='u*' of ${NREG} unregistered envs on GlusterFS`, `${(regMs / 1000).toFixed(1)} s (${(regMs / NREG).toFixed(1)} ms/env)`, '<= 15 s', regMs <= 15_000);
  const t0 = performance.now();
  n2.ok(['junregister', 'jname=u*'], 600_000);
  const unregMs = performance.now() - t0;
  report(`junregister jname='u*' of the ${NREG} envs`, `${(unregMs / 1000).toFixed(1)} s (${(unregMs / NREG).toFixed(1)} ms/env)`, 'report', true);

  // the short lease_ttl of the takeover measure, for both nodes (agents restarted to read it)
  for (const n of [n1, n2]) {
    await n.stopAgent();
    n.ok(['initenv', `lease_ttl=${TTL}`]);
    await n.startAgent();
  }
  const regShortMs = timeRegister();
  report(`  the same jregister at lease_ttl=${TTL} (reference)`, `${(regShortMs / 1000).toFixed(1)} s (${(regShortMs / NREG).toFixed(1)} ms/env)`, 'report', true);

  // takeover after the owner's death
  n1.ok(['jcreate', 'jname=owned', 'base=bb']);
  n1.ok(['jstart', 'jname=owned']);
  await new Promise((r) => setTimeout(r, (TTL / 3 + 1) * 1000)); // a heartbeat or two
  await n1.stopAgent('SIGKILL');
  const t2 = performance.now();
  n2.ok(['jregister', 'jname=owned', '--force'], 600_000);
  const takeMs = performance.now() - t2;
  report(`takeover after the owner's death (lease_ttl ${TTL} s)`, `${(takeMs / 1000).toFixed(1)} s = ${(takeMs / 1000 / TTL).toFixed(2)} x lease_ttl`, '<= 2 x lease_ttl', takeMs <= 2 * TTL * 1000);
  console.log('for comparison: CBSD stale lock 30 min, sanlock ~140 s, Proxmox HA ~120 s');
} finally {
  await fx.cleanup();
}
