/**
 * The host platform berth runs on (design/product.md "Platforms and engines").
 */
import { BerthError, EXIT } from './errors.js';

/** 'linux' or 'freebsd'; `BERTH_PLATFORM` overrides detection (used by the FreeBSD transcript tests). */
export type Platform = 'linux' | 'freebsd';

/** The host platform. @throws BerthError E_UNSUPPORTED_OS on other systems */
export function detectPlatform(env: NodeJS.ProcessEnv = process.env): Platform {
  const p = env.BERTH_PLATFORM || process.platform;
  if (p === 'linux' || p === 'freebsd') return p;
  throw new BerthError('E_UNSUPPORTED_OS', `berth runs on Linux and FreeBSD, not on ${p}`, EXIT.FAILURE);
}
