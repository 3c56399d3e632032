/**
 * jrename live (src/lifecycle/rename.ts), through the built CLI:
 * - on one node with a local workdir (runc): a stopped env renamed keeps its data and its fstab
 *   entry naming its own data dir, starts under the new name; refusals (running, taken, bad
 *   name) change nothing;
 * - on two nodes with per-env GlusterFS mounts (test/integration/cluster-twonode.ts
 *   perEnvNodes, the example hooks): the hook renames the env's sub-directories on the volume
 *   (BERTH_ACTION=rename), nothing stays mounted, node2 sees the env under its new name only,
 *   and it starts and runs on its data under the new name;
 * - killed with -9 while its mnt_start hook runs: the run monitor (started by jls) rolls it back.
 */
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { berth, berthOk, BIN, isRoot, mountTable, newNode, tempDir } from '../helpers/cli.js';
import { hookMounts, perEnvNodes, type TwoNodes } from './cluster-twonode.js';

assert.ok(isRoot, 'integration tests run as root (runc, mounts, glusterd)');

describe('jrename on a local workdir', () => {
  let wd: string;
  const opt = () => ({ workdir: wd });
  before(() => {
    wd = newNode('node1');
    berthOk(['base', 'busybox', 'name=bb'], opt());
  });
  after(() => { berth(['jstop', 'jname=*'], opt()); });

  test('a stopped env is renamed with its data and fstab entry, starts under the new name; refusals change nothing', () => {
    berthOk(['jcreate', 'jname=lr1', 'base=bb'], opt());
    berthOk(['jcreate', 'jname=lr9', 'base=bb'], opt());
    const d = join(wd, 'jails-data', 'lr1-data', 'srv');
    mkdirSync(d);
    writeFileSync(join(d, 'note'), 'kept\n');
    writeFileSync(join(wd, 'jails-fstab', 'lr1', 'fstab.local'), `${d} /root/m nullfs ro 0 0\n`);
    berthOk(['jstart', 'jname=lr1'], opt());
    const snap = () => JSON.stringify([readdirSync(join(wd, 'jails-data')).sort(), readdirSync(join(wd, 'jails-lease', 'envs')).sort(), berthOk(['jls', '--json'], opt()).json.envs.map((e: any) => [e.jname, e.status]), mountTable(wd)]);
    let before = snap();
    const running = berth(['jrename', 'old=lr1', 'new=lr2', '--json'], opt());
    assert.equal(running.code, 1);
    assert.equal(running.json.error.code, 'E_RUNNING');
    assert.equal(snap(), before);
    berthOk(['jstop', 'jname=lr1'], opt());
    before = snap();
    for (const [args, code, err] of [[['old=lr1', 'new=lr9'], 1, 'E_NAME_TAKEN'], [['old=lr1', 'new=bad.name'], 2, 'E_BAD_JNAME'], [['old=nosuch', 'new=lr3'], 3, 'E_NO_SUCH_ENV']] as const) {
      const r = berth(['jrename', ...args, '--json'], opt());
      assert.equal(r.code, code, r.stderr);
      assert.equal(r.json.error.code, err);
      assert.equal(snap(), before, `${args.join(' ')} changed nothing`);
    }
    const vm = berth(['brename', 'old=lr1', 'new=lr3', '--json'], opt());
    assert.equal(vm.code, 2, vm.stderr);
    assert.equal(vm.json.error.code, 'E_BAD_EMULATOR', 'brename is for VMs; lr1 is a container');
    assert.equal(snap(), before);
    const r = berthOk(['jrename', 'old=lr1', 'new=lr2'], opt());
    assert.match(r.stdout, /renamed: lr1 -> lr2/);
    assert.deepEqual(Object.keys(berthOk(['jls', '--json'], opt()).json.envs.reduce((a: any, e: any) => ({ ...a, [e.jname]: 1 }), {})).sort(), ['lr2', 'lr9']);
    assert.equal(readFileSync(join(wd, 'jails-fstab', 'lr2', 'fstab.local'), 'utf8'), `${join(wd, 'jails-data', 'lr2-data', 'srv')} /root/m nullfs ro 0 0\n`);
    for (const p of ['jails-data/lr1-data', 'jails-system/lr1', 'jails-fstab/lr1', 'jails-lease/envs/lr1']) assert.ok(!existsSync(join(wd, p)), `${p} is gone`);
    berthOk(['jstart', 'jname=lr2'], opt());
    assert.equal(berthOk(['jexec', 'jname=lr2', 'cat', '/root/m/note'], opt()).stdout, 'kept\n');
    assert.equal(berthOk(['jexec', 'jname=lr2', 'hostname'], opt()).stdout.trim().length > 0, true);
    berthOk(['jstop', 'jname=lr2'], opt());
  });
});

