/**
 * Numbered row settings on the command line (src/cli/main.ts rewriteKeyValues, src/cli/args.ts
 * settingsOf): bcreate and bset take `dsk_type2=rbd dsk_path2=... dsk_size2=...` (the qemu and
 * bhyve engines' settingPatterns) as `--row` pairs; the j commands, whose engines have no rows,
 * refuse them as unknown settings; a row key given twice is refused.
 */
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import { settingsOf } from '../../src/cli/args.js';
import { rewriteKeyValues } from '../../src/cli/main.js';
import { COMMANDS } from '../../src/cli/registry.js';

const def = (name: string) => COMMANDS.find((c) => c.name === name)!;

describe('row settings on the command line', () => {
  test('bcreate and bset pass dsk_*N / nic_*N words on as --row; settingsOf gives them back with the named keys', async () => {
    const argv = ['bcreate', 'jname=v1', 'base=bb', 'dsk_type2=rbd', 'dsk_path2=rbd/v1-dsk2', 'dsk_size2=10g', 'nic_parent2=br0'];
    const out = rewriteKeyValues(argv, def('bcreate'), 1);
    assert.deepEqual(out, ['bcreate', '--jname=v1', '--base=bb', '--row=dsk_type2=rbd', '--row=dsk_path2=rbd/v1-dsk2', '--row=dsk_size2=10g', '--row=nic_parent2=br0']);
    const s = await settingsOf({ base: 'bb', row: 'dsk_type2=rbd\ndsk_path2=rbd/v1-dsk2\ndsk_size2=10g' });
    assert.deepEqual(s, { base: 'bb', dsk_type2: 'rbd', dsk_path2: 'rbd/v1-dsk2', dsk_size2: '10g' });
    assert.deepEqual(rewriteKeyValues(['bset', 'jname=v1', 'dsk_size2=2g'], def('bset'), 1), ['bset', '--jname=v1', '--row=dsk_size2=2g']);
  });

  test('j commands refuse row keys; a row key given twice is refused', () => {
    assert.throws(() => rewriteKeyValues(['jcreate', 'jname=c1', 'dsk_type2=rbd'], def('jcreate'), 1), /unknown setting "dsk_type2" for jcreate/);
    assert.throws(() => rewriteKeyValues(['bcreate', 'jname=v1', 'dsk_type2=rbd', 'dsk_type2=vhd'], def('bcreate'), 1), /dsk_type2= is given twice/);
  });
});
