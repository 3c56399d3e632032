/**
 * `make install DESTDIR=<tmp>` then `make uninstall DESTDIR=<tmp>` (scripts/install): the CLI
 * and its bundle run from the staging root (and find their example hooks: initenv copies them
 * into a workdir), every generated man page is there and `man -l` renders it without a warning,
 * the completion scripts, the agent's systemd unit (ExecStart under PREFIX, never DESTDIR) and
 * the example hooks are in their usual places; uninstall removes exactly that, leaving the
 * staging root as it was (a file of someone else's in a shared dir stays).
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { manPages } from '../../src/cli/docs.js';
import { COMMANDS } from '../../src/cli/registry.js';
import { isRoot, ROOT, tempDir } from '../helpers/cli.js';

const make = (target: string, destdir: string) => spawnSync('make', ['-s', target, `DESTDIR=${destdir}`, 'PREFIX=/usr/local'], { cwd: ROOT, encoding: 'utf8', timeout: 600_000 });

/** Every path under `dir` (links not followed), relative, sorted. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      out.push(p.slice(dir.length));
      if (lstatSync(p).isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

test('make install DESTDIR= puts everything in place; make uninstall removes exactly that', () => {
  assert.ok(isRoot, 'integration tests run as root (make install runs scripts/install-deps first)');
  const dest = tempDir('berth-rename-inst-');
  // someone else's file in a shared dir: uninstall must leave it
  mkdirSync(join(dest, 'usr/local/share/man/man8'), { recursive: true });
  writeFileSync(join(dest, 'usr/local/share/man/man8/other.8'), '.TH OTHER 8\n');
  const before = tree(dest);
  const inst = make('install', dest);
  assert.equal(inst.status, 0, inst.stdout + inst.stderr);
  const P = join(dest, 'usr/local');
  const bin = join(P, 'bin/berth');
  const help = spawnSync(bin, ['--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0, help.stderr);
  for (const c of COMMANDS) assert.ok(help.stdout.includes(c.name.split(' ')[0]!), `--help of the installed CLI lists ${c.name}`);
  // the installed package finds its own files: initenv copies the example hooks into the workdir
  const wd = join(tempDir('berth-rename-instwd-'), 'wd');
  const ie = spawnSync(bin, ['initenv', `workdir=${wd}`, 'nodename=inst1'], { encoding: 'utf8' });
  assert.equal(ie.status, 0, ie.stderr);
  assert.ok(existsSync(join(wd, 'share/examples/env_start/lib/berth-hook.sh')));
  // man pages: every generated one, rendered by man(1) without a warning
  for (const f of manPages(COMMANDS, '0').keys()) {
    const page = join(P, 'share/man/man8', f);
    assert.ok(existsSync(page), f);
    const r = spawnSync('man', ['--warnings', '-E', 'UTF-8', '-l', page], { encoding: 'utf8', env: { ...process.env, MANWIDTH: '80', MAN_KEEP_FORMATTING: '0', PAGER: 'cat' } });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '', `${f} renders without warnings`);
    assert.ok(r.stdout.length > 200, `${f} has content`);
  }
  assert.match(readFileSync(join(P, 'share/bash-completion/completions/berth'), 'utf8'), /complete -F _berth berth/);
  assert.match(readFileSync(join(P, 'share/zsh/site-functions/_berth'), 'utf8'), /^#compdef berth/);
  const unit = readFileSync(join(P, 'lib/systemd/system/berth-agent.service'), 'utf8');
  assert.match(unit, /^ExecStart=\/usr\/local\/bin\/berth agent$/m);
  assert.ok(!unit.includes(dest), 'no DESTDIR in the unit');
  const hook = join(P, 'share/berth/examples/env_start/glusterfs/env_start_gluster.sh');
  assert.ok(statSync(hook).mode & 0o111, 'the example hooks are executable');
  assert.ok(existsSync(join(P, 'share/berth/examples/env_start/lib/berth-hook.sh')));
  // uninstall: the staging root as before
  const un = make('uninstall', dest);
  assert.equal(un.status, 0, un.stdout + un.stderr);
  assert.deepEqual(tree(dest), before);
  // twice: a clear refusal, nothing else
  const again = make('uninstall', dest);
  assert.notEqual(again.status, 0);
  assert.match(again.stderr, /not installed there/);
});
