/**
 * The foundation end to end on real parts (issue #2): initenv, a busybox base, runc envs
 * with baserw=0 and 1, exec, restart persistence, read-only base, vnet + ping, teardown on
 * every way an env ends, 20 start/stop cycles, and bad input changing nothing.
 * Needs root, runc, busybox-static and iproute2 (make test installs them).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { berth, berthOk, isRoot, mountTable, newNode, tempDir } from '../helpers/cli.js';
import { openNode } from '../../src/node.js';
import { startEnv } from '../../src/lifecycle/start.js';
import { stopEnv } from '../../src/lifecycle/stop.js';
import Database from 'better-sqlite3';

/** A pid that is certainly gone: a child that already exited and was reaped. */
function deadPid(): number {
  return Number(spawnSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' }).stdout.trim());
}

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

let wd: string;
const env = () => ({ workdir: wd });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A fingerprint of everything bad input must not change: mounts, inventory, workdir tree. */
function snapshot(): { mounts: string[]; inventory: string; tree: string[] } {
  const tree: string[] = [];
  const walk = (d: string, depth: number) => {
    for (const n of readdirSync(d).sort()) {
      if (n === 'log' && d.endsWith('var')) continue;
      const p = join(d, n);
      tree.push(p.slice(wd.length));
      if (depth < 3 && !p.includes('/bases/') && !p.endsWith('/db') && existsSync(p) && spawnSync('test', ['-d', p]).status === 0) walk(p, depth + 1);
    }
  };
  walk(wd, 0);
  const inv = berthOk(['jls', '--json'], env()).json.envs.map((e: any) => `${e.jname}:${e.status}:${e.uuid}`).join(',');
  return { mounts: mountTable(wd), inventory: inv, tree };
}

async function waitStatus(jname: string, status: string, ms = 15000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const e = berthOk(['jls', '--json'], env()).json.envs.find((x: any) => x.jname === jname);
    if (e?.status === status) return;
    if (Date.now() > end) assert.fail(`${jname} did not reach ${status} (is ${e?.status})`);
    await sleep(200);
  }
}

before(() => {
  wd = newNode('node1');
  berthOk(['base', 'busybox', 'name=bb'], env());
});

after(() => {
  const r = berth(['jls', '--json'], env());
  for (const e of r.json?.envs ?? []) {
    if (e.status === 'On') berth(['jstop', `jname=${e.jname}`], env());
  }
});

describe('baserw=0: read-only base, writable data sub-dirs', () => {
  test('create, start, exec, hostname, read-only /bin, /etc survives restart, stop, remove', () => {
    const before = mountTable(wd);
    const c = berthOk(['jcreate', 'jname=t0', 'base=bb', 'host_hostname=t0.example', '--json'], env());
    assert.equal(c.json.env.conf.baserw, '0');
    assert.match(c.json.env.uuid, /^[0-9a-f-]{36}$/);
    assert.ok(existsSync(join(wd, 'jails-system/t0/rc.conf_t0')));
    assert.match(readFileSync(join(wd, 'jails-fstab/t0/fstab'), 'utf8'), /CBSDROOT\/jails-data\/t0-data\/etc\t\/etc\tnullfs\trw/);
    berthOk(['jstart', 't0'], env());
    const ls = berthOk(['jls'], env()).stdout;
    assert.match(ls.split('\n')[0]!, /^JNAME\s+JID\s+IP4_ADDR\s+HOST_HOSTNAME\s+PATH\s+STATUS$/);
    assert.match(ls, /t0\s+\d+\s+0\s+t0\.example\s+\S+\/jails\/t0\s+On/);
    assert.equal(berthOk(['jexec', 'jname=t0', 'hostname'], env()).stdout.trim(), 't0.example');
    const ro = berth(['jexec', 'jname=t0', 'sh', '-c', 'echo x > /bin/evil'], env());
    assert.notEqual(ro.code, 0, 'writing under /bin must fail: the base is read-only');
    assert.ok(!existsSync(join(wd, 'bases/bb/bin/evil')));
    berthOk(['jexec', 'jname=t0', 'sh', '-c', 'echo persisted > /etc/berth-note'], env());
    assert.equal(readFileSync(join(wd, 'jails-data/t0-data/etc/berth-note'), 'utf8'), 'persisted\n');
    const code = berth(['jexec', 'jname=t0', 'sh', '-c', 'exit 7'], env());
    assert.equal(code.code, 7, 'jexec returns the command\'s exit code');
    berthOk(['jrestart', 'jname=t0'], env());
    assert.equal(berthOk(['jexec', 'jname=t0', 'cat', '/etc/berth-note'], env()).stdout, 'persisted\n');
    berthOk(['jstop', 'jname=t0'], env());
    assert.deepEqual(mountTable(wd), before);
    assert.equal(berthOk(['jls', '--json'], env()).json.envs.find((e: any) => e.jname === 't0').status, 'Off');
    berthOk(['jremove', 'jname=t0'], env());
    assert.ok(!existsSync(join(wd, 'jails-data/t0-data')));
    assert.ok(!existsSync(join(wd, 'jails-system/t0')));
    assert.equal(berth(['jget', 'jname=t0'], env()).code, 3);
  });
});

