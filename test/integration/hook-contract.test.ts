/**
 * The storage hook contract (design/product.md "Storage hook contract"; issue 3 items 1-3
 * and 9) on real runc envs, through the CLI, with small test hooks standing in for a DFS:
 * mnt_start bind-mounts <ctl>/store/{data,system}/<jname> on the env's data dir and sysdir
 * (behaviour per env chosen by <ctl>/mode.<jname>), mnt_stop unmounts them; both log every
 * call (argv and BERTH_* variables) to <ctl>/calls.log, so the tests count calls.
 * Needs root, runc, busybox-static.
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { berth, berthOk, isRoot, mountTable, tempDir } from '../helpers/cli.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

let top: string;
let wd: string;
let ctl: string;
let START: string;
let STOP: string;
const env = () => ({ workdir: wd });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One logged hook call. */
interface Call { hook: string; action: string; jname: string; node: string; args: string }

function calls(j?: string): Call[] {
  const f = join(ctl, 'calls.log');
  if (!existsSync(f)) return [];
  return readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => {
    const [hook, action, jname, node, ...rest] = l.split(' ');
    return { hook: hook!, action: action!, jname: jname!, node: node!, args: rest.join(' ') };
  }).filter((c) => !j || c.jname === j);
}
const count = (j: string, hook: 'mnt_start' | 'mnt_stop', action?: string) => calls(j).filter((c) => c.hook === hook && (!action || c.action === action)).length;
const resetCalls = () => writeFileSync(join(ctl, 'calls.log'), '');
const setMode = (j: string, mode: string) => writeFileSync(join(ctl, `mode.${j}`), mode);

function create(j: string, extra: string[] = []): void {
  berthOk(['jcreate', `jname=${j}`, 'base=bb', `mnt_start=${START}`, `mnt_stop=${STOP}`, ...extra], env());
}

function status(j: string): string | undefined {
  return berthOk(['jls', '--json'], env()).json.envs.find((x: any) => x.jname === j)?.status;
}

async function waitStatus(j: string, want: string, ms = 20000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const s = status(j);
    if (s === want) return;
    if (Date.now() > end) assert.fail(`${j} did not reach ${want} (is ${s})`);
    await sleep(200);
  }
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

/** pids whose command line is exactly `argv` */
function pidsOf(argv: string[]): number[] {
  const want = argv.join('\0') + '\0';
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n)).filter((p) => {
    try { return readFileSync(`/proc/${p}/cmdline`, 'utf8') === want; } catch { return false; }
  }).map(Number);
}

before(() => {
  top = tempDir('berth-hook-contract-');
  wd = join(top, 'wd');
  ctl = join(top, 'ctl');
  mkdirSync(ctl, { mode: 0o755 });
  berthOk(['initenv', `workdir=${wd}`, 'nodename=node1']);
  berthOk(['base', 'busybox', 'name=bb'], env());
  const head = `#!/bin/sh
set -u
CTL=${ctl}
d='' f='' j='' r='' s=''
argv=''
for a in "$@"; do argv="$argv [$a]"; done
while getopts 'd:f:j:r:s:' o; do case $o in d) d=$OPTARG;; f) f=$OPTARG;; j) j=$OPTARG;; r) r=$OPTARG;; s) s=$OPTARG;; *) exit 2;; esac; done
printf '%s %s %s %s%s\\n' "\${0##*/}" "\${BERTH_ACTION:-?}" "\${BERTH_JNAME:-?}" "\${BERTH_NODE:-?}" "$argv" >> "$CTL/calls.log"
`;
  START = join(ctl, 'mnt_start');
  writeFileSync(START, `${head}mode=$(cat "$CTL/mode.$j" 2>/dev/null || echo ok)
mkdir -p "$CTL/store/data/$j" "$CTL/store/system/$j" || exit 1
mountpoint -q "$d" || mount --bind "$CTL/store/data/$j" "$d" || exit 1
case $mode in
fail7) echo "mounted $d, now failing with 7" >&2; exit 7 ;;
fail4) echo "failing with 4" >&2; exit 4 ;;
sig) echo "killing myself" >&2; kill -TERM $$ ;;
sleep) echo "mounted $d, now sleeping past the timeout" >&2; sleep 31 ;;
bg) sleep 313 & echo $! > "$CTL/bg.pid" ;;
esac
mountpoint -q "$s" || mount --bind "$CTL/store/system/$j" "$s" || exit 1
exit 0
`);
  STOP = join(ctl, 'mnt_stop');
  writeFileSync(STOP, `${head}for m in "$s" "$d"; do if mountpoint -q "$m"; then umount "$m" || exit 1; fi; done
exit 0
`);
  chmodSync(START, 0o755);
  chmodSync(STOP, 0o755);
});

