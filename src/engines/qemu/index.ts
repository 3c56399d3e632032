/**
 * The qemu engine's parts (Linux VMs): command line, QMP, accelerator probe, disks, kernel
 * bases, busybox guest files, cloud-init seed, VNC ports, process start/stop, live migration.
 * The engine itself (contract v2) is engine.ts, its registry row info.ts and module.ts.
 */
export * from './accel.js';
export * from './argv.js';
export * from './cloudinit.js';
export * from './disk.js';
export * from './firmware.js';
export * from './guest.js';
export * from './kernel.js';
export * from './migrate.js';
export * from './ports.js';
export * from './process.js';
export * from './qmp.js';
export * from './stop.js';
