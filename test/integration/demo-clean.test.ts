/**
 * `make demo-clean` (scripts/demo clean): what `KEEP=1 make demo` left — a node workdir with
 * mounts under the demo dir and the demo's GlusterFS volume — is removed, mounts first.
 * Runs on a demo dir and a volume of its own (BERTH_DEMO_DIR, BERTH_DEMO_VOLUME), so a real
 * demo on the same machine is never touched. Needs root and a running glusterd.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { isRoot, ROOT as REPO, tempDir } from '../helpers/cli.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

test('demo clean removes the mounts, the volume and the dir a kept demo left, and nothing else', () => {
  const dir = join(tempDir('berth-democlean-'), 'demo');
  const vol = `berthdc${process.pid}`;
  const brick = join(dir, 'brick');
  mkdirSync(brick, { recursive: true });
  const host = spawnSync('hostname', { encoding: 'utf8' }).stdout.trim();
  assert.equal(spawnSync('gluster', ['--mode=script', 'volume', 'create', vol, `${host}:${brick}`, 'force']).status, 0);
  assert.equal(spawnSync('gluster', ['--mode=script', 'volume', 'start', vol]).status, 0);
  const m = join(dir, 'node1', 'jails-lease');
  mkdirSync(m, { recursive: true });
  assert.equal(spawnSync('mount', ['-t', 'glusterfs', `${host}:/${vol}`, m]).status, 0);
  const inner = join(dir, 'node1', 'jails', 'x');
  mkdirSync(inner, { recursive: true });
  assert.equal(spawnSync('mount', ['-t', 'tmpfs', 'tmpfs', inner]).status, 0);
  writeFileSync(join(inner, 'f'), 'x');
  const outside = tempDir('berth-democlean-outside-');
  writeFileSync(join(outside, 'keep'), 'keep');

  const r = spawnSync(join(REPO, 'scripts', 'demo'), ['clean'], { encoding: 'utf8', env: { ...process.env, BERTH_DEMO_DIR: dir, BERTH_DEMO_VOLUME: vol } });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /demo cleaned up/);
  assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${dir}`), 'no mount left under the demo dir');
  assert.equal(existsSync(dir), false, 'the demo dir is gone');
  assert.notEqual(spawnSync('gluster', ['--mode=script', 'volume', 'info', vol]).status, 0, 'the volume is gone');
  assert.equal(readFileSync(join(outside, 'keep'), 'utf8'), 'keep', 'nothing outside it touched');
});
