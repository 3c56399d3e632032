/**
 * The FreeBSD side of berth, verified by command transcripts: the real CLI (bin/berth, run
 * `npm run build` first) with BERTH_PLATFORM=freebsd and the fake FreeBSD tools of
 * test/helpers/fakebsd first on PATH. Each fake appends its argv to a transcript and keeps
 * a fake host state (jails, mount table, interfaces) that jls, mount -p and ifconfig
 * report. Each test runs a whole lifecycle (create, start, exec, stop, remove) and asserts
 * the exact commands in order: baserw=0 with fstab.local entries, baserw=1 from a base
 * fetched over HTTP, vnet, a jail that does not come up, and a jail that ends by itself
 * (torn down by berth's run monitor). Nothing here runs on FreeBSD; no root needed.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, ROOT, berth, type CliResult } from '../helpers/cli.js';
import { checkJailConf, effectiveParams } from '../helpers/jailconf-grammar.js';

const FAKE = join(ROOT, 'test', 'helpers', 'fakebsd');
const DATA_DIRS = ['etc', 'root', 'tmp', 'home', 'var', 'usr/local'];
const JLS = 'jls --libxo json -v';
const temps: string[] = [];
after(() => { for (const t of temps) rmSync(t, { recursive: true, force: true }); });

/** A fresh fake FreeBSD host with an initialised berth node `node1` and a base `b14`. */
function host() {
  const T = mkdtempSync(join(tmpdir(), 'berth-fbsd-it-'));
  temps.push(T);
  const WD = join(T, 'wd');
  const env: Record<string, string> = {
    BERTH_PLATFORM: 'freebsd',
    BERTH_WORKDIR: WD,
    PATH: `${FAKE}:${process.env.PATH}`,
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${join(FAKE, 'preload.mjs')}`.trim(),
    BERTH_FAKEBSD_STATE: join(T, 'state'),
    BERTH_FAKEBSD_TRANSCRIPT: join(T, 'transcript'),
  };
  const norm = (s: string) => s.split(WD).join('$WD').split(T).join('$T');
  /** Runs berth; asserts the exit code; returns the result. */
  const run = (args: string[], code = 0, extra: Record<string, string> = {}): CliResult => {
    const r = berth(args, { env: { ...env, ...extra } });
    assert.equal(r.code, code, `berth ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    return r;
  };
  /** The transcript since the last call, paths normalised ($WD, $T); then cleared. */
  const take = (file = 'transcript'): string[] => {
    const f = join(T, file);
    if (!existsSync(f)) return [];
    const lines = readFileSync(f, 'utf8').split('\n').filter(Boolean).map(norm);
    rmSync(f);
    return lines;
  };
  const stateFile = (name: string) => {
    const f = join(T, 'state', name);
    return existsSync(f) ? readFileSync(f, 'utf8') : '';
  };
  run(['initenv', `workdir=${WD}`, 'nodename=node1']);
  const src = join(T, 'src');
  for (const d of ['bin', 'etc', 'dev', 'usr/share']) mkdirSync(join(src, d), { recursive: true });
  writeFileSync(join(src, 'bin', 'sh'), '#!/fake\n', { mode: 0o755 });
  writeFileSync(join(src, 'etc', 'rc'), '# rc\n');
  run(['base', 'import', 'name=b14', `source=${src}`]);
  take();
  return { T, WD, env, run, take, stateFile, norm };
}

/** jstart's mounts of a baserw=0 env: the base read-only, then the data sub-dirs. */
const mountBase0 = (j: string, base = 'b14') => [
  `mount_nullfs -o ro $WD/bases/${base} $WD/jails/${j}`,
  ...DATA_DIRS.map((d) => `mount_nullfs $WD/jails-data/${j}-data/${d} $WD/jails/${j}/${d}`),
];
/** The teardown's unmounts: the table read before each `umount -f`, deepest (last mounted) first, and once at the end. */
const unmountAll = (targets: string[]) => [...targets.flatMap((t) => ['mount -p', `umount -f ${t}`]), 'mount -p'];
const base0Targets = (j: string) => [...[...DATA_DIRS].reverse().map((d) => `$WD/jails/${j}/${d}`), `$WD/jails/${j}`];

function jailConfOf(WD: string, j: string) {
  const jails = checkJailConf(readFileSync(join(WD, 'var', 'run', 'jail', `${j}.conf`), 'utf8')).jails;
  assert.equal(jails.length, 1);
  assert.equal(jails[0]!.name, j);
  return effectiveParams(jails[0]!);
}

