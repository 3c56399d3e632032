/**
 * The berth package itself: its root directory and version. Found by walking up from this
 * module's file to the package.json named "berth", so it works from src/ (tsx), from dist/src/
 * (tsc) and from the bundled CLI in dist/bundle/.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BerthError, EXIT } from './errors.js';

let pkgRoot: string | undefined;
let pkgVersion: string | undefined;

/**
 * The berth package root (the dir with berth's package.json).
 * @throws BerthError E_INTERNAL when no such package.json is above this module
 */
export function packageRoot(): string {
  if (pkgRoot) return pkgRoot;
  let d = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(d, 'package.json');
    if (existsSync(pj)) {
      try {
        const pkg = JSON.parse(readFileSync(pj, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === 'berth') {
          pkgVersion = pkg.version ?? 'unknown';
          return (pkgRoot = d);
        }
      } catch { /* not ours */ }
    }
    const up = dirname(d);
    if (up === d) throw new BerthError('E_INTERNAL', 'cannot find the berth package root', EXIT.FAILURE);
    d = up;
  }
}

/** The version in berth's package.json. @throws BerthError E_INTERNAL (see packageRoot) */
export function berthVersion(): string {
  packageRoot();
  return pkgVersion!;
}
