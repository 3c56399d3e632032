/**
 * The engine registry: every engine berth knows, by emulator name. Adding an engine means a
 * folder src/engines/<name>/ (module.ts: its EngineInfo and a loader; engine.ts: the Engine)
 * and one line below; nothing else names an engine (Incus's driver table). CLI options,
 * settable keys, descriptor validation, `--help` and doctor are derived from these entries.
 */
import { usageError } from '../errors.js';
import type { Platform } from '../platform.js';
import type { Engine, EngineInfo, EngineModule } from './types.js';
import { runc } from './runc/module.js';
import { jail } from './jail/module.js';
import { qemu } from './qemu/module.js';
import { bhyve } from './bhyve/module.js';

export type { EngineModule };

/** Every engine, in the order `--help` lists them. */
export const ENGINE_MODULES: readonly EngineModule[] = [runc, jail, qemu, bhyve];

/** The registry entry of `emulator`, or undefined. */
export function engineModule(emulator: string): EngineModule | undefined {
  return ENGINE_MODULES.find((m) => m.info.name === emulator);
}

/** The command family of `emulator` (j: jails and containers, b: VMs); an emulator berth does not know counts as j. */
export function familyOfEmulator(emulator: string): 'j' | 'b' {
  return engineModule(emulator)?.info.family ?? 'j';
}

/**
 * Refuses a command of family `family` on an env of the other family (CBSD's split: a j
 * command acts on jails and containers, a b command on VMs): `vm1 is a qemu VM: use bstop`.
 * @param verb the command without its family letter: start, stop, rename ...
 * @throws BerthError E_BAD_EMULATOR (exit 2) when the env's emulator is of the other family
 */
export function checkFamily(jname: string, emulator: string, family: 'j' | 'b', verb: string): void {
  if (familyOfEmulator(emulator) === family) return;
  throw usageError('E_BAD_EMULATOR', `${jname} is a ${emulator} ${family === 'b' ? 'env, not a VM' : 'VM'}: use ${family === 'b' ? 'j' : 'b'}${verb}`);
}

/** The engines that run on `platform`, of the command family `family` (j: jails and containers, b: VMs), when given. */
export function enginesFor(platform: Platform, family?: 'j' | 'b'): EngineInfo[] {
  return ENGINE_MODULES.map((m) => m.info).filter((i) => i.platforms.includes(platform) && (!family || i.family === family));
}

/**
 * The emulator an env gets when none is given: the platform's first engine of the family
 * (jcreate: runc on Linux, jail on FreeBSD; bcreate: qemu on Linux, bhyve on FreeBSD).
 * @throws BerthError E_BAD_EMULATOR (exit 2) when this platform has none
 */
export function defaultEmulator(platform: Platform, family: 'j' | 'b' = 'j'): string {
  const e = enginesFor(platform, family)[0];
  if (!e) throw usageError('E_BAD_EMULATOR', `no ${family === 'b' ? 'VM' : 'container or jail'} engine runs on ${platform}`);
  return e.name;
}

/**
 * The EngineInfo of `emulator` on `platform`.
 * @throws BerthError E_BAD_EMULATOR (exit 2) for an emulator berth does not know, or one this platform cannot run
 */
export function engineInfoFor(emulator: string, platform: Platform): EngineInfo {
  const m = engineModule(emulator);
  if (!m || !m.info.platforms.includes(platform)) {
    const here = enginesFor(platform).map((i) => i.name);
    throw usageError('E_BAD_EMULATOR', `emulator=${JSON.stringify(emulator)} does not run on ${platform}; use ${here.join(' or ')}`);
  }
  return m.info;
}

/**
 * Loads the engine for `emulator` on `platform`.
 * @throws BerthError E_BAD_EMULATOR (exit 2), see {@link engineInfoFor}
 */
export async function loadEngine(emulator: string, platform: Platform): Promise<Engine> {
  engineInfoFor(emulator, platform);
  return engineModule(emulator)!.load();
}
