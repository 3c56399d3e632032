/**
 * What the runc engine supports (its row of the engine registry, src/engines/registry.ts).
 */

import type { EngineInfo } from '../types.js';

export const runcInfo: EngineInfo = {
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
};
