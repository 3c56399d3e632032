/**
 * Safety of qemu VMs through the CLI, for real (qemu under TCG, the busybox guest):
 * - a hanging mnt_start of a VM: bstart exits 124 and leaves nothing (no qemu, no mount, the
 *   env Off as before, no run files, the hook's children killed);
 * - the VNC port chosen at start (vm_vnc_port=0), as `bls display=vnc` reports it, greets
 *   with RFB 003.008;
 * - two nodes sharing one GlusterFS volume (two FUSE mounts) racing `bstart` of one VM at the
 *   same moment, each with a row for it (node2 took it over while node1's row stayed): exactly
 *   one qemu runs, the other bstart is the ownership refusal (exit 4), and no moment had two
 *   qemus on the disk.
 * Needs root, glusterd (scripts/gluster-up), qemu-system-x86, cpio, busybox-static, apt access.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { BIN, berth, berthOk, isRoot, mountTable, tempDir } from '../helpers/cli.js';
import { guestNode, type GuestNode } from '../helpers/vmguest.js';
import { EXIT } from '../../src/errors.js';
import { makeKernelBase } from '../../src/engines/qemu/kernel.js';
import { qemuPid } from '../../src/engines/qemu/process.js';
import { qemuRunPaths } from '../../src/engines/qemu/argv.js';
import { Workdir } from '../../src/paths.js';
import { twoNodes, type TestNode, type TwoNodes } from './cluster-twonode.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** pids of qemu processes whose command line holds `needle` */
function qemusWith(needle: string): number[] {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).filter((p) => {
    try {
      const argv = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      return argv[0]?.endsWith('qemu-system-x86_64') && argv.some((a) => a.includes(needle));
    } catch { return false; }
  }).map(Number);
}

/** qemu processes with a file descriptor open on a path ending in `disk` (a qemu -daemonize parent has none), and their -pidfile */
function qemusOnDisk(disk: string): { pid: number; pidfile: string }[] {
  const out: { pid: number; pidfile: string }[] = [];
  for (const pid of qemusWith(disk)) {
    try {
      const fds = readdirSync(`/proc/${pid}/fd`);
      if (!fds.some((fd) => { try { return readlinkSync(`/proc/${pid}/fd/${fd}`).endsWith(disk); } catch { return false; } })) continue;
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      out.push({ pid, pidfile: argv[argv.indexOf('-pidfile') + 1] ?? '' });
    } catch { /* gone */ }
  }
  return out;
}

/** pids whose command line is exactly `argv` */
function pidsOf(argv: string[]): number[] {
  const want = argv.join('\0') + '\0';
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).filter((p) => {
    try { return readFileSync(`/proc/${p}/cmdline`, 'utf8') === want; } catch { return false; }
  }).map(Number);
}