describe('baserw=1: the data holds the whole root', () => {
  test('root writable, files survive a restart, jset/jget round trip', () => {
    berthOk(['jcreate', 'jname=t1', 'base=bb', 'baserw=1'], env());
    assert.ok(existsSync(join(wd, 'jails-data/t1-data/bin/busybox')));
    berthOk(['jstart', 'jname=t1'], env());
    berthOk(['jexec', 'jname=t1', 'sh', '-c', 'echo mine > /bin/own && echo e > /etc/e'], env());
    berthOk(['jstop', 'jname=t1'], env());
    berthOk(['jset', 'jname=t1', 'host_hostname=renamed'], env());
    assert.match(readFileSync(join(wd, 'jails-system/t1/rc.conf_t1'), 'utf8'), /host_hostname="renamed";/);
    assert.equal(berthOk(['jget', 'jname=t1', 'key=host_hostname'], env()).stdout.trim(), 'renamed');
    // CBSD style: the keys named after jname=, as key: value lines; an unknown one is exit 3
    assert.equal(berthOk(['jget', 'jname=t1', 'host_hostname', 'baserw'], env()).stdout, 'host_hostname: renamed\nbaserw: 1\n');
    assert.equal(berthOk(['jget', 't1', 'host_hostname'], env()).stdout, 'host_hostname: renamed\n');
    assert.deepEqual(berthOk(['jget', 'jname=t1', 'baserw', '--json'], env()).json, { ok: true, jname: 't1', conf: { baserw: '1' } });
    assert.equal(berth(['jget', 'jname=t1', 'key='], env()).code, 2, 'key= without a name is a usage error');
    for (const bad of [['nosuch'], ['host_hostname', 'constructor'], ['key=toString']]) {
      const r = berth(['jget', 'jname=t1', ...bad], env());
      assert.equal(r.code, 3, bad.join(' '));
      assert.match(r.stderr, /has no setting "(nosuch|constructor|toString)"/);
      assert.equal(r.stdout, '');
    }
    berthOk(['jstart', 'jname=t1'], env());
    assert.equal(berthOk(['jexec', 'jname=t1', 'cat', '/bin/own', '/etc/e'], env()).stdout, 'mine\ne\n');
    assert.equal(berthOk(['jexec', 'jname=t1', 'hostname'], env()).stdout.trim(), 'renamed');
    berthOk(['jstop', 't1'], env());
    berthOk(['jremove', 't1'], env());
  });
});

