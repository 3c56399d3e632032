/**
 * Node settings in `etc/berth.conf` (key="value" lines, src/kvfile.ts). Unknown keys are kept.
 */
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { readKV, formatKV, type KV } from './kvfile.js';
import { usageError } from './errors.js';

/** Parsed node settings with defaults applied. Durations in seconds. */
export interface NodeSettings {
  zfsfeat: 0 | 1;
  hammerfeat: 0 | 1;
  /** lease time to live, seconds (default 30) */
  lease_ttl: number;
  /** default hook timeout, seconds (default 300; 0 = none) */
  mnt_timeout: number;
  /** node default storage hooks ('0' = none) */
  default_mnt_start: string;
  default_mnt_stop: string;
  /** loopback TCP port of the agent API ('0' = unix socket only) */
  api_port: number;
  /**
   * the shared ownership directory, absolute ('' = `<workdir>/jails-lease`): mounted whole on
   * every node (src/ownership/store.ts)
   */
  lease_dir: string;
  /** TCP port of the web console served by `berth agent` (0 = no console; docs/console.md) */
  console_port: number;
  /** the address the console listens on (default 127.0.0.1) */
  console_bind: string;
  /** PEM certificate and key files: with both, the console speaks HTTPS only ('' = plain HTTP) */
  tls_cert: string;
  tls_key: string;
  /** seconds between the console's CPU/memory samples of running envs (default 10) */
  console_stats_sec: number;
  /** all keys as written */
  raw: KV;
}

export const SETTING_DEFAULTS: KV = {
  zfsfeat: '0', hammerfeat: '0', lease_ttl: '30', mnt_timeout: '300', default_mnt_start: '0', default_mnt_stop: '0', api_port: '0', lease_dir: '',
};

/** Defaults of the optional web console settings (docs/console.md); initenv does not write them. */
export const CONSOLE_DEFAULTS: KV = { console_port: '0', console_bind: '127.0.0.1', tls_cert: '', tls_key: '', console_stats_sec: '10' };

function int(raw: KV, k: string, min = 0): number {
  const v = raw[k] ?? SETTING_DEFAULTS[k] ?? CONSOLE_DEFAULTS[k]!;
  if (!/^\d+$/.test(v) || Number(v) < min) throw usageError('E_BAD_SETTING', `bad ${k}=${JSON.stringify(v)} in berth.conf: expected an integer >= ${min}`);
  return Number(v);
}

function leaseDir(v: string): string {
  if (v !== '' && (!v.startsWith('/') || /[\n\0]/.test(v))) throw usageError('E_BAD_SETTING', `bad lease_dir=${JSON.stringify(v)} in berth.conf: expected an absolute path (or empty for <workdir>/jails-lease)`);
  return v.replace(/\/+$/, '') || (v ? '/' : '');
}

function port(raw: KV, k: string): number {
  const n = int(raw, k);
  if (n > 65535) throw usageError('E_BAD_SETTING', `bad ${k}=${JSON.stringify(raw[k])} in berth.conf: expected 0 (off) or a TCP port 1-65535`);
  return n;
}

function bind(v: string): string {
  if (!isIP(v)) throw usageError('E_BAD_SETTING', `bad console_bind=${JSON.stringify(v)} in berth.conf: expected an IP address (127.0.0.1, ::1, 0.0.0.0 ...)`);
  return v;
}

function pemPath(raw: KV, k: string): string {
  const v = raw[k] ?? '';
  if (v !== '' && (!v.startsWith('/') || /[\n\0]/.test(v))) throw usageError('E_BAD_SETTING', `bad ${k}=${JSON.stringify(v)} in berth.conf: expected an absolute path to a PEM file (or empty)`);
  return v;
}

/** Interprets a settings map. @throws BerthError E_BAD_SETTING (exit 2) naming key and value */
export function toSettings(raw: KV): NodeSettings {
  const flag = (k: string): 0 | 1 => {
    const v = raw[k] ?? SETTING_DEFAULTS[k]!;
    if (v !== '0' && v !== '1') throw usageError('E_BAD_SETTING', `bad ${k}=${JSON.stringify(v)}: expected 0 or 1`);
    return v === '1' ? 1 : 0;
  };
  return {
    zfsfeat: flag('zfsfeat'), hammerfeat: flag('hammerfeat'),
    lease_ttl: int(raw, 'lease_ttl', 1), mnt_timeout: int(raw, 'mnt_timeout'),
    default_mnt_start: raw.default_mnt_start ?? '0', default_mnt_stop: raw.default_mnt_stop ?? '0',
    api_port: int(raw, 'api_port'), lease_dir: leaseDir(raw.lease_dir ?? ''),
    console_port: port(raw, 'console_port'), console_bind: bind(raw.console_bind ?? '127.0.0.1'),
    tls_cert: pemPath(raw, 'tls_cert'), tls_key: pemPath(raw, 'tls_key'), console_stats_sec: int(raw, 'console_stats_sec', 1),
    raw,
  };
}

/** Reads etc/berth.conf (missing file = defaults). */
export function readSettings(file: string): NodeSettings {
  return toSettings(existsSync(file) ? { ...SETTING_DEFAULTS, ...readKV(file) } : { ...SETTING_DEFAULTS });
}

/** Writes etc/berth.conf atomically. */
export async function writeSettings(file: string, raw: KV): Promise<void> {
  const { default: writeFileAtomic } = await import('write-file-atomic');
  await writeFileAtomic(file, formatKV(raw, ['berth node settings (etc/berth.conf); key="value" lines']), { mode: 0o644, fsync: true });
}