test('baserw=0 jail with an address on the default route interface and fstab.local entries: create, start, exec, stop, remove', () => {
  const h = host();
  h.run(['jcreate', 'jname=web1', 'base=b14', 'ip4_addr=10.0.0.5/24', 'interface=auto', 'host_hostname=web1.example.org']);
  assert.deepEqual(h.take(), []);
  const share = join(h.T, 'share');
  mkdirSync(share);
  writeFileSync(join(h.WD, 'jails-fstab', 'web1', 'fstab.local'), `${share} /mnt/share nullfs ro 0 0\ntmpfs /tmp/scratch tmpfs rw,size=16m 0 0\n`);

  const s = h.run(['jstart', 'web1']);
  assert.match(s.stdout, /started: web1/);
  assert.deepEqual(h.take(), [
    ...mountBase0('web1'),
    'mount_nullfs -o ro $T/share $WD/jails/web1/mnt/share',
    'mount -t tmpfs -o rw,size=16m tmpfs $WD/jails/web1/tmp/scratch',
    'route -n get default',
    'jail -f $WD/var/run/jail/web1.conf -c web1',
    JLS,
  ]);
  const conf = jailConfOf(h.WD, 'web1');
  assert.deepEqual(conf.get('path'), [join(h.WD, 'jails', 'web1')]);
  assert.deepEqual(conf.get('host.hostname'), ['web1.example.org']);
  assert.deepEqual(conf.get('ip4.addr'), ['em0|10.0.0.5/24']);
  assert.deepEqual(conf.get('exec.start'), ['/bin/sh /etc/rc']);
  assert.deepEqual(conf.get('exec.stop'), ['/bin/sh /etc/rc.shutdown']);
  assert.deepEqual(conf.get('mount.devfs'), []);
  assert.match(h.stateFile('jails'), /^1\tweb1\t/m);
  assert.match(h.stateFile('mounts'), /^devfs\t\S+\/jails\/web1\/dev\tdevfs/m);

  const ls = h.run(['jls', '--json']);
  assert.deepEqual(ls.json.envs.map((e: { jname: string; status: string; jid: number }) => [e.jname, e.status, e.jid]), [['web1', 'On', 1]]);
  assert.deepEqual(h.take(), [JLS]);

  const x = h.run(['jexec', 'jname=web1', '/bin/echo', 'hello world']);
  assert.match(x.stdout, /fakebsd jexec web1: \/bin\/echo hello world/);
  assert.deepEqual(h.take(), [JLS, "jexec web1 /bin/echo 'hello world'"]);
  h.run(['jexec', 'jname=web1', 'false'], 7, { BERTH_FAKEBSD_JEXEC_EXIT: '7' });
  h.take();

  h.run(['jstop', 'web1']);
  assert.deepEqual(h.take(), [
    JLS,
    'jail -f $WD/var/run/jail/web1.conf -r web1',
    JLS,
    ...unmountAll(['$WD/jails/web1/tmp/scratch', '$WD/jails/web1/mnt/share', ...base0Targets('web1')]),
  ]);
  assert.equal(h.stateFile('mounts'), '');
  assert.equal(h.stateFile('jails'), '');
  assert.equal(existsSync(join(h.WD, 'var', 'run', 'jail', 'web1.conf')), false);
  h.run(['jexec', 'jname=web1', 'true'], 1);
  h.take();

  h.run(['jremove', 'web1']);
  assert.deepEqual(h.take(), ['mount -p', 'mount -p']);
  assert.equal(existsSync(join(h.WD, 'jails-data', 'web1-data')), false);
  assert.deepEqual(h.run(['jls', '--json']).json.envs, []);
});

