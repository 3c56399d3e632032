/**
 * The bhyve engine's pure parts (FreeBSD; verified by command transcripts against fake
 * bhyve, bhyvectl, bhyveload and ifconfig, never run on a FreeBSD host): the bhyve-only
 * settings (settings.ts), the bhyve_config(5) file (config.ts) and the start, stop and
 * teardown plans (plan.ts). The engine class composes them.
 */
export * from './settings.js';
export * from './config.js';
export * from './plan.js';
