/**
 * base fetch (src/fetch.ts) against a local HTTP server on 127.0.0.1 serving a small
 * made-up base.txz and its MANIFEST in the FreeBSD mirror layout: good checksum, bad
 * checksum, broken downloads (resumed with Range within a run and by the next run), a
 * server that ignores Range, missing releases. After every failure bases/ is empty.
 */
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { BerthError } from '../../src/errors.js';
import { fetchBase, machineOf, parseManifest, releaseName, releaseUrl, type FetchProgress } from '../../src/fetch.js';
import { Workdir } from '../../src/paths.js';

const REL = '/releases/amd64/amd64/14.1-RELEASE/';
let server: Server;
let mirror: string;
let txz: Buffer;
let sum: string;
let dir: string;
let wd: Workdir;

/** What the server does; tests change it. */
const mode = {
  manifestSum: '' as string,
  /** serve only this many bytes of base.txz, then cut the connection (per request; -1 = all) */
  cutAfter: [] as number[],
  ignoreRange: false,
  status: 0,
};
const requests: { url: string; range?: string }[] = [];

function manifest(s: string): string {
  return [
    `base-dbg.txz\t${'0'.repeat(64)}\t1234\tbase_dbg\t"Base system (Debugging)"\toff`,
    `base.txz\t${s}\t28456\tbase\t"Base system (MANDATORY)"\ton`,
    `kernel.txz\t${'1'.repeat(64)}\t812\tkernel\t"Kernel (MANDATORY)"\ton`,
    '',
  ].join('\n');
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  requests.push({ url: req.url!, range: req.headers.range });
  if (mode.status) { res.writeHead(mode.status).end('no'); return; }
  if (req.url === REL + 'MANIFEST') { res.writeHead(200, { 'content-type': 'text/plain' }).end(manifest(mode.manifestSum || sum)); return; }
  if (req.url !== REL + 'base.txz') { res.writeHead(404).end('not found'); return; }
  let start = 0;
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (m && !mode.ignoreRange) {
    start = Number(m[1]);
    if (start >= txz.length) { res.writeHead(416, { 'content-range': `bytes */${txz.length}` }).end(); return; }
    res.writeHead(206, { 'content-length': txz.length - start, 'content-range': `bytes ${start}-${txz.length - 1}/${txz.length}` });
  } else {
    res.writeHead(200, { 'content-length': txz.length, 'accept-ranges': 'bytes' });
  }
  const cut = mode.cutAfter.shift() ?? -1;
  const body = txz.subarray(start);
  if (cut >= 0 && cut < body.length) {
    res.write(body.subarray(0, cut), () => setTimeout(() => res.socket?.destroy(), 200));
    return;
  }
  res.end(body);
}

/** temp dirs of this file, removed after it (no mounts in them: plain files only) */
const made: string[] = [];

before(async () => {
  const src = mkdtempSync(join(tmpdir(), 'berth-fetch-src-'));
  made.push(src);
  mkdirSync(join(src, 'bin'));
  mkdirSync(join(src, 'etc'));
  writeFileSync(join(src, 'bin', 'sh'), '#!/fake/sh\n', { mode: 0o755 });
  writeFileSync(join(src, 'etc', 'rc'), '# rc\n');
  writeFileSync(join(src, 'etc', 'blob'), randomBytes(200_000)); // incompressible: base.txz ~200 kB
  const out = join(src, '..', `${src.split('/').pop()}.txz`);
  execFileSync('tar', ['-cJf', out, '-C', src, '.']);
  txz = readFileSync(out);
  sum = createHash('sha256').update(txz).digest('hex');
  rmSync(src, { recursive: true });
  rmSync(out);
  server = createServer(handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  mirror = `http://127.0.0.1:${(server.address() as AddressInfo).port}/releases`;
});

after(() => {
  server.close(); server.closeAllConnections();
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'berth-fetch-'));
  made.push(dir);
  wd = new Workdir(join(dir, 'wd'));
  mkdirSync(wd.bases, { recursive: true });
  Object.assign(mode, { manifestSum: '', cutAfter: [], ignoreRange: false, status: 0 });
  requests.length = 0;
});