test('baserw=1 jail from a base fetched over HTTP (MANIFEST checked), sharing the host addresses', async () => {
  const h = host();
  // a made-up FreeBSD release directory on a local server, in a child process (berth runs synchronously here)
  const rel = join(h.T, 'mirror', 'releases', 'amd64', 'amd64', '14.1-RELEASE');
  const tree = join(h.T, 'tree');
  for (const d of ['bin', 'etc', 'sbin']) mkdirSync(join(tree, d), { recursive: true });
  writeFileSync(join(tree, 'bin', 'sh'), '#!/fake\n', { mode: 0o755 });
  mkdirSync(rel, { recursive: true });
  execFileSync('tar', ['-cJf', join(rel, 'base.txz'), '-C', tree, '.']);
  const sum = createHash('sha256').update(readFileSync(join(rel, 'base.txz'))).digest('hex');
  writeFileSync(join(rel, 'MANIFEST'), `base.txz\t${sum}\t5\tbase\t"Base system (MANDATORY)"\ton\n`);
  const server = createServer((req, res) => {
    const f = join(h.T, 'mirror', decodeURIComponent(req.url ?? '/'));
    if (!f.startsWith(join(h.T, 'mirror')) || !existsSync(f)) { res.writeHead(404).end(); return; }
    res.writeHead(200).end(readFileSync(f));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const mirror = `http://127.0.0.1:${(server.address() as AddressInfo).port}/releases`;
    const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [BIN, 'base', 'fetch', 'ver=14.1', 'arch=amd64', `mirror=${mirror}`, 'name=f14', '--json'],
        { env: { ...process.env, ...h.env } }, (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }));
    });
    assert.equal(out.code, 0, out.stderr);
    const doc = JSON.parse(out.stdout);
    assert.equal(doc.base.sha256, sum);
    assert.equal(doc.base.path, join(h.WD, 'bases', 'f14'));
    assert.ok(existsSync(join(h.WD, 'bases', 'f14', 'bin', 'sh')));
  } finally {
    server.close();
  }
  assert.deepEqual(h.take(), []);

  h.run(['jcreate', 'jname=db1', 'base=f14', 'baserw=1']);
  assert.ok(existsSync(join(h.WD, 'jails-data', 'db1-data', 'bin', 'sh')));
  h.run(['jstart', 'jname=db1']);
  assert.deepEqual(h.take(), [
    'mount_nullfs $WD/jails-data/db1-data $WD/jails/db1',
    'jail -f $WD/var/run/jail/db1.conf -c db1',
    JLS,
  ]);
  const conf = jailConfOf(h.WD, 'db1');
  assert.deepEqual(conf.get('ip4'), ['inherit']);
  assert.deepEqual(conf.get('ip6'), ['inherit']);
  assert.equal(conf.has('ip4.addr'), false);
  h.run(['jstop', 'jname=db1']);
  assert.deepEqual(h.take(), [JLS, 'jail -f $WD/var/run/jail/db1.conf -r db1', JLS, ...unmountAll(['$WD/jails/db1'])]);
  h.run(['jremove', 'jname=db1']);
  assert.deepEqual(h.take(), ['mount -p', 'mount -p']);
  assert.equal(h.stateFile('mounts'), '');
});

test('vnet jail: an epair whose host end joins the bridge, the jail end moved in and configured; destroyed at stop', () => {
  const h = host();
  h.run(['jcreate', 'jname=gw1', 'base=b14', 'vnet=1', 'interface=bridge0', 'ip4_addr=10.1.0.10/24']);
  h.run(['jcreate', 'jname=gw2', 'base=b14', 'vnet=1', 'ip4_addr=10.1.0.11/24'], 2);
  h.run(['jcreate', 'jname=gw3', 'base=b14', 'vnet=1', 'interface=bridge0', 'ip4_addr=10.1.0.12'], 2);
  assert.deepEqual(h.take(), []);
  h.run(['jstart', 'gw1']);
  assert.deepEqual(h.take(), [
    ...mountBase0('gw1'),
    'ifconfig epair create',
    'ifconfig epair0a description berth/node1/gw1 up',
    'ifconfig bridge0 addm epair0a',
    'jail -f $WD/var/run/jail/gw1.conf -c gw1',
    JLS,
  ]);
  const conf = jailConfOf(h.WD, 'gw1');
  assert.deepEqual(conf.get('vnet'), ['new']);
  assert.deepEqual(conf.get('vnet.interface'), ['epair0b']);
  assert.deepEqual(conf.get('exec.start'), ['/sbin/ifconfig epair0b inet 10.1.0.10/24 up', '/bin/sh /etc/rc']);
  assert.equal(conf.has('ip4.addr'), false);
  assert.match(h.stateFile('ifaces'), /^bridge0\t[^\t]*\tepair0a$/m);
  assert.match(h.stateFile('ifaces'), /^epair0b\t\t\tgw1$/m);

  h.run(['jstop', 'gw1']);
  assert.deepEqual(h.take(), [
    JLS,
    'jail -f $WD/var/run/jail/gw1.conf -r gw1',
    JLS,
    'ifconfig epair0a',
    'ifconfig epair0a destroy',
    ...unmountAll(base0Targets('gw1')),
  ]);
  assert.doesNotMatch(h.stateFile('ifaces'), /epair/);
  assert.equal(h.stateFile('mounts'), '');
  h.run(['jremove', 'gw1']);
  h.take();
});