describe('teardown happens exactly once, whichever way the env ends', () => {
  test('the main process exits by itself', async () => {
    const before = mountTable(wd);
    berthOk(['jcreate', 'jname=short', 'base=bb', 'exec_start=sleep 1'], env());
    berthOk(['jstart', 'jname=short'], env());
    await waitStatus('short', 'Off');
    await sleep(300);
    assert.deepEqual(mountTable(wd), before);
    berthOk(['jstart', 'jname=short'], env());
    berthOk(['jstop', 'jname=short'], env());
    berthOk(['jremove', 'jname=short'], env());
  });

  test('one run monitor watches every env of the node; a dead one is replaced at the next jstart', async () => {
    const monitors = () => readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
      try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').some((a) => /monitor\.(cjs|js|ts)$/.test(a)) && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(wd); } catch { return false; }
    }).map(Number);
    for (const j of ['m1', 'm2', 'm3']) berthOk(['jcreate', `jname=${j}`, 'base=bb'], env());
    for (const j of ['m1', 'm2', 'm3']) berthOk(['jstart', `jname=${j}`], env());
    const mon = monitors();
    assert.equal(mon.length, 1, `one monitor for three envs: ${mon.join(' ')}`);
    process.kill(mon[0]!, 'SIGKILL');
    await sleep(200);
    berthOk(['jstop', 'jname=m1'], env());
    berthOk(['jstart', 'jname=m1'], env());
    const mon2 = monitors();
    assert.equal(mon2.length, 1);
    assert.notEqual(mon2[0], mon[0]);
    // the new monitor watches m2, which was started under the old one
    const jid = berth(['jls', '--json', 'jname=m2'], env()).json.envs[0].jid;
    process.kill(jid, 'SIGKILL');
    await waitStatus('m2', 'Off');
    // the monitor is killed, then an env ends: the next jls starts a new monitor, which tears it down
    const jid3 = berth(['jls', '--json', 'jname=m3'], env()).json.envs[0].jid;
    process.kill(monitors()[0]!, 'SIGKILL');
    process.kill(jid3, 'SIGKILL');
    await sleep(300);
    berthOk(['jls'], env());
    await waitStatus('m3', 'Off');
    assert.ok(!mountTable(wd).some((m) => m.includes('/jails/m3')), 'mounts of m3 are gone');
    // a claim whose process died mid-teardown (e.g. a monitor killed while tearing down) is recovered by the monitor
    const db = new Database(join(wd, 'var/db/local.sqlite'));
    try {
      db.prepare('UPDATE jails SET status = 3, run_id = NULL, claim_pid = ? WHERE jname = ?').run(deadPid(), 'm1');
    } finally {
      db.close();
    }
    await waitStatus('m1', 'Off');
    assert.equal(spawnSync('runc', ['--root', join(wd, 'var/run/runc'), 'state', 'm1']).status, 1, 'runc state of m1 is gone');
    assert.ok(!mountTable(wd).some((m) => m.includes('/jails/m1')), 'mounts of m1 are gone');
    for (const j of ['m1', 'm2', 'm3']) berthOk(['jremove', `jname=${j}`], env());
  });

  test('kill -9 of the env\'s init process', async () => {
    const before = mountTable(wd);
    berthOk(['jcreate', 'jname=victim', 'base=bb'], env());
    const jid = berthOk(['jstart', 'jname=victim', '--json'], env()).json.results[0].jid;
    assert.ok(jid > 1);
    process.kill(jid, 'SIGKILL');
    await waitStatus('victim', 'Off');
    await sleep(300);
    assert.deepEqual(mountTable(wd), before);
    assert.equal(spawnSync('runc', ['--root', join(wd, 'var/run/runc'), 'state', 'victim']).status, 1, 'runc state is gone');
    berthOk(['jremove', 'jname=victim'], env());
  });

  test('the run monitor logs in one format: its own lines and the library\'s warnings alike', async () => {
    const hook = join(tempDir('berth-monlog-'), 'mnt_stop_fails_at_stop.sh');
    writeFileSync(hook, '#!/bin/sh\n[ "$BERTH_ACTION" = stop ] && { echo "storage gone" >&2; exit 1; }\nexit 0\n');
    chmodSync(hook, 0o755);
    berthOk(['jcreate', 'jname=monlog', 'base=bb', `mnt_stop=${hook}`], env());
    const jid = berthOk(['jstart', 'jname=monlog', '--json'], env()).json.results[0].jid;
    process.kill(jid, 'SIGKILL');
    await waitStatus('monlog', 'Off');
    const lines = readFileSync(join(wd, 'var', 'log', 'monitor.log'), 'utf8').split('\n').filter(Boolean);
    const bad = lines.filter((l) => !/^\d{4}-\d\d-\d\dT\S+Z berth monitor\[\d+\]: /.test(l));
    assert.deepEqual(bad, [], 'every line in the one format');
    assert.ok(lines.some((l) => /warning: teardown finished with errors .*jname="monlog"/.test(l)), lines.join('\n'));
    berthOk(['jset', 'jname=monlog', 'mnt_stop=0'], env());
    berthOk(['jremove', 'jname=monlog'], env());
  });

  test('a start vetoed by master_prestart.d leaves mounts and inventory as they were', () => {
    berthOk(['jcreate', 'jname=veto', 'base=bb'], env());
    const hook = join(wd, 'jails-system/veto/master_prestart.d/10-veto');
    writeFileSync(hook, '#!/bin/sh\necho vetoed >&2\nexit 3\n');
    chmodSync(hook, 0o755);
    const s0 = snapshot();
    const r = berth(['jstart', 'jname=veto'], env());
    assert.notEqual(r.code, 0);
    assert.deepEqual(snapshot(), s0);
    writeFileSync(hook, '#!/bin/sh\nexit 0\n');
    berthOk(['jstart', 'jname=veto'], env());
    berthOk(['jstop', 'jname=veto'], env());
  });

  test('a failing master_poststart.d script does not stop the start; its warning is a text line naming it, not a JSON log line', () => {
    berthOk(['jcreate', 'jname=warn1', 'base=bb'], env());
    const hook = join(wd, 'jails-system/warn1/master_poststart.d/20-notify');
    writeFileSync(hook, '#!/bin/sh\nexit 7\n');
    chmodSync(hook, 0o755);
    const r = berth(['jstart', 'jname=warn1'], env());
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /^berth jstart: warning: master_poststart\.d script \S+\/20-notify .*exit code 7/m);
    assert.doesNotMatch(r.stderr, /"level"/);
    berthOk(['jstop', 'jname=warn1'], env());
    berthOk(['jremove', 'jname=warn1'], env());
  });

  test('a start failing on a bad fstab.local entry leaves mounts and inventory as they were', () => {
    writeFileSync(join(wd, 'jails-fstab/veto/fstab.local'), '/nonexistent/src /mnt/x nullfs rw 0 0\n');
    const s0 = snapshot();
    const r = berth(['jstart', 'jname=veto'], env());
    assert.equal(r.code, 5, r.stderr);
    assert.deepEqual(snapshot(), s0);
    writeFileSync(join(wd, 'jails-fstab/veto/fstab.local'), '');
    berthOk(['jremove', 'jname=veto'], env());
  });

  test('the host mount table is identical after 20 start/stop cycles', () => {
    berthOk(['jcreate', 'jname=cyc', 'base=bb'], env());
    mkdirSync(join(wd, 'share-src'), { recursive: true });
    writeFileSync(join(wd, 'jails-fstab/cyc/fstab.local'), `${join(wd, 'share-src')} /home/shared nullfs ro 0 0\n`);
    const before = mountTable(wd);
    for (let i = 0; i < 20; i++) {
      berthOk(['jstart', 'jname=cyc'], env());
      berthOk(['jstop', 'jname=cyc'], env());
    }
    assert.deepEqual(mountTable(wd), before);
    berthOk(['jremove', 'jname=cyc'], env());
  });
});

