/**
 * The qemu engine's entry in the registry (src/engines/registry.ts): what it supports (info.ts)
 * and its implementation (engine.ts), loaded only when a VM of it is used.
 */
import type { EngineModule } from '../types.js';
import { qemuInfo } from './info.js';

export const qemu: EngineModule = {
  info: qemuInfo,
  async load() { return new (await import('./engine.js')).QemuEngine(); },
};
