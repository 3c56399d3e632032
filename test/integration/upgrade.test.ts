/**
 * Upgrade from berth 0.1, which kept every env's lease in its system dir
 * (`jails-system/<jname>/lease/gen.<N>` and per-env heartbeats `hb.<N>`), with no ownership
 * directory and no journal (issue #11: "a workdir made by the current release keeps working
 * after the upgrade: its envs are found and their leases honoured"). Two nodes sharing a
 * GlusterFS volume (whole-directory layout, test/integration/cluster-twonode.ts); the 0.1
 * layout is made by moving what this release writes back to where 0.1 kept it.
 */
import { strict as assert } from 'node:assert';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readLeaseState } from '../../src/ownership/record.js';
import { isRoot } from '../helpers/cli.js';
import { sleep, twoNodes, type TestNode, type TwoNodes } from './cluster-twonode.js';

let fx: TwoNodes;

before(async () => {
  assert.ok(isRoot, 'integration tests run as root (runc, FUSE mounts, glusterd)');
  fx = await twoNodes(['lease_ttl=3']);
});
after(async () => { await fx?.cleanup(); });

/** Moves an env's record back into its sysdir as berth 0.1 kept it, with a 0.1 heartbeat. */
function toLegacy(n: TestNode, jname: string): number {
  const rec = join(n.wd, 'jails-lease', 'envs', jname);
  const legacy = join(n.wd, 'jails-system', jname, 'lease');
  mkdirSync(legacy, { recursive: true });
  let gen = 0;
  for (const f of readdirSync(rec)) {
    if (/^gen\.\d+$/.test(f)) { copyFileSync(join(rec, f), join(legacy, f)); gen = Math.max(gen, Number(f.slice(4))); }
  }
  writeFileSync(join(legacy, `hb.${gen}`), JSON.stringify({ generation: gen, node: n.name, counter: 7, nonce: 'x', at: new Date().toISOString() }) + '\n');
  rmSync(rec, { recursive: true, force: true });
  return gen;
}

async function waitFor(what: string, f: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const t0 = performance.now();
  for (;;) {
    if (await f()) return;
    if (performance.now() - t0 > ms) assert.fail(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('a workdir of berth 0.1 (leases in jails-system/<jname>/lease)', () => {
  test('its envs are found and their leases honoured after the upgrade', async () => {
    const { n1, n2 } = fx;
    n1.ok(['jcreate', 'jname=up1', 'base=bb']);
    n1.ok(['jcreate', 'jname=up2', 'base=bb']);
    n1.ok(['jcreate', 'jname=up3', 'base=bb']);
    n1.ok(['jstart', 'jname=up1']);
    n1.ok(['junregister', 'jname=up3']);
    const g1 = toLegacy(n1, 'up1');
    const g2 = toLegacy(n1, 'up2');
    const g3 = toLegacy(n1, 'up3');
    // 0.1 had no ownership directory of records, no journal, no node heartbeats
    rmSync(join(n1.wd, 'jails-lease', 'nodes'), { recursive: true, force: true });
    assert.deepEqual(readdirSync(join(n1.wd, 'jails-lease', 'envs')), []);

    // the upgraded agents start
    await n1.startAgent();
    await n2.startAgent();
    n2.ok(['node', 'add', 'name=node1', `url=${n1.url}`, `token=${n1.token}`]);
    // node1's agent imports the leases it can see (the sysdirs are visible: whole-directory layout)
    await waitFor('up1 and up2 to be imported', () => ['up1', 'up2'].every((j) => existsSync(join(n2.wd, 'jails-lease', 'envs', j, `gen.${j === 'up1' ? g1 : g2}`))));
    assert.match(readFileSync(join(n1.wd, 'jails-system', 'up1', 'lease', 'MOVED'), 'utf8'), /moved to/);
    assert.equal((await readLeaseState(join(n2.wd, 'jails-lease', 'envs', 'up1'))).holder?.node, 'node1');

    // honoured: node2 cannot take them, not even with --force while node1 is alive
    for (const j of ['up1', 'up2']) {
      const r = n2.run(['jregister', `jname=${j}`, '--force', `rcfile=${join(n2.wd, 'jails-system', j, `rc.conf_${j}`)}`, '--json'], 60_000);
      assert.equal(r.code, 4, `${j}: ${r.stderr}`);
      assert.equal(r.json.error.code, 'E_LEASE_HELD');
    }
    // and every node sees them with their owner
    const cl = Object.fromEntries(n2.ok(['cluster', 'ls', '--json']).json.envs.map((e: any) => [e.jname, [e.owner, e.generation, e.state]]));
    assert.deepEqual(cl.up1, ['node1', g1, 'On']);
    assert.deepEqual(cl.up2, ['node1', g2, 'Off']);
    // node1 keeps operating them at the generation its inventory recorded
    n1.ok(['jstop', 'jname=up1']);
    n1.ok(['jstart', 'jname=up2']);
    n1.ok(['jstop', 'jname=up2']);
    assert.equal(n1.envs().up1.generation, g1);
    // an env 0.1 had released: adopted above the old log's generation (a 0.1 holder stays superseded)
    const reg = n2.ok(['jregister', 'jname=up3', '--json']).json.results[0];
    assert.equal(reg.generation, g3 + 1);
    n2.ok(['jremove', 'jname=up3']);
    for (const j of ['up1', 'up2']) n1.ok(['jremove', `jname=${j}`]);
  });
});