after(() => {
  const r = berth(['jls', '--json'], env());
  for (const e of r.json?.envs ?? []) if (e.status === 'On') berth(['jstop', `jname=${e.jname}`], env());
  for (const p of pidsOf(['sleep', '313'])) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
  for (const m of mountTable(top).filter((t) => t.startsWith(top + '/')).sort((a, b) => b.length - a.length)) spawnSync('umount', ['-l', m]);
  rmSync(top, { recursive: true, force: true });
});

beforeEach(() => resetCalls());

describe('how hooks are called', () => {
  test('exactly -d <data> -f <fstab dir> -j <jname> -r <rcconf dir> -s <sysdir>, with BERTH_ACTION, BERTH_JNAME, BERTH_NODE', () => {
    create('args1');
    berthOk(['jstart', 'jname=args1'], env());
    berthOk(['jstop', 'jname=args1'], env());
    const args = `[-d] [${wd}/jails-data/args1-data] [-f] [${wd}/jails-fstab/args1] [-j] [args1] [-r] [${wd}/jails-rcconf] [-s] [${wd}/jails-system/args1]`;
    assert.deepEqual(calls('args1').map((c) => `${c.hook} ${c.action} ${c.node} ${c.args}`), [
      `mnt_start create node1 ${args}`, `mnt_stop create node1 ${args}`,
      `mnt_start start node1 ${args}`, `mnt_stop stop node1 ${args}`,
    ]);
    assert.ok(existsSync(join(ctl, 'store/data/args1/etc')), 'the env\'s data went to the storage');
    assert.ok(existsSync(join(ctl, 'store/system/args1/rc.conf_args1')), 'its descriptor too');
    assert.deepEqual(readdirSync(join(wd, 'jails-data/args1-data')), [], 'nothing on the local disk');
  });

  test('jset on a stopped env brackets its write with the hooks as BERTH_ACTION=set', () => {
    create('set1');
    resetCalls();
    berthOk(['jset', 'jname=set1', 'host_hostname=set1.example'], env());
    assert.deepEqual(calls('set1').map((c) => `${c.hook} ${c.action}`), ['mnt_start set', 'mnt_stop set']);
    assert.match(readFileSync(join(ctl, 'store/system/set1/rc.conf_set1'), 'utf8'), /host_hostname="set1\.example";/);
  });

  test('jstart of an env whose descriptor on the storage has a bad line names the file and the line, and leaves nothing mounted', () => {
    create('bad1');
    const before = mountTable(top);
    const file = join(ctl, 'store/system/bad1/rc.conf_bad1');
    const lines = readFileSync(file, 'utf8').split('\n');
    const at = lines.findIndex((l) => l.startsWith('host_hostname='));
    lines.splice(at, 0, 'this is not a key="value" line');
    writeFileSync(file, lines.join('\n'));
    const r = berth(['jstart', 'jname=bad1', '--json'], env());
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.json.error.code, 'E_BAD_CONF');
    assert.match(r.json.error.message, new RegExp(`rc\\.conf_bad1:${at + 1}:`), 'file and line number');
    assert.doesNotMatch(r.stderr, /probably not mounted/);
    assert.deepEqual(mountTable(top), before);
    assert.equal(status('bad1'), 'Off');
    lines.splice(at, 1);
    writeFileSync(file, lines.join('\n'));
    berthOk(['jstart', 'jname=bad1'], env());
    berthOk(['jstop', 'jname=bad1'], env());
  });

  test('node defaults default_mnt_start/default_mnt_stop apply when the env sets none; mnt_start=0 means none', () => {
    const wd2 = join(top, 'wd2');
    berthOk(['initenv', `workdir=${wd2}`, 'nodename=node2', `default_mnt_start=${START}`, `default_mnt_stop=${STOP}`]);
    const e2 = { workdir: wd2 };
    berthOk(['base', 'busybox', 'name=bb'], e2);
    berthOk(['jcreate', 'jname=dflt1', 'base=bb'], e2);
    berthOk(['jstart', 'jname=dflt1'], e2);
    berthOk(['jstop', 'jname=dflt1'], e2);
    assert.deepEqual(calls('dflt1').map((c) => `${c.hook} ${c.action} ${c.node}`),
      ['mnt_start create node2', 'mnt_stop create node2', 'mnt_start start node2', 'mnt_stop stop node2']);
    assert.ok(existsSync(join(ctl, 'store/system/dflt1/rc.conf_dflt1')));
    berthOk(['jcreate', 'jname=none1', 'base=bb', 'mnt_start=0', 'mnt_stop=0'], e2);
    berthOk(['jstart', 'jname=none1'], e2);
    berthOk(['jstop', 'jname=none1'], e2);
    assert.deepEqual(calls('none1'), []);
    assert.ok(existsSync(join(wd2, 'jails-system/none1/rc.conf_none1')), 'local files without hooks');
    berthOk(['jremove', 'jname=none1'], e2);
    berthOk(['jremove', 'jname=dflt1'], e2);
    assert.deepEqual(calls('dflt1').slice(-2).map((c) => `${c.hook} ${c.action}`), ['mnt_start remove', 'mnt_stop remove']);
    assert.deepEqual(mountTable(top).filter((m) => m.startsWith(wd2 + '/')), []);
  });
});

