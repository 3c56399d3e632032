/**
 * CBSD's VM commands (bcreate, bstart, ... : family `b`) derived from the env commands (jcreate,
 * jstart, ...: family `j`): the same handler, told its family through the `_family` option
 * (src/cli/args.ts familyOf), with the settings options of the VM engines instead of those of
 * jails and containers (src/cli/env-options.ts). One entry per command in src/cli/registry.ts.
 */
import { envKeyPatterns, envKeys } from './env-options.js';
import type { CmdDef } from './types.js';

/**
 * The VM command `name` made from env command `def`: its options with the settings of family b
 * (the env-settings options of family j replaced), its handler run with `_family=b`, the agent
 * fast path as `def`'s (the request names the family, src/cli/fast.ts).
 */
export function vmCommand(def: CmdDef, name: string, summary: string): CmdDef {
  const jKeys = new Set(envKeys('j').map((k) => k.key));
  const hadEmulator = def.options.some((k) => k.key === 'emulator');
  const hadSettings = def.options.some((k) => jKeys.has(k.key) && k.key !== 'emulator');
  const options = [
    ...def.options.filter((k) => !jKeys.has(k.key)),
    ...(hadSettings || hadEmulator ? envKeys('b').filter((k) => (k.key === 'emulator' ? hadEmulator : hadSettings)) : []),
  ];
  return {
    ...def, name, summary, options, derivedFrom: def.name, keyPatterns: hadSettings ? envKeyPatterns('b') : undefined,
    aliases: def.aliases?.map((a) => a.replace(/^j/, 'b')),
    help: def.help?.replace(/berth j(create|start|stop|restart|remove|ls|set|get|clone|register|unregister)\b/g, 'berth b$1'),
    handler: (opts, args, io) => def.handler({ ...opts, _family: 'b' }, args, io),
  };
}
