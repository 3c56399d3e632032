/**
 * CBSD fstab files (cbsd-behaviour.md §4.4): `device mountpoint fstype options dump pass`,
 * the mount point inside the env, `#` comments. `fstab.local` entries win over `fstab`
 * entries with the same mount point, compared field by field (normalised path), never by
 * prefix. Devices not starting with `/` are relative to the workdir; `CBSDROOT` expands to
 * the workdir. On Linux `nullfs` means a bind mount so CBSD fstab files work unchanged.
 */
import { posix } from 'node:path';
import { BerthError, EXIT } from './errors.js';

/** One fstab line. `mountpoint` is normalised, absolute inside the env (e.g. `/usr/local`). */
export interface FstabEntry {
  device: string;
  mountpoint: string;
  fstype: string;
  options: string;
  dump: string;
  pass: string;
  /** which file it came from: 'fstab' or 'fstab.local' */
  source: string;
  line: number;
}

/** Normalises a mount point inside the env: absolute, no trailing slash, no `..`. */
export function normMountpoint(mp: string): string {
  const n = posix.normalize('/' + mp);
  return n.length > 1 ? n.replace(/\/+$/, '') : n;
}

/**
 * Parses fstab text. Lines with fewer than 4 fields are errors; dump and pass default to 0.
 * @throws BerthError E_BAD_FSTAB (exit 1) naming file and line
 */
export function parseFstab(text: string, source = 'fstab', workdir?: string): FstabEntry[] {
  const out: FstabEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    const f = line.split(/\s+/);
    if (f.length < 4 || f.length > 6) {
      throw new BerthError('E_BAD_FSTAB', `${source}:${i + 1}: expected "device mountpoint fstype options [dump pass]": ${JSON.stringify(raw)}`, EXIT.FAILURE);
    }
    const mp = f[1]!;
    if (mp.split('/').includes('..')) {
      throw new BerthError('E_BAD_FSTAB', `${source}:${i + 1}: mount point ${JSON.stringify(mp)} may not contain '..'`, EXIT.FAILURE);
    }
    let device = f[0]!;
    if (workdir) {
      device = device.replace(/^CBSDROOT(?=\/|$)/, workdir);
      if (!device.startsWith('/') && (f[2] === 'nullfs' || f[2] === 'bind')) device = posix.join(workdir, device);
    }
    out.push({ device, mountpoint: normMountpoint(mp), fstype: f[2]!, options: f[3]!, dump: f[4] ?? '0', pass: f[5] ?? '0', source, line: i + 1 });
  });
  return out;
}

/**
 * Merges fstab and fstab.local: an fstab.local entry replaces every fstab entry with the
 * same (normalised) mount point; order otherwise kept, fstab first.
 */
export function mergeFstab(main: FstabEntry[], local: FstabEntry[]): FstabEntry[] {
  const overridden = new Set(local.map((e) => e.mountpoint));
  return [...main.filter((e) => !overridden.has(e.mountpoint)), ...local];
}

/** Formats entries as fstab text (tab separated). */
export function formatFstab(entries: Pick<FstabEntry, 'device' | 'mountpoint' | 'fstype' | 'options' | 'dump' | 'pass'>[], header: string[] = []): string {
  return header.map((h) => `# ${h}\n`).join('') + entries.map((e) => [e.device, e.mountpoint, e.fstype, e.options, e.dump, e.pass].join('\t') + '\n').join('');
}

/**
 * Rewrites fstab text for a clone: every path segment `/<old>` followed by `/`, `-` or the
 * end becomes `/<new>` (CBSD jclone: `sed s:/<old>:/<new>:g`, made segment-exact).
 */
export function rewriteFstabForClone(text: string, oldName: string, newName: string): string {
  const esc = oldName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return text.replace(new RegExp(`/${esc}(?=[/\\s-]|$)`, 'gm'), `/${newName}`);
}
