/**
 * The runc engine's entry in the registry (src/engines/registry.ts): what it supports, and its
 * implementation (engine.ts), loaded only when an env of it is used.
 */
import type { EngineModule } from '../registry.js';

export const runc: EngineModule = {
  info: {
    name: 'runc',
    summary: 'Linux containers: runc with an OCI bundle berth writes, on a root assembled from a base and the env\'s data',
    platforms: ['linux'],
    root: 'tree',
    exec: true,
    console: 'none',
    liveMigration: false,
    network: ['host', 'veth'],
    verified: 'live',
    family: 'j',
    settings: [],
  },
  async load() { return new (await import('./engine.js')).RuncEngine(); },
};
