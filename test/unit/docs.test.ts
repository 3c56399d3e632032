/**
 * The generated man pages and completion (src/cli/docs.ts) cover every command of the registry
 * (src/cli/registry.ts): its man page entry with every option, its words in the bash and zsh
 * completion; and the bash completion, run in bash, completes commands, option keys and the
 * jnames `berth jls --json` lists (a fake berth function stands in for the CLI).
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { bashCompletion, groupOf, jnameKeys, manPages, optionWords, pageOf, roff, zshCompletion } from '../../src/cli/docs.js';
import { COMMANDS } from '../../src/cli/registry.js';

const dir = mkdtempSync(join(tmpdir(), 'berth-docs-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('every command has its entry in berth(8) and its section, with every option, in its group page', () => {
  const pages = manPages(COMMANDS, '0.0.0');
  const top = pages.get('berth.8')!;
  for (const c of COMMANDS) {
    assert.ok(top.includes(`.B ${roff(c.name)}\n`), `berth.8 lists ${c.name}`);
    const page = pages.get(pageOf(groupOf(c)));
    assert.ok(page, `${c.name} has a page ${pageOf(groupOf(c))}`);
    assert.ok(page.includes(`.SS ${roff(c.name)}\n`), `${pageOf(groupOf(c))} has a section for ${c.name}`);
    for (const o of c.options) assert.ok(page.includes(roff(o.key)), `${c.name}: option ${o.key} in its page`);
    assert.ok(top.includes(`\\fB${roff(pageOf(groupOf(c)).replace(/\.8$/, ''))}\\fR(8)`), `berth.8 points at the page of ${c.name}`);
  }
  // no line of roff text starts with a stray control character
  for (const [f, t] of pages) for (const l of t.split('\n')) assert.ok(!/^'/.test(l), `${f}: ${l}`);
});

test('every command, its option keys and its jname keys are in the bash and zsh completion', () => {
  const bash = bashCompletion(COMMANDS);
  const zsh = zshCompletion(COMMANDS);
  for (const c of COMMANDS) {
    for (const w of c.name.split(' ')) { assert.ok(bash.includes(w), `bash: ${w}`); assert.ok(zsh.includes(`'${w}'`), `zsh: ${w}`); }
    const words = optionWords(c).join(' ');
    assert.ok(bash.includes(`'${c.name}') opts='${words}'`) || bash.includes(`'${c.name}' |`), `bash: options of ${c.name}`);
    assert.ok(zsh.includes(`opts=(${optionWords(c).map((w) => `'${w}'`).join(' ')})`), `zsh: options of ${c.name}`);
  }
  assert.ok(jnameKeys(COMMANDS.find((c) => c.name === 'jstart')!).includes('jname'));
  assert.deepEqual(jnameKeys(COMMANDS.find((c) => c.name === 'jrename')!), ['old', 'new']);
});

/** COMPREPLY of the bash completion for the command line `line` (cursor at its end). */
function complete(line: string): string[] {
  const script = join(dir, 'berth.bash');
  writeFileSync(script, bashCompletion(COMMANDS));
  const prog = `berth() { [ "$1 $2" = "jls --json" ] && printf '{"ok":true,"envs":[{"jname":"web1","uuid":"u"},{"jname":"web2"},{"jname":"db1"}]}\\n'; }
. ${script}
COMP_LINE=${JSON.stringify(line)}; COMP_POINT=\${#COMP_LINE}
_berth
printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync('bash', ['-c', prog], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).sort();
}

test('bash: commands, group verbs, option keys, and jnames from jls --json', () => {
  assert.deepEqual(complete('berth jre'), ['jregister', 'jremove', 'jrename', 'jrestart']);
  assert.ok(complete('berth ').includes('base'));
  assert.ok(complete('berth base ').includes('import'));
  assert.ok(complete('berth base import ').length > 0);
  assert.deepEqual(complete('berth jstart jn'), ['jname=']);
  assert.ok(complete('berth jstart --').includes('--json'));
  // COMP_WORDBREAKS holds '=' by default: bash replaces only what follows it
  assert.deepEqual(complete('berth jstart jname=we'), ['web1', 'web2']);
  assert.deepEqual(complete('berth jrename old=d'), ['db1']);
  assert.deepEqual(complete('berth jclone host_hostname=x'), []);
});
