/**
 * The bhyve engine's entry in the registry (src/engines/registry.ts): what it supports and
 * the settings it owns (info.ts), and its implementation (engine.ts), loaded only when an env
 * of it is used.
 */
import type { EngineModule } from '../types.js';
import { bhyveInfo } from './info.js';

export const bhyve: EngineModule = {
  info: bhyveInfo,
  async load() { return new (await import('./engine.js')).BhyveEngine(); },
};
