/**
 * The VM settings model shared by the qemu and bhyve engines (CBSD's VM keys, numbered
 * disk/NIC rows, cloud-init keys). See settings.ts (scalar keys), spec.ts (VmSpec, rows,
 * cloud-init, the reverse) and size.ts (512m/1g sizes).
 */
export * from './size.js';
export * from './settings.js';
export * from './spec.js';
