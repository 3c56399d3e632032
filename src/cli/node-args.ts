/** What the `node` command modules share: the token of `node add`, times as ISO strings. */
import { readFileSync } from 'node:fs';
import { usageError } from '../errors.js';
import { str } from './args.js';
import type { Opts } from './types.js';

/** A unix time (seconds) as `2026-12-02T13:00:00Z`. */
export const isoTime = (unix: number): string => new Date(unix * 1000).toISOString().replace(/\.\d+Z$/, 'Z');

/**
 * The token of `node add`: token=, or the first line of token_file= (not visible in ps).
 * @throws BerthError E_USAGE (both given), E_BAD_TOKEN_FILE (unreadable or empty), exit 2
 */
export function tokenOf(opts: Opts): string | undefined {
  const file = str(opts, 'token_file');
  if (file === undefined) return str(opts, 'token');
  if (str(opts, 'token') !== undefined) throw usageError('E_USAGE', 'give token= or token_file=, not both');
  let token: string;
  try {
    token = readFileSync(file, 'utf8').split('\n')[0]!.trim();
  } catch (e) {
    throw usageError('E_BAD_TOKEN_FILE', `cannot read token_file=${file}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  if (!token) throw usageError('E_BAD_TOKEN_FILE', `token_file=${file} holds no token on its first line`, { hint: "copy that node's etc/api.token" });
  return token;
}
