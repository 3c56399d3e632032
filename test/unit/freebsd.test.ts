/**
 * FreeBSD engine and mount primitive against the fake FreeBSD tools (test/helpers/fakebsd,
 * put first on PATH): exact commands, parsing of jls/mount -p/df -T output as FreeBSD
 * prints it, failure handling (a jail that does not come up, jail -c failing, stop
 * fallbacks, epair ownership). Nothing here needs root or FreeBSD.
 */
import { test, beforeEach, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BerthError } from '../../src/errors.js';
import { FreebsdMounts, parseDfT, parseMountP } from '../../src/mounts/freebsd.js';
import { unmountAllUnder } from '../../src/mounts/types.js';
import { JailEngine, parseJls } from '../../src/engines/jail/engine.js';
import type { EngineEnv } from '../../src/engines/types.js';
import { Workdir } from '../../src/paths.js';
import { ROOT } from '../helpers/cli.js';
import { checkJailConf, effectiveParams } from '../helpers/jailconf-grammar.js';

const FAKE = join(ROOT, 'test', 'helpers', 'fakebsd');
const PATH0 = process.env.PATH!;
// tinyexec (src/proc.ts) puts dirname(process.execPath) before PATH; with node in /usr/bin
// that would run the host's mount/umount/df. Point it at the fake dir (its `node` stand-in).
const EXEC0 = process.execPath;
process.execPath = join(FAKE, 'node');
const made: string[] = [];
after(() => {
  process.execPath = EXEC0;
  for (const d of made) rmSync(d, { recursive: true, force: true });
});
let dir: string;
let state: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-fbsd-'));
  made.push(dir);
  state = join(dir, 'state');
  process.env.PATH = `${FAKE}:${PATH0}`;
  process.env.BERTH_FAKEBSD_STATE = state;
  process.env.BERTH_FAKEBSD_TRANSCRIPT = join(dir, 'transcript');
  delete process.env.BERTH_FAKEBSD_FAIL;
  delete process.env.BERTH_FAKEBSD_DEFAULT_IFACE;
  delete process.env.BERTH_FAKEBSD_JEXEC_EXIT;
});

/** The transcript so far with the temp dir written as $T, then cleared. */
function take(): string[] {
  const f = join(dir, 'transcript');
  const lines = existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean).map((l) => l.split(dir).join('$T')) : [];
  rmSync(f, { force: true });
  return lines;
}

function env(jname: string, conf: Record<string, string>): EngineEnv {
  const wd = new Workdir(join(dir, 'wd'));
  const paths = wd.env(jname);
  mkdirSync(paths.path, { recursive: true });
  return { jname, nodename: 'node1', wd, paths, conf: { jname, ...conf } };
}

async function rejects(p: Promise<unknown>, code: string, exit: number, re?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof BerthError, String(e));
    assert.equal(e.code, code, e.message);
    assert.equal(e.exitCode, exit);
    if (re) assert.match(e.message, re);
    return true;
  });
}

test('parseMountP: putfsent padding (tabs, one space from 24 chars), spaces in paths, octal escapes', () => {
  const text = [
    '/dev/ada0p2\t\t/\t\t\tufs\trw\t\t1 1',
    'devfs\t\t\t/dev\t\t\tdevfs\trw,multilabel\t0 0',
    'zroot/usr/jails/bases/14.1-amd64 /usr/jails/jails/web1\tnullfs\tro\t\t0 0',
    '/usr/jails/jails-data/web1-data/etc /usr/jails/jails/web1/etc\tnullfs\trw\t\t0 0',
    'server:/export/my data\t/mnt/my data\tnfs\trw,nfsv4\t0 0',
    '/a\\040b\t\t\t/mnt/a\\040b\tnullfs\trw\t\t0 0',
    '',
  ].join('\n');
  assert.deepEqual(parseMountP(text), [
    { source: '/dev/ada0p2', target: '/', fstype: 'ufs', options: 'rw' },
    { source: 'devfs', target: '/dev', fstype: 'devfs', options: 'rw,multilabel' },
    { source: 'zroot/usr/jails/bases/14.1-amd64', target: '/usr/jails/jails/web1', fstype: 'nullfs', options: 'ro' },
    { source: '/usr/jails/jails-data/web1-data/etc', target: '/usr/jails/jails/web1/etc', fstype: 'nullfs', options: 'rw' },
    { source: 'server:/export/my data', target: '/mnt/my data', fstype: 'nfs', options: 'rw,nfsv4' },
    { source: '/a b', target: '/mnt/a b', fstype: 'nullfs', options: 'rw' },
  ]);
});

