/**
 * The node context every library operation takes: workdir paths, nodename, settings, the
 * inventory, the platform's mount primitive and its engines. Opened once per command.
 */
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { BerthError, EXIT } from './errors.js';
import { detectPlatform, type Platform } from './platform.js';
import { Inventory } from './inventory.js';
import { Workdir, resolveWorkdir } from './paths.js';
import { readSettings, type NodeSettings } from './settings.js';
import type { MountPrimitive } from './mounts/types.js';
import type { Engine } from './engines/types.js';
import { Ownership } from './ownership/store.js';
import { loadEngine } from './engines/registry.js';
import { JournalWriter } from './ownership/journal.js';

export { detectPlatform, type Platform } from './platform.js';


/** Returns the platform's mount primitive (loaded lazily). */
export async function mountPrimitive(platform: Platform): Promise<MountPrimitive> {
  if (platform === 'linux') return new (await import('./mounts/linux.js')).LinuxMounts();
  return new (await import('./mounts/freebsd.js')).FreebsdMounts();
}


/** An opened node. Call {@link NodeCtx.close} when done. */
export interface NodeCtx {
  wd: Workdir;
  nodename: string;
  settings: NodeSettings;
  inv: Inventory;
  platform: Platform;
  /** the shared ownership directory (lease_dir) as this node sees it */
  own: Ownership;
  /** this process's writer of the node's ownership journal */
  journal: JournalWriter;
  mounts(): Promise<MountPrimitive>;
  engine(emulator: string): Promise<Engine>;
  /** whether starts spawn the node's run monitor (false only in tests with fake engines) */
  runMonitor: boolean;
  close(): void;
}

/** True when this process may list `dir`. */
function canList(dir: string): boolean {
  try {
    accessSync(dir, constants.R_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * What {@link openNode} uses instead of the real parts (tests of the lifecycle's order and
 * rollback: test/unit/lifecycle-order.test.ts; testcontainers' injected dependencies).
 */
export interface NodeParts {
  /** the engine of an emulator (default: the registry's, src/engines/registry.ts) */
  engine?: (emulator: string, platform: Platform) => Promise<Engine>;
  /** the mount primitive (default: the platform's, src/mounts/) */
  mounts?: MountPrimitive;
  /** false: starts do not spawn the node's run monitor (tests with a fake engine) */
  runMonitor?: boolean;
}

/**
 * Opens the node at `workdir` (argument, BERTH_WORKDIR or the default). `parts` replaces the
 * engines and the mount primitive (tests).
 * @throws BerthError E_NOT_ROOT (exit 1) when a user other than root cannot read the
 *   inventory; E_NOT_INITIALISED (exit 1) when initenv was not run there
 */
export function openNode(workdir?: string, parts: NodeParts = {}): NodeCtx {
  const root = new Workdir(resolveWorkdir(workdir));
  // var/db is root's alone (0700): another user sees a node, not its inventory
  const dbDir = dirname(root.dbFile);
  if (process.getuid?.() !== 0 && existsSync(root.nodenameFile) && existsSync(dbDir) && !canList(dbDir)) {
    throw new BerthError('E_NOT_ROOT', `${root.root} is a berth node, but its inventory ${root.dbFile} is root's alone: berth runs as root (it mounts, starts containers and runs hooks)`, EXIT.FAILURE, {
      hint: 'run the command as root (sudo berth ...)',
    });
  }
  if (!existsSync(root.nodenameFile) || !existsSync(root.dbFile)) {
    throw new BerthError('E_NOT_INITIALISED', `${root.root} is not an initialised berth workdir`, EXIT.FAILURE, {
      hint: `run: berth initenv workdir=${root.root} nodename=<name>`,
    });
  }
  const nodename = readFileSync(root.nodenameFile, 'utf8').split(/\s+/)[0]!;
  const settings = readSettings(root.conf);
  const wd = new Workdir(root.root, settings.lease_dir || undefined);
  const own = new Ownership(wd.leaseDir, nodename);
  const inv = Inventory.open(wd.dbFile);
  const platform = detectPlatform();
  let mp: MountPrimitive | undefined = parts.mounts;
  const load = parts.engine ?? loadEngine;
  const engines = new Map<string, Engine>();
  return {
    wd, nodename, settings, inv, platform, own, journal: new JournalWriter(own), runMonitor: parts.runMonitor ?? true,
    async mounts() { return (mp ??= await mountPrimitive(platform)); },
    async engine(emulator: string) {
      let e = engines.get(emulator);
      if (!e) { e = await load(emulator, platform); engines.set(emulator, e); }
      return e;
    },
    close() { inv.close(); },
  };
}
