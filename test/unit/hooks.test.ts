/**
 * src/hooks.ts with real processes (no mocks): exit codes, last lines, timeouts on the whole
 * process group, background children holding stdout, the safety check, argv/env, hook dirs.
 * Needs root (hooks must be root-owned; one test chowns a hook to nobody).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BerthError } from '../../src/errors.js';
import { checkHookSafe, cbsdHookVars, listHookDir, runHookDir, runStorageHook, type HookEnv } from '../../src/hooks.js';

let dir: string;

function hook(name: string, body: string, mode = 0o755): string {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, mode);
  return p;
}

function henv(over: Partial<HookEnv> = {}): HookEnv {
  return {
    jname: 'web1', nodename: 'n1', data: '/wd/jails-data/web1-data', fstabDir: '/wd/jails-fstab/web1',
    rcconfDir: '/wd/jails-rcconf', sysdir: '/wd/jails-system/web1', logFile: join(dir, 'log', 'web1.log'),
    timeoutSec: 30, ...over,
  };
}

/** true when pid exists and is not a zombie */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch { return false; }
}

async function rejects(p: Promise<unknown>): Promise<BerthError> {
  try { await p; } catch (e) { assert.ok(e instanceof BerthError, `not a BerthError: ${String(e)}`); return e; }
  assert.fail('expected a BerthError');
}

