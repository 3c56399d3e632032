import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkJname, checkJnamePattern, isGlob, jnameMatcher } from '../../src/names.js';
import { BerthError } from '../../src/errors.js';

test('jname: letters, digits, _ and -, starting with a letter or digit, at most 64', () => {
  for (const ok of ['a', 'web1', 'Web_1-x', '1abc', 'a'.repeat(64)]) assert.equal(checkJname(ok), ok);
});

test('jname: dots, bad starts, bad characters and length are refused with exit 2 naming the value', () => {
  for (const bad of ['', 'a.b', '-a', '_a', 'a b', 'a/b', 'a$', 'a'.repeat(65), 'ä']) {
    assert.throws(() => checkJname(bad), (e: unknown) => e instanceof BerthError && e.exitCode === 2 && e.code === 'E_BAD_JNAME' && e.message.includes(JSON.stringify(bad)));
  }
  assert.throws(() => checkJname('a.b'), /jail\(8\) reads them as hierarchy/);
});

test('globs match whole names only', () => {
  assert.ok(isGlob('web*'));
  assert.ok(!isGlob('web1'));
  const m = jnameMatcher('web*');
  assert.ok(m('web1'));
  assert.ok(m('web'));
  assert.ok(!m('myweb1'));
  assert.ok(jnameMatcher('*web*')('myweb1'));
  assert.ok(jnameMatcher('db?')('db1'));
  assert.ok(!jnameMatcher('db?')('db12'));
  assert.ok(jnameMatcher('web1')('web1'));
  assert.ok(!jnameMatcher('web1')('web10'));
  assert.equal(checkJnamePattern('web*'), 'web*');
  assert.throws(() => checkJnamePattern('web.*'), BerthError);
  for (const ok of ['web[12]*', '[!a]x', '[a-c]?']) assert.equal(checkJnamePattern(ok), ok);
  // a bracket that opens or closes no class is a typo: refused (exit 2), not a filter matching nothing
  for (const bad of ['[', '[a', 'a]', '[]', '[!]', '[[a]', 'web[1*', '!web*', 'web!*', '*!']) {
    assert.throws(() => checkJnamePattern(bad), (e: BerthError) => e.code === 'E_BAD_JNAME' && e.exitCode === 2 && e.message.includes(JSON.stringify(bad)), bad);
  }
});

test('jname globs mean what they mean in sh(1): the same matches as fnmatch(3)', () => {
  // expected: Python's fnmatch.fnmatchcase (sh(1) glob rules) over these names; `[!...]`
  // is a negated class (picomatch without posix reads it as a class holding "!": the opposite)
  const names = ['web1', 'web2', 'web3', 'webx', 'webb', 'web10', 'db1', 'db12', 'x', 'a-b', 'a_b', 'Web1', 'w'];
  const cases: [string, string[]][] = [
    ["web[!12]", ["web3", "webx", "webb"]],
    ["web[!a-c]*", ["web1", "web2", "web3", "webx", "web10"]],
    ["web[12]*", ["web1", "web2", "web10"]],
    ["web?", ["web1", "web2", "web3", "webx", "webb"]],
    ["*", ["web1", "web2", "web3", "webx", "webb", "web10", "db1", "db12", "x", "a-b", "a_b", "Web1", "w"]],
    ["?", ["x", "w"]],
    ["db?", ["db1"]],
    ["*1", ["web1", "db1", "Web1"]],
    ["[!w]*", ["db1", "db12", "x", "a-b", "a_b", "Web1"]],
    ["w*b*", ["web1", "web2", "web3", "webx", "webb", "web10"]],
    ["[a-c]*", ["a-b", "a_b"]],
    ["web[0-9]", ["web1", "web2", "web3"]],
    ["web[!0-9]", ["webx", "webb"]],
    ["*[!0-9]", ["webx", "webb", "x", "a-b", "a_b", "w"]],
    ["a[-_]b", ["a-b", "a_b"]],
    ["a[_-]b", ["a-b", "a_b"]],
    ["[Ww]eb1", ["web1", "Web1"]],
    ["web[1-3]", ["web1", "web2", "web3"]],
    ["*-*", ["a-b"]],
    ["[!a-z]*", ["Web1"]],
  ];
  for (const [pattern, want] of cases) {
    assert.equal(checkJnamePattern(pattern), pattern);
    assert.deepEqual(names.filter((n) => jnameMatcher(pattern)(n)), want, pattern);
  }
});
