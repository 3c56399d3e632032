/**
 * What the jail engine supports (its row of the engine registry, src/engines/registry.ts).
 */
import { flag, wholeNumber } from '../settings.js';
import type { EngineInfo, SettingDef } from '../types.js';

const s = (key: string, help: string, arg?: string): SettingDef => ({ key, help, arg });

export const jailInfo: EngineInfo = {
  name: 'jail',
  summary: 'FreeBSD jails: jail(8) with a generated jail.conf block, mount_nullfs and devfs (verified by command transcripts, not run on a FreeBSD host)',
  platforms: ['freebsd'],
  root: 'tree',
  exec: true,
  console: 'none',
  liveMigration: false,
  network: ['host', 'epair'],
  verified: 'transcript',
  family: 'j',
  settings: [
    s('ip6_addr', 'IPv6 address(es)'),
    wholeNumber('devfs_ruleset', 'devfs ruleset number'),
    wholeNumber('enforce_statfs', 'enforce_statfs (0, 1 or 2)'),
    flag('allow_raw_sockets', 'allow.raw_sockets'),
    flag('allow_mount', 'allow.mount'),
    flag('allow_sysvipc', 'allow.sysvipc'),
    flag('persist', 'persist'),
    wholeNumber('childrenmax', 'children.max'),
    wholeNumber('exec_timeout', 'exec.timeout, seconds'),
    s('exec_consolelog', 'exec.consolelog (1 = var/log/<jname>.console.log)'),
    s('exec_prestart', 'exec.prestart (runs on the host, as root)'),
    s('exec_poststart', 'exec.poststart (runs on the host, as root)'),
    s('exec_prestop', 'exec.prestop (runs on the host, as root)'),
    s('exec_poststop', 'exec.poststop (runs on the host, as root)'),
    flag('devfs', '0: do not mount devfs'),
  ],
};
