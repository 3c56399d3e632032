/**
 * The `key="value";` line format shared by descriptors (`rc.conf_<jname>`, CBSD §4.3) and
 * `etc/berth.conf`. Parsed strictly and never executed as shell (CBSD sources these files
 * as root: cbsd-behaviour.md §12.8). Accepted per line: blank, `# comment`,
 * `key="value"` / `key='value'` / `key=value` with an optional trailing `;` and an optional
 * trailing `# comment`. Inside double quotes `\"`, `\\`, `\$` and `` \` `` are unescaped;
 * `$` is kept literally (never expanded). Anything else is an error naming the line.
 */
import { readFileSync } from 'node:fs';
import { BerthError, EXIT } from './errors.js';

/** A parsed file: keys in file order, last assignment wins (as sh would). */
export type KV = Record<string, string>;

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Parses the text of a key="value" file.
 * @param source file name used in error messages
 * @throws BerthError E_BAD_CONF (exit 1) naming the file, line number and problem
 */
export function parseKV(text: string, source = '<input>'): KV {
  const out: KV = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const bad = (why: string): BerthError =>
      new BerthError('E_BAD_CONF', `${source}:${i + 1}: ${why}: ${JSON.stringify(raw)}`, EXIT.FAILURE, {
        hint: 'the file takes only key="value"; lines and # comments; fix or remove that line',
      });
    const eq = line.indexOf('=');
    if (eq <= 0) throw bad('not a key="value" assignment');
    const key = line.slice(0, eq);
    if (!KEY.test(key)) throw bad(`bad key ${JSON.stringify(key)}`);
    let rest = line.slice(eq + 1);
    let value = '';
    if (rest.startsWith('"')) {
      let j = 1;
      let closed = false;
      while (j < rest.length) {
        const c = rest[j]!;
        if (c === '\\' && j + 1 < rest.length && '"\\$`'.includes(rest[j + 1]!)) {
          value += rest[j + 1];
          j += 2;
          continue;
        }
        if (c === '"') {
          closed = true;
          j++;
          break;
        }
        if (c === '`') throw bad('command substitution is not allowed');
        if (c === '$' && rest[j + 1] === '(') throw bad('command substitution is not allowed');
        value += c;
        j++;
      }
      if (!closed) throw bad('unterminated double quote');
      rest = rest.slice(j);
    } else if (rest.startsWith("'")) {
      const end = rest.indexOf("'", 1);
      if (end < 0) throw bad('unterminated single quote');
      value = rest.slice(1, end);
      rest = rest.slice(end + 1);
    } else {
      const m = /^[^\s;#"'`$\\|&<>()]*/.exec(rest)!;
      value = m[0];
      rest = rest.slice(value.length);
    }
    rest = rest.trim();
    if (rest.startsWith(';')) rest = rest.slice(1).trim();
    if (rest !== '' && !rest.startsWith('#')) throw bad('unexpected text after the value');
    out[key] = value;
  }
  return out;
}

/** Reads and parses a key="value" file. @throws BerthError E_BAD_CONF; ENOENT as a Node error. */
export function readKV(file: string): KV {
  return parseKV(readFileSync(file, 'utf8'), file);
}

/** Quotes one value for a double-quoted assignment. */
export function quoteValue(v: string): string {
  return '"' + v.replace(/[\\"$`]/g, (c) => '\\' + c) + '"';
}

/**
 * Serialises keys as `key="value";` lines (CBSD's format), in the given order.
 * @param header comment lines (without `#`) written first
 */
export function formatKV(kv: KV, header: string[] = [], order?: string[]): string {
  const keys = order ?? Object.keys(kv);
  let s = header.map((h) => `# ${h}\n`).join('');
  if (header.length) s += '\n';
  for (const k of keys) {
    if (kv[k] === undefined) continue;
    s += `${k}=${quoteValue(kv[k]!)};\n`;
  }
  return s;
}
