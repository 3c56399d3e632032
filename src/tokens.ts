/**
 * Web console login tokens (`berth token add|list|remove`, docs/console.md). A token is 32
 * random bytes (base64url, prefixed `btk_`), shown once when it is made; the inventory keeps
 * only its SHA-256 (table console_tokens, migration 5 of src/inventory.ts), its id (8 hex
 * digits, to list and remove it), its role and a comment.
 *
 * Roles: `admin` may act (start, stop, migrate ..., the container shell); `viewer` only looks.
 */
import { createHash, randomBytes } from 'node:crypto';
import { notFound, usageError } from './errors.js';
import type { Inventory } from './inventory.js';

/** The roles of a console token. */
export const ROLES = ['admin', 'viewer'] as const;
export type Role = (typeof ROLES)[number];

/** A token as `token list` shows it (never the secret nor its hash). */
export interface TokenInfo {
  id: string;
  role: Role;
  comment: string;
  /** unix seconds */
  createdAt: number;
}

/** SHA-256 (hex) of a token string. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/**
 * Checks a role= value. @throws BerthError E_BAD_ROLE (exit 2) naming the value
 */
export function checkRole(role: string | undefined): Role {
  if (!role) throw usageError('E_BAD_ROLE', 'token add needs role=admin or role=viewer');
  if (!(ROLES as readonly string[]).includes(role)) throw usageError('E_BAD_ROLE', `bad role=${JSON.stringify(role)}: expected admin or viewer`);
  return role as Role;
}

/**
 * token add: makes a token of `role`, stores its hash. @returns the token (shown once) and its info
 * @throws BerthError E_BAD_ROLE (2), E_BAD_VALUE (2: a comment over 200 characters or with control characters)
 */
export function addToken(inv: Inventory, input: { role?: string; comment?: string }): TokenInfo & { token: string } {
  const role = checkRole(input.role);
  const comment = input.comment ?? '';
  if (comment.length > 200 || /[\x00-\x1f\x7f]/.test(comment)) throw usageError('E_BAD_VALUE', `bad comment=${JSON.stringify(comment)}: expected at most 200 printable characters`);
  const token = 'btk_' + randomBytes(32).toString('base64url');
  const id = randomBytes(4).toString('hex');
  inv.addConsoleToken({ id, role, hash: hashToken(token), comment });
  return { id, role, comment, createdAt: Math.floor(Date.now() / 1000), token };
}

/** token list: every token's id, role, comment and creation time, oldest first. */
export function listTokens(inv: Inventory): TokenInfo[] {
  return inv.listConsoleTokens().map((t) => ({ id: t.id, role: t.role, comment: t.comment, createdAt: t.created_at }));
}

/**
 * token remove: deletes the token `id` (sessions made with it end at their next request).
 * @throws BerthError E_BAD_VALUE (2: not 8 hex digits), E_NO_SUCH_TOKEN (3)
 */
export function removeToken(inv: Inventory, id: string | undefined): { id: string } {
  if (!id || !/^[0-9a-f]{8}$/.test(id)) throw usageError('E_BAD_VALUE', `bad id=${JSON.stringify(id ?? '')}: expected the 8 hex digits token list shows`);
  if (!inv.deleteConsoleToken(id)) throw notFound('E_NO_SUCH_TOKEN', `no console token ${id}`, { hint: 'see: berth token list' });
  return { id };
}

/** The token a presented secret is, or undefined (a wrong, removed or malformed token). */
export function findToken(inv: Inventory, presented: string): TokenInfo | undefined {
  if (!/^btk_[A-Za-z0-9_-]{43}$/.test(presented)) return undefined;
  const t = inv.consoleTokenByHash(hashToken(presented));
  return t ? { id: t.id, role: t.role, comment: t.comment, createdAt: t.created_at } : undefined;
}
