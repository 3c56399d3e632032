/**
 * src/sharedfs.ts: the atomic replace used for descriptors and heartbeats on shared storage, and
 * the read that waits for the version another node wrote.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { readSharedTextAs, replaceFileAtomic, tempNameFor, textDigest } from '../../src/sharedfs.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-sharedfs-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('replaces the content, with the mode asked, and leaves no temp file', async () => {
  const f = join(dir, 'rc.conf_web1');
  writeFileSync(f, 'old\n');
  await replaceFileAtomic(f, 'new\n', { mode: 0o644 });
  assert.equal(readFileSync(f, 'utf8'), 'new\n');
  assert.equal(statSync(f).mode & 0o777, 0o644 & ~process.umask());
  await replaceFileAtomic(join(dir, 'hb.3'), '{}\n', { durable: false });
  assert.deepEqual(readdirSync(dir).sort(), ['hb.3', 'rc.conf_web1']);
});

test('the temp name hashes like the final name under GlusterFS DHT\'s default rsync-hash-regex', () => {
  const rsyncHashRegex = /^\.(.+)\.[^.]+$/; // dht_init_regex's default when cluster.rsync-hash-regex is unset
  for (const name of ['rc.conf_web1', 'hb.12', 'rc.conf_a.b-c']) {
    const tmp = basename(tempNameFor(join(dir, name)));
    assert.equal(rsyncHashRegex.exec(tmp)?.[1], name, tmp);
  }
  assert.notEqual(tempNameFor(join(dir, 'x')), tempNameFor(join(dir, 'x')));
});

test('a missing directory fails with ENOENT and creates nothing', async () => {
  await assert.rejects(replaceFileAtomic(join(dir, 'nodir', 'f'), 'x'), { code: 'ENOENT' });
  assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('.')), []);
});

test('readSharedTextAs waits for the version another node wrote, and gives up after waitMs', async () => {
  const f = join(dir, 'rc.conf_moving');
  writeFileSync(f, 'mnt_start="0";\n');
  const wanted = 'mnt_start="/hooks/start";\n';
  // the new version shows up 300 ms later (a DFS client serving its cached entry until then)
  const t = setTimeout(() => writeFileSync(f, wanted), 300);
  const t0 = performance.now();
  assert.equal(await readSharedTextAs(f, textDigest(wanted)), wanted);
  const waited = performance.now() - t0;
  clearTimeout(t);
  assert.ok(waited >= 250, `it read again until the version matched (${Math.round(waited)} ms)`);
  // the version never shows up: undefined after about waitMs, not the old text
  const t1 = performance.now();
  assert.equal(await readSharedTextAs(f, textDigest('another\n'), 400), undefined);
  const gaveUp = performance.now() - t1;
  assert.ok(gaveUp >= 200 && gaveUp < 2000, `gave up after ${Math.round(gaveUp)} ms`);
  // no digest: the text as it is now; a missing file throws ENOENT
  assert.equal(await readSharedTextAs(f, undefined), wanted);
  await assert.rejects(readSharedTextAs(join(dir, 'missing'), textDigest(wanted)), { code: 'ENOENT' });
});
