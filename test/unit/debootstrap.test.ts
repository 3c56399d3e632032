/** src/debootstrap.ts without the network: apt sources parsing, option checks, argv, resolv.conf, the mirror probe. */
import { test, describe, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { BerthError } from '../../src/errors.js';
import { FALLBACK_MIRROR, KEYRING, baseResolvConf, checkDebootstrapOptions, debootstrapArgv, hostMirror, parseDeb822Sources, parseOneLineSources, probeSuite } from '../../src/debootstrap.js';

const dir = mkdtempSync(join(tmpdir(), 'deb-unit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function throwsCode(fn: () => unknown, code: string, exit: number, re?: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof BerthError && e.code === code && e.exitCode === exit && (!re || re.test(e.message)));
}
async function rejectsCode(p: Promise<unknown>, code: string, exit: number): Promise<BerthError> {
  try { await p; } catch (e) {
    assert.ok(e instanceof BerthError, String(e));
    assert.equal(e.code, code, e.message);
    assert.equal(e.exitCode, exit);
    return e;
  }
  assert.fail('expected a rejection');
}

describe('apt sources', () => {
  test('deb822: the first main archive, security and disabled stanzas skipped', () => {
    const text = `Types: deb\n# comment\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n\nTypes: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n`;
    assert.deepEqual(parseDeb822Sources(text).map((s) => s.uri), ['http://deb.debian.org/debian', 'http://deb.debian.org/debian-security']);
    const apt = join(dir, 'apt1');
    mkdirSync(join(apt, 'sources.list.d'), { recursive: true });
    writeFileSync(join(apt, 'sources.list.d', 'a.sources'), `Types: deb\nURIs: http://security.debian.org/debian-security\nSuites: bookworm-security\n\nEnabled: no\nTypes: deb\nURIs: http://off.example/debian\nSuites: bookworm\n\nTypes: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm\n`);
    assert.equal(hostMirror(apt), 'http://mirror.example/debian');
  });

  test('one-line sources.list, with [options]; none at all falls back to deb.debian.org', () => {
    assert.deepEqual(parseOneLineSources('# x\ndeb [signed-by=/k.gpg arch=amd64] http://ftp.example/debian bookworm main\ndeb-src http://x/debian bookworm main\n'),
      [{ uri: 'http://ftp.example/debian', suites: ['bookworm'] }]);
    const apt = join(dir, 'apt2');
    mkdirSync(apt, { recursive: true });
    writeFileSync(join(apt, 'sources.list'), 'deb http://security.debian.org/debian-security bookworm-security main\ndeb http://ftp.example/debian bookworm main\n');
    assert.equal(hostMirror(apt), 'http://ftp.example/debian');
    assert.equal(hostMirror(join(dir, 'none')), FALLBACK_MIRROR);
  });
});

describe('options', () => {
  const cache = '/var/lib/berth/var/cache/debootstrap';
  test('defaults: minbase, the cache under the workdir, no includes', () => {
    const o = checkDebootstrapOptions({ suite: 'bookworm', mirror: 'http://m.example/debian/' }, cache);
    assert.deepEqual(o, { suite: 'bookworm', mirror: 'http://m.example/debian', variant: 'minbase', include: [], cacheDir: cache });
  });
  test('bad values are usage errors naming the value', () => {
    throwsCode(() => checkDebootstrapOptions({ suite: '' }, cache), 'E_BAD_SUITE', 2);
    throwsCode(() => checkDebootstrapOptions({ suite: '../etc' }, cache), 'E_BAD_SUITE', 2, /\.\.\/etc/);
    throwsCode(() => checkDebootstrapOptions({ suite: 'bookworm', mirror: 'ftp://x/debian' }, cache), 'E_BAD_URL', 2, /ftp:/);
    throwsCode(() => checkDebootstrapOptions({ suite: 'bookworm', mirror: 'not a url' }, cache), 'E_BAD_URL', 2);
    throwsCode(() => checkDebootstrapOptions({ suite: 'bookworm', mirror: 'http://m/debian', variant: 'huge' }, cache), 'E_BAD_VARIANT', 2, /huge/);
    throwsCode(() => checkDebootstrapOptions({ suite: 'bookworm', mirror: 'http://m/debian', include: ['curl', '--no-check-gpg'] }, cache), 'E_BAD_PACKAGE', 2, /--no-check-gpg/);
    throwsCode(() => checkDebootstrapOptions({ suite: 'bookworm', mirror: 'http://m/debian', cacheDir: 'rel/dir' }, cache), 'E_BAD_VALUE', 2, /rel\/dir/);
  });
  test('argv: keyring always, never --no-check-gpg; includes and arch when given', () => {
    const o = checkDebootstrapOptions({ suite: 'bookworm', mirror: 'http://m/debian', include: ['curl', ' ca-certificates '] }, cache);
    assert.deepEqual(debootstrapArgv('debootstrap', { ...o, arch: 'arm64' }, '/t'),
      ['debootstrap', '--variant=minbase', `--keyring=${KEYRING}`, `--cache-dir=${cache}`, '--include=curl,ca-certificates', '--arch=arm64', 'bookworm', '/t', 'http://m/debian']);
    assert.ok(!debootstrapArgv('debootstrap', o, '/t').some((a) => a.includes('no-check')));
  });
});

test('resolv.conf of a base: the host\'s non-loopback name servers only', () => {
  const r = baseResolvConf('# generated\nsearch example.org\nnameserver 127.0.0.53\nnameserver 10.1.2.3\nnameserver ::1\nnameserver 2001:db8::1\noptions edns0\n');
  assert.match(r, /^# written by berth/);
  assert.match(r, /^search example\.org$/m);
  assert.match(r, /^nameserver 10\.1\.2\.3$/m);
  assert.match(r, /^nameserver 2001:db8::1$/m);
  assert.doesNotMatch(r, /127\.0\.0\.53|^nameserver ::1$/m);
});

describe('mirror probe', () => {
  let server: Server;
  let url = '';
  before(async () => {
    server = createServer((req, res) => {
      if (req.url === '/debian/dists/bookworm/Release') { res.writeHead(200); res.end('Origin: Debian\n'); return; }
      if (req.url?.startsWith('/broken/')) { res.writeHead(500); res.end(); return; }
      res.writeHead(404); res.end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  test('a suite the mirror has passes; one it lacks is E_NO_SUCH_SUITE (exit 3)', async () => {
    await probeSuite(`${url}/debian`, 'bookworm');
    const e = await rejectsCode(probeSuite(`${url}/debian`, 'nosuchsuite'), 'E_NO_SUCH_SUITE', 3);
    assert.match(e.message, /nosuchsuite/);
  });
  test('no answer (nothing listens) or a server error is E_MIRROR_UNREACHABLE (exit 1)', async () => {
    const e = await rejectsCode(probeSuite('http://127.0.0.1:9/debian', 'bookworm', 5), 'E_MIRROR_UNREACHABLE', 1);
    assert.match(e.message, /127\.0\.0\.1:9/);
    await rejectsCode(probeSuite(`${url}/broken`, 'bookworm'), 'E_MIRROR_UNREACHABLE', 1);
  });
});
