/**
 * The man pages and shell completion of berth, generated from the command modules
 * (src/cli/registry.ts COMMANDS, the one list of commands): scripts/gen-docs.mjs calls these at
 * build time and writes dist/share/ (man/man8/*.8, bash-completion/completions/berth,
 * zsh/site-functions/_berth), which `make install` installs. Pure functions of the commands: a
 * command added to the registry gets its man page entry and its completion without anything
 * else to edit (test/unit/docs.test.ts checks every one).
 *
 * Man pages are roff with the man(7) macros: berth(8) lists every command; one page per command
 * group, berth-<group>(8) ({@link groupOf}), holds each command's synopsis, options and help.
 * Completion offers the command words, each command's option keys (`key=` as CBSD writes them,
 * `--flag` for flags, the common options), and for `jname=` (and every option whose argument is
 * a jname, e.g. jrename old=) the names `berth jls --json` lists.
 */
import type { CmdDef, OptDef } from './types.js';

/** The options every command takes (src/cli/main.ts COMMON). */
export const COMMON_OPTIONS: OptDef[] = [
  { key: 'json', desc: 'print one JSON document on stdout', flag: true },
  { key: 'verbose', desc: 'show hook output and progress on stderr', flag: true },
  { key: 'debug', desc: 'log every external command (argv, exit status, duration) to stderr', flag: true },
  { key: 'workdir', desc: 'berth workdir (default $BERTH_WORKDIR, /var/lib/berth on Linux, /usr/jails on FreeBSD)', arg: 'dir' },
];

/**
 * The man page group of a command: the first word of a two-word command (`base import` → base,
 * `node add` → node), `env` for the env commands (jcreate, jstart ... CBSD's j* commands), `vm`
 * for the VM commands (bcreate, bstart ..., CBSD's b*), else
 * the command itself (initenv, doctor, agent).
 */
export function groupOf(c: CmdDef): string {
  if (c.name.includes(' ')) return c.name.split(' ')[0]!;
  if (/^j[a-z]+$/.test(c.name)) return 'env';
  if (/^b[a-z]+$/.test(c.name) && c.name !== 'base') return 'vm';
  return c.name;
}

/** The man page file of a group: berth-<group>.8. */
export const pageOf = (group: string): string => `berth-${group}.8`;