describe('jstop right after jstart', () => {
  // The env's init ignores a SIGTERM that arrives before its shell has run `trap` (a PID
  // namespace's init only gets signals it handles). With stop_timeout=600, a dropped SIGTERM
  // would make one stop wait 10 minutes: the test's timeout fails it instead.
  // Through the library, so that the stop follows the start within milliseconds.
  test('SIGTERM reaches an init that is still starting up: 15 cycles end well before stop_timeout', { timeout: 180_000 }, async () => {
    berthOk(['jcreate', 'jname=quick', 'base=bb', 'stop_timeout=600'], env());
    const ctx = openNode(wd);
    try {
      for (let i = 0; i < 15; i++) {
        await startEnv(ctx, 'quick');
        await stopEnv(ctx, 'quick');
      }
    } finally {
      ctx.close();
    }
    assert.equal(berth(['jls', '--json', 'jname=quick'], env()).json.envs[0].status, 'Off');
    berthOk(['jremove', 'jname=quick'], env());
  });
});

describe('globs', () => {
  test("jstart/jstop jname='glob*' skip envs already in that state (exit 0); a name given explicitly still fails (exit 1)", () => {
    for (const j of ['gl1', 'gl2']) berthOk(['jcreate', `jname=${j}`, 'base=bb'], env());
    berthOk(['jstart', 'jname=gl1'], env());
    const start = berthOk(['jstart', 'jname=gl*', '--json'], env()).json.results;
    assert.deepEqual(start.map((r: any) => [r.jname, r.ok, !!r.skipped]), [['gl1', true, true], ['gl2', true, false]]);
    const stop = berthOk(['jstop', 'jname=gl*', '--json'], env()).json.results;
    assert.deepEqual(stop.map((r: any) => [r.jname, r.ok, !!r.skipped]), [['gl1', true, false], ['gl2', true, false]]);
    const again = berthOk(['jstop', 'jname=gl*'], env());
    assert.match(again.stdout, /^skipped: gl1: gl1 is not running$/m);
    const explicit = berth(['jstop', 'jname=gl1'], env());
    assert.equal(explicit.code, 1);
    assert.match(explicit.stderr, /gl1 is not running/);
    for (const j of ['gl1', 'gl2']) berthOk(['jremove', `jname=${j}`], env());
  });
});

