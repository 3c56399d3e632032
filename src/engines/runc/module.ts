/**
 * The runc engine's entry in the registry (src/engines/registry.ts): what it supports, and its
 * implementation (engine.ts), loaded only when an env of it is used.
 */
import type { EngineModule } from '../types.js';
import { runcInfo } from './info.js';

export const runc: EngineModule = {
  info: runcInfo,
  async load() { return new (await import('./engine.js')).RuncEngine(); },
};
