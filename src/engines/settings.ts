/**
 * Small builders of {@link SettingDef}s: the value forms shared by the lifecycle's common
 * settings (src/lifecycle/settings.ts) and the engines' own (src/engines/<name>/module.ts).
 */
import { usageError } from '../errors.js';
import type { SettingDef } from './types.js';

const bad = (key: string, value: string, expected: string) => usageError('E_BAD_VALUE', `bad ${key}=${JSON.stringify(value)}: expected ${expected}`);

/** A 0/1 flag. */
export function flag(key: string, help: string): SettingDef {
  return { key, help, arg: '0|1', normalize: (v) => { if (v !== '0' && v !== '1') throw bad(key, v, '0 or 1'); return v; } };
}

/** A whole number (seconds, counts ...). */
export function wholeNumber(key: string, help: string): SettingDef {
  return { key, help, normalize: (v) => { if (!/^\d+$/.test(v)) throw bad(key, v, 'a whole number'); return v; } };
}

/** An absolute path to an executable (hooks), or 0 for none ('' = the node default). */
export function hookPath(key: string, help: string): SettingDef {
  return { key, help, arg: 'path|0', normalize: (v) => { if (v !== '0' && v !== '' && !v.startsWith('/')) throw bad(key, v, 'an absolute path or 0'); return v; } };
}

/** Any text (one line). */
export function text(key: string, help: string, arg?: string): SettingDef {
  return { key, help, arg };
}
