/**
 * src/sharedfs.ts: the atomic replace used for descriptors and heartbeats on shared storage.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { replaceFileAtomic, tempNameFor } from '../../src/sharedfs.js';

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
