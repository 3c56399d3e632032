/**
 * `berth initenv workdir= nodename= zfsfeat= hammerfeat= lease_ttl= mnt_timeout=
 * default_mnt_start= default_mnt_stop= api_port=`: thin handler over src/initenv.ts.
 */
import { initenv, INITENV_SETTING_KEYS, relToWorkdir, type InitenvSettingKey } from '../../initenv.js';
import type { CmdOutput, Opts } from '../types.js';

export async function initenv_(opts: Opts): Promise<CmdOutput> {
  const settings: Partial<Record<InitenvSettingKey, string>> = {};
  for (const k of INITENV_SETTING_KEYS) {
    const v = opts[k];
    if (typeof v === 'string') settings[k] = v;
  }
  const r = await initenv({
    workdir: typeof opts.workdir === 'string' ? opts.workdir : undefined,
    nodename: typeof opts.nodename === 'string' ? opts.nodename : undefined,
    settings,
  });
  const lines: string[] = [];
  const head = r.firstInit ? 'initialised' : 're-initialised';
  lines.push(`${head} berth node ${r.nodename} at ${r.workdir}${r.previousNodename ? ` (renamed from ${r.previousNodename})` : ''}`);
  const w = Math.max(...Object.keys(r.settings).map((k) => k.length), 'nodename'.length);
  const pad = (k: string): string => k.padEnd(w + 2);
  lines.push(`${pad('nodename')}${r.nodename}`);
  for (const [k, v] of Object.entries(r.settings)) {
    const mark = r.changedSettings.includes(k) && !r.firstInit ? '   (changed)' : '';
    lines.push(`${pad(k)}${v}${mark}`);
  }
  lines.push(`${pad('var/db fs')}${r.fs.varDb}`);
  lines.push(`${pad('zfs')}${r.fs.zfs ? 'yes' : 'no'}`);
  lines.push(`${pad('inventory')}${r.inventory.file} (schema ${r.inventory.schemaVersion})`);
  lines.push(`${pad('api token')}${r.apiToken}`);
  if (r.created.length) {
    const shown = r.created.map((p) => relToWorkdir(r.workdir, p));
    lines.push(`${pad('created')}${shown.length > 12 ? shown.slice(0, 12).join(' ') + ` ... (${shown.length} in all)` : shown.join(' ')}`);
  }
  return { data: { ...r } as unknown as Record<string, unknown>, text: lines.join('\n') };
}

export { initenv_ as initenv };