before(() => {
  assert.equal(process.getuid?.(), 0, 'these tests need root (hooks must be root-owned)');
  dir = mkdtempSync(join(tmpdir(), 'berth-hooks-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('runStorageHook', () => {
  test("'' and '0' are no-ops", async () => {
    await runStorageHook('mnt_start', '', 'start', henv());
    await runStorageHook('mnt_start', '0', 'start', henv());
  });

  test('passes exactly -d -f -j -r -s and BERTH_ACTION/JNAME/NODE; stdin is /dev/null', async () => {
    const out = join(dir, 'args.out');
    const h = hook('args.sh', `for a in "$@"; do printf '%s\\n' "$a"; done > ${out}\nenv > ${out}.env\nreadlink /proc/self/fd/0 > ${out}.stdin\nread x && echo "got stdin: $x" >> ${out}.stdin\nexit 0`);
    await runStorageHook('mnt_stop', h, 'unregister', henv({ data: '/wd/jails-data/web 1-data', extraEnv: { EXTRA: 'x y' } }));
    assert.deepEqual(readFileSync(out, 'utf8').split('\n').slice(0, -1), [
      '-d', '/wd/jails-data/web 1-data', '-f', '/wd/jails-fstab/web1', '-j', 'web1', '-r', '/wd/jails-rcconf', '-s', '/wd/jails-system/web1',
    ]);
    const env = Object.fromEntries(readFileSync(out + '.env', 'utf8').split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    assert.equal(env.BERTH_ACTION, 'unregister');
    assert.equal(env.BERTH_JNAME, 'web1');
    assert.equal(env.BERTH_NODE, 'n1');
    assert.equal(env.BERTH_HOOK, 'mnt_stop');
    assert.equal(env.EXTRA, 'x y');
    assert.equal(env.PATH, '/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin');
    assert.equal(readFileSync(out + '.stdin', 'utf8'), '/dev/null\n');
  });

  test('exit 7: berth fails with exit 1, the hook\'s 7 in details.hookExitCode and the message, with the last lines of output; log has header, output, result', async () => {
    const h = hook('seven.sh', 'i=1; while [ $i -le 15 ]; do echo "out line $i"; i=$((i+1)); done; echo "cannot mount data" >&2; exit 7');
    const e = await rejects(runStorageHook('mnt_start', h, 'start', henv()));
    assert.equal(e.code, 'E_HOOK_FAILED');
    assert.equal(e.exitCode, 1, 'berth\'s exit code stays in its own table');
    assert.equal(e.details?.hookExitCode, 7);
    assert.equal(e.details?.hookSignal, undefined);
    assert.match(e.message, /exit code 7/);
    assert.match(e.message, /cannot mount data/);
    assert.match(e.message, /out line 15/);
    assert.match(e.message, /out line 7\n/);
    assert.doesNotMatch(e.message, /out line 6\n/); // only the last 10 lines
    assert.ok(e.message.includes(h), 'names the hook');
    const log = readFileSync(henv().logFile, 'utf8');
    assert.match(log, /--- .* berth mnt_start \(action=start env=web1 node=n1\): .*seven\.sh -d /);
    assert.match(log, /out line 1\n/);
    assert.match(log, /--- mnt_start: exit 7 after /);
  });

  test('a hook killed by a signal fails with exit 1 (not berth\'s 128+N "killed"), the signal in details.hookSignal', async () => {
    const h = hook('killed.sh', 'echo dying; kill -KILL $$');
    const e = await rejects(runStorageHook('mnt_start', h, 'start', henv()));
    assert.equal(e.code, 'E_HOOK_FAILED');
    assert.equal(e.exitCode, 1);
    assert.equal(e.details?.hookSignal, 'SIGKILL');
    assert.equal(e.details?.hookExitCode, undefined);
    assert.match(e.message, /killed by signal SIGKILL/);
  });

  test('timeout: exit 124, the grandchild is killed and never writes its marker', async () => {
    const marker = join(dir, 'timeout.marker');
    const pidf = join(dir, 'timeout.pid');
    const h = hook('slow.sh', `(sleep 4; touch ${marker}) &\necho $! > ${pidf}\necho started\nsleep 60`);
    const e = await rejects(runStorageHook('mnt_start', h, 'start', henv({ timeoutSec: 1 })));
    assert.equal(e.code, 'E_HOOK_TIMEOUT');
    assert.equal(e.exitCode, 124);
    assert.match(e.message, /timed out after 1 s/);
    assert.match(e.message, /started/);
    const gc = Number(readFileSync(pidf, 'utf8'));
    assert.equal(alive(gc), false, 'grandchild still running');
    assert.equal(existsSync(marker), false);
  });

  test('timeout: a grandchild ignoring SIGTERM gets SIGKILL', async () => {
    const pidf = join(dir, 'stubborn.pid');
    const h = hook('stubborn.sh', `sh -c 'trap "" TERM; echo $$ > ${pidf}; while :; do sleep 1; done' &\nwhile [ ! -s ${pidf} ]; do sleep 0.1; done\nsleep 60`);
    const e = await rejects(runStorageHook('mnt_start', h, 'start', henv({ timeoutSec: 1 })));
    assert.equal(e.exitCode, 124);
    const gc = Number(readFileSync(pidf, 'utf8'));
    assert.equal(alive(gc), false, 'TERM-ignoring grandchild still running');
  });

  test('a background sleeper holding stdout does not hang berth, and is left running', async () => {
    const pidf = join(dir, 'sleeper.pid');
    const h = hook('bg.sh', `sleep 120 &\necho $! > ${pidf}\necho mounted\nexit 0`);
    await runStorageHook('mnt_start', h, 'start', henv());
    const pid = Number(readFileSync(pidf, 'utf8'));
    try {
      assert.equal(alive(pid), true, 'the sleeper should still be running when the call returns');
    } finally {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
  });

  test('world-writable hook is refused, naming the file and the reason, and does not run', async () => {
    const marker = join(dir, 'ww.marker');
    const h = hook('ww.sh', `touch ${marker}`, 0o777);
    chmodSync(h, 0o777); // umask-proof
    const e = await rejects(runStorageHook('mnt_start', h, 'start', henv()));
    assert.equal(e.code, 'E_HOOK_UNSAFE');
    assert.equal(e.exitCode, 1);
    assert.ok(e.message.includes(h));
    assert.match(e.message, /mode 0777 lets group and others change it/);
    assert.equal(existsSync(marker), false);
    chmodSync(h, 0o775);
    assert.throws(() => checkHookSafe(h), /lets group change it/);
  });

  test('a safe hook in a directory others can write (not sticky) is refused, naming the directory; a sticky one is fine', async () => {
    const d = join(dir, 'cbsd-like');
    mkdirSync(d);
    chmodSync(d, 0o775); // CBSD's hook dirs
    const marker = join(dir, 'gwdir.marker');
    const h = join(d, 'hook.sh');
    writeFileSync(h, `#!/bin/sh\ntouch ${marker}\n`);
    chmodSync(h, 0o755);
    const e = await rejects(runStorageHook('mnt_start', h, 'start', henv()));
    assert.equal(e.code, 'E_HOOK_UNSAFE');
    assert.equal(e.exitCode, 1);
    assert.match(e.message, new RegExp(`its directory ${d} is unsafe \\(mode 0775 lets group change it\\)`));
    assert.equal(e.hint, `chmod go-w ${d}`);
    assert.equal(existsSync(marker), false);
    chmodSync(d, 0o1777); // sticky, as /tmp: others cannot swap a root-owned file
    await runStorageHook('mnt_start', h, 'start', henv());
    assert.equal(existsSync(marker), true);
    chmodSync(d, 0o755);
    checkHookSafe(h);
  });

  test('hook not owned by root is refused', async () => {
    const marker = join(dir, 'nobody.marker');
    const h = hook('nobody.sh', `touch ${marker}`);
    chownSync(h, 65534, 65534);
    const e = await rejects(runStorageHook('mnt_stop', h, 'stop', henv()));
    assert.equal(e.code, 'E_HOOK_UNSAFE');
    assert.ok(e.message.includes(h));
    assert.match(e.message, /owned by uid 65534, not root/);
    assert.equal(existsSync(marker), false);
  });

  test('missing, relative, directory, and non-executable hooks: E_HOOK_MISSING', async () => {
    for (const h of [join(dir, 'nope.sh'), 'relative.sh', dir, hook('noexec.sh', 'exit 0', 0o644)]) {
      const e = await rejects(runStorageHook('mnt_start', h, 'start', henv()));
      assert.equal(e.code, 'E_HOOK_MISSING', h);
      assert.equal(e.exitCode, 1);
      assert.ok(e.message.includes(h), e.message);
    }
  });

  test('verbose copies this run\'s output to stderr after the hook ends', async () => {
    const h = hook('loud.sh', 'echo "hello from the hook"; echo "to stderr" >&2');
    const orig = process.stderr.write.bind(process.stderr);
    let got = '';
    (process.stderr as any).write = (s: string | Uint8Array) => { got += String(s); return true; };
    try {
      await runStorageHook('mnt_start', h, 'start', henv({ verbose: true }));
    } finally {
      (process.stderr as any).write = orig;
    }
    assert.equal(got, 'hello from the hook\nto stderr\n');
  });
});

describe('runHookDir', () => {
  test('missing dir is a no-op', async () => {
    assert.deepEqual(await runHookDir(join(dir, 'none.d'), 'start', henv(), { stopOnError: true }), { ran: [], failed: [] });
  });

  test('runs executables in name order with the env vars; skips dotfiles, non-executables, dirs', async () => {
    const d = join(dir, 'master_poststart.d');
    mkdirSync(d);
    const out = join(dir, 'order.out');
    for (const n of ['20-c', '10-a', '2-b']) {
      writeFileSync(join(d, n), `#!/bin/sh\necho "${n} $BERTH_ACTION $BERTH_JNAME $BERTH_NODE $BERTH_HOOK $jname $data $path $BERTH_SYSDIR $#" >> ${out}\n`);
      chmodSync(join(d, n), 0o755);
    }
    writeFileSync(join(d, 'README'), 'not a script');
    writeFileSync(join(d, '.hidden'), `#!/bin/sh\necho hidden >> ${out}\n`);
    chmodSync(join(d, '.hidden'), 0o755);
    mkdirSync(join(d, 'sub.d'));
    const r = await runHookDir(d, 'start', henv({ extraEnv: cbsdHookVars({ path: '/wd/jails/web1', ip4_addr: '10.0.0.5/24' }) }), { stopOnError: false });
    assert.deepEqual(r.ran, ['10-a', '2-b', '20-c'].map((n) => join(d, n)));
    assert.deepEqual(r.failed, []);
    assert.equal(readFileSync(out, 'utf8'), ['10-a', '2-b', '20-c']
      .map((n) => `${n} start web1 n1 master_poststart.d web1 /wd/jails-data/web1-data /wd/jails/web1 /wd/jails-system/web1 0\n`).join(''));
    assert.deepEqual(listHookDir(d), r.ran);
  });

  test('stopOnError: the first non-zero vetoes and later scripts do not run', async () => {
    const d = join(dir, 'master_prestart.d');
    mkdirSync(d);
    const out = join(dir, 'veto.out');
    const put = (n: string, code: number) => { writeFileSync(join(d, n), `#!/bin/sh\necho ${n} >> ${out}\necho "veto by ${n}"\nexit ${code}\n`); chmodSync(join(d, n), 0o755); };
    put('01-ok', 0); put('02-veto', 3); put('03-after', 0);
    const e = await rejects(runHookDir(d, 'start', henv(), { stopOnError: true }));
    assert.equal(e.code, 'E_HOOK_FAILED');
    assert.equal(e.exitCode, 1);
    assert.equal(e.details?.hookExitCode, 3);
    assert.match(e.message, /02-veto/);
    assert.match(e.message, /veto by 02-veto/);
    assert.equal(readFileSync(out, 'utf8'), '01-ok\n02-veto\n');

    rmSync(out);
    const r = await runHookDir(d, 'start', henv(), { stopOnError: false });
    assert.equal(readFileSync(out, 'utf8'), '01-ok\n02-veto\n03-after\n');
    assert.equal(r.ran.length, 3);
    assert.deepEqual(r.failed.map((f) => [f.script, f.exitCode]), [[join(d, '02-veto'), 3]]);
  });

  test('an unsafe script: refused before anything runs (veto), or listed as failed (no veto)', async () => {
    const d = join(dir, 'master_prestop.d');
    mkdirSync(d);
    const out = join(dir, 'unsafe.out');
    const put = (n: string, mode: number) => { writeFileSync(join(d, n), `#!/bin/sh\necho ${n} >> ${out}\n`); chmodSync(join(d, n), mode); };
    put('01-ok', 0o755); put('02-unsafe', 0o757);
    const e = await rejects(runHookDir(d, 'stop', henv(), { stopOnError: true }));
    assert.equal(e.code, 'E_HOOK_UNSAFE');
    assert.ok(e.message.includes(join(d, '02-unsafe')));
    assert.equal(existsSync(out), false, 'nothing may run when a veto dir holds an unsafe script');
    const r = await runHookDir(d, 'stop', henv(), { stopOnError: false });
    assert.deepEqual(r.ran, [join(d, '01-ok')]);
    assert.equal(r.failed.length, 1);
    assert.equal(r.failed[0]!.script, join(d, '02-unsafe'));
    assert.equal(r.failed[0]!.exitCode, 1);
    assert.match(r.failed[0]!.error!, /others change it/);
  });

  test('per-script timeout: 124, listed as failed without veto', async () => {
    const d = join(dir, 'master_poststop.d');
    mkdirSync(d);
    writeFileSync(join(d, 'slow'), '#!/bin/sh\nsleep 60\n');
    chmodSync(join(d, 'slow'), 0o755);
    const r = await runHookDir(d, 'stop', henv({ timeoutSec: 1 }), { stopOnError: false });
    assert.deepEqual(r.failed.map((f) => f.exitCode), [124]);
    const e = await rejects(runHookDir(d, 'stop', henv({ timeoutSec: 1 }), { stopOnError: true }));
    assert.equal(e.exitCode, 124);
  });
});

test('cbsdHookVars: descriptor keys plus ipv4/ipv6 firsts', () => {
  const v = cbsdHookVars({ jname: 'a', host_hostname: 'a.local', ip4_addr: 'em0|203.0.113.7/24,10.1.2.3', ip6_addr: 'fd00::5/64', 'bad-key': 'x' });
  assert.equal(v.host_hostname, 'a.local');
  assert.equal(v['bad-key'], undefined);
  assert.equal(v.ipv4_first, '203.0.113.7');
  assert.equal(v.ipv4_first_public, '203.0.113.7');
  assert.equal(v.ipv4_first_private, '10.1.2.3');
  assert.equal(v.ipv6_first, 'fd00::5');
  assert.equal(v.ipv6_first_private, 'fd00::5');
  assert.equal(v.ipv6_first_public, '0');
  assert.equal(cbsdHookVars({ ip4_addr: '0' }).ipv4_first, '0');
});
