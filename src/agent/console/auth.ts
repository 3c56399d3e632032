/**
 * Web console sessions, CSRF tokens and the Origin check (docs/console.md "Security").
 *
 * - A login posts a token (src/tokens.ts) in the form body, never in a URL. A good token gets a
 *   session: 32 random bytes (the cookie `berth_session`, HttpOnly, SameSite=Strict, Path=/,
 *   Secure under TLS) and its own CSRF token (32 random bytes), kept in memory only: an agent
 *   restart logs everybody out.
 * - Every request re-reads the token of its session from the inventory (by id): a removed token
 *   ends its sessions at once. Sessions also end after {@link SESSION_IDLE_SEC} idle seconds.
 * - Every state-changing request (POST, and the console websockets) must carry the session's
 *   CSRF token (form field `_csrf` or header `X-CSRF-Token`; websockets: query `csrf`) and an
 *   Origin header equal to the console's own origin.
 * All comparisons of secrets take constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Role } from '../../tokens.js';

/** Idle seconds after which a session ends. */
export const SESSION_IDLE_SEC = 8 * 3600;
/** The session cookie's name. */
export const COOKIE = 'berth_session';

/** One logged-in browser. */
export interface Session {
  id: string;
  csrf: string;
  tokenId: string;
  role: Role;
  /** unix ms of the last request */
  seen: number;
}

/** Constant-time equality of two strings (hashed first, so lengths do not leak). Empty never matches. */
export function secretEquals(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b) return false;
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/** The in-memory session table. */
export class Sessions {
  private readonly byId = new Map<string, Session>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Makes a session for a token that was just checked. */
  create(tokenId: string, role: Role): Session {
    const s: Session = { id: randomBytes(32).toString('base64url'), csrf: randomBytes(32).toString('base64url'), tokenId, role, seen: this.now() };
    this.byId.set(s.id, s);
    return s;
  }

  /**
   * The session of a cookie value, or undefined (unknown, idle too long, or its token's role is
   * gone: `tokenRole(tokenId)` answers undefined). Refreshes its idle time and role.
   */
  get(id: string | undefined, tokenRole: (tokenId: string) => Role | undefined): Session | undefined {
    if (!id || !/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined;
    const s = this.byId.get(id);
    if (!s) return undefined;
    const role = tokenRole(s.tokenId);
    if (!role || this.now() - s.seen > SESSION_IDLE_SEC * 1000) { this.byId.delete(id); return undefined; }
    s.role = role;
    s.seen = this.now();
    return s;
  }

  destroy(id: string): void {
    this.byId.delete(id);
  }

  get size(): number {
    return this.byId.size;
  }
}

/** The value of cookie `name` in a Cookie header, or undefined. */
export function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

/** The Set-Cookie value of a session (`''` id with Max-Age=0 clears it). */
export function sessionCookie(id: string, secure: boolean): string {
  return `${COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}${id ? '' : '; Max-Age=0'}`;
}

/**
 * True when a request's Origin header names the console itself: the same scheme and host
 * (with port) as the request was made to. A missing Origin is refused (every browser sends
 * it on POST and on websocket handshakes).
 */
export function originAllowed(origin: string | undefined, host: string | undefined, secure: boolean): boolean {
  if (!origin || !host) return false;
  return origin === `${secure ? 'https' : 'http'}://${host}`;
}

/** Why a state-changing request is refused, or undefined when it may go on. */
export function refuseChange(s: Session | undefined, csrf: string | undefined, origin: string | undefined, host: string | undefined, secure: boolean, needAdmin = true): string | undefined {
  if (!s) return 'not logged in';
  if (!originAllowed(origin, host, secure)) return `Origin ${JSON.stringify(origin ?? '')} is not this console`;
  if (!secretEquals(csrf, s.csrf)) return 'missing or wrong CSRF token';
  if (needAdmin && s.role !== 'admin') return `role ${s.role} may not act (admin only)`;
  return undefined;
}