describe('a failing or hanging hook leaves nothing behind', () => {
  test('mnt_start mounts one of its two dirs and exits 7: jstart fails with exit 1 (the hook\'s 7 in the message), nothing stays mounted', () => {
    create('f7');
    const before = mountTable(top);
    resetCalls();
    setMode('f7', 'fail7');
    const r = berth(['jstart', 'jname=f7'], env());
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /mnt_start .* failed with exit code 7/);
    assert.match(r.stderr, /mounted .*f7-data, now failing with 7/, 'the hook\'s last lines are in the error');
    assert.deepEqual(mountTable(top), before);
    assert.equal(status('f7'), 'Off');
    assert.deepEqual([count('f7', 'mnt_start'), count('f7', 'mnt_stop')], [1, 1], 'mnt_stop cleans up the half-done mount');
    setMode('f7', 'ok');
    berthOk(['jstart', 'jname=f7'], env());
    berthOk(['jstop', 'jname=f7'], env());
    assert.deepEqual(mountTable(top), before);
  });

  test('a hook exiting 4 or killed by a signal: berth exits 1 (never 4 "owned" or 128+N "killed"), the hook\'s status in error.details', () => {
    create('f4');
    setMode('f4', 'fail4');
    const r = berth(['jstart', 'jname=f4', '--json'], env());
    assert.equal(r.code, 1, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.error.code, 'E_HOOK_FAILED');
    assert.equal(j.error.details.hookExitCode, 4);
    assert.match(j.error.message, /failed with exit code 4/);
    setMode('f4', 'sig');
    const k = berth(['jstart', 'jname=f4', '--json'], env());
    assert.equal(k.code, 1, k.stderr);
    const kj = JSON.parse(k.stdout);
    assert.equal(kj.error.code, 'E_HOOK_FAILED');
    assert.equal(kj.error.details.hookSignal, 'SIGTERM');
    assert.equal(kj.error.details.hookExitCode, undefined);
    assert.equal(status('f4'), 'Off');
    setMode('f4', 'ok');
  });

  test('mnt_stop failing after the work is done: exit 1, and the message and details.done say the change is made', () => {
    const failStop = join(ctl, 'mnt_stop_then_fail');
    writeFileSync(failStop, `#!/bin/sh\n${STOP} "$@" || exit 1\n[ -e ${ctl}/failstop ] && { echo "cannot unmount" >&2; exit 5; }\nexit 0\n`);
    chmodSync(failStop, 0o755);
    berthOk(['jcreate', 'jname=ms1', 'base=bb', `mnt_start=${START}`, `mnt_stop=${failStop}`], env());
    writeFileSync(join(ctl, 'failstop'), '');
    try {
      const r = berth(['jset', 'jname=ms1', 'host_hostname=changed', '--json'], env());
      assert.equal(r.code, 1, r.stderr);
      const j = JSON.parse(r.stdout);
      assert.equal(j.error.code, 'E_HOOK_FAILED');
      assert.equal(j.error.details.done, true);
      assert.equal(j.error.details.hookExitCode, 5);
      assert.match(j.error.message, /^set of ms1 is done \(its change is made\); then mnt_stop .* failed with exit code 5/);
      assert.equal(berthOk(['jget', 'jname=ms1', 'key=host_hostname'], env()).stdout.trim(), 'changed');
    } finally {
      rmSync(join(ctl, 'failstop'), { force: true });
    }
    berthOk(['jremove', 'jname=ms1'], env());
  });

  test('a failing mnt_start is repaired with jset mnt_start=<fixed hook>: jset mounts with the new hook, not the broken one', () => {
    create('fix1');
    const before = mountTable(top);
    setMode('fix1', 'fail7');
    const r = berth(['jset', 'jname=fix1', 'host_hostname=fix1.example'], env());
    assert.equal(r.code, 1, r.stderr);
    assert.deepEqual(mountTable(top), before);
    // the fixed hook: the same mounts, without the failure
    const fixed = join(ctl, 'mnt_start_fixed');
    writeFileSync(fixed, readFileSync(START, 'utf8').replace('mode=$(cat "$CTL/mode.$j" 2>/dev/null || echo ok)', 'mode=ok'));
    chmodSync(fixed, 0o755);
    resetCalls();
    berthOk(['jset', 'jname=fix1', `mnt_start=${fixed}`], env());
    assert.deepEqual(calls('fix1').map((c) => c.hook), ['mnt_start_fixed', 'mnt_stop'], 'only the new hook mounted');
    assert.equal(berthOk(['jget', 'jname=fix1', 'key=mnt_start'], env()).stdout.trim(), fixed);
    assert.match(readFileSync(join(ctl, 'store', 'system', 'fix1', 'rc.conf_fix1'), 'utf8'), new RegExp(`mnt_start="${fixed}";`), 'the descriptor on the storage says so too');
    assert.deepEqual(mountTable(top), before);
    berthOk(['jstart', 'jname=fix1'], env());
    berthOk(['jstop', 'jname=fix1'], env());
    assert.deepEqual(mountTable(top), before);
  });

  test('mnt_start sleeping past mnt_timeout: exit 124, its process group killed, nothing stays mounted', () => {
    create('slow', ['mnt_timeout=1']);
    const before = mountTable(top);
    setMode('slow', 'sleep');
    const r = berth(['jstart', 'jname=slow'], env());
    assert.equal(r.code, 124, r.stderr);
    assert.match(r.stderr, /timed out after 1 s/);
    assert.match(r.stderr, /now sleeping past the timeout/);
    assert.deepEqual(pidsOf(['sleep', '31']), [], 'the hook\'s child was killed with it');
    assert.deepEqual(mountTable(top), before);
    assert.equal(status('slow'), 'Off');
    setMode('slow', 'ok');
  });

  test('mnt_start leaving a background sleeper that holds its stdout: berth returns while the sleeper lives', () => {
    create('bg1');
    setMode('bg1', 'bg');
    rmSync(join(ctl, 'bg.pid'), { force: true });
    const r = berth(['jstart', 'jname=bg1'], env());
    assert.equal(r.code, 0, r.stderr);
    const pid = Number(readFileSync(join(ctl, 'bg.pid'), 'utf8'));
    assert.ok(alive(pid), 'the sleeper (holding the hook\'s stdout) still runs after berth returned');
    process.kill(pid, 'SIGKILL');
    setMode('bg1', 'ok');
    berthOk(['jstop', 'jname=bg1'], env());
  });

  test('unsafe hooks are refused, naming the file and why, and not run', () => {
    for (const [name, fix, why] of [
      ['ww', (p: string) => chmodSync(p, 0o757), /refusing to run hook .*\/ww: mode 0757 lets others change it/],
      ['gw', (p: string) => chmodSync(p, 0o775), /refusing to run hook .*\/gw: mode 0775 lets group change it/],
      ['notroot', (p: string) => chownSync(p, 1000, 1000), /refusing to run hook .*\/notroot: it is owned by uid 1000, not root/],
    ] as const) {
      const p = join(ctl, name);
      copyFileSync(START, p);
      chmodSync(p, 0o755);
      fix(p);
      const before = mountTable(top);
      const r = berth(['jcreate', `jname=u${name}`, 'base=bb', `mnt_start=${p}`, `mnt_stop=${STOP}`], env());
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, why);
      assert.deepEqual(calls(`u${name}`).filter((c) => c.hook === name), [], 'the unsafe hook did not run');
      assert.deepEqual(mountTable(top), before);
      assert.equal(existsSync(join(wd, `jails-data/u${name}-data`)), false);
      assert.equal(existsSync(join(wd, `jails-system/u${name}`)), false);
      assert.equal(berth(['jget', `jname=u${name}`], env()).code, 3);
    }
  });
});

