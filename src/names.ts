/**
 * Names and globs. jname rule (issue #2): letters, digits, `_` and `-`, starting with a
 * letter or digit, at most 64 characters; dots are refused because jail(8) reads them as
 * hierarchy (jail(8) "name" parameter). Globs follow CBSD (`jname='web*'`, §9): `*`, `?`
 * and `[...]` match over the whole name.
 */
import { createRequire } from 'node:module';
import type picomatchT from 'picomatch';
import { usageError } from './errors.js';

/** The jname rule: letters, digits, _ and -, starting with a letter or digit, at most 64 (no dots: jail(8) hierarchy). */
export const JNAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
const BASENAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const NODENAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** True when `s` contains glob characters. */
export function isGlob(s: string): boolean {
  return /[*?[]/.test(s);
}

/** @throws BerthError E_BAD_JNAME (exit 2) naming the value and the rule. */
export function checkJname(jname: string): string {
  if (!JNAME.test(jname)) {
    const why = jname.includes('.') ? 'dots are not allowed (jail(8) reads them as hierarchy)'
      : jname.length > 64 ? 'longer than 64 characters'
      : 'use letters, digits, _ and -, starting with a letter or digit';
    throw usageError('E_BAD_JNAME', `bad jname ${JSON.stringify(jname)}: ${why}`);
  }
  return jname;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * An env's uuid as berth writes it (RFC 9562 text form, lower case: 8-4-4-4-12 hex digits).
 * Descriptors come from shared storage, so the uuid in one is input: it ends up in leases and
 * identity checks, which compare it as text, and a uuid that is not one (a path, upper case,
 * a typo) is refused. (A descriptor with no uuid, or `uuid=""`, is CBSD's: jregister gives it one.)
 * @throws BerthError E_BAD_UUID (exit 2) naming the value
 */
export function checkUuid(uuid: string, where: string): string {
  if (!UUID.test(uuid)) throw usageError('E_BAD_UUID', `bad uuid ${JSON.stringify(uuid)} in ${where}: expected 8-4-4-4-12 lower-case hex digits`, { hint: 'fix or remove that uuid line (without one, jregister takes the uuid of the sysdir copy, or makes one)' });
  return uuid;
}

/** @throws BerthError E_BAD_BASE_NAME (exit 2). Base names may contain dots (e.g. 14.1-RELEASE). */
export function checkBaseName(name: string): string {
  if (!BASENAME.test(name) || name.includes('..')) {
    throw usageError('E_BAD_BASE_NAME', `bad base name ${JSON.stringify(name)}: use letters, digits, '.', '_' and '-', starting with a letter or digit`);
  }
  return name;
}

/** @throws BerthError E_BAD_NODENAME (exit 2). */
export function checkNodename(name: string): string {
  if (!NODENAME.test(name) || name.includes('..')) {
    throw usageError('E_BAD_NODENAME', `bad nodename ${JSON.stringify(name)}: use letters, digits, '.', '_' and '-', starting with a letter or digit`);
  }
  return name;
}

/**
 * Checks a jname pattern: a plain jname, or a glob whose literal parts obey the jname rule.
 * @throws BerthError E_BAD_JNAME (exit 2)
 */
export function checkJnamePattern(p: string): string {
  if (!isGlob(p)) return checkJname(p);
  if (!/^[A-Za-z0-9_*?[\]!-]{1,64}$/.test(p)) {
    throw usageError('E_BAD_JNAME', `bad jname pattern ${JSON.stringify(p)}: use jname characters and * ? [ ]`);
  }
  // a bracket that does not open or close a class like [abc] or [!a-c] would be read as a
  // literal character that no jname has: the pattern is a typo, not a filter matching nothing
  const outside = p.replace(/\[!?[^[\]!]+\]/g, '');
  if (/[[\]]/.test(outside)) {
    throw usageError('E_BAD_JNAME', `bad jname pattern ${JSON.stringify(p)}: unbalanced [ ]`, { hint: "a class is [abc], [a-c] or [!a-c], e.g. jname='web[12]*'" });
  }
  // `!` negates a class ([!a-c]) and nothing else: a leading `!web*` is not "every env but
  // web*" in sh(1) globs (picomatch would read it so), and no jname has a `!`
  if (outside.includes('!')) {
    throw usageError('E_BAD_JNAME', `bad jname pattern ${JSON.stringify(p)}: ! is only allowed first in a class, as in [!a-c]`);
  }
  return p;
}

let picomatch: typeof picomatchT | undefined;

/**
 * Returns a matcher for a jname or glob (exact match when it is not a glob), with sh(1) /
 * fnmatch(3) meaning, as CBSD's globs have: `*`, `?`, `[abc]`, `[a-c]`, `[!a-c]`. picomatch
 * runs with `posix` (without it, `[!12]` is a class holding `!`, 1 and 2: the opposite set)
 * and `nonegate` (a leading `!` is not a negation; checkJnamePattern refuses it anyway).
 * It is loaded on the first glob only (start-up time of commands that take plain names).
 */
export function jnameMatcher(pattern: string): (name: string) => boolean {
  if (!isGlob(pattern)) return (n) => n === pattern;
  picomatch ??= createRequire(import.meta.url)('picomatch') as typeof picomatchT;
  return picomatch(pattern, { dot: true, posix: true, nonegate: true });
}
