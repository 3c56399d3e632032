/**
 * The env settings as command options (jcreate, jset), derived from the engine registry and
 * the lifecycle's settings table: no command module names an engine or a setting itself.
 */
import { ENGINE_MODULES } from '../engines/registry.js';
import { settingsHelp } from '../lifecycle/settings.js';
import { o } from './options.js';
import type { OptDef } from './types.js';

/** `runc (Linux) or jail (FreeBSD)`: the engines of a command family. */
export function enginesHelp(family: 'j' | 'b'): string {
  return ENGINE_MODULES.map((m) => m.info).filter((i) => i.family === family).map((i) => `${i.name} (${i.platforms.map((p) => (p === 'linux' ? 'Linux' : 'FreeBSD')).join(', ')})`).join(' or ');
}

/** emulator= and every settable key of the env family `family`, with the help text of its settings. */
export function envKeys(family: 'j' | 'b'): OptDef[] {
  return [
    o('emulator', `${enginesHelp(family)}; default: the platform's first`),
    ...settingsHelp(family).map((d) => o(d.key, d.help, d.arg)),
  ];
}

/** The patterns of the numbered-row settings (dsk_*N, nic_*N ...) of the engines of `family`; undefined when none has any. */
export function envKeyPatterns(family: 'j' | 'b'): RegExp[] | undefined {
  const p = ENGINE_MODULES.map((m) => m.info).filter((i) => i.family === family).flatMap((i) => (i.settingPatterns ?? []).map((x) => x.pattern));
  return p.length ? p : undefined;
}