describe('mnt_stop runs exactly once for each way an env ends', () => {
  test('jstop', () => {
    create('end1');
    resetCalls();
    berthOk(['jstart', 'jname=end1'], env());
    berthOk(['jstop', 'jname=end1'], env());
    assert.deepEqual([count('end1', 'mnt_start'), count('end1', 'mnt_stop')], [1, 1]);
  });

  test('the main process exits by itself', async () => {
    create('end2', ['exec_start=sleep 1']);
    const before = mountTable(top);
    resetCalls();
    berthOk(['jstart', 'jname=end2'], env());
    await waitStatus('end2', 'Off');
    await sleep(500);
    assert.deepEqual([count('end2', 'mnt_start'), count('end2', 'mnt_stop')], [1, 1]);
    assert.deepEqual(mountTable(top), before);
  });

  test('kill -9 of the env\'s init process', async () => {
    create('end3');
    const before = mountTable(top);
    resetCalls();
    berthOk(['jstart', 'jname=end3'], env());
    const jid = berthOk(['jls', '--json'], env()).json.envs.find((e: any) => e.jname === 'end3').jid;
    assert.ok(jid > 1, `jid ${jid}`);
    process.kill(jid, 'SIGKILL');
    await waitStatus('end3', 'Off');
    await sleep(500);
    assert.deepEqual([count('end3', 'mnt_start'), count('end3', 'mnt_stop')], [1, 1]);
    assert.deepEqual(mountTable(top), before);
  });

  test('a start vetoed by master_prestart.d', () => {
    create('end4');
    const veto = join(ctl, 'store/system/end4/master_prestart.d/10-veto'); // the sysdir lives on the storage
    writeFileSync(veto, '#!/bin/sh\necho "vetoed by the test" >&2\nexit 1\n');
    chmodSync(veto, 0o755);
    const before = mountTable(top);
    resetCalls();
    const r = berth(['jstart', 'jname=end4'], env());
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /vetoed by the test/);
    assert.deepEqual([count('end4', 'mnt_start'), count('end4', 'mnt_stop')], [1, 1]);
    assert.deepEqual(mountTable(top), before);
    assert.equal(status('end4'), 'Off');
    rmSync(veto);
  });

  test('jremove', () => {
    const before = mountTable(top);
    for (const j of ['end1', 'end2', 'end3', 'end4']) {
      resetCalls();
      berthOk(['jremove', `jname=${j}`], env());
      assert.deepEqual(calls(j).map((c) => `${c.hook} ${c.action}`), ['mnt_start remove', 'mnt_stop remove'], j);
      assert.deepEqual(readdirSync(join(ctl, 'store/data', j)), [], `${j}: its data on the storage is gone`);
      assert.deepEqual(readdirSync(join(ctl, 'store/system', j)), [], `${j}: its sysdir on the storage is empty`);
      assert.equal(existsSync(join(wd, `jails-data/${j}-data`)), false);
    }
    assert.deepEqual(mountTable(top), before);
  });

  test('a second jstart of a running env calls neither mnt_start nor mnt_stop', () => {
    create('twice');
    resetCalls();
    berthOk(['jstart', 'jname=twice'], env());
    const r = berth(['jstart', 'jname=twice'], env());
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /already running/);
    assert.deepEqual([count('twice', 'mnt_start'), count('twice', 'mnt_stop')], [1, 0]);
    assert.equal(berthOk(['jexec', 'jname=twice', 'true'], env()).code, 0, 'still running with its storage');
    berthOk(['jstop', 'jname=twice'], env());
    assert.deepEqual([count('twice', 'mnt_start'), count('twice', 'mnt_stop')], [1, 1]);
  });
});