test('parseDfT: the Type column by header position, also with spaces in the device', () => {
  const freebsd = 'Filesystem          Type  1K-blocks    Used    Avail Capacity  Mounted on\nzroot/usr/jails     zfs    94371840 1234567 93137273     1%    /usr/jails\n';
  assert.equal(parseDfT(freebsd, '/usr/jails/x'), 'zfs');
  const spaced = 'Filesystem              Type     1K-blocks Used Avail Capacity  Mounted on\nfiler:/vol/my data      nfs       100      1    99     1%    /mnt\n';
  assert.equal(parseDfT(spaced, '/mnt'), 'nfs');
  assert.throws(() => parseDfT('df: /nope: No such file or directory\n', '/nope'), /E_FSTYPE|file system type/);
});

test('parseJls: libxo JSON version 2 of jls -v', () => {
  const text = '{"__version": "2", "jail-information": {"jail": [{"jid":83,"hostname":"","path":"/zroot/kleene_basejail","name":"web1","state":"ACTIVE","cpusetid":4, "ipv4_addrs": ["172.17.0.1","172.17.0.2"], "ipv6_addrs": []}]}}\n';
  assert.deepEqual(parseJls(text), [{ jid: 83, name: 'web1', path: '/zroot/kleene_basejail', hostname: '', state: 'ACTIVE', ipv4: ['172.17.0.1', '172.17.0.2'], ipv6: [] }]);
  assert.deepEqual(parseJls('{"__version": "2", "jail-information": {"jail": []}}\n'), []);
  assert.throws(() => parseJls('jls: not json'), (e: unknown) => e instanceof BerthError && e.code === 'E_JLS');
  assert.throws(() => parseJls('{"__version": "2"}'), (e: unknown) => e instanceof BerthError && e.code === 'E_JLS');
});

test('FreebsdMounts: mount_nullfs (-o ro), mount -t, mount -p table, df -T type, umount -f deepest first', async () => {
  const m = new FreebsdMounts();
  const base = join(dir, 'base'); const root = join(dir, 'root'); const data = join(dir, 'data');
  for (const d of [base, join(root, 'etc'), join(root, 'tmp'), join(root, 'mnt'), join(data, 'etc')]) mkdirSync(d, { recursive: true });
  await m.bind(base, root, { readonly: true });
  await m.mount(join(data, 'etc'), join(root, 'etc'), 'nullfs', 'rw');
  await m.mount(join(data, 'etc'), join(root, 'mnt'), 'nullfs', 'ro,noatime');
  await m.mount('tmpfs', join(root, 'tmp'), 'tmpfs', 'rw,size=64m');
  assert.deepEqual(take(), [
    'mount_nullfs -o ro $T/base $T/root',
    'mount_nullfs $T/data/etc $T/root/etc',
    'mount_nullfs -o ro,noatime $T/data/etc $T/root/mnt',
    'mount -t tmpfs -o rw,size=64m tmpfs $T/root/tmp',
  ]);
  const table = await m.list();
  assert.deepEqual(table.slice(2).map((e) => [e.source.split(dir).join('$T'), e.target.split(dir).join('$T'), e.fstype, e.options]), [
    ['$T/base', '$T/root', 'nullfs', 'ro'],
    ['$T/data/etc', '$T/root/etc', 'nullfs', 'rw'],
    ['$T/data/etc', '$T/root/mnt', 'nullfs', 'ro,noatime'],
    ['tmpfs', '$T/root/tmp', 'tmpfs', 'rw,size=64m'],
  ]);
  assert.equal(await m.fsType(join(root, 'tmp')), 'tmpfs');
  assert.equal(await m.fsType(dir), 'ufs');
  take();
  await rejects(m.unmount(root), 'E_UMOUNT', 5, /Device busy/);
  assert.deepEqual(await unmountAllUnder(m, root), [join(root, 'tmp'), join(root, 'mnt'), join(root, 'etc'), root]);
  const t = take();
  assert.deepEqual(t.filter((l) => l.startsWith('umount')), ['umount -f $T/root', 'umount -f $T/root/tmp', 'umount -f $T/root/mnt', 'umount -f $T/root/etc', 'umount -f $T/root']);
  assert.equal((await m.list()).length, 2);
  // unmounting something already gone is not an error
  await m.unmount(root);
  process.env.BERTH_FAKEBSD_FAIL = 'mount_nullfs';
  await rejects(m.bind(base, root, { readonly: false }), 'E_MOUNT', 5, /mount_nullfs/);
});