describe('jrename killed in the middle (kill -9 while its mnt_start hook runs)', () => {
  let wd: string;
  const opt = () => ({ workdir: wd });
  before(() => {
    wd = newNode('node1');
    berthOk(['base', 'busybox', 'name=bb'], opt());
  });

  test('the run monitor (as the next command would) rolls the rename back: the old name works, the new one is free again', async () => {
    const dir = tempDir('berth-rename-kill-');
    const flag = join(dir, 'hang');
    const pidFile = join(dir, 'hook.pid');
    const hook = join(dir, 'mnt_start.sh');
    writeFileSync(hook, `#!/bin/sh\nif [ "$BERTH_ACTION" = rename ] && [ -e ${flag} ]; then echo $$ > ${pidFile}; exec sleep 120; fi\nexit 0\n`);
    chmodSync(hook, 0o755);
    berthOk(['jcreate', 'jname=lk1', 'base=bb'], opt());
    berthOk(['jset', 'jname=lk1', `mnt_start=${hook}`, 'mnt_stop=0'], opt());
    writeFileSync(join(wd, 'jails-data', 'lk1-data', 'root', 'note'), 'still here\n');
    writeFileSync(flag, '');
    const child = spawn(process.execPath, [BIN, 'jrename', 'old=lk1', 'new=lk2'], { env: { ...process.env, BERTH_WORKDIR: wd }, stdio: 'ignore' });
    const t0 = Date.now();
    while (!existsSync(pidFile)) {
      if (Date.now() - t0 > 60_000) assert.fail('the hook never started');
      await new Promise((r) => setTimeout(r, 50));
    }
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    process.kill(-Number(readFileSync(pidFile, 'utf8')), 'SIGKILL'); // the hook leads its own process group
    rmSync(flag);
    assert.ok(existsSync(join(wd, 'jails-lease', 'envs', 'lk2')), 'the new name was reserved before the kill');
    // jls starts the node's run monitor, which recovers the claim of the dead command (as the
    // next command on the env would): rolled back, Off under the old name
    const status = () => berthOk(['jls', '--json'], opt()).json.envs.find((e: any) => e.jname === 'lk1')?.status;
    for (const t1 = Date.now(); status() !== 'Off';) {
      if (Date.now() - t1 > 60_000) assert.fail(`lk1 was not recovered (status ${status()})`);
      await new Promise((r) => setTimeout(r, 200));
    }
    berthOk(['jstart', 'jname=lk1'], opt());
    assert.equal(berthOk(['jexec', 'jname=lk1', 'cat', '/root/note'], opt()).stdout, 'still here\n');
    berthOk(['jstop', 'jname=lk1'], opt());
    assert.ok(!existsSync(join(wd, 'jails-lease', 'envs', 'lk2')), 'the reservation was dropped');
    assert.equal(berth(['jstart', 'jname=lk2'], opt()).code, 3);
    berthOk(['jrename', 'old=lk1', 'new=lk2'], opt());
    berthOk(['jstart', 'jname=lk2'], opt());
    assert.equal(berthOk(['jexec', 'jname=lk2', 'cat', '/root/note'], opt()).stdout, 'still here\n');
    berthOk(['jstop', 'jname=lk2'], opt());
  });
});

describe('jrename with per-env GlusterFS mounts (the example hooks)', () => {
  let fx: TwoNodes;
  before(async () => { fx = await perEnvNodes(); });
  after(async () => { await fx?.cleanup(); });

  test('the hook renames the env on the volume; node2 sees the new name only; it runs on its data under the new name', () => {
    const { n1, n2, vol } = fx;
    n1.ok(['jcreate', 'jname=gr1', 'base=bb']);
    n1.ok(['jstart', 'jname=gr1']);
    n1.ok(['jexec', 'jname=gr1', 'sh', '-c', 'echo on-gluster > /root/note']);
    n1.ok(['jstop', 'jname=gr1']);
    assert.deepEqual(hookMounts(n1), []);
    const r = n1.run(['jrename', 'old=gr1', 'new=gr2', '-v'], 120_000);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(hookMounts(n1), [], 'nothing of the env stays mounted');
    for (const k of ['data', 'system', 'fstab']) {
      assert.ok(existsSync(join(vol.brick, k, 'gr2')), `${k}/gr2 on the volume`);
      assert.ok(!existsSync(join(vol.brick, k, 'gr1')), `${k}/gr1 gone from the volume`);
    }
    assert.ok(existsSync(join(vol.brick, 'system', 'gr2', 'rc.conf_gr2')));
    const log = readFileSync(join(n1.wd, 'var', 'log', 'gr2.log'), 'utf8');
    assert.match(log, /action=rename/);
    assert.match(log, /renaming data\/gr1 to data\/gr2/);
    const seen = n2.ok(['cluster', 'ls', '--json']).json.envs.map((e: any) => [e.jname, e.owner]);
    assert.deepEqual(seen, [['gr2', 'node1']]);
    n1.ok(['jstart', 'jname=gr2']);
    assert.deepEqual(hookMounts(n1), ['data/gr2 jails-data/gr2-data', 'fstab/gr2 jails-fstab/gr2', 'system/gr2 jails-system/gr2']);
    assert.equal(n1.ok(['jexec', 'jname=gr2', 'cat', '/root/note']).stdout, 'on-gluster\n');
    n1.ok(['jstop', 'jname=gr2']);
    assert.deepEqual(hookMounts(n1), []);
  });
});