test('a jail that does not come up (jail -c exits 0, jls does not list it) fails jstart with exit 5 and is torn down', () => {
  const h = host();
  h.run(['jcreate', 'jname=web2', 'base=b14', 'vnet=1', 'interface=bridge0', 'ip4_addr=10.1.0.20/24']);
  const r = h.run(['jstart', 'web2'], 5, { BERTH_FAKEBSD_FAIL: 'jail-c-ghost' });
  assert.match(r.stderr, /web2 is not running after jail -c exited 0/);
  assert.deepEqual(h.take(), [
    ...mountBase0('web2'),
    'ifconfig epair create',
    'ifconfig epair0a description berth/node1/web2 up',
    'ifconfig bridge0 addm epair0a',
    'jail -f $WD/var/run/jail/web2.conf -c web2',
    JLS,
    'ifconfig epair0a destroy',
    JLS,
    ...unmountAll(base0Targets('web2')),
  ]);
  assert.equal(h.stateFile('mounts'), '');
  assert.doesNotMatch(h.stateFile('ifaces'), /epair/);
  assert.equal(existsSync(join(h.WD, 'var', 'run', 'jail', 'web2.conf')), false);
  assert.deepEqual(h.run(['jls', '--json']).json.envs.map((e: { status: string }) => e.status), ['Off']);
  h.take();
  // jail(8) itself failing is exit 5 too, with its message
  const f = h.run(['jstart', 'web2'], 5, { BERTH_FAKEBSD_FAIL: 'jail-c' });
  assert.match(f.stderr, /jail -f \S+web2.conf -c web2 failed with exit code 1: jail: web2: exec.start failed/);
  assert.equal(h.stateFile('mounts'), '');
  h.take();
  // and once it works, it starts
  h.run(['jstart', 'web2']);
  h.run(['jstop', 'web2']);
  h.run(['jremove', 'web2']);
});

test('a jail that ends by itself is torn down once by the run monitor: jail not removed again, mounts gone deepest first', async () => {
  const h = host();
  h.run(['jcreate', 'jname=web3', 'base=b14']);
  h.run(['jstart', 'web3']);
  h.take();
  h.take('transcript.monitor');
  // the jail goes away behind berth's back (its last process exited, or jail -R by hand)
  execFileSync(join(FAKE, 'jail'), ['-R', 'web3'], { env: { ...process.env, ...h.env } });
  // wait for the teardown to finish: the inventory row is Off with jid 0 only after it
  // (jls alone reports a dead On row as Off before that)
  const deadline = Date.now() + 60_000;
  let row = { status: '', jid: -1 };
  while (Date.now() < deadline) {
    row = h.run(['jls', '--json']).json.envs[0];
    if (row.status === 'Off' && row.jid === 0) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.deepEqual([row.status, row.jid], ['Off', 0]);
  assert.equal(h.stateFile('mounts'), '');
  const mon = h.take('transcript.monitor');
  assert.ok(!mon.some((l) => l.startsWith('jail ')), `the monitor ran jail(8): ${mon.join('\n')}`);
  // jail(8) did not run, so the devfs it mounted (mount.devfs) is still there: berth unmounts it first
  assert.deepEqual(mon.filter((l) => l !== JLS), unmountAll(['$WD/jails/web3/dev', ...base0Targets('web3')]));
  assert.deepEqual(h.take().filter((l) => l !== JLS), ['jail -R web3']);
  h.run(['jremove', 'web3']);
});

test('jregister of a jail descriptor with host commands (exec_prestart ...) needs a file only root can change', () => {
  const h = host();
  const rc = join(h.WD, 'jails-rcconf', 'rc.conf_adopt1');
  mkdirSync(join(h.WD, 'jails-data', 'adopt1-data', 'etc'), { recursive: true });
  writeFileSync(join(h.WD, 'jails-data', 'adopt1-data', 'etc', 'rc.conf'), '# adopted\n');
  writeFileSync(rc, 'jname="adopt1";\nemulator="jail";\nbase="b14";\nbaserw="0";\nhost_hostname="adopt1";\nexec_prestart="/sbin/evil";\nexec_poststop="0";\n', { mode: 0o644 });
  const unchanged = () => {
    assert.equal(h.run(['jls', '--json']).json.envs.find((e: any) => e.jname === 'adopt1')?.status, 'Unregister');
    assert.ok(!existsSync(join(h.WD, 'jails-system', 'adopt1')), 'no sysdir made');
    assert.ok(existsSync(rc), 'the waiting descriptor is kept');
  };
  execFileSync('chown', ['1000', rc]);
  const notRoot = h.run(['jregister', 'jname=adopt1'], 1);
  assert.match(notRoot.stderr, /refusing to adopt \S+rc\.conf_adopt1: it sets exec_prestart, which jail\(8\) runs on this host as root, and it is owned by uid 1000/);
  unchanged();
  execFileSync('chown', ['0', rc]);
  execFileSync('chmod', ['0664', rc]);
  assert.match(h.run(['jregister', 'jname=adopt1'], 1).stderr, /mode 0664 lets group change it/);
  unchanged();
  execFileSync('chmod', ['0644', rc]);
  h.run(['jregister', 'jname=adopt1']);
  assert.equal(h.run(['jget', 'jname=adopt1', 'key=exec_prestart']).stdout.trim(), '/sbin/evil');
});
