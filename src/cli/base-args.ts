/** What the `base` command modules share: the base name, the import result line. */
import type { BaseImportResult } from '../bases.js';
import { usageError } from '../errors.js';
import { str } from './args.js';
import type { Opts } from './types.js';

/**
 * The base name: name= or the first argument.
 * @throws BerthError E_NO_NAME (exit 2) when there is none
 */
export function baseName(opts: Opts, args: string[] = []): string {
  const name = str(opts, 'name') ?? args[0];
  if (!name) throw usageError('E_NO_NAME', 'give the base name: name=<name>');
  return name;
}

/** The line `base import` and `base busybox` print. */
export function importText(r: BaseImportResult): string {
  const added = r.addedDirs.length ? `; added mount points: ${r.addedDirs.join(' ')}` : '';
  return `base ${r.name} ready at ${r.path} (${r.size} bytes, from ${r.kind === 'busybox' ? 'busybox ' : ''}${r.source})${added}`;
}
