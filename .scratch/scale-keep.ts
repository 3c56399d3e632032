// keeps bench/scale's three-node setup at N envs (no teardown); prints the node workdirs
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { berthAsync, pool, sh, writeUnregistered } from '../bench/common.js';
import { TestNode, freePort } from '../test/integration/cluster-twonode.js';
import { glusterVolume } from '../test/helpers/gluster.js';
import { berthOk, tempDir } from '../test/helpers/cli.js';
const N = Number(process.env.N ?? 10000);
const SHARED = [['jails-data', 'data'], ['jails-system', 'system'], ['jails-rcconf', 'rcconf'], ['jails-fstab', 'fstab'], ['jails-lease', 'lease']] as const;
const PREFIX = ['sa', 'sb', 'sc'];
const base = tempDir('berth-scalekeep-');
const vol = await glusterVolume();
const nodes = [0, 1, 2].map((i) => new TestNode(`node${i + 1}`, join(base, `n${i + 1}`, 'wd')));
for (const [, sub] of SHARED) await vol.mkdirOnVolume(sub);
for (const n of nodes) {
  berthOk(['initenv', `workdir=${n.wd}`, `nodename=${n.name}`, `lease_ttl=6`]);
  for (const [dir, sub] of SHARED) await vol.mount(join(n.wd, dir), sub);
  n.ok(['base', 'busybox', 'name=bb']);
}
for (const n of nodes) { n.port = await freePort(); await n.startAgent(); }
for (const a of nodes) for (const b of nodes) if (a !== b) a.ok(['node', 'add', `name=${b.name}`, `url=${b.url}`, `token=${b.token}`]);
const names: string[][] = [[], [], []];
for (let i = 0; i < N; i++) names[i % 3]!.push(`${PREFIX[i % 3]}${String(i).padStart(6, '0')}`);
let t = performance.now();
await pool(names.flat(), 32, (j) => writeUnregistered(nodes[0]!.wd, j));
console.log('wrote', ((performance.now() - t) / 1000).toFixed(1), 's');
t = performance.now();
await Promise.all(nodes.map((n, k) => berthAsync(n, ['jregister', `jname=${PREFIX[k]}*`])));
console.log('registered', ((performance.now() - t) / 1000).toFixed(1), 's');
writeFileSync('/tmp/scalekeep.json', JSON.stringify({ base, vol: vol.name, nodes: nodes.map((n) => ({ name: n.name, wd: n.wd, pid: n.agent?.pid })) }));
console.log(base);
process.exit(0);