test('JailEngine.validate: bad values are usage errors naming key and value', () => {
  const e = new JailEngine();
  const ok: Record<string, string>[] = [{}, { ip4_addr: '10.0.0.5/24,fd00::1/64', interface: 'em0' }, { ip4_addr: '0' }, { vnet: '1', interface: 'bridge0', ip4_addr: '10.0.0.2/24' },
    { vnet: '1', interface: 'bridge0', ip4_addr: '0' }, { interface: 'auto', ip4_addr: '192.0.2.1' }, { enforce_statfs: '1', devfs: 'NO', exec_consolelog: '/var/log/x' }];
  for (const c of ok) assert.doesNotThrow(() => e.validate(c), JSON.stringify(c));
  const bad: [Record<string, string>, string][] = [
    [{ jname: '123' }, 'jname'], [{ ip4_addr: 'DHCP' }, 'ip4_addr'], [{ ip4_addr: '10.0.0.300' }, 'ip4_addr'],
    [{ vnet: '1', interface: 'bridge0', ip4_addr: '10.0.0.2' }, 'ip4_addr'], [{ vnet: '1', ip4_addr: '10.0.0.2/24' }, 'interface'],
    [{ vnet: '1', interface: 'auto', ip4_addr: '10.0.0.2/24' }, 'interface'], [{ interface: 'em0; rm' }, 'interface'],
    [{ ip6_addr: '10.0.0.1' }, 'ip6_addr'], [{ enforce_statfs: '3' }, 'enforce_statfs'], [{ persist: 'yes' }, 'persist'],
    [{ stop_timeout: '-1' }, 'stop_timeout'], [{ exec_consolelog: 'rel/path' }, 'exec_consolelog'], [{ sysvshm: 'maybe' }, 'sysvshm'],
    [{ vnet: '2' }, 'vnet'], [{ host_hostname: 'a\nb' }, 'host_hostname'],
  ];
  for (const [c, key] of bad) {
    assert.throws(() => e.validate(c), (x: unknown) => x instanceof BerthError && x.code === 'E_BAD_VALUE' && x.exitCode === 2 && x.message.startsWith(`bad ${key}=`), JSON.stringify(c));
  }
});

test('JailEngine: start, state, stop, cleanup of a jail with an address on the default route interface', async () => {
  const e = new JailEngine();
  const en = env('web1', { ip4_addr: '10.0.0.5/24', interface: 'auto', stop_timeout: '10' });
  const { jid } = await e.start(en);
  assert.equal(jid, 1);
  assert.deepEqual(take(), ['route -n get default', 'jail -f $T/wd/var/run/jail/web1.conf -c web1', 'jls --libxo json -v']);
  const conf = e.confFile(en);
  const eff = effectiveParams(checkJailConf(readFileSync(conf, 'utf8')).jails[0]!);
  assert.deepEqual(eff.get('ip4.addr'), ['em0|10.0.0.5/24']);
  assert.deepEqual(eff.get('path'), [en.paths.path]);
  assert.equal(await e.isRunning(en, jid), true);
  assert.equal(await e.isRunning(en, 0), true);
  take();
  await e.stop(en, 7);
  assert.deepEqual(take(), ['jls --libxo json -v', 'jail -f $T/wd/var/run/jail/web1.conf -r web1', 'jls --libxo json -v']);
  assert.deepEqual(effectiveParams(checkJailConf(readFileSync(conf, 'utf8')).jails[0]!).get('stop.timeout'), ['7']);
  assert.equal(await e.isRunning(en, jid), false);
  await e.stop(en, 7); // idempotent: only looks
  assert.deepEqual(take(), ['jls --libxo json -v', 'jls --libxo json -v']);
  await e.cleanup(en);
  assert.equal(existsSync(conf), false);
  assert.deepEqual(take(), []);
});

