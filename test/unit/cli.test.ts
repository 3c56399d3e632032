/**
 * The berth binary itself (the bundled CLI, dist/bundle/berth.cjs, run as `node bin/berth`): version,
 * help, and the exit codes of a call that names no command or an unknown one (product.md:
 * 2 = usage error). No workdir is needed for any of these.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { berth, ROOT } from '../helpers/cli.js';

const NOWHERE = { env: { BERTH_WORKDIR: '/nonexistent/berth-cli-test' } };

test('--version prints the package version', () => {
  const r = berth(['--version'], NOWHERE);
  assert.equal(r.code, 0);
  assert.equal(r.stdout.trim(), (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
});

test('--help lists the commands and exits 0; a command has its own --help', () => {
  const r = berth(['--help'], NOWHERE);
  assert.equal(r.code, 0);
  for (const c of ['jcreate', 'jstart', 'jls', 'jregister', 'jmigrate', 'agent']) assert.match(r.stdout, new RegExp(`\\b${c}\\b`));
  const s = berth(['jstart', '--help'], NOWHERE);
  assert.equal(s.code, 0);
  assert.match(s.stdout, /jname/);
});

test('no command at all: help on stderr, nothing on stdout, exit 2', () => {
  const r = berth([], NOWHERE);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /jstart/);
});

test('a command group without its subcommand (base, node, cluster) is a usage error: help on stderr, exit 2', () => {
  for (const g of ['base', 'node', 'cluster']) {
    const r = berth([g], NOWHERE);
    assert.equal(r.code, 2, g);
    assert.equal(r.stdout, '', g);
    assert.match(r.stderr, /Usage/, g);
  }
  assert.equal(berth(['base', '--help'], NOWHERE).code, 0);
  assert.equal(berth(['help'], NOWHERE).code, 0);
});

test('an unknown command is a usage error (exit 2) naming it', () => {
  const r = berth(['jfrobnicate'], NOWHERE);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /jfrobnicate/);
});

test('the launcher uses the V8 code cache only when its SHA-256 header matches the bundle and the data (V8 checks only the source length)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-launcher-'));
  try {
    mkdirSync(join(dir, 'bin'));
    mkdirSync(join(dir, 'dist', 'bundle'), { recursive: true });
    copyFileSync(join(ROOT, 'bin', 'berth'), join(dir, 'bin', 'berth'));
    copyFileSync(join(ROOT, 'bin', 'package.json'), join(dir, 'bin', 'package.json'));
    const bundle = join(dir, 'dist', 'bundle', 'berth.cjs');
    const cache = bundle + '.v8cache';
    // two bundles of the same length that print different words
    const text = (w: string) => `exports.main = () => { process.stdout.write(${JSON.stringify(w)}); };\n`;
    const run = (env: Record<string, string> = {}) => spawnSync(process.execPath, [join(dir, 'bin', 'berth')], { encoding: 'utf8', env: { ...process.env, ...env } });
    const sha = (d: string | Buffer) => createHash('sha256').update(d).digest();
    writeFileSync(bundle, text('old'));
    assert.equal(run({ BERTH_WRITE_V8CACHE: '1' }).stdout, 'old');
    const oldCache = readFileSync(cache);
    assert.ok(oldCache.subarray(0, 32).equals(sha(text('old'))), 'the header names the bundle');
    assert.ok(oldCache.subarray(32, 64).equals(sha(oldCache.subarray(64))), 'and the data');
    // a cache whose header claims the new bundle is used: V8 then runs the OLD code (same
    // length), which shows both that the launcher passes the cache and why it checks hashes
    writeFileSync(bundle, text('new'));
    writeFileSync(cache, Buffer.concat([sha(text('new')), oldCache.subarray(32)]));
    assert.equal(run().stdout, 'old', 'a forged header is believed: the cache is really used');
    // the real cases: the old cache left next to a new bundle (even one with an older mtime,
    // as cp -p or tar would leave), a damaged cache, junk
    writeFileSync(cache, oldCache);
    utimesSync(bundle, new Date(Date.now() - 3600_000), new Date(Date.now() - 3600_000));
    assert.equal(run().stdout, 'new', 'a cache made from another bundle is not used');
    assert.equal(run({ BERTH_WRITE_V8CACHE: '1' }).stdout, 'new');
    writeFileSync(cache, 'not a cache');
    assert.equal(run().stdout, 'new', 'junk is ignored');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a damaged V8 code cache of the real bundle does not crash the CLI (V8 would: SIGTRAP, SIGSEGV)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-launcher-'));
  try {
    mkdirSync(join(dir, 'bin'));
    mkdirSync(join(dir, 'dist', 'bundle'), { recursive: true });
    for (const f of ['berth', 'package.json']) copyFileSync(join(ROOT, 'bin', f), join(dir, 'bin', f));
    copyFileSync(join(ROOT, 'dist', 'bundle', 'berth.cjs'), join(dir, 'dist', 'bundle', 'berth.cjs'));
    copyFileSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
    const cache = join(dir, 'dist', 'bundle', 'berth.cjs.v8cache');
    const run = (env: Record<string, string> = {}) => spawnSync(process.execPath, [join(dir, 'bin', 'berth'), '--version'], { encoding: 'utf8', env: { ...process.env, ...env } });
    const version = run({ BERTH_WRITE_V8CACHE: '1' }).stdout;
    assert.match(version, /^\d+\.\d+\.\d+\n$/);
    const good = readFileSync(cache);
    // 8 bytes overwritten here and there in the cache data (measured on Node 20: without the
    // launcher's SHA-256 check, most of these kill node with SIGTRAP or SIGSEGV)
    for (const frac of [0.1, 0.4, 0.5, 0.6, 0.8, 0.9]) {
      const d = Buffer.from(good);
      const at = 64 + Math.floor((d.length - 64) * frac);
      d.fill(0x41, at, at + 8);
      writeFileSync(cache, d);
      const r = run();
      assert.equal(r.signal, null, `damage at ${frac} of the cache killed node with ${r.signal}`);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, version);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CBSD-style common flags: debug=1 like json=1 and verbose=1; a flag value other than 1/0/true/false is exit 2', () => {
  const d = berth(['jls', 'debug=1'], NOWHERE);
  assert.doesNotMatch(d.stderr, /unknown option|bad debug/);
  assert.match(d.stderr, /not an initialised berth workdir/, 'it got as far as the workdir');
  for (const bad of ['json=yes', 'verbose=2', 'debug=on']) {
    const r = berth(['jls', bad], NOWHERE);
    assert.equal(r.code, 2, bad);
    assert.match(r.stderr, new RegExp(`bad ${bad.split('=')[0]}="${bad.split('=')[1]}": use`));
  }
});

test('a key given twice is exit 2, not the last one silently (jstop jname=web1 jname=web2 stopped only web2)', () => {
  const r = berth(['jstop', 'jname=web1', 'jname=web2'], NOWHERE);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /jname= is given twice; for several envs give a glob/);
  assert.equal(berth(['jset', 'jname=web1', 'ip4_addr=10.0.0.1/24', 'ip4_addr=10.0.0.2/24'], NOWHERE).code, 2);
  for (const args of [['--jname', 'web1', '--jname', 'web2'], ['--jname=web1', 'jname=web2'], ['jname=web1', '--jname', 'web2']]) {
    const d = berth(['jstop', ...args], NOWHERE);
    assert.equal(d.code, 2, args.join(' '));
    assert.match(d.stderr, /jname= is given twice/);
  }
  assert.doesNotMatch(berth(['jls', '--json', '--json'], NOWHERE).stderr, /given twice/, 'a flag twice is harmless');
});

test('tables show control characters as \\xNN (a descriptor on shared storage must not drive the terminal)', async () => {
  const { renderTable } = await import('../../src/cli/table.js');
  assert.equal(renderTable(['jname', 'host_hostname'], [['web1', 'a\u001b[2Jb\u0007'], ['web2', '']]), 'JNAME  HOST_HOSTNAME\nweb1   a\\x1b[2Jb\\x07\nweb2   -');
});

test('the agent fast path takes only `jstart|jstop <jname>` and `jname=<jname>`; globs, bad names, options, BERTH_* settings in the environment and BERTH_AGENT=0 go to the CLI', async () => {
  const { fastRequest } = await import('../../src/cli/fast.js');
  assert.deepEqual(fastRequest(['jstart', 'web1'], {}), { cmd: 'jstart', fast: { route: 'start', verb: 'started' }, jname: 'web1', family: 'j' });
  assert.deepEqual(fastRequest(['jstop', 'jname=web-1_a'], {}), { cmd: 'jstop', fast: { route: 'stop', verb: 'stopped' }, jname: 'web-1_a', family: 'j' });
  // the VM forms: the same routes, the request names family b (the agent refuses a jstop of a VM)
  assert.deepEqual(fastRequest(['bstop', 'vm1'], {}), { cmd: 'bstop', fast: { route: 'stop', verb: 'stopped' }, jname: 'vm1', family: 'b' });
  for (const argv of [['jstart', 'web*'], ['jstart', 'jname=web[12]'], ['jstart', 'a.b'], ['jstart', 'jname='], ['jstart', '-v'],
    ['jstart', 'web1', '--json'], ['jstart', 'web1', '-v'], ['jstart', '--jname=web1'], ['jrestart', 'web1'], ['jstart'], ['jremove', 'web1'], ['jstart', 'x'.repeat(65)]]) {
    assert.equal(fastRequest(argv, {}), undefined, argv.join(' '));
  }
  for (const env of [{ BERTH_AGENT: '0' }, { BERTH_DEBUG: '1' }, { BERTH_LOG_LEVEL: 'debug' }, { BERTH_LOG_LEVEL: 'DEBUG' }, { BERTH_LOG_LEVEL: 'silent' }, { BERTH_PLATFORM: 'freebsd' }]) {
    assert.equal(fastRequest(['jstart', 'web1'], env), undefined, JSON.stringify(env));
  }
  assert.deepEqual(fastRequest(['jstart', 'web1'], { BERTH_WORKDIR: '/x', BERTH_AGENT: '1', PATH: '/bin' }), { cmd: 'jstart', fast: { route: 'start', verb: 'started' }, jname: 'web1', family: 'j' });
});

test('without an agent socket the fast path declines and the CLI runs the command (here it says the workdir is not one)', async () => {
  const { viaAgent } = await import('../../src/cli/fast.js');
  assert.equal(await viaAgent(['jstart', 'web1'], NOWHERE.env), false);
  const r = berth(['jstart', 'web1'], NOWHERE);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /^berth jstart: \/nonexistent\/berth-cli-test is not an initialised berth workdir/);
});

test('the fast path declines, before connecting, a token that cannot be an HTTP header and a socket path its client refuses (white space)', async () => {
  const { viaAgent } = await import('../../src/cli/fast.js');
  const root = mkdtempSync(join(tmpdir(), 'berth fast '));
  try {
    const wd = join(root, 'wd');
    mkdirSync(join(wd, 'var', 'run'), { recursive: true });
    mkdirSync(join(wd, 'etc'));
    writeFileSync(join(wd, 'nodename'), 'n1\n');
    writeFileSync(join(wd, 'var', 'run', 'agent.sock'), ''); // exists; connecting to it would fail
    writeFileSync(join(wd, 'etc', 'api.token'), 'a'.repeat(64) + '\n');
    assert.equal(await viaAgent(['jstart', 'web1'], { BERTH_WORKDIR: wd }), false, 'a path with white space');
    // a listening socket that counts connections: the bad token must not even connect
    const wd2 = mkdtempSync(join(tmpdir(), 'berth-fast-'));
    mkdirSync(join(wd2, 'var', 'run'), { recursive: true });
    mkdirSync(join(wd2, 'etc'));
    writeFileSync(join(wd2, 'nodename'), 'n1\n');
    writeFileSync(join(wd2, 'etc', 'api.token'), 'abc\u0001def\n');
    let connections = 0;
    const server = createServer((c) => { connections++; c.destroy(); });
    await new Promise<void>((r) => server.listen(join(wd2, 'var', 'run', 'agent.sock'), r));
    try {
      assert.equal(await viaAgent(['jstop', 'web1'], { BERTH_WORKDIR: wd2 }), false, 'a control character in the token');
      assert.equal(connections, 0);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(wd2, { recursive: true, force: true });
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
