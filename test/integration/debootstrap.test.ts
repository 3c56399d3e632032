/**
 * `berth base debootstrap` on the real network and runc (issue 15): a minbase bookworm base
 * (packages and the finished tree cached between runs on this machine in
 * {@link CACHE}, so only the first run downloads), an env made from it runs `apt --version`;
 * an unreachable mirror, a missing suite and a ^C in the middle of debootstrap leave nothing
 * in bases/ and nothing mounted; on a terminal (a pty from script(1)) progress is shown,
 * without one or with --json it is not.
 * Needs root, debootstrap, debian-archive-keyring, runc, util-linux's script and a Debian mirror.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, berth, berthOk, isRoot, mountTable, newNode } from '../helpers/cli.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

/** Kept between test runs on one machine: the first run downloads, later ones copy the kept tree. */
const CACHE = '/var/cache/berth-test-debootstrap';
let wd: string;
const env = () => ({ workdir: wd, timeoutMs: 900_000 });
const bases = () => readdirSync(join(wd, 'bases')).sort();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs berth under a pseudo-terminal (script -qec) and returns what the terminal got. */
function underPty(args: string[]): { code: number; out: string } {
  const cmd = [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', env: { ...process.env, BERTH_WORKDIR: wd }, timeout: 900_000 });
  return { code: r.status ?? -1, out: r.stdout };
}

before(() => {
  wd = newNode('debn1');
});

after(() => {
  for (const j of ['deb1']) berth(['jstop', `jname=${j}`], env());
  for (const j of ['deb1']) berth(['jremove', `jname=${j}`], env());
});

describe('base debootstrap', () => {
  test('minbase bookworm: a base whose env runs apt; the build host\'s identity is not in it', () => {
    const r = berthOk(['base', 'debootstrap', 'name=bookworm', 'suite=bookworm', 'variant=minbase', `cache=${CACHE}`, '--json'], env());
    const b = r.json.base;
    assert.equal(b.kind, 'debootstrap');
    assert.equal(b.suite, 'bookworm');
    assert.equal(b.cacheDir, CACHE);
    assert.deepEqual(bases(), ['bookworm'], 'the base, no temp dir left');
    const root = join(wd, 'bases', 'bookworm');
    assert.ok(existsSync(join(root, 'usr/bin/apt')));
    assert.ok(existsSync(join(root, 'var/lib/apt/lists')), 'apt lists kept from the verified Release');
    assert.equal(existsSync(join(root, 'etc/hostname')), false, 'the build host\'s hostname is not copied');
    assert.doesNotMatch(readFileSync(join(root, 'etc/resolv.conf'), 'utf8'), /^nameserver 127\./m);
    assert.ok(readdirSync(CACHE).some((n) => n.endsWith('.deb')), 'packages cached for the next run');
    assert.ok(existsSync(join(CACHE, 'trees')), 'the finished tree kept for the next run');

    berthOk(['jcreate', 'jname=deb1', 'base=bookworm'], env());
    berthOk(['jstart', 'jname=deb1'], env());
    const apt = berth(['jexec', 'jname=deb1', 'apt', '--version'], env());
    assert.equal(apt.code, 0, apt.stderr);
    assert.match(apt.stdout, /^apt \d+\.\d+/);
    assert.equal(berthOk(['jexec', 'jname=deb1', 'hostname'], env()).stdout.trim(), 'deb1');
    berthOk(['jstop', 'jname=deb1'], env());
    berthOk(['jremove', 'jname=deb1'], env());
  });

  test('a second run reuses the cache: the kept tree is copied (the mirror\'s signed InRelease unchanged)', () => {
    const r = berthOk(['base', 'debootstrap', 'name=bookworm2', 'suite=bookworm', `cache=${CACHE}`, '--json'], env());
    assert.equal(r.json.base.reusedTree, true);
    assert.ok(existsSync(join(wd, 'bases/bookworm2/usr/bin/apt')));
    assert.equal(existsSync(join(wd, 'bases/bookworm2/etc/hostname')), false);
    berthOk(['base', 'remove', 'name=bookworm2'], env());
  });

  test('on a terminal the run shows progress; without one, or with --json, it does not', () => {
    const t = underPty(['base', 'debootstrap', 'name=ptyb', 'suite=bookworm', `cache=${CACHE}`]);
    assert.equal(t.code, 0, t.out);
    assert.match(t.out, /copying cached tree .*MiB .*MiB\/s/);
    berthOk(['base', 'remove', 'name=ptyb'], env());
    const j = underPty(['base', 'debootstrap', 'name=ptyj', 'suite=bookworm', `cache=${CACHE}`, '--json']);
    assert.equal(j.code, 0, j.out);
    assert.doesNotMatch(j.out, /MiB\/s/);
    berthOk(['base', 'remove', 'name=ptyj'], env());
    const p = berthOk(['base', 'debootstrap', 'name=pipe', 'suite=bookworm', `cache=${CACHE}`], env());
    assert.doesNotMatch(p.stderr, /MiB\/s/);
    berthOk(['base', 'remove', 'name=pipe'], env());
  });

  test('an unreachable mirror: exit 1 E_MIRROR_UNREACHABLE, nothing in bases/', () => {
    const before = bases();
    const r = berth(['base', 'debootstrap', 'name=nomirror', 'suite=bookworm', 'mirror=http://127.0.0.1:9/debian', `cache=${CACHE}`, '--json'], env());
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.json.error.code, 'E_MIRROR_UNREACHABLE');
    assert.match(r.json.error.message, /127\.0\.0\.1:9/);
    assert.deepEqual(bases(), before);
  });

  test('a suite the mirror does not have: exit 3 E_NO_SUCH_SUITE, nothing in bases/', () => {
    const before = bases();
    const r = berth(['base', 'debootstrap', 'name=nosuite', 'suite=nosuchsuite', `cache=${CACHE}`, '--json'], env());
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.json.error.code, 'E_NO_SUCH_SUITE');
    assert.deepEqual(bases(), before);
  });

  test('bad input is refused before anything runs (exit 2)', () => {
    const before = bases();
    for (const [arg, code] of [['variant=huge', 'E_BAD_VARIANT'], ['include=curl,--no-check-gpg', 'E_BAD_PACKAGE'], ['mirror=ftp://x/debian', 'E_BAD_URL']]) {
      const r = berth(['base', 'debootstrap', 'name=bad', 'suite=bookworm', arg!, '--json'], env());
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.json.error.code, code);
    }
    assert.deepEqual(bases(), before);
  });

  test('^C in the middle of debootstrap: debootstrap stops, its mounts go, nothing is left in bases/', async () => {
    const before = bases();
    const mountsBefore = mountTable(wd);
    // a different package set than the kept tree, so debootstrap really runs (from the cached packages)
    const child = spawn(process.execPath, [BIN, 'base', 'debootstrap', 'name=intr', 'suite=bookworm', 'include=less', `cache=${CACHE}`],
      { env: { ...process.env, BERTH_WORKDIR: wd }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    const exited = new Promise<number>((r) => child.once('exit', (c, s) => r(c ?? (s ? 128 : -1))));
    // wait until debootstrap is well under way: its temp tree holds /usr/bin
    const end = Date.now() + 600_000;
    let tmp: string | undefined;
    while (Date.now() < end) {
      tmp = readdirSync(join(wd, 'bases')).find((n) => n.startsWith('.debootstrap-intr-'));
      if (tmp && existsSync(join(wd, 'bases', tmp, 'usr/bin'))) break;
      await sleep(200);
    }
    assert.ok(tmp, 'the temp tree appeared');
    process.kill(-child.pid!, 'SIGINT'); // as a terminal's ^C: the whole foreground process group
    const code = await exited;
    assert.equal(code, 130, stderr);
    assert.deepEqual(bases(), before, 'nothing left in bases/');
    assert.deepEqual(mountTable(wd), mountsBefore, 'nothing left mounted');
  });
});
