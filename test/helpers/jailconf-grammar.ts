/**
 * A small jail.conf(5) checker for the tests: a lexer and parser that follow FreeBSD's
 * usr.sbin/jail/jaillex.l and jailparse.y, plus semantic checks jail(8) would make
 * (known parameter names, boolean/integer/jailsys values, variables that resolve, no
 * list values on scalar parameters). It returns the parsed jails so tests can compare
 * the values jail(8) would see with what berth meant to write.
 *
 * Lexer (jaillex.l): whitespace, `# ...`, `// ...` and `/* ... *\/` separate tokens;
 * `+=`, `,`, `;`, `=`, `{`, `}` are tokens; adjacent pieces (unquoted atoms, backslash
 * escapes, '...' and "..." strings, `$var` / `${var}`) form one string. Backslash escapes
 * (C style, octal, \x hex, escaped newline removed) work everywhere; `$` variables are
 * expanded in unquoted text and double quotes, not in single quotes.
 * Grammar (jailparse.y): conf := (jail | param ';' | ';')*; jail := STR '{' (param ';' | ';')* '}';
 * param := name | name '=' value | name '+=' value | name value; value := string (',' string)*.
 */

export class JailConfError extends Error {
  constructor(readonly line: number, msg: string) {
    super(`jail.conf line ${line}: ${msg}`);
  }
}

/** A piece of a string: literal text or a variable reference. */
type Piece = { kind: 'text'; text: string } | { kind: 'var'; name: string };

interface Tok {
  type: 'word' | 'PLEQ' | '{' | '}' | ';' | ',' | '=';
  pieces: Piece[];
  line: number;
}

/** One parameter statement as written. */
export interface ConfParam {
  name: string;
  /** '=' / '+=' / 'bare' (`name value;`) / 'flag' (`name;`) */
  op: '=' | '+=' | 'bare' | 'flag';
  /** values with escapes processed; variables left as `${name}` */
  values: string[];
  /** variable names referenced by the values */
  vars: string[];
  /** true when the name is a variable definition (`$name = ...`) */
  isVar: boolean;
  line: number;
}

export interface ConfJail {
  name: string;
  params: ConfParam[];
  line: number;
}

export interface ParsedConf {
  jails: ConfJail[];
  /** parameters outside any jail block (jail(8)'s global `*` pseudo-jail) */
  global: ConfParam[];
}