test('JailEngine: vnet jail gets an epair on the bridge; cleanup destroys only its own epair', async () => {
  const e = new JailEngine();
  const en = env('gw3', { vnet: '1', interface: 'bridge0', ip4_addr: '10.1.0.10/24' });
  await e.start(en);
  assert.deepEqual(take(), [
    'ifconfig epair create',
    'ifconfig epair0a description berth/node1/gw3 up',
    'ifconfig bridge0 addm epair0a',
    'jail -f $T/wd/var/run/jail/gw3.conf -c gw3',
    'jls --libxo json -v',
  ]);
  const eff = effectiveParams(checkJailConf(readFileSync(e.confFile(en), 'utf8')).jails[0]!);
  assert.deepEqual(eff.get('vnet.interface'), ['epair0b']);
  assert.deepEqual(eff.get('exec.start'), ['/sbin/ifconfig epair0b inet 10.1.0.10/24 up', '/bin/sh /etc/rc']);
  await e.stop(en, 10);
  take();
  await e.cleanup(en);
  assert.deepEqual(take(), ['ifconfig epair0a', 'ifconfig epair0a destroy']);
  assert.doesNotMatch(readFileSync(join(state, 'ifaces'), 'utf8'), /epair0/);

  // the recorded epair was destroyed behind berth's back and its number reused by someone else
  await e.start(en);
  await e.stop(en, 10);
  take();
  const { run } = await import('../../src/proc.js');
  await run(['ifconfig', 'epair1a', 'destroy']);
  assert.equal((await run(['ifconfig', 'epair', 'create'])).stdout.trim(), 'epair2a');
  // simulate reuse: rename epair2a to epair1a in the fake's table
  const ifaces = readFileSync(join(state, 'ifaces'), 'utf8').replace(/^epair2a\t/m, 'epair1a\t').replace(/^epair2b\t/m, 'epair1b\t');
  (await import('node:fs')).writeFileSync(join(state, 'ifaces'), ifaces);
  take();
  await e.cleanup(en);
  assert.deepEqual(take(), ['ifconfig epair1a']);
  assert.match(readFileSync(join(state, 'ifaces'), 'utf8'), /^epair1a\t/m);
});

test('JailEngine: a jail that does not come up is an error, and start undoes its epair and conf', async () => {
  const e = new JailEngine();
  const en = env('gw4', { vnet: '1', interface: 'bridge0', ip4_addr: '10.1.0.11/24' });
  process.env.BERTH_FAKEBSD_FAIL = 'jail-c-ghost';
  await rejects(e.start(en), 'E_JAIL_START', 5, /not running after jail -c exited 0/);
  assert.deepEqual(take(), [
    'ifconfig epair create', 'ifconfig epair0a description berth/node1/gw4 up', 'ifconfig bridge0 addm epair0a',
    'jail -f $T/wd/var/run/jail/gw4.conf -c gw4', 'jls --libxo json -v', 'ifconfig epair0a destroy',
  ]);
  assert.equal(existsSync(e.confFile(en)), false);
  process.env.BERTH_FAKEBSD_FAIL = 'jail-c';
  await rejects(e.start(en), 'E_JAIL_START', 5, /exit code 1: jail: gw4: exec.start failed/);
  assert.equal(take().at(-1), 'ifconfig epair1a destroy');
  process.env.BERTH_FAKEBSD_FAIL = 'ifconfig-addm';
  await rejects(e.start(en), 'E_VNET', 5);
  assert.deepEqual(take().slice(-2), ['ifconfig bridge0 addm epair2a', 'ifconfig epair2a destroy']);
  assert.doesNotMatch(readFileSync(join(state, 'ifaces'), 'utf8'), /epair/);
  delete process.env.BERTH_FAKEBSD_FAIL;
  process.env.BERTH_FAKEBSD_DEFAULT_IFACE = '';
  await rejects(e.start(env('web9', { ip4_addr: '10.0.0.9', interface: 'auto' })), 'E_NO_DEFAULT_IFACE', 5);
});

test('JailEngine: a jail of the same name on another root (another workdir) is neither ours nor stopped', async () => {
  const e = new JailEngine();
  const other = env('web7', {});
  await e.start(other);
  const mine = { ...other, paths: { ...other.paths, path: join(dir, 'elsewhere') } };
  take();
  assert.equal(await e.isRunning(mine, 0), false);
  await e.stop(mine, 5);
  assert.deepEqual(take(), ['jls --libxo json -v', 'jls --libxo json -v']);
  assert.equal(await e.isRunning(other, 0), true);
});

test('JailEngine: stop falls back to jail -R when jail -r fails; exec returns the command status', async () => {
  const e = new JailEngine();
  const en = env('web2', {});
  await e.start(en);
  take();
  process.env.BERTH_FAKEBSD_JEXEC_EXIT = '3';
  assert.equal(await e.exec(en, ['/bin/echo', 'hi there'], {}), 3);
  assert.deepEqual(take(), ["jexec web2 /bin/echo 'hi there'"]);
  process.env.BERTH_FAKEBSD_FAIL = 'jail-r';
  await e.stop(en, 5);
  assert.deepEqual(take(), ['jls --libxo json -v', 'jail -f $T/wd/var/run/jail/web2.conf -r web2', 'jls --libxo json -v', 'jail -R web2', 'jls --libxo json -v']);
  assert.equal(await e.isRunning(en, 1), false);
  await e.start(en);
  process.env.BERTH_FAKEBSD_FAIL = 'jail-r jail-R';
  await rejects(e.stop(en, 5), 'E_JAIL_STOP', 5);
});
