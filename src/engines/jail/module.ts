/**
 * The jail(8) engine's entry in the registry (src/engines/registry.ts): what it supports, the
 * jail settings it owns (CBSD's names; their jail.conf meaning in jailconf.ts), and its
 * implementation (engine.ts), loaded only when an env of it is used.
 */
import type { EngineModule } from '../types.js';
import { jailInfo } from './info.js';

export const jail: EngineModule = {
  info: jailInfo,
  async load() { return new (await import('./engine.js')).JailEngine(); },
};
