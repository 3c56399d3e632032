/** `berth initenv`: initialise (or re-initialise) this node's workdir; thin handler over src/initenv.ts. */
import { o } from '../options.js';
import type { CmdDef } from '../types.js';

export const command: CmdDef = {
  name: 'initenv', summary: 'initialise (or re-initialise) this node\'s workdir, non-interactively',
  options: [o('nodename', 'this node\'s name (default: the hostname)'), o('zfsfeat', 'use ZFS datasets for env data (workdir must be on ZFS)', '0|1'),
    o('hammerfeat', 'HAMMER2 (DragonFly only)', '0|1'), o('lease_ttl', 'lease time to live, seconds (default 30)'),
    o('mnt_timeout', 'default hook timeout, seconds (default 300)'), o('default_mnt_start', 'node default mnt_start hook'),
    o('default_mnt_stop', 'node default mnt_stop hook'), o('api_port', 'agent API loopback TCP port (0 = unix socket only)'),
    o('lease_dir', 'the shared ownership directory, mounted whole on every node (default <workdir>/jails-lease)'),
    o('console_port', 'web console TCP port of berth agent (0 = none; docs/console.md)'), o('console_bind', 'web console address (default 127.0.0.1)'),
    o('tls_cert', 'web console TLS certificate (PEM file)'), o('tls_key', 'web console TLS key (PEM file)'), o('console_stats_sec', 'seconds between CPU/memory samples (default 10)')],
  async handler(opts) {
    const { initenv, INITENV_SETTING_KEYS, relToWorkdir } = await import('../../initenv.js');
    const settings: Record<string, string> = {};
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
      if (v === undefined) continue; // a setting left unset (the console's, when it is off)
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
  },
};