const opts = (extra: object = {}) => ({ workdir: wd, ver: '14.1', arch: 'amd64', mirror, attempts: 3, retryDelayMs: 1, idleTimeoutSec: 10, ...extra });

async function rejects(p: Promise<unknown>, code: string, exit: number, re?: RegExp): Promise<BerthError> {
  let err: BerthError | undefined;
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof BerthError, String(e));
    assert.equal(e.code, code, e.message);
    assert.equal(e.exitCode, exit);
    if (re) assert.match(e.message, re);
    err = e;
    return true;
  });
  return err!;
}

const txzRequests = () => requests.filter((r) => r.url.endsWith('base.txz'));
const cacheDir = () => join(wd.root, 'var', 'cache', 'fetch', '14.1-RELEASE-amd64');

test('names: release, arch and mirror layout (bsdinstall: releases/<machine>/<machine_arch>/<ver>)', () => {
  assert.equal(releaseName('14.1'), '14.1-RELEASE');
  assert.equal(releaseName('15.0-RC2'), '15.0-RC2');
  assert.deepEqual(machineOf('arm64'), ['arm64', 'aarch64']);
  assert.deepEqual(machineOf('powerpc64le'), ['powerpc', 'powerpc64le']);
  assert.equal(releaseUrl('https://download.freebsd.org/releases/', 'aarch64', '14.1'), 'https://download.freebsd.org/releases/arm64/aarch64/14.1-RELEASE/');
  assert.throws(() => releaseName('latest'), (e: unknown) => e instanceof BerthError && e.exitCode === 2 && e.code === 'E_BAD_VER');
  assert.throws(() => machineOf('sparc64'), (e: unknown) => e instanceof BerthError && e.exitCode === 2 && e.code === 'E_BAD_ARCH');
});

test('parseManifest: FreeBSD MANIFEST lines (tab separated: file sha256 count dist "desc" on|off)', () => {
  const m = parseManifest(manifest('ab'.repeat(32)) + 'garbage line\n');
  assert.equal(m.length, 3);
  assert.deepEqual(m[1], { file: 'base.txz', sha256: 'ab'.repeat(32), count: 28456, dist: 'base', desc: 'Base system (MANDATORY)', default: 'on' });
});

test('good checksum: base.txz extracted into bases/<ver>-<arch>, mount-point dirs added, progress reported, cache cleaned', async () => {
  const seen: FetchProgress[] = [];
  const r = await fetchBase(opts({ onProgress: (p: FetchProgress) => seen.push({ ...p }) }));
  assert.equal(r.name, '14.1-amd64');
  assert.equal(r.path, wd.base('14.1-amd64'));
  assert.equal(r.bytes, txz.length);
  assert.equal(r.sha256, sum);
  assert.equal(r.url, `${mirror}/amd64/amd64/14.1-RELEASE/base.txz`);
  assert.equal(readFileSync(join(r.path, 'bin', 'sh'), 'utf8'), '#!/fake/sh\n');
  for (const d of ['etc', 'root', 'tmp', 'home', 'var', 'usr/local', 'proc', 'sys', 'dev']) assert.ok(statSync(join(r.path, d)).isDirectory(), d);
  assert.deepEqual(readdirSync(wd.bases), ['14.1-amd64']);
  assert.deepEqual(requests.map((q) => q.url), [REL + 'MANIFEST', REL + 'base.txz']);
  const dl = seen.filter((p) => p.phase === 'download');
  assert.ok(dl.length >= 2);
  assert.deepEqual(dl.at(-1), { phase: 'download', received: txz.length, total: txz.length });
  assert.ok(dl.every((p, i) => i === 0 || p.received >= dl[i - 1]!.received));
  assert.ok(seen.some((p) => p.phase === 'verify') && seen.at(-1)!.phase === 'extract');
  assert.equal(existsSync(cacheDir()), false);
  await rejects(fetchBase(opts()), 'E_BASE_EXISTS', 1);
  const named = await fetchBase(opts({ name: 'fbsd14' }));
  assert.equal(named.path, wd.base('fbsd14'));
});

