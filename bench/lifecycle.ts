/**
 * bench/lifecycle (issue #2): from one run on the same root,
 *  (a) `berth jstart` + `berth jstop` against bare `runc run -d` + `runc kill` + `runc delete`
 *      and two bare `node -e 0` starts: berth's own overhead = berth − runc − 2 × node. Measured
 *      as a node runs: with its agent (`berth agent`), to which the CLI hands both commands
 *      (src/cli/fast.ts); and, for reference, without it (BERTH_AGENT=0: each command does the
 *      work in its own process);
 *  (b) the same start+stop through the library API in one process, against bare runc: ratio;
 *  (c) `berth jls --json` with 10,000 envs in the inventory;
 *  (d) `berth --version` against `node -e 0`: ratio.
 * Each measure and its baseline are timed in turns (bench/common.ts medians): this VM's speed
 * drifts by a third within minutes.
 * Needs root, runc and busybox-static (make deps).
 */
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { BIN, ROOT, berth, freshNode, median, medians, report, sh, startAgent } from './common.js';
// (b) measures the shipped build (dist/, from `make build`), as the CLI does: under tsx the
// library would start each run's monitor through tsx too, which is not what users run.
const DIST = join(ROOT, 'dist/src');
const { openNode } = (await import(join(DIST, 'node.js'))) as typeof import('../src/node.js');
const { startEnv } = (await import(join(DIST, 'lifecycle/start.js'))) as typeof import('../src/lifecycle/start.js');
const { stopEnv } = (await import(join(DIST, 'lifecycle/stop.js'))) as typeof import('../src/lifecycle/stop.js');
import { ociConfig } from '../src/engines/runc/oci.js';

const N = Number(process.env.BENCH_N ?? 15);
const wd = freshNode('bench1');
berth(wd, ['base', 'busybox', 'name=bb']);
berth(wd, ['jcreate', 'jname=b1', 'base=bb', 'baserw=1']);

// bare runc on a copy of the same root (baserw=1: the data dir is the whole root)
const bundle = join(wd, 'bare-bundle');
mkdirSync(bundle, { recursive: true });
cpSync(join(wd, 'jails-data/b1-data'), join(bundle, 'rootfs'), { recursive: true, verbatimSymlinks: true });
writeFileSync(join(bundle, 'config.json'), JSON.stringify(ociConfig({ jname: 'bare', nodename: 'bench-bare', conf: {}, rootPath: join(bundle, 'rootfs') })));
const runcRoot = join(wd, 'bare-runc');
function bareRunc(): void {
  sh(['runc', '--root', runcRoot, 'run', '--detach', '--bundle', bundle, 'bare'], { stdio: ['ignore', 'ignore', 'ignore'] });
  sh(['runc', '--root', runcRoot, 'kill', 'bare', 'KILL']);
  for (;;) {
    const st = JSON.parse(sh(['runc', '--root', runcRoot, 'state', 'bare'])).status;
    if (st !== 'running') break;
  }
  sh(['runc', '--root', runcRoot, 'delete', 'bare']);
}

const pair = (env: NodeJS.ProcessEnv = {}) => () => {
  sh([process.execPath, BIN, 'jstart', 'jname=b1'], { env: { ...process.env, BERTH_WORKDIR: wd, ...env } });
  sh([process.execPath, BIN, 'jstop', 'jname=b1'], { env: { ...process.env, BERTH_WORKDIR: wd, ...env } });
};
// (a) in turns, with the node's agent running: node, bare runc, the pair through the agent, the
// pair in-process (BERTH_AGENT=0)
const stopAgent = await startAgent(wd);
const [nodeMs, runcMs, cliMs, localMs] = await medians(N, [() => sh([process.execPath, '-e', '0']), bareRunc, pair(), pair({ BERTH_AGENT: '0' })]) as [number, number, number, number];
await stopAgent();
const overhead = cliMs - runcMs - 2 * nodeMs;
const localOverhead = localMs - runcMs - 2 * nodeMs;
console.log(`node -e 0: ${nodeMs.toFixed(1)} ms   bare runc run/kill/delete: ${runcMs.toFixed(1)} ms   berth jstart+jstop: ${cliMs.toFixed(1)} ms (agent running), ${localMs.toFixed(1)} ms (BERTH_AGENT=0)`);
report('(a) berth CLI own overhead (start+stop − runc − 2 node)', `${overhead.toFixed(1)} ms`, '<= 60 ms', overhead <= 60);
console.log(`      the same without the agent (BERTH_AGENT=0, reference): ${localOverhead.toFixed(1)} ms`);

const ctx = openNode(wd);
const [runc2Ms, libMs] = await medians(N, [bareRunc, async () => { await startEnv(ctx, 'b1'); await stopEnv(ctx, 'b1'); }]) as [number, number];
ctx.close();
report('(b) library start+stop vs bare runc', `${libMs.toFixed(1)} / ${runc2Ms.toFixed(1)} ms = ${(libMs / runc2Ms).toFixed(2)}x`, '<= 1.3x', libMs / runc2Ms <= 1.3);

// (c) 10,000 envs in the inventory of another node
const wd2 = freshNode('bench2');
const ctx2 = openNode(wd2);
const ins = ctx2.inv.db.transaction(() => {
  for (let i = 0; i < 10_000; i++) {
    const jname = `env${i}`;
    ctx2.inv.insert({ jname, uuid: randomUUID(), emulator: 'runc', generation: 1, conf: { jname, base: 'bb', baserw: '0', host_hostname: jname, ip4_addr: '0', path: `${wd2}/jails/${jname}`, data: `${wd2}/jails-data/${jname}-data` } });
  }
});
ins();
ctx2.close();
const jlsMs = await median(5, () => berth(wd2, ['jls', '--json']));
const jlsText = await median(5, () => berth(wd2, ['jls']));
report('(c) berth jls --json, 10,000 envs', `${jlsMs.toFixed(1)} ms (table: ${jlsText.toFixed(1)} ms)`, '<= 300 ms', jlsMs <= 300);

const [node2Ms, verMs] = await medians(N, [() => sh([process.execPath, '-e', '0']), () => sh([process.execPath, BIN, '--version'])]) as [number, number];
report('(d) berth --version vs node -e 0', `${verMs.toFixed(1)} / ${node2Ms.toFixed(1)} ms = ${(verMs / node2Ms).toFixed(2)}x`, '<= 1.5x', verMs / node2Ms <= 1.5);