describe('jcreate never creates over existing files', () => {
  test('a local data dir holding files: refused, nothing deleted', () => {
    mkdirSync(join(wd, 'jails-data/occ1-data'));
    writeFileSync(join(wd, 'jails-data/occ1-data/precious'), 'mine\n');
    const r = berth(['jcreate', 'jname=occ1', 'base=bb'], env());
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /occ1-data already holds files; refusing .*nothing was deleted/);
    assert.deepEqual(readdirSync(join(wd, 'jails-data/occ1-data')), ['precious']);
    assert.equal(readFileSync(join(wd, 'jails-data/occ1-data/precious'), 'utf8'), 'mine\n');
    assert.equal(existsSync(join(wd, 'jails-system/occ1')), false);
    assert.equal(existsSync(join(wd, 'jails-fstab/occ1')), false);
    assert.equal(berth(['jget', 'jname=occ1'], env()).code, 3);
  });

  test('storage mounted by mnt_start holding files (data or sysdir): refused, nothing deleted, nothing left mounted', () => {
    const before = mountTable(top);
    for (const [j, kind] of [['occ2', 'data'], ['occ3', 'system']] as const) {
      mkdirSync(join(ctl, 'store', kind, j), { recursive: true });
      writeFileSync(join(ctl, 'store', kind, j, 'precious'), 'on the storage\n');
      const r = berth(['jcreate', `jname=${j}`, 'base=bb', `mnt_start=${START}`, `mnt_stop=${STOP}`], env());
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /already holds files; refusing/);
      assert.deepEqual(readdirSync(join(ctl, 'store', kind, j)), ['precious']);
      assert.deepEqual(readdirSync(join(ctl, 'store', kind === 'data' ? 'system' : 'data', j)), [], 'nothing written to the other dir');
      assert.deepEqual(mountTable(top), before);
      assert.equal(count(j, 'mnt_stop'), 1);
      assert.equal(berth(['jget', `jname=${j}`], env()).code, 3);
    }
  });
});