test('bad checksum: E_CHECKSUM, the download deleted, nothing in bases/', async () => {
  mode.manifestSum = 'f'.repeat(64);
  const e = await rejects(fetchBase(opts()), 'E_CHECKSUM', 1, new RegExp(`SHA-256 ${sum}, but MANIFEST says f{64}`));
  assert.match(e.hint!, /another mirror/);
  assert.deepEqual(readdirSync(wd.bases), []);
  assert.equal(existsSync(join(cacheDir(), 'base.txz.part')), false);
});

/**
 * The Range offsets of the base.txz requests: the first has none, every later one resumes
 * where the file on disk ended: not before the previous one, not beyond the bytes the
 * server sent (a fetch body that breaks may drop chunks it had buffered), and past 0.
 */
function resumeOffsets(maxPerTry: number[]): number[] {
  const rs = txzRequests().map((q) => q.range);
  assert.equal(rs[0], undefined);
  const offs = rs.slice(1).map((r) => Number(/^bytes=(\d+)-$/.exec(r ?? '')?.[1]));
  let prev = 0;
  let sent = 0;
  offs.forEach((o, i) => {
    sent += maxPerTry[i] ?? Infinity;
    assert.ok(o >= prev && o <= sent, `Range ${rs[i + 1]} after ${prev} (server sent ${sent})`);
    prev = o;
  });
  assert.ok(prev > 0, 'no try resumed past byte 0');
  return offs;
}

test('broken download: resumed with Range within the run', async () => {
  mode.cutAfter = [70_000, 50_000];
  const r = await fetchBase(opts());
  assert.equal(r.sha256, sum);
  assert.equal(txzRequests().length, 3);
  resumeOffsets([70_000, 50_000]);
});

test('broken download every time: clean E_FETCH, nothing in bases/, the next run resumes and succeeds', async () => {
  mode.cutAfter = [40_000, 40_000, 40_000];
  const e = await rejects(fetchBase(opts()), 'E_FETCH', 1, /failed after 3 tries/);
  assert.deepEqual(readdirSync(wd.bases), []);
  assert.equal(txzRequests().length, 3);
  resumeOffsets([40_000, 40_000]);
  const kept = statSync(join(cacheDir(), 'base.txz.part')).size;
  assert.ok(kept > 0 && kept <= 120_000);
  assert.match(e.hint!, new RegExp(`run the same command again to resume \\(${kept} bytes kept`));
  requests.length = 0;
  const r = await fetchBase(opts());
  assert.equal(r.sha256, sum);
  assert.deepEqual(txzRequests().map((q) => q.range), [`bytes=${kept}-`]);
  assert.deepEqual(readdirSync(wd.bases), ['14.1-amd64']);
});

test('a server that ignores Range: the file is read again from the start', async () => {
  mode.cutAfter = [60_000];
  mode.ignoreRange = true;
  const r = await fetchBase(opts());
  assert.equal(r.sha256, sum);
  assert.equal(txzRequests().length, 2);
  resumeOffsets([60_000]);
});

test('a complete leftover download is not fetched again (416), then verified', async () => {
  mkdirSync(cacheDir(), { recursive: true });
  writeFileSync(join(cacheDir(), 'base.txz.part'), txz);
  const r = await fetchBase(opts());
  assert.equal(r.sha256, sum);
  assert.deepEqual(txzRequests().map((q) => q.range), [`bytes=${txz.length}-`]);
});

test('missing release, server errors, bad arguments: clear errors, nothing in bases/', async () => {
  await rejects(fetchBase(opts({ ver: '99.0' })), 'E_NO_SUCH_RELEASE', 3, /99\.0-RELEASE\/MANIFEST does not exist/);
  mode.status = 503;
  await rejects(fetchBase(opts()), 'E_FETCH', 1, /HTTP 503/);
  mode.status = 0;
  await rejects(fetchBase(opts({ arch: 'vax' })), 'E_BAD_ARCH', 2);
  await rejects(fetchBase(opts({ name: '../x' })), 'E_BAD_BASE_NAME', 2);
  await rejects(fetchBase(opts({ mirror: 'http://127.0.0.1:1/releases', attempts: 1 })), 'E_FETCH', 1);
  assert.deepEqual(readdirSync(wd.bases), []);
});