describe('jexec --json', () => {
  test("the command's stdout and stderr are in the JSON document, which is all stdout holds; its exit code is berth's", () => {
    berthOk(['jcreate', 'jname=jx', 'base=bb'], env());
    berthOk(['jstart', 'jname=jx'], env());
    try {
      const r = berth(['jexec', 'jname=jx', '--json', 'sh', '-c', 'echo to-out; echo to-err >&2; exit 3'], env());
      assert.equal(r.code, 3, r.stderr);
      const doc = JSON.parse(r.stdout); // the whole of stdout is one document
      assert.deepEqual([doc.ok, doc.jname, doc.exitCode, doc.stdout, doc.stderr], [false, 'jx', 3, 'to-out\n', 'to-err\n']);
      assert.doesNotMatch(r.stderr, /to-err/);
      const plain = berth(['jexec', 'jname=jx', 'sh', '-c', 'echo to-out'], env());
      assert.equal(plain.stdout, 'to-out\n');
    } finally {
      berthOk(['jstop', 'jname=jx'], env());
      berthOk(['jremove', 'jname=jx'], env());
    }
  });
});

describe('vnet: own network namespace on a bridge', () => {
  const BR = 'berthtbr0';
  before(() => {
    spawnSync('ip', ['link', 'del', BR]);
    assert.equal(spawnSync('ip', ['link', 'add', BR, 'type', 'bridge']).status, 0);
    assert.equal(spawnSync('ip', ['addr', 'add', '10.213.77.1/24', 'dev', BR]).status, 0);
    assert.equal(spawnSync('ip', ['link', 'set', BR, 'up']).status, 0);
  });
  after(() => { spawnSync('ip', ['link', 'del', BR]); });

  test('the env answers ping from the host, and its address is inside', () => {
    berthOk(['jcreate', 'jname=net1', 'base=bb', 'vnet=1', 'ip4_addr=10.213.77.2/24', `interface=${BR}`], env());
    berthOk(['jstart', 'jname=net1'], env());
    const ping = spawnSync('ping', ['-c', '1', '-W', '3', '10.213.77.2'], { encoding: 'utf8' });
    assert.equal(ping.status, 0, ping.stdout + ping.stderr);
    assert.match(berthOk(['jexec', 'jname=net1', 'ip', 'addr', 'show', 'eth0'], env()).stdout, /10\.213\.77\.2\/24/);
    berthOk(['jstop', 'jname=net1'], env());
    assert.equal(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.includes('berth-node1-net1'), false, 'netns removed');
    berthOk(['jremove', 'jname=net1'], env());
  });

  test('interface= that is not a bridge, or does not exist: jstart fails (5) naming it, and leaves no mount, netns or veth', () => {
    berthOk(['jcreate', 'jname=net2', 'base=bb', 'vnet=1', 'ip4_addr=10.213.77.3/24', 'interface=lo'], env());
    const links0 = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout.split('\n').length;
    const s0 = snapshot();
    const lo = berth(['jstart', 'jname=net2'], env());
    assert.equal(lo.code, 5, lo.stderr);
    assert.match(lo.stderr, /interface=lo is a network interface but not a bridge/);
    assert.match(lo.stderr, /jset jname=net2 interface=<bridge>/);
    berthOk(['jset', 'jname=net2', 'interface=berthnosuch0'], env());
    const s1 = snapshot();
    const none = berth(['jstart', 'jname=net2'], env());
    assert.equal(none.code, 5, none.stderr);
    assert.match(none.stderr, /interface=berthnosuch0 does not exist/);
    assert.match(none.stderr, /ip link add berthnosuch0 type bridge/);
    assert.deepEqual(snapshot().mounts, s0.mounts);
    assert.equal(snapshot().inventory, s1.inventory);
    assert.match(s1.inventory, /net2:Off:/);
    assert.equal(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.includes('net2'), false, 'no netns left');
    assert.equal(spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout.split('\n').length, links0, 'no veth left');
    berthOk(['jremove', 'jname=net2'], env());
  });

  test('a network namespace of the env\'s name that berth did not make is refused (5), used for nothing and left in place', () => {
    berthOk(['jcreate', 'jname=net3', 'base=bb', 'vnet=1', 'ip4_addr=10.213.77.4/24', `interface=${BR}`], env());
    const ns = 'berth-node1-net3';
    assert.equal(spawnSync('ip', ['netns', 'add', ns]).status, 0);
    try {
      const s0 = snapshot();
      const r = berth(['jstart', 'jname=net3', '--json'], env());
      assert.equal(r.code, 5, r.stderr);
      assert.equal(r.json.error.code, 'E_NETNS_EXISTS');
      assert.match(r.json.error.message, /network namespace berth-node1-net3 exists and berth did not make it/);
      assert.ok(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.includes(ns), 'the namespace is still there');
      assert.deepEqual(snapshot().mounts, s0.mounts);
      assert.equal(snapshot().inventory, s0.inventory);
    } finally {
      spawnSync('ip', ['netns', 'delete', ns]);
    }
    // once it is gone, the start makes (and the stop deletes) its own
    berthOk(['jstart', 'jname=net3'], env());
    assert.ok(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.includes(ns));
    berthOk(['jstop', 'jname=net3'], env());
    assert.equal(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.includes(ns), false, 'its own namespace removed');
    berthOk(['jremove', 'jname=net3'], env());
  });
});