/** Text escaped for roff: backslashes, hyphens as \-, a leading . or ' guarded. */
export function roff(s: string): string {
  return s.replace(/\\/g, '\\e').replace(/-/g, '\\-').replace(/^([.'])/gm, '\\&$1');
}

const optSyntax = (o: OptDef): string => (o.flag ? `\\fB\\-\\-${roff(o.key)}\\fR` : `\\fB${roff(o.key)}\\fR=\\fI${roff(o.arg ?? 'value')}\\fR`);

function synopsis(c: CmdDef): string {
  const opts = c.options.map((o) => `[${optSyntax(o)}]`).join(' ');
  const pos = c.positional ? ` ${roff(c.positional)}` : '';
  return `.B berth ${roff(c.name)}\n${opts}${pos}\n`;
}

function header(name: string, version: string): string {
  return `.TH ${name.toUpperCase().replace(/-/g, '\\-')} 8 "" "berth ${roff(version)}" "System Manager's Manual"\n`;
}

function commonSection(): string {
  let s = '.SH COMMON OPTIONS\nEvery command takes these; options are written \\fIkey\\fR=\\fIvalue\\fR (CBSD style) or \\fB\\-\\-\\fR\\fIkey value\\fR.\n';
  for (const o of COMMON_OPTIONS) s += `.TP\n${optSyntax(o)}\n${roff(o.desc)}\n`;
  return s;
}

const EXIT_SECTION = '.SH EXIT STATUS\n0 ok, 1 failure, 2 usage error, 3 no such env, base or node, 4 owned by another node or locked, 5 engine or mount failure, 124 hook timeout, 128+N killed by signal N.\n';

/** The groups in the order of their first command. */
export function groups(commands: readonly CmdDef[]): string[] {
  return [...new Set(commands.map(groupOf))];
}

/**
 * Every man page: `berth.8` and one `berth-<group>.8` per group.
 * @returns file name → roff text
 */
export function manPages(commands: readonly CmdDef[], version: string): Map<string, string> {
  const out = new Map<string, string>();
  const gs = groups(commands);
  let top = header('berth', version);
  top += '.SH NAME\nberth \\- manage jails, containers and VMs whose data lives on shared storage\n';
  top += '.SH SYNOPSIS\n.B berth\n\\fIcommand\\fR [\\fIkey\\fR=\\fIvalue\\fR ...] [\\fB\\-\\-json\\fR] [\\fB\\-v\\fR]\n';
  top += '.SH DESCRIPTION\nberth reimplements CBSD\'s commands for environments (jails, runc containers, VMs) whose files live on shared storage (NFSv4, GlusterFS, CephFS): a node owns an env through a lease in the shared ownership directory, and any node can adopt it.\n';
  top += '.SH COMMANDS\n';
  for (const c of commands) top += `.TP\n.B ${roff(c.name)}\n${roff(c.summary)}${c.aliases?.length ? ` (alias ${c.aliases.map(roff).join(', ')})` : ''}. See \\fB${roff(pageOf(groupOf(c)).replace(/\.8$/, ''))}\\fR(8).\n`;
  top += commonSection() + EXIT_SECTION;
  top += '.SH ENVIRONMENT\n.TP\n.B BERTH_WORKDIR\nthe workdir when \\fBworkdir=\\fR is not given.\n';
  top += `.SH SEE ALSO\n${gs.map((g) => `\\fB${roff(`berth-${g}`)}\\fR(8)`).join(',\n')}\n`;
  out.set('berth.8', top);
  for (const g of gs) {
    const cs = commands.filter((c) => groupOf(c) === g);
    let s = header(`berth-${g}`, version);
    s += `.SH NAME\nberth\\-${roff(g)} \\- ${cs.map((c) => roff(c.name)).join(', ')}\n`;
    s += `.SH SYNOPSIS\n${cs.map(synopsis).join('.br\n')}`;
    s += '.SH COMMANDS\n';
    for (const c of cs) {
      s += `.SS ${roff(c.name)}\n${roff(c.summary)}.\n`;
      if (c.aliases?.length) s += `.PP\nAlias: ${c.aliases.map((a) => `\\fB${roff(a)}\\fR`).join(', ')}.\n`;
      if (c.help) s += `.PP\n${roff(c.help)}\n`;
      for (const o of c.options) s += `.TP\n${optSyntax(o)}\n${roff(o.desc)}\n`;
    }
    s += commonSection() + EXIT_SECTION;
    s += '.SH SEE ALSO\n\\fBberth\\fR(8)\n';
    out.set(pageOf(g), s);
  }
  return out;
}

/** The option words a command completes: `key=` for values, `--key` for flags, the common ones. */
export function optionWords(c: CmdDef): string[] {
  return [...c.options, ...COMMON_OPTIONS].map((o) => (o.flag ? `--${o.key}` : `${o.key}=`));
}

/** The keys of a command whose value is an env name (completed from `berth jls --json`). */
export function jnameKeys(c: CmdDef): string[] {
  return c.options.filter((o) => !o.flag && (o.key === 'jname' || o.arg === 'jname')).map((o) => o.key);
}

const shWord = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** The first words (commands and groups) and, per group, its second words. */
function words(commands: readonly CmdDef[]): { first: string[]; sub: Map<string, string[]> } {
  const first: string[] = [];
  const sub = new Map<string, string[]>();
  for (const c of commands) {
    const names = [c.name, ...(c.aliases ?? [])];
    for (const n of names) {
      const [a, b] = n.split(' ');
      if (!first.includes(a!)) first.push(a!);
      if (b) sub.set(a!, [...(sub.get(a!) ?? []), b]);
    }
  }
  return { first, sub };
}

/** The bash completion script (complete -F _berth berth). */
export function bashCompletion(commands: readonly CmdDef[]): string {
  const { first, sub } = words(commands);
  let s = `# bash completion for berth, generated from src/cli/registry.ts (src/cli/docs.ts); do not edit
_berth_jnames() {
\tberth jls --json 2>/dev/null | grep -o '"jname":"[^"]*"' | sed 's/^"jname":"//; s/"$//'
}
_berth() {
\tlocal line=\${COMP_LINE:0:COMP_POINT} cur cmd words
\tcur=\${line##*[[:space:]]}
\tread -r -a words <<<"\${line% *}"
\tCOMPREPLY=()
\tif [[ \${#words[@]} -le 1 ]]; then
\t\tCOMPREPLY=($(compgen -W ${shWord(first.join(' '))} -- "$cur"))
\t\treturn
\tfi
\tcmd=\${words[1]}
\tcase $cmd in
`;
  for (const [g, vs] of sub) {
    s += `\t${g})\n\t\tif [[ \${#words[@]} -eq 2 ]]; then COMPREPLY=($(compgen -W ${shWord(vs.join(' '))} -- "$cur")); return; fi\n\t\tcmd="$cmd \${words[2]}" ;;\n`;
  }
  s += '\tesac\n\tlocal opts=\'\' jkeys=\'\'\n\tcase $cmd in\n';
  for (const c of commands) {
    const pats = [c.name, ...(c.aliases ?? [])].map((n) => shWord(n)).join(' | ');
    s += `\t${pats}) opts=${shWord(optionWords(c).join(' '))}; jkeys=${shWord(jnameKeys(c).join(' '))} ;;\n`;
  }
  s += `\tesac
\tif [[ $cur == *=* ]]; then
\t\tlocal key=\${cur%%=*} val=\${cur#*=} k
\t\tfor k in $jkeys; do
\t\t\tif [[ $key == "$k" ]]; then
\t\t\t\tCOMPREPLY=($(compgen -W "$(_berth_jnames)" -- "$val"))
\t\t\t\t[[ $COMP_WORDBREAKS == *=* ]] || COMPREPLY=("\${COMPREPLY[@]/#/$key=}")
\t\t\tfi
\t\tdone
\t\treturn
\tfi
\tCOMPREPLY=($(compgen -W "$opts" -- "$cur"))
\tcompopt -o nospace 2>/dev/null
}
complete -F _berth berth
`;
  return s;
}

/** The zsh completion function (#compdef berth). */
export function zshCompletion(commands: readonly CmdDef[]): string {
  const { first, sub } = words(commands);
  let s = `#compdef berth
# zsh completion for berth, generated from src/cli/registry.ts (src/cli/docs.ts); do not edit
_berth() {
  local cmd opts jkeys
  if (( CURRENT == 2 )); then
    compadd -- ${first.map(shWord).join(' ')}
    return
  fi
  cmd=\${words[2]}
  case $cmd in
`;
  for (const [g, vs] of sub) {
    s += `  ${g})\n    if (( CURRENT == 3 )); then compadd -- ${vs.map(shWord).join(' ')}; return; fi\n    cmd="$cmd \${words[3]}" ;;\n`;
  }
  s += '  esac\n  case $cmd in\n';
  for (const c of commands) {
    const pats = [c.name, ...(c.aliases ?? [])].map((n) => shWord(n)).join('|');
    s += `  ${pats}) opts=(${optionWords(c).map(shWord).join(' ')}); jkeys=(${jnameKeys(c).map(shWord).join(' ')}) ;;\n`;
  }
  s += `  esac
  local cur=\${words[CURRENT]} k
  if [[ $cur == *=* ]]; then
    for k in $jkeys; do
      if [[ \${cur%%=*} == $k ]]; then
        compadd -P "$k=" -- \${(f)"$(berth jls --json 2>/dev/null | grep -o '"jname":"[^"]*"' | sed 's/^"jname":"//; s/"$//')"}
      fi
    done
    return
  fi
  compadd -S '' -- $opts
}
_berth "$@"
`;
  return s;
}
