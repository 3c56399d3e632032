// Bundles the CLI (dist/bundle/berth.cjs) and the run monitor (dist/bundle/monitor.cjs) with
// esbuild, each into one CommonJS file, so that a command loads one file instead of ~50 ES
// modules. CommonJS rather than ESM because Node 20 then never starts its ESM loader for a
// command: measured 24 ms less per command than an ESM bundle split into chunks
// (bench/lifecycle.ts). Commands still load lazily: esbuild turns each dynamic import() of a
// command module into a deferred init inside the one file, run only when that command runs.
// The library (dist/src/, from tsc) is not bundled. better-sqlite3's JavaScript is bundled
// (about 7 ms less per command than resolving and loading its files); its compiled addon stays
// in node_modules and is handed to it as nativeBinding (src/inventory.ts). Dependencies only
// some commands need stay in node_modules (all of them load through require()).
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';

const BUNDLED = ['commander', 'tinyexec', 'text-table', 'better-sqlite3'];
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const external = Object.keys(pkg.dependencies).filter((d) => !BUNDLED.includes(d));

const outdir = new URL('../dist/bundle/', import.meta.url).pathname;
rmSync(outdir, { recursive: true, force: true });
// fast: the CLI's agent fast path for jstart/jstop (src/cli/fast.ts), loaded before the CLI
for (const [name, entry] of [['berth', 'src/cli/main.ts'], ['monitor', 'src/monitor.ts'], ['fast', 'src/cli/fast.ts']]) {
  await build({
    entryPoints: { [name]: entry },
    outdir,
    outExtension: { '.js': '.cjs' },
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    external,
    // every import() of a dependency or built-in becomes a require(): a real import() would start
    // Node's ESM loader (about 20 ms) in the middle of a command
    supported: { 'dynamic-import': false },
    // src/ is ESM and finds files next to itself through import.meta.url (src/pkg.ts,
    // src/lifecycle.ts monitorCommand): give the bundle its own file's URL
    define: { 'import.meta.url': '__berthModuleUrl' },
    banner: { js: 'var __berthModuleUrl = require("node:url").pathToFileURL(__filename).href;' },
    logLevel: 'warning',
  });
}

// The V8 code cache of the CLI bundle (see bin/berth), made by running `berth --help` and a
// command that fails before touching anything, so the cache holds the start-up path too.
import { spawnSync } from 'node:child_process';
const bin = new URL('../bin/berth', import.meta.url).pathname;
for (const args of [['--help'], ['jls', '--workdir=/nonexistent/berth-build-cache']]) {
  spawnSync(process.execPath, [bin, ...args], { stdio: 'ignore', env: { ...process.env, BERTH_WRITE_V8CACHE: '1' } });
}

// The web console's client files (dist/console/, served by the agent under /assets/: nothing is
// fetched from elsewhere at run time): htmx as published, the console's own client code, the
// env page's extras (xterm, uPlot) as one IIFE each, noVNC as an ES module, and one stylesheet.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
const consoleDir = new URL('../dist/console/', import.meta.url).pathname;
rmSync(consoleDir, { recursive: true, force: true });
mkdirSync(consoleDir, { recursive: true });
const nm = (p) => new URL(`../node_modules/${p}`, import.meta.url).pathname;
copyFileSync(nm('htmx.org/dist/htmx.min.js'), consoleDir + 'htmx.min.js');
for (const [name, entry] of [['console', 'client/console/main.js'], ['extras', 'client/console/extras.js']]) {
  await build({ entryPoints: { [name]: entry }, outdir: consoleDir, bundle: true, format: 'iife', platform: 'browser', target: 'es2020', minify: true, logLevel: 'warning' });
}
// noVNC (the VM screen) as one ES module: noVNC 1.7 has a top-level await, which an IIFE cannot hold
await build({ entryPoints: { vnc: 'client/console/vnc.js' }, outdir: consoleDir, bundle: true, format: 'esm', platform: 'browser', target: 'es2022', minify: true, logLevel: 'warning' });
writeFileSync(consoleDir + 'console.css', [nm('@xterm/xterm/css/xterm.css'), nm('uplot/dist/uPlot.min.css'), new URL('../client/console/console.css', import.meta.url).pathname]
  .map((f) => readFileSync(f, 'utf8')).join('\n'));
