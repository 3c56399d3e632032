/**
 * `berth base import|busybox|list|remove`: thin handlers over src/bases.ts.
 * (`base fetch` is src/cli/commands/basefetch.ts.)
 */
import { busyboxBase, importBase, listBases, removeBase, type BaseImportResult } from '../../bases.js';
import { BerthError, EXIT, usageError } from '../../errors.js';
import { openNode } from '../../node.js';
import { renderTable } from '../table.js';
import type { CmdIO, CmdOutput, Opts } from '../types.js';

function str(opts: Opts, key: string): string | undefined {
  const v = opts[key];
  return typeof v === 'string' ? v : undefined;
}

function needName(opts: Opts, args: string[] = []): string {
  const name = str(opts, 'name') ?? args[0];
  if (!name) throw usageError('E_NO_NAME', 'give the base name: name=<name>');
  return name;
}

function importText(r: BaseImportResult): string {
  const added = r.addedDirs.length ? `; added mount points: ${r.addedDirs.join(' ')}` : '';
  return `base ${r.name} ready at ${r.path} (${r.size} bytes, from ${r.kind === 'busybox' ? 'busybox ' : ''}${r.source})${added}`;
}

/** `base import name= source=<dir | .tar | .tar.gz | .tar.xz | .txz>` */
export async function baseImport(opts: Opts, _args: string[], io: CmdIO): Promise<CmdOutput> {
  const name = needName(opts);
  const source = str(opts, 'source');
  if (!source) throw usageError('E_BAD_SOURCE', 'give source=<dir | .tar | .tar.gz | .tar.xz | .txz>');
  const ctx = openNode(str(opts, 'workdir'));
  try {
    const r = await importBase(ctx, name, source, { onProgress: io.interactive || io.verbose ? io.note : undefined });
    return { data: { base: r }, text: importText(r) };
  } finally {
    ctx.close();
  }
}

/** `base busybox name=` */
export async function baseBusybox(opts: Opts, _args: string[], io: CmdIO): Promise<CmdOutput> {
  const name = needName(opts);
  const ctx = openNode(str(opts, 'workdir'));
  try {
    const r = await busyboxBase(ctx, name, { onProgress: io.interactive || io.verbose ? io.note : undefined });
    return { data: { base: r }, text: importText(r) };
  } finally {
    ctx.close();
  }
}

/** `base list`: NAME PATH SIZE ENVS (size in bytes, ENVS = envs of this node using it). */
export async function baseList(opts: Opts): Promise<CmdOutput> {
  const ctx = openNode(str(opts, 'workdir'));
  try {
    const bases = listBases(ctx);
    const text = renderTable(['name', 'path', 'size', 'envs'], bases.map((b) => [b.name, b.path, b.size, b.envs.length]));
    return { data: { bases: bases.map((b) => ({ ...b, envCount: b.envs.length })) }, text };
  } finally {
    ctx.close();
  }
}

/** `base remove name=` (or a positional name). */
export async function baseRemove(opts: Opts, args: string[]): Promise<CmdOutput> {
  const name = needName(opts, args);
  const ctx = openNode(str(opts, 'workdir'));
  try {
    const b = await removeBase(ctx, name);
    return { data: { removed: b }, text: `base ${b.name} removed (${b.path}, ${b.size} bytes)` };
  } finally {
    ctx.close();
  }
}
