/**
 * The command modules (src/cli/commands/*.ts) are the one place a command is declared: every
 * module is in the registry once, under the name its file says; names and aliases are unique;
 * the agent fast path takes exactly the commands whose module declares a `fast` route.
 */
import { strict as assert } from 'node:assert';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { COMMANDS } from '../../src/cli/registry.js';
import { FAST_COMMANDS, fastRequest } from '../../src/cli/fast.js';
import type { CmdDef } from '../../src/cli/types.js';

const DIR = join(import.meta.dirname, '..', '..', 'src', 'cli', 'commands');

test('every command module is in the registry once, under the name of its file', async () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.ts')).sort();
  assert.ok(files.length >= 25, `found only ${files.length} modules`);
  const fromFiles: CmdDef[] = [];
  for (const f of files) {
    const m = (await import(join(DIR, f))) as { command?: CmdDef };
    assert.ok(m.command, `${f} exports no command`);
    assert.equal(m.command.name.replace(' ', '-') + '.ts', f, `${f} declares ${m.command.name}`);
    assert.equal(typeof m.command.handler, 'function', `${f}: no handler`);
    fromFiles.push(m.command);
  }
  // the VM commands (bstart ...) are derived from a module's command (src/cli/family.ts)
  const modules = COMMANDS.filter((c) => !c.derivedFrom);
  assert.deepEqual(modules.map((c) => c.name).sort(), fromFiles.map((c) => c.name).sort());
  assert.ok(modules.every((c) => fromFiles.includes(c)), 'the registry holds the modules\' own objects');
  for (const c of COMMANDS.filter((x) => x.derivedFrom)) assert.ok(fromFiles.some((m) => m.name === c.derivedFrom), `${c.name} derives from a module's command`);
});

test('command names and aliases are unique; every option key once per command', () => {
  const seen = new Set<string>();
  for (const c of COMMANDS) {
    for (const n of [c.name, ...(c.aliases ?? [])]) {
      assert.ok(!seen.has(n), `${n} twice`);
      seen.add(n);
    }
    const keys = c.options.map((o) => o.key);
    assert.equal(new Set(keys).size, keys.length, `${c.name}: an option twice in ${keys.join(' ')}`);
  }
});

test('the fast path takes exactly the commands whose module declares a fast route', () => {
  const declared = COMMANDS.filter((c) => c.fast).map((c) => [c.name, c.fast]);
  assert.deepEqual([...FAST_COMMANDS.entries()].sort(), declared.sort());
  assert.deepEqual(fastRequest(['jstart', 'web1'], {})?.fast, { route: 'start', verb: 'started' });
  assert.deepEqual(fastRequest(['jstop', 'jname=web1'], {})?.fast, { route: 'stop', verb: 'stopped' });
  assert.deepEqual(fastRequest(['bstart', 'vm1'], {})?.fast, { route: 'start', verb: 'started' });
  assert.equal(fastRequest(['jrestart', 'web1'], {}), undefined);
});
