/**
 * The berth binary itself (the bundled CLI, dist/bundle/berth.cjs, run as `node bin/berth`): version,
 * help, and the exit codes of a call that names no command or an unknown one (product.md:
 * 2 = usage error). No workdir is needed for any of these.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
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

test('the launcher uses the V8 code cache only when it is not older than the bundle (V8 checks only the source length)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-launcher-'));
  try {
    mkdirSync(join(dir, 'bin'));
    mkdirSync(join(dir, 'dist', 'bundle'), { recursive: true });
    copyFileSync(join(ROOT, 'bin', 'berth'), join(dir, 'bin', 'berth'));
    copyFileSync(join(ROOT, 'bin', 'package.json'), join(dir, 'bin', 'package.json'));
    const bundle = join(dir, 'dist', 'bundle', 'berth.cjs');
    // two bundles of the same length that print different words
    const text = (w: string) => `exports.main = () => { process.stdout.write(${JSON.stringify(w)}); };\n`;
    const run = (env: Record<string, string> = {}) => spawnSync(process.execPath, [join(dir, 'bin', 'berth')], { encoding: 'utf8', env: { ...process.env, ...env } });
    writeFileSync(bundle, text('old'));
    assert.equal(run({ BERTH_WRITE_V8CACHE: '1' }).stdout, 'old');
    assert.ok(statSync(bundle + '.v8cache').size > 0, 'the cache was written');
    assert.equal(run().stdout, 'old', 'the cache of that bundle is used');
    writeFileSync(bundle, text('new'));
    const later = new Date(statSync(bundle + '.v8cache').mtimeMs + 5000);
    utimesSync(bundle, later, later);
    assert.equal(run().stdout, 'new', 'a cache older than the bundle is not used');
    writeFileSync(bundle + '.v8cache', 'not a cache');
    utimesSync(bundle + '.v8cache', new Date(later.getTime() + 5000), new Date(later.getTime() + 5000));
    assert.equal(run().stdout, 'new', 'a broken cache is rejected by V8');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
