/**
 * Progress of long work on a terminal (issue 15): `base import` and `jclone`'s copy, run under
 * a pseudo-terminal (util-linux script -qec), show a bar with bytes and a rate on stderr; the
 * same commands with stderr not a terminal, or with --json, print no progress.
 * Needs root, runc, busybox-static and script(1).
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, berthOk, isRoot, newNode } from '../helpers/cli.js';

assert.ok(isRoot, 'integration tests need root (CI runs as root)');

let wd: string;
const env = () => ({ workdir: wd });
const BAR = /copying \[[^\]]*\] \d+% \| [\d.]+\/[\d.]+ MiB \| [\d.]+ MiB\/s/;

/** Runs berth under a pseudo-terminal (script -qec) and returns what the terminal got. */
function underPty(args: string[]): { code: number; out: string } {
  const cmd = [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', env: { ...process.env, BERTH_WORKDIR: wd }, timeout: 120_000 });
  return { code: r.status ?? -1, out: r.stdout };
}

before(() => {
  wd = newNode('prog1');
  berthOk(['base', 'busybox', 'name=bb'], env());
});

describe('progress under a pty', () => {
  test('base import of a directory: a bar with MiB done of the total and MiB/s; none through a pipe or with --json', () => {
    const src = join(wd, 'bases', 'bb');
    const t = underPty(['base', 'import', 'name=imp1', `source=${src}`]);
    assert.equal(t.code, 0, t.out);
    assert.match(t.out, BAR);
    assert.match(t.out, /100%/);
    const j = underPty(['base', 'import', 'name=imp2', `source=${src}`, '--json']);
    assert.equal(j.code, 0, j.out);
    assert.doesNotMatch(j.out, /MiB\/s/);
    const p = berthOk(['base', 'import', 'name=imp3', `source=${src}`], env());
    assert.doesNotMatch(p.stderr, /MiB\/s/);
    for (const n of ['imp1', 'imp2', 'imp3']) berthOk(['base', 'remove', `name=${n}`], env());
  });

  test('jclone\'s copy of the data: a bar on a terminal, none through a pipe', () => {
    berthOk(['jcreate', 'jname=src1', 'base=bb', 'baserw=1'], env());
    writeFileSync(join(wd, 'jails-data/src1-data/big'), Buffer.alloc(8 << 20, 1));
    const t = underPty(['jclone', 'old=src1', 'new=cl1']);
    assert.equal(t.code, 0, t.out);
    assert.match(t.out, BAR);
    const p = berthOk(['jclone', 'old=src1', 'new=cl2'], env());
    assert.doesNotMatch(p.stderr, /MiB\/s/);
    for (const j of ['cl1', 'cl2', 'src1']) berthOk(['jremove', `jname=${j}`], env());
  });
});
