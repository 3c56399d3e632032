// Bundles the CLI (dist/bundle/berth.js) and the run monitor (dist/bundle/monitor.js) with
// esbuild, so that a command loads a handful of files instead of ~50 ES modules (module
// resolution and loading was most of berth's start-up time beyond Node's own, see
// bench/lifecycle.ts). Commands still load lazily: each dynamic import() becomes its own chunk.
// The library (dist/src/, from tsc) is not bundled. Dependencies that are native
// (better-sqlite3) or only needed by some commands stay in node_modules.
import { build } from 'esbuild';
import { rmSync } from 'node:fs';

const BUNDLED = ['commander', 'tinyexec', 'text-table'];
const pkg = JSON.parse((await import('node:fs')).readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const external = Object.keys(pkg.dependencies).filter((d) => !BUNDLED.includes(d));

const outdir = new URL('../dist/bundle/', import.meta.url).pathname;
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: { berth: 'src/cli/main.ts', monitor: 'src/monitor.ts' },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external,
  // commander is CommonJS and require()s node: built-ins
  banner: { js: "import { createRequire as __berthRequire } from 'node:module'; const require = __berthRequire(import.meta.url);" },
  logLevel: 'warning',
});
