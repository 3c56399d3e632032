import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/proc.js';
import { BerthError } from '../../src/errors.js';

test('run passes argv without a shell and returns exit code and output', async () => {
  const r = await run(['sh', '-c', 'echo "$1"; echo err >&2; exit 3', 'x', 'a b;$(id)'], { check: false });
  assert.equal(r.exitCode, 3);
  assert.equal(r.stdout, 'a b;$(id)\n');
  assert.equal(r.stderr, 'err\n');
  await assert.rejects(run(['sh', '-c', 'exit 4']), (e: unknown) => e instanceof BerthError && e.exitCode === 5 && /exit code 4/.test(e.message));
});

test('run never puts node_modules/.bin or the cwd\'s tools ahead of PATH', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-proc-'));
  mkdirSync(join(dir, 'node_modules', '.bin'), { recursive: true });
  const evil = join(dir, 'node_modules', '.bin', 'true');
  writeFileSync(evil, '#!/bin/sh\necho hijacked\nexit 9\n');
  chmodSync(evil, 0o755);
  try {
    const r = await run(['true'], { cwd: dir, check: false });
    assert.equal(r.exitCode, 0);
    assert.equal(r.stdout, '');
    const p = await run(['sh', '-c', 'echo "$PATH"'], { cwd: dir });
    assert.equal(p.stdout, process.env.PATH + '\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a command that does not exist is an engine error naming it', async () => {
  await assert.rejects(run(['berth-no-such-command']), (e: unknown) => e instanceof BerthError && /berth-no-such-command/.test(e.message));
});