describe('one node', () => {
  let node: GuestNode;
  let wd: string;
  let ctl: string;
  const b = (args: string[], timeoutMs?: number) => berth(args, { workdir: wd, timeoutMs });
  const ok = (args: string[], timeoutMs?: number) => berthOk(args, { workdir: wd, timeoutMs });

  before(async () => {
    node = await guestNode('berth-qemu-safe-');
    node.close();
    wd = node.wd.root;
    // storage hooks standing in for a DFS: mnt_start bind-mounts <ctl>/store/<vm> on the
    // VM's data dir, then does what <ctl>/mode.<vm> says; mnt_stop unmounts it
    ctl = join(tempDir('berth-qemu-hooks-'), 'ctl');
    mkdirSync(ctl, { mode: 0o755 });
    writeFileSync(join(ctl, 'mnt_start'), `#!/bin/sh
d='' j=''
while getopts 'd:f:j:r:s:' o; do case $o in d) d=$OPTARG;; j) j=$OPTARG;; *) ;; esac; done
mkdir -p "${ctl}/store/$j" || exit 1
mountpoint -q "$d" || mount --bind "${ctl}/store/$j" "$d" || exit 1
case $(cat "${ctl}/mode.$j" 2>/dev/null) in
sleep) echo "mounted $d, now sleeping past the timeout" >&2; sleep 37 ;;
esac
exit 0
`);
    writeFileSync(join(ctl, 'mnt_stop'), `#!/bin/sh
d=''
while getopts 'd:f:j:r:s:' o; do case $o in d) d=$OPTARG;; *) ;; esac; done
if mountpoint -q "$d"; then umount "$d" || exit 1; fi
exit 0
`);
    for (const f of ['mnt_start', 'mnt_stop']) chmodSync(join(ctl, f), 0o755);
  });

  after(() => {
    for (const j of ['hang1', 'vnc1']) {
      const pid = qemuPid(qemuRunPaths(node.wd, j));
      if (pid) process.kill(pid, 'SIGKILL');
    }
    for (const p of pidsOf(['sleep', '37'])) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
    berth(['bstop', 'jname=*'], { workdir: wd, timeoutMs: 90_000 });
  });

  test('a hanging mnt_start of a VM: bstart exits 124 and leaves nothing (no qemu, no mount, Off as before, no run files)', () => {
    ok(['bcreate', 'jname=hang1', 'base=bb', 'vm_kernel=k1', 'vm_ram=256m', 'vm_vnc_port=1', `mnt_start=${join(ctl, 'mnt_start')}`, `mnt_stop=${join(ctl, 'mnt_stop')}`, 'mnt_timeout=1']);
    assert.ok(existsSync(join(ctl, 'store', 'hang1', 'dsk1.vhd')), 'the disk was made on the hook\'s storage');
    const mounts = mountTable(wd);
    const before = ok(['bls', '--json', 'jname=hang1']).json.envs[0];
    const rc = readFileSync(join(node.wd.jailsSystem, 'hang1', 'rc.conf_hang1'), 'utf8');
    writeFileSync(join(ctl, 'mode.hang1'), 'sleep');

    const r = b(['bstart', 'jname=hang1']);
    assert.equal(r.code, 124, r.stderr);
    assert.match(r.stderr, /timed out after 1 s/);
    assert.match(r.stderr, /now sleeping past the timeout/, 'the hook ran and had mounted the data dir');
    const run = qemuRunPaths(node.wd, 'hang1');
    assert.equal(qemuPid(run), undefined);
    assert.deepEqual(qemusWith(node.wd.env('hang1').data), [], 'no qemu on its disk');
    assert.deepEqual(pidsOf(['sleep', '37']), [], 'the hook\'s child was killed with it');
    assert.deepEqual(mountTable(wd), mounts, 'no stray mount');
    assert.deepEqual(ok(['bls', '--json', 'jname=hang1']).json.envs[0], before, 'the env is as before (Off)');
    assert.equal(readFileSync(join(node.wd.jailsSystem, 'hang1', 'rc.conf_hang1'), 'utf8'), rc);
    assert.ok(![run.qmpSocket, run.consoleSocket, run.watchSocket!, run.pidFile, run.qemuLog].some(existsSync), 'no run files, qemu never started');
    writeFileSync(join(ctl, 'mode.hang1'), 'ok');
    ok(['bremove', 'jname=hang1']);
  });

  test('vm_vnc_port=0: the port chosen at start, as bls display=vnc reports it, greets with RFB 003.008', async () => {
    ok(['bcreate', 'jname=vnc1', 'base=bb', 'vm_kernel=k1', 'vm_ram=256m', 'vm_vnc_port=0']);
    ok(['bstart', 'jname=vnc1']);
    const e = ok(['bls', '--json', 'display=jname,vnc', 'jname=vnc1']).json.envs[0];
    assert.equal(e.vnc.host, '127.0.0.1');
    const port = e.vnc.port as number;
    assert.ok(port >= 5900 && port <= 6900, `an auto port in 5900-6900: ${port}`);
    assert.match(ok(['bls', 'display=jname,vnc', 'header=0', 'jname=vnc1']).stdout, new RegExp(`vnc1\\s+127\\.0\\.0\\.1:${port}`));
    const greeting = await new Promise<string>((resolve, reject) => {
      const s = connect(port, '127.0.0.1');
      let got = Buffer.alloc(0);
      s.on('data', (d) => { got = Buffer.concat([got, d]); if (got.length >= 12) { s.destroy(); resolve(got.subarray(0, 12).toString('latin1')); } });
      s.on('error', reject);
      s.setTimeout(10_000, () => { s.destroy(); reject(new Error(`no RFB greeting on ${port}; got ${JSON.stringify(got.toString('latin1'))}`)); });
    });
    assert.match(greeting, /^RFB 003\.\d{3}\n$/);
    assert.equal(greeting, 'RFB 003.008\n');
    ok(['bstop', 'jname=vnc1'], 90_000);
    assert.equal(ok(['bls', '--json', 'display=jname,vnc', 'jname=vnc1']).json.envs[0].vnc, undefined, 'a stopped VM has no VNC');
    ok(['bremove', 'jname=vnc1']);
  });
});

