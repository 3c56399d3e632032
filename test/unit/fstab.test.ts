import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeFstab, parseFstab, rewriteFstabForClone } from '../../src/fstab.js';
import { BerthError } from '../../src/errors.js';

test('fstab parse: CBSD format, comments, CBSDROOT and relative devices', () => {
  const e = parseFstab('# c\nCBSDROOT/jails-data/j1-data/etc /etc nullfs rw 0 0\n/srv/x  /mnt/x/ nullfs ro\nproc /proc procfs rw 0 0 # tail\n', 'fstab', '/wd');
  assert.equal(e.length, 3);
  assert.equal(e[0]!.device, '/wd/jails-data/j1-data/etc');
  assert.equal(e[1]!.mountpoint, '/mnt/x');
  assert.equal(e[1]!.options, 'ro');
  assert.equal(e[1]!.dump, '0');
  assert.equal(e[2]!.fstype, 'procfs');
  assert.equal(parseFstab('rel/dir /a nullfs rw 0 0', 'fstab', '/wd')[0]!.device, '/wd/rel/dir');
});

test('fstab parse errors name file and line; .. in a mount point is refused', () => {
  assert.throws(() => parseFstab('ok /a nullfs rw 0 0\nbad line\n', 'fstab.local'), (e: unknown) => e instanceof BerthError && e.message.includes('fstab.local:2'));
  assert.throws(() => parseFstab('/x /../etc nullfs rw 0 0'), /may not contain/);
});

test('fstab.local wins per mount point, compared field by field, never by prefix', () => {
  const main = parseFstab('/a /usr nullfs rw\n/b /usr/local nullfs rw\n/c /var nullfs rw\n');
  const local = parseFstab('/z /usr/local/ nullfs ro\n/y /va nullfs rw\n', 'fstab.local');
  const m = mergeFstab(main, local);
  assert.deepEqual(m.map((e) => `${e.device}:${e.mountpoint}`), ['/a:/usr', '/c:/var', '/z:/usr/local', '/y:/va']);
});

test('clone rewrite replaces the old name as a whole path segment only', () => {
  const t = 'CBSDROOT/jails-data/web-data/etc /etc nullfs rw 0 0\n/srv/web /web nullfs rw 0 0\n/srv/webby /x nullfs rw 0 0\n';
  assert.equal(rewriteFstabForClone(t, 'web', 'db'), 'CBSDROOT/jails-data/db-data/etc /etc nullfs rw 0 0\n/srv/db /db nullfs rw 0 0\n/srv/webby /x nullfs rw 0 0\n');
});