describe('bad input gets the documented exit code and changes nothing', () => {
  test('bad jname (2), unknown base (3), duplicate (1), start running (1), remove running (1), unknown env (3)', () => {
    berthOk(['jcreate', 'jname=keep', 'base=bb'], env());
    berthOk(['jstart', 'jname=keep'], env());
    const s0 = snapshot();
    const cases: [string[], number, RegExp][] = [
      [['jcreate', 'jname=bad.name', 'base=bb'], 2, /bad jname "bad\.name"/],
      [['jcreate', 'jname=nobase', 'base=nosuch'], 3, /no base "nosuch"/],
      [['jcreate', 'jconf=/nonexistent/rc.conf_x'], 3, /jconf=\/nonexistent\/rc\.conf_x does not exist/],
      [['jcreate', 'jname=keep', 'base=bb'], 1, /already exists/],
      [['jstart', 'jname=keep'], 1, /already running/],
      [['jremove', 'jname=keep'], 1, /stop it first/],
      [['jstop', 'jname=ghost'], 3, /no env "ghost"/],
      [['jcreate', 'jname=badip', 'base=bb', 'vnet=1', 'ip4_addr=nonsense', 'interface=x'], 2, /bad ip4_addr/],
      [['jcreate', 'jname=badflag', 'base=bb', 'baserw=2'], 2, /bad baserw="2"/],
      [['jcreate', 'jname=badhook', 'base=bb', 'mnt_start=relative/hook'], 2, /absolute path/],
      [['jstart', '--nosuchflag'], 2, /unknown option/],
    ];
    for (const [args, code, msg] of cases) {
      const r = berth(args, env());
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, msg, args.join(' '));
      assert.deepEqual(snapshot(), s0, `${args.join(' ')} changed something`);
    }
    const j = berth(['jstart', 'jname=keep', '--json'], env());
    assert.equal(j.json.ok, false);
    assert.equal(j.json.error.code, 'E_RUNNING');
    berthOk(['jstop', 'jname=keep'], env());
    berthOk(['jremove', 'jname=keep'], env());
  });
});
