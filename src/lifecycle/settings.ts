/**
 * The settings jcreate and jset accept (CBSD names) and their validation, before anything is
 * written. Engine-specific checks are the engine's (src/engines/<name>/).
 */
import { usageError } from '../errors.js';
import { checkBaseName } from '../names.js';

/** Keys jcreate/jset accept (CBSD names), and those jset may not change. */
export const SETTABLE_KEYS = ['base', 'baserw', 'host_hostname', 'ip4_addr', 'ip6_addr', 'interface', 'vnet', 'exec_start', 'exec_stop',
  'stop_timeout', 'astart', 'mnt_start', 'mnt_stop', 'mnt_timeout', 'clone_script', 'protected', 'devfs_ruleset', 'enforce_statfs',
  'allow_raw_sockets', 'allow_mount', 'allow_sysvipc', 'persist', 'childrenmax', 'exec_timeout', 'exec_consolelog', 'exec_prestart',
  'exec_poststart', 'exec_prestop', 'exec_poststop', 'devfs'];

const FLAG_KEYS = ['baserw', 'vnet', 'astart', 'protected', 'allow_raw_sockets', 'allow_mount', 'allow_sysvipc', 'persist', 'devfs'];
const INT_KEYS = ['stop_timeout', 'mnt_timeout', 'devfs_ruleset', 'enforce_statfs', 'childrenmax', 'exec_timeout'];
const HOOK_KEYS = ['mnt_start', 'mnt_stop', 'clone_script'];

/**
 * Validates user-given settings (values only; no I/O).
 * @throws BerthError E_BAD_VALUE / E_UNKNOWN_KEY (exit 2) naming key and value
 */
export function validateSettings(input: Record<string, string>): void {
  for (const [k, v] of Object.entries(input)) {
    if (!SETTABLE_KEYS.includes(k)) throw usageError('E_UNKNOWN_KEY', `unknown setting ${JSON.stringify(k)}; settable: ${SETTABLE_KEYS.join(' ')}`);
    if (FLAG_KEYS.includes(k) && v !== '0' && v !== '1') throw usageError('E_BAD_VALUE', `bad ${k}=${JSON.stringify(v)}: expected 0 or 1`);
    if (INT_KEYS.includes(k) && !/^\d+$/.test(v)) throw usageError('E_BAD_VALUE', `bad ${k}=${JSON.stringify(v)}: expected a whole number`);
    if (HOOK_KEYS.includes(k) && v !== '0' && v !== '' && !v.startsWith('/')) throw usageError('E_BAD_VALUE', `bad ${k}=${JSON.stringify(v)}: expected an absolute path or 0`);
    if (k === 'base') checkBaseName(v);
    if (k === 'host_hostname' && !/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/.test(v)) throw usageError('E_BAD_VALUE', `bad host_hostname=${JSON.stringify(v)}: expected a host name`);
    if (/[\n\0]/.test(v)) throw usageError('E_BAD_VALUE', `bad ${k}: values may not contain newlines`);
  }
}
