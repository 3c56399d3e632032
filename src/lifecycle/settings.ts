/**
 * The settings jcreate and jset accept (CBSD names) and their checks, before anything is
 * written: the lifecycle's own (every engine's, and those of tree engines), plus each engine's
 * from the registry (src/engines/<name>/module.ts). Checks of several settings together are
 * the engine's (Engine.validate).
 */
import { usageError } from '../errors.js';
import { checkBaseName } from '../names.js';
import { ENGINE_MODULES } from '../engines/registry.js';
import { flag, hookPath, text, wholeNumber } from '../engines/settings.js';
import type { EngineInfo, SettingDef } from '../engines/types.js';

/** Settings of every env, whatever its engine. */
export const COMMON_SETTINGS: readonly SettingDef[] = [
  wholeNumber('stop_timeout', 'seconds to wait before killing on stop (default 10; VMs 30)'),
  flag('astart', '1: the agent starts it at boot when this node holds its lease'),
  hookPath('mnt_start', 'storage hook run before the env\'s files are needed (absolute path or 0)'),
  hookPath('mnt_stop', 'storage hook run after the env stops (absolute path or 0)'),
  wholeNumber('mnt_timeout', 'hook timeout in seconds (default: node setting, 300; 0 = none)'),
  hookPath('clone_script', 'storage-side clone hook for jclone (absolute path or 0)'),
  flag('protected', '1 refuses jremove'),
];

/** Settings of envs whose engine runs on a root tree (src/engines/types.ts EngineInfo.root). */
export const TREE_SETTINGS: readonly SettingDef[] = [
  { key: 'base', help: 'base name under bases/', normalize: (v) => checkBaseName(v) },
  flag('baserw', '0: base mounted read-only, data holds etc root tmp home var usr/local; 1: data holds the whole root'),
  { key: 'host_hostname', help: 'hostname inside the env (default: jname)', normalize: (v) => {
    if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/.test(v)) throw usageError('E_BAD_VALUE', `bad host_hostname=${JSON.stringify(v)}: expected a host name`);
    return v;
  } },
  text('ip4_addr', '0 shares the host network; A/N gives the env that address (with vnet=1)'),
  text('interface', 'the bridge the env\'s veth/epair joins (vnet=1)'),
  flag('vnet', '1: own network namespace/vnet jail with a veth/epair on interface'),
  text('exec_start', 'the env\'s main command (default: runc a shell that sleeps until stopped; jail /bin/sh /etc/rc)'),
  text('exec_stop', 'command run inside to stop'),
];

/** The settings an env of engine `info` accepts, common ones first. */
export function settingDefsFor(info: EngineInfo): SettingDef[] {
  return [...COMMON_SETTINGS, ...(info.root === 'tree' ? TREE_SETTINGS : []), ...info.settings];
}

/** Every settable key of every engine (what the CLI picks out of its options). */
export const SETTABLE_KEYS: readonly string[] = [...new Set([...COMMON_SETTINGS, ...TREE_SETTINGS, ...ENGINE_MODULES.flatMap((m) => m.info.settings)].map((d) => d.key))];

/**
 * Checks user-given settings (values only; no I/O) and returns them in their stored form.
 * With `info`, only the settings of that engine are accepted; without, those of any engine.
 * @throws BerthError E_BAD_VALUE / E_UNKNOWN_KEY (exit 2) naming key and value
 */
export function validateSettings(input: Record<string, string>, info?: EngineInfo): Record<string, string> {
  const defs = info ? settingDefsFor(info) : [...COMMON_SETTINGS, ...TREE_SETTINGS, ...ENGINE_MODULES.flatMap((m) => m.info.settings)];
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(input)) {
    const def = defs.find((d) => d.key === k);
    const byPattern = info?.settingPatterns?.some((p) => p.pattern.test(k));
    if (!def && !byPattern) {
      const other = ENGINE_MODULES.find((m) => m.info.settings.some((d) => d.key === k));
      throw usageError('E_UNKNOWN_KEY', other && info
        ? `${k} is a setting of ${other.info.name} envs, not of ${info.name} ones; settable: ${defs.map((d) => d.key).join(' ')}`
        : `unknown setting ${JSON.stringify(k)}; settable: ${defs.map((d) => d.key).join(' ')}`);
    }
    if (/[\n\0]/.test(v)) throw usageError('E_BAD_VALUE', `bad ${k}: values may not contain newlines`);
    out[k] = def?.normalize ? def.normalize(v) : v;
  }
  return out;
}

/**
 * The settings of one command family for `--help` and the CLI's options: the common ones, then
 * each engine's of that family, an engine's own prefixed with its name (`jail: allow.mount`).
 * Keys owned by several engines appear once.
 */
export function settingsHelp(family: 'j' | 'b'): { key: string; help: string; arg?: string }[] {
  const out = new Map<string, { key: string; help: string; arg?: string }>();
  const engines = ENGINE_MODULES.map((m) => m.info).filter((i) => i.family === family);
  for (const d of [...COMMON_SETTINGS, ...(engines.some((i) => i.root === 'tree') ? TREE_SETTINGS : [])]) out.set(d.key, { key: d.key, help: d.help, arg: d.arg });
  for (const i of engines) {
    for (const d of i.settings) {
      const prev = out.get(d.key);
      out.set(d.key, prev ? { ...prev, help: prev.help.replace(/^([a-z, ]+): /, `$1, ${i.name}: `) } : { key: d.key, help: `${i.name}: ${d.help}`, arg: d.arg });
    }
  }
  return [...out.values()];
}