const ATOM = /[A-Za-z0-9_!%&()\-.:<>?@[\]^`|~]/;
const VARNAME = /^[A-Za-z_][A-Za-z_0-9]*/;

/** Processes one backslash escape at text[i] (the backslash); returns [char(s), length consumed]. */
function escape(text: string, i: number, line: number): [string, number] {
  const n = text[i + 1];
  if (n === undefined) throw new JailConfError(line, 'backslash at end of input');
  const oct = /^[0-7]{1,3}/.exec(text.slice(i + 1));
  if (oct) return [String.fromCharCode(parseInt(oct[0], 8)), 1 + oct[0].length];
  if (n === 'x') {
    const hex = /^[0-9A-Fa-f]{1,2}/.exec(text.slice(i + 2));
    return [hex ? String.fromCharCode(parseInt(hex[0], 16)) : '\0', 2 + (hex ? hex[0].length : 0)];
  }
  const map: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\n': '' };
  return [n in map ? map[n]! : n, 2];
}

/** Splits jail.conf text into tokens (jaillex.l). @throws JailConfError */
export function lex(text: string): Tok[] {
  const toks: Tok[] = [];
  let line = 1;
  let i = 0;
  let cur: Tok | undefined; // the string being assembled from adjacent pieces
  const end = () => { cur = undefined; };
  const piece = (p: Piece, at: number) => {
    if (!cur) { cur = { type: 'word', pieces: [], line: at }; toks.push(cur); }
    const last = cur.pieces[cur.pieces.length - 1];
    if (p.kind === 'text' && last?.kind === 'text') last.text += p.text;
    else cur.pieces.push(p);
  };
  const count = (s: string) => { for (const ch of s) if (ch === '\n') line++; };
  while (i < text.length) {
    const c = text[i]!;
    const startLine = line;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') { count(c); i++; end(); continue; }
    if (c === '#' || text.startsWith('//', i)) { while (i < text.length && text[i] !== '\n') i++; end(); continue; }
    if (text.startsWith('/*', i)) {
      const e = text.indexOf('*/', i + 2);
      if (e < 0) throw new JailConfError(line, 'unterminated comment');
      count(text.slice(i, e + 2)); i = e + 2; end(); continue;
    }
    if (text.startsWith('+=', i)) { end(); toks.push({ type: 'PLEQ', pieces: [], line }); i += 2; continue; }
    if (',;={}'.includes(c)) { end(); toks.push({ type: c as Tok['type'], pieces: [], line }); i++; continue; }
    if (c === '$') {
      const braced = text[i + 1] === '{';
      if (braced) {
        const e = text.indexOf('}', i + 2);
        const nl = text.indexOf('\n', i + 2);
        if (e < 0 || (nl >= 0 && nl < e)) throw new JailConfError(line, 'unterminated variable');
        piece({ kind: 'var', name: text.slice(i + 2, e) }, startLine); i = e + 1; continue;
      }
      const m = VARNAME.exec(text.slice(i + 1));
      if (m) { piece({ kind: 'var', name: m[0] }, startLine); i += 1 + m[0].length; continue; }
      piece({ kind: 'text', text: '$' }, startLine); i++; continue;
    }
    if (c === '\\') { const [s, n] = escape(text, i, line); count(text.slice(i, i + n)); piece({ kind: 'text', text: s }, startLine); i += n; continue; }
    if (c === "'") {
      let s = '';
      let j = i + 1;
      for (;;) {
        if (j >= text.length) throw new JailConfError(startLine, 'unterminated string');
        const d = text[j]!;
        if (d === "'") break;
        if (d === '\\') { const [e, n] = escape(text, j, line); s += e; count(text.slice(j, j + n)); j += n; continue; }
        if (d === '\n') throw new JailConfError(startLine, 'unterminated string');
        s += d; j++;
      }
      piece({ kind: 'text', text: s }, startLine); i = j + 1; continue;
    }
    if (c === '"') {
      let j = i + 1;
      let s = '';
      for (;;) {
        if (j >= text.length) throw new JailConfError(startLine, 'unterminated string');
        const d = text[j]!;
        if (d === '"') break;
        if (d === '\\') { const [e, n] = escape(text, j, line); s += e; count(text.slice(j, j + n)); j += n; continue; }
        if (d === '$') {
          const braced = text[j + 1] === '{';
          const m = braced ? /^\{([^\n"{}]*)\}/.exec(text.slice(j + 1)) : VARNAME.exec(text.slice(j + 1));
          if (braced && !m) throw new JailConfError(line, 'unterminated variable');
          if (m) {
            if (s) piece({ kind: 'text', text: s }, startLine);
            s = '';
            piece({ kind: 'var', name: braced ? m[1]! : m[0] }, startLine);
            j += 1 + m[0].length;
            continue;
          }
        }
        if (d === '\n') line++;
        s += d; j++;
      }
      if (s || !cur) piece({ kind: 'text', text: s }, startLine);
      i = j + 1; continue;
    }
    if (ATOM.test(c) || '*+/'.includes(c)) {
      let j = i;
      while (j < text.length && ATOM.test(text[j]!)) j++;
      if (j === i) j = i + 1;
      piece({ kind: 'text', text: text.slice(i, j) }, startLine); i = j; continue;
    }
    throw new JailConfError(line, `unexpected character ${JSON.stringify(c)}`);
  }
  return toks;
}

function wordText(t: Tok): string {
  return t.pieces.map((p) => (p.kind === 'text' ? p.text : '${' + p.name + '}')).join('');
}

/** Parses jail.conf text (jailparse.y) without semantic checks. @throws JailConfError */
export function parseJailConf(text: string): ParsedConf {
  const toks = lex(text);
  let k = 0;
  const peek = (o = 0) => toks[k + o];
  const fail = (msg: string, t = peek()) => new JailConfError(t?.line ?? (toks[toks.length - 1]?.line ?? 1), msg);
  const param = (): ConfParam => {
    const n = peek()!;
    if (n.type !== 'word' || n.pieces.length !== 1) throw fail('expected a parameter name', n);
    const p0 = n.pieces[0]!;
    const isVar = p0.kind === 'var';
    const name = p0.kind === 'var' ? p0.name : p0.text;
    k++;
    let op: ConfParam['op'] = 'flag';
    const t = peek();
    if (t?.type === '=') { op = '='; k++; } else if (t?.type === 'PLEQ') { op = '+='; k++; } else if (t?.type === 'word') op = 'bare';
    const values: string[] = [];
    const vars: string[] = [];
    if (op !== 'flag') {
      for (;;) {
        const v = peek();
        if (v?.type !== 'word') throw fail(`expected a value for ${name}`, v);
        values.push(wordText(v));
        for (const p of v.pieces) if (p.kind === 'var') vars.push(p.name);
        k++;
        if (peek()?.type === ',') { k++; continue; }
        break;
      }
    }
    if (peek()?.type !== ';') throw fail(`expected ';' after ${name}`);
    k++;
    return { name, op, values, vars, isVar, line: n.line };
  };
  const out: ParsedConf = { jails: [], global: [] };
  while (k < toks.length) {
    const t = peek()!;
    if (t.type === ';') { k++; continue; }
    if (t.type === 'word' && peek(1)?.type === '{') {
      if (t.pieces.length !== 1 || t.pieces[0]!.kind !== 'text') throw fail('a jail name must be a plain string', t);
      const jail: ConfJail = { name: t.pieces[0]!.text, params: [], line: t.line };
      k += 2;
      for (;;) {
        const u = peek();
        if (!u) throw fail(`missing '}' for jail ${jail.name}`, t);
        if (u.type === '}') { k++; break; }
        if (u.type === ';') { k++; continue; }
        jail.params.push(param());
      }
      out.jails.push(jail);
      continue;
    }
    out.global.push(param());
  }
  return out;
}

const KNOWN = new Set([
  'jid', 'name', 'path', 'host', 'host.hostname', 'host.domainname', 'host.hostuuid', 'host.hostid', 'securelevel',
  'devfs_ruleset', 'children.max', 'enforce_statfs', 'persist', 'parent', 'osrelease', 'osreldate',
  'ip4', 'ip4.addr', 'ip4.saddrsel', 'ip6', 'ip6.addr', 'ip6.saddrsel', 'vnet', 'vnet.interface', 'interface', 'ip_hostname',
  'sysvmsg', 'sysvsem', 'sysvshm', 'linux', 'linux.osname', 'linux.osrelease', 'linux.oss_version',
  'exec.prepare', 'exec.prestart', 'exec.created', 'exec.start', 'command', 'exec.poststart', 'exec.prestop', 'exec.stop',
  'exec.poststop', 'exec.release', 'exec.clean', 'exec.jail_user', 'exec.system_jail_user', 'exec.system_user',
  'exec.timeout', 'exec.consolelog', 'exec.fib', 'stop.timeout', 'mount', 'mount.fstab', 'mount.devfs', 'mount.fdescfs',
  'mount.procfs', 'depend', 'allow.dying',
  'allow.set_hostname', 'allow.sysvipc', 'allow.raw_sockets', 'allow.chflags', 'allow.mount', 'allow.mount.devfs',
  'allow.mount.fdescfs', 'allow.mount.fusefs', 'allow.mount.nullfs', 'allow.mount.procfs', 'allow.mount.linprocfs',
  'allow.mount.linsysfs', 'allow.mount.tmpfs', 'allow.mount.zfs', 'allow.quotas', 'allow.read_msgbuf', 'allow.socket_af',
  'allow.mlock', 'allow.reserved_ports', 'allow.unprivileged_proc_debug', 'allow.suser', 'allow.nfsd', 'allow.vmm',
  'allow.extattr', 'allow.adjtime', 'allow.settime', 'allow.routing', 'allow.setaudit',
]);
const BOOL = new Set(['persist', 'ip4.saddrsel', 'ip6.saddrsel', 'ip_hostname', 'exec.clean', 'exec.system_jail_user',
  'mount.devfs', 'mount.fdescfs', 'mount.procfs', ...[...KNOWN].filter((n) => n.startsWith('allow.'))]);
const INT = new Set(['securelevel', 'devfs_ruleset', 'children.max', 'enforce_statfs', 'exec.timeout', 'exec.fib', 'stop.timeout', 'jid']);
const JAILSYS = new Set(['host', 'ip4', 'ip6', 'vnet', 'sysvmsg', 'sysvsem', 'sysvshm', 'linux']);
const LIST = new Set(['ip4.addr', 'ip6.addr', 'vnet.interface', 'mount', 'mount.fstab', 'depend', 'command',
  ...[...KNOWN].filter((n) => n.startsWith('exec.') && !['exec.clean', 'exec.jail_user', 'exec.system_jail_user', 'exec.system_user', 'exec.timeout', 'exec.consolelog', 'exec.fib'].includes(n))]);

/** The boolean a `no`-prefixed name negates (`allow.noreserved_ports` → allow.reserved_ports), if any. */
function unNo(name: string): string | undefined {
  const dot = name.lastIndexOf('.');
  const last = name.slice(dot + 1);
  if (!last.startsWith('no')) return undefined;
  const base = name.slice(0, dot + 1) + last.slice(2);
  return BOOL.has(base) ? base : undefined;
}

/**
 * Parses and checks jail.conf text the way jail(8) would, with every rule above.
 * @throws JailConfError naming the line and the problem
 */
export function checkJailConf(text: string): ParsedConf {
  const conf = parseJailConf(text);
  // Variables resolve per jail against its parameters, the globals copied into it, and the
  // implicit `name` (jail(8) load_config adds it from the block name).
  const check = (p: ConfParam, scope: Set<string>) => {
    if (p.isVar) return;
    const neg = unNo(p.name);
    const name = neg ?? p.name;
    if (!KNOWN.has(name)) throw new JailConfError(p.line, `unknown parameter ${p.name}`);
    if (neg && p.op !== 'flag') throw new JailConfError(p.line, `${p.name} takes no value`);
    if (p.op === 'flag' && !BOOL.has(name)) throw new JailConfError(p.line, `${p.name} needs a value`);
    if (BOOL.has(name) && p.op !== 'flag' && !p.values.every((v) => /^(true|false|\d+)$/i.test(v))) {
      throw new JailConfError(p.line, `${p.name}: unknown boolean value ${JSON.stringify(p.values.join(','))}`);
    }
    if (INT.has(name) && !p.values.every((v) => /^\d+$/.test(v))) throw new JailConfError(p.line, `${p.name}: non-integer value ${JSON.stringify(p.values.join(','))}`);
    if (name === 'enforce_statfs' && !p.values.every((v) => /^[012]$/.test(v))) throw new JailConfError(p.line, 'enforce_statfs must be 0, 1 or 2');
    if (JAILSYS.has(name) && !p.values.every((v) => ['new', 'inherit', 'disable'].includes(v) && !(name === 'vnet' && v === 'disable'))) {
      throw new JailConfError(p.line, `${p.name}: unknown jailsys value ${JSON.stringify(p.values.join(','))}`);
    }
    if (!LIST.has(name) && (p.values.length > 1 || p.op === '+=')) throw new JailConfError(p.line, `${p.name} is a scalar parameter but gets a list`);
    for (const v of p.vars) if (!scope.has(v)) throw new JailConfError(p.line, `${p.name}: variable "${v}" not found`);
  };
  const names = (ps: ConfParam[]) => ps.map((q) => q.name);
  const scopes = conf.jails.map((j) => new Set(['name', ...names(conf.global), ...names(j.params)]));
  for (const p of conf.global) for (const sc of scopes.length ? scopes : [new Set(['name', ...names(conf.global)])]) check(p, sc);
  conf.jails.forEach((j, n) => {
    if (!/^[A-Za-z0-9_*][A-Za-z0-9_.*-]*$/.test(j.name)) throw new JailConfError(j.line, `bad jail name ${JSON.stringify(j.name)}`);
    for (const p of j.params) check(p, scopes[n]!);
  });
  return conf;
}

/**
 * The values jail(8) ends up with for one jail: `=` / bare replace, `+=` appends, a
 * valueless boolean is `[]`; `no`-prefixed booleans are kept under their own name.
 */
export function effectiveParams(j: ConfJail): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const p of j.params) {
    if (p.op === '+=') m.set(p.name, [...(m.get(p.name) ?? []), ...p.values]);
    else m.set(p.name, [...p.values]);
  }
  return m;
}
