/**
 * jregister and the paths a (CBSD) descriptor names (src/lifecycle/register.ts
 * resolveDescriptorPaths; cbsd-behaviour.md §4.3: CBSD rewrites CBSDROOT and relative paths and
 * uses absolute ones as written):
 * - an absolute data= that exists is honoured: the env runs on that data;
 * - CBSDROOT/ and relative data= are this workdir's;
 * - a data= naming another workdir's layout that is not here (/usr/jails/jails-data/<jname>-data
 *   of a CBSD node) is mapped to this node's, and the output says so;
 * - a data= that does not exist, or names another env's data dir, is refused naming it,
 *   changing nothing;
 * - a failed registration puts back the sysdir descriptor CBSD left there (uuid-less).
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { berth, berthOk, isRoot, newNode, tempDir } from '../helpers/cli.js';

assert.ok(isRoot, 'integration tests run as root (runc, mounts)');
let wd: string;
const opt = () => ({ workdir: wd });
const rc = (j: string, extra: string) => writeFileSync(join(wd, 'jails-rcconf', `rc.conf_${j}`), `# written by CBSD\njname="${j}";\nemulator="runc";\nbase="bb";\nbaserw="0";\nhost_hostname="${j}.example";\n${extra}`);
const envOf = (j: string) => berthOk(['jls', '--json'], opt()).json.envs.find((e: any) => e.jname === j);
/** a data tree like jcreate makes (baserw=0 sub-dirs), with a marker in root/ */
function dataTree(dir: string, marker: string): void {
  for (const d of ['etc', 'root', 'tmp', 'home', 'var', 'usr/local']) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(join(dir, 'root', 'marker'), marker);
}
const tree = () => readdirSync(wd, { recursive: true }).map(String).filter((f) => !f.startsWith('var/')).sort();

before(() => {
  wd = newNode('node1');
  berthOk(['base', 'busybox', 'name=bb'], opt());
  assert.ok(!existsSync('/usr/jails'), 'this machine has no /usr/jails (the CBSD layout the test maps from)');
});
after(() => { berth(['jstop', 'jname=*'], opt()); });

test('an absolute data= that exists is used as written: the env runs on that data', () => {
  const ext = join(tempDir('berth-rename-ext-'), 'data');
  dataTree(ext, 'external\n');
  rc('cb1', `data="${ext}";\npath="/usr/jails/jails/cb1";\n`);
  const r = berthOk(['jregister', 'jname=cb1', '--json'], opt());
  assert.equal(r.json.results[0].data, ext);
  assert.deepEqual(r.json.results[0].mapped, [{ key: 'path', from: '/usr/jails/jails/cb1', to: join(wd, 'jails', 'cb1') }]);
  assert.ok(!existsSync(join(wd, 'jails-data', 'cb1-data')), 'no data dir of the layout made');
  assert.match(readFileSync(join(wd, 'jails-system', 'cb1', 'rc.conf_cb1'), 'utf8'), new RegExp(`data="${ext}";`));
  berthOk(['jstart', 'jname=cb1'], opt());
  assert.equal(berthOk(['jexec', 'jname=cb1', 'cat', '/root/marker'], opt()).stdout, 'external\n');
  berthOk(['jexec', 'jname=cb1', 'sh', '-c', 'echo written > /root/new'], opt());
  berthOk(['jstop', 'jname=cb1'], opt());
  assert.equal(readFileSync(join(ext, 'root', 'new'), 'utf8'), 'written\n', 'the env wrote to the data its descriptor names');
  berthOk(['jremove', 'jname=cb1'], opt());
});

test('CBSDROOT/ and relative data= are this workdir\'s; another workdir\'s layout that is not here is mapped, and said', () => {
  dataTree(join(wd, 'jails-data', 'cb2-data'), 'two\n');
  rc('cb2', 'data="CBSDROOT/jails-data/cb2-data";\n');
  assert.equal(berthOk(['jregister', 'jname=cb2', '--json'], opt()).json.results[0].data, join(wd, 'jails-data', 'cb2-data'));
  dataTree(join(wd, 'jails-data', 'cb3-data'), 'three\n');
  rc('cb3', 'relative_path="1";\ndata="jails-data/cb3-data";\n');
  assert.equal(berthOk(['jregister', 'jname=cb3', '--json'], opt()).json.results[0].data, join(wd, 'jails-data', 'cb3-data'));
  dataTree(join(wd, 'jails-data', 'cb4-data'), 'four\n');
  rc('cb4', 'data="/usr/jails/jails-data/cb4-data";\n');
  const r = berthOk(['jregister', 'jname=cb4'], opt());
  assert.match(r.stderr, new RegExp(`cb4: data=/usr/jails/jails-data/cb4-data of the descriptor mapped to ${join(wd, 'jails-data', 'cb4-data')}`));
  berthOk(['jstart', 'jname=cb4'], opt());
  assert.equal(berthOk(['jexec', 'jname=cb4', 'cat', '/root/marker'], opt()).stdout, 'four\n');
  berthOk(['jstop', 'jname=cb4'], opt());
  for (const j of ['cb2', 'cb3', 'cb4']) berthOk(['jremove', `jname=${j}`], opt());
});

test('a data= that does not exist, or is another env\'s data dir, is refused naming it; nothing changes', () => {
  berthOk(['jcreate', 'jname=other', 'base=bb'], opt());
  for (const [j, data, re] of [['cb5', '/nonexistent/berth-rename/cb5', /data=\/nonexistent\/berth-rename\/cb5 .* does not exist/], ['cb6', join(wd, 'jails-data', 'other-data'), /another env's data dir/]] as const) {
    dataTree(join(wd, 'jails-data', `${j}-data`), j);
    rc(j, `data="${data}";\n`);
    const before = tree();
    const r = berth(['jregister', `jname=${j}`, '--json'], opt());
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.json.error.code, 'E_BAD_DATA_PATH');
    assert.match(r.json.error.message, re);
    assert.deepEqual(tree(), before, 'nothing made');
    assert.equal(envOf(j)?.status, 'Unregister');
  }
});

test('a failed jregister puts back the uuid-less descriptor CBSD left in the sysdir', () => {
  // data dir empty: the identity check after berth wrote the sysdir copy fails (exit 5)
  mkdirSync(join(wd, 'jails-data', 'cb7-data'), { recursive: true });
  mkdirSync(join(wd, 'jails-system', 'cb7'), { recursive: true });
  const cbsdOwn = '# CBSD\njname="cb7";\nemulator="runc";\nbase="bb";\n';
  writeFileSync(join(wd, 'jails-system', 'cb7', 'rc.conf_cb7'), cbsdOwn);
  rc('cb7', '');
  const r = berth(['jregister', 'jname=cb7'], opt());
  assert.equal(r.code, 5, r.stderr);
  assert.equal(readFileSync(join(wd, 'jails-system', 'cb7', 'rc.conf_cb7'), 'utf8'), cbsdOwn, 'the sysdir descriptor as CBSD left it');
  assert.deepEqual(readdirSync(join(wd, 'jails-system', 'cb7')), ['rc.conf_cb7']);
  assert.ok(!existsSync(join(wd, 'jails-lease', 'envs', 'cb7')), 'no ownership record left');
  assert.equal(envOf('cb7')?.status, 'Unregister');
  assert.equal(spawnSync('true').status, 0);
});
