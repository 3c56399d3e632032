/**
 * The berth binary itself (the bundled CLI, dist/bundle/, run as `node bin/berth`): version,
 * help, and the exit codes of a call that names no command or an unknown one (product.md:
 * 2 = usage error). No workdir is needed for any of these.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
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