/** Runs `berth ...` on a node as a child process, without waiting. */
function spawnBerth(n: TestNode, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, BERTH_WORKDIR: n.wd }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => { stdout += d; });
    p.stderr.on('data', (d: Buffer) => { stderr += d; });
    p.on('exit', (code, signal) => resolve({ code: code ?? 128, stdout, stderr: signal ? `killed by ${signal}: ${stderr}` : stderr }));
  });
}

describe('two nodes on one GlusterFS volume', () => {
  let fx: TwoNodes;

  before(async () => {
    fx = await twoNodes(['lease_ttl=3']);
    for (const n of [fx.n1, fx.n2]) await makeKernelBase(new Workdir(n.wd), 'k1');
  });
  after(async () => {
    for (const n of [fx?.n1, fx?.n2]) {
      if (!n) continue;
      const pid = qemuPid(qemuRunPaths(new Workdir(n.wd), 'race1'));
      if (pid) process.kill(pid, 'SIGKILL');
    }
    await fx?.cleanup();
  });

  test('two nodes racing bstart of one VM: exactly one qemu runs, the other bstart is the ownership refusal (exit 4), never two qemus on the disk', async () => {
    const { n1, n2, base } = fx;
    n1.ok(['bcreate', 'jname=race1', 'base=bb', 'vm_kernel=k1', 'vm_ram=256m', 'vm_vnc_port=1']);
    // node2 takes it over (node1 runs no agent: its heartbeat does not move); node1 keeps its row
    const rc = join(base, 'race1.rcconf');
    copyFileSync(join(n2.wd, 'jails-system', 'race1', 'rc.conf_race1'), rc);
    n2.ok(['bregister', 'jname=race1', `rcfile=${rc}`, '--force'], 60_000);
    assert.equal(n1.ok(['bls', '--json']).json.envs.find((e: any) => e.jname === 'race1').status, 'Off', 'node1 still has its row');
    assert.equal(n2.ok(['bls', '--json']).json.envs.find((e: any) => e.jname === 'race1').status, 'Off');

    // both start it at the same moment; meanwhile /proc is sampled for qemus holding its disk open
    const disk = join('jails-data', 'race1-data', 'dsk1.vhd');
    let most = 0;
    const pidfiles = new Set<string>();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const open = qemusOnDisk(disk);
        most = Math.max(most, open.length);
        for (const q of open) pidfiles.add(q.pidfile);
        await sleep(10);
      }
    })();
    const [r1, r2] = await Promise.all([spawnBerth(n1, ['bstart', 'jname=race1', '--json']), spawnBerth(n2, ['bstart', 'jname=race1', '--json'])]);
    await sleep(500);
    sampling = false;
    await sampler;

    assert.equal(r2.code, 0, `the owner (node2) starts it: ${r2.stderr}`);
    assert.equal(r1.code, EXIT.OWNED, `node1 is refused: ${r1.stderr}`);
    assert.match(JSON.parse(r1.stdout).error.code, /^E_LEASE_/);
    assert.match(r1.stderr, /node2/, 'the refusal names the owner');
    const running = qemusWith(disk);
    assert.equal(running.length, 1, 'exactly one qemu runs');
    assert.equal(running[0], qemuPid(qemuRunPaths(new Workdir(n2.wd), 'race1')), 'it is node2\'s');
    assert.equal(most, 1, `never two qemus with the disk open (at most ${most} seen)`);
    assert.deepEqual([...pidfiles], [qemuRunPaths(new Workdir(n2.wd), 'race1').pidFile], 'only node2\'s qemu ever had it open');
    assert.ok(!existsSync(qemuRunPaths(new Workdir(n1.wd), 'race1').qemuLog), 'node1 never ran qemu for it');
    assert.equal(n1.ok(['bls', '--json']).json.envs.find((e: any) => e.jname === 'race1').status, 'Off');
    assert.equal(n2.ok(['bls', '--json']).json.envs.find((e: any) => e.jname === 'race1').status, 'On');
    n2.ok(['bstop', 'jname=race1'], 90_000);
    assert.deepEqual(qemusWith(disk), []);
  });
});
