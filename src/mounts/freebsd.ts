/**
 * FreeBSD mount primitive: mount_nullfs(8) for the base (`-o ro`), the data sub-dirs and
 * nullfs fstab entries; mount(8) `-t <type>` for other fstab types; `umount -f`; the mount
 * table from `mount -p` (fstab(5) format, FreeBSD sbin/mount/mount.c putfsent); the file
 * system type of a path from `df -T` (statfs(2) of the path, FreeBSD bin/df).
 * devfs is not mounted here: jail(8) mounts it through `mount.devfs` (src/engines/jailconf.ts).
 */
import { engineError } from '../errors.js';
import { run } from '../proc.js';
import type { MountEntry, MountPrimitive } from './types.js';

/** Decodes fstab-style octal escapes (`\040` for a space) in a path. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * Parses `mount -p` output: one fstab(5) line per mount, `device mountpoint fstype options
 * dump pass`, in mount order. putfsent pads device and mount point with tabs (one space once
 * a name reaches 24 characters), so the last four fields are taken from the right and the
 * rest is split at its first run of tabs (else its first space).
 */
export function parseMountP(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\s+$/, '');
    if (!line.trim() || line.trim().startsWith('#')) continue;
    const m = /^(.*?)\s+(\S+)\s+(\S+)\s+(\d+)\s+(\d+)$/.exec(line);
    if (!m) continue;
    const head = m[1]!;
    let source: string;
    let target: string;
    const tab = /\t+/.exec(head);
    if (tab) {
      source = head.slice(0, tab.index);
      target = head.slice(tab.index + tab[0].length).trim();
    } else {
      const sp = head.indexOf(' ');
      if (sp < 0) continue;
      source = head.slice(0, sp);
      target = head.slice(sp + 1).trim();
    }
    out.push({ source: unescape(source), target: unescape(target), fstype: m[2]!, options: m[3]! });
  }
  return out;
}

/**
 * Parses `df -T <path>` output and returns the Type column of its data line. The column
 * is located by the header's `Type` position (df pads the Filesystem column to its widest
 * entry, so a device name with spaces does not shift it).
 * @throws BerthError E_FSTYPE when the output has no Type column or data line
 */
export function parseDfT(text: string, path: string): string {
  const lines = text.split('\n').filter((l) => l.trim());
  const header = lines[0] ?? '';
  const col = header.search(/\bType\b/);
  const data = lines[lines.length - 1];
  if (col < 0 || lines.length < 2 || !data) {
    throw engineError('E_FSTYPE', `cannot read the file system type of ${path} from df -T: ${JSON.stringify(text.trim())}`);
  }
  const t = /^\S+/.exec(data.slice(col));
  if (!t) throw engineError('E_FSTYPE', `cannot read the file system type of ${path} from df -T: ${JSON.stringify(data)}`);
  return t[0];
}

/** Options for mount_nullfs: `rw` and `defaults` dropped (nullfs mounts read-write by default). */
function nullfsOptions(options: string): string {
  return options.split(',').map((o) => o.trim()).filter((o) => o && o !== 'rw' && o !== 'defaults').join(',');
}

export class FreebsdMounts implements MountPrimitive {
  readonly platform = 'freebsd' as const;

  /** `mount_nullfs -o ro <src> <dst>` (read-only) or `mount_nullfs <src> <dst>`. */
  async bind(src: string, dst: string, opts: { readonly: boolean }): Promise<void> {
    await this.nullfs(src, dst, opts.readonly ? 'ro' : '');
  }

  /**
   * nullfs (and `bind`, the Linux spelling) → mount_nullfs with the entry's options except
   * rw/defaults; any other type → `mount -t <type> [-o <options>] <device> <dst>`.
   */
  async mount(device: string, dst: string, fstype: string, options: string): Promise<void> {
    if (fstype === 'nullfs' || fstype === 'bind') return this.nullfs(device, dst, nullfsOptions(options));
    const argv = ['mount', '-t', fstype];
    if (options && options !== 'defaults' && options !== 'rw') argv.push('-o', options);
    argv.push(device, dst);
    await run(argv, { errorCode: 'E_MOUNT' });
  }

  private async nullfs(src: string, dst: string, options: string): Promise<void> {
    const argv = ['mount_nullfs'];
    if (options) argv.push('-o', options);
    argv.push(src, dst);
    await run(argv, { errorCode: 'E_MOUNT' });
  }

  /**
   * `umount -f <target>` (CBSD umount_cdirs forces too). A failure is ignored when the
   * target is no longer in the mount table.
   * @throws BerthError E_UMOUNT (exit 5)
   */
  async unmount(target: string): Promise<void> {
    const r = await run(['umount', '-f', target], { check: false });
    if (r.exitCode === 0) return;
    if (!(await this.list()).some((m) => m.target === target)) return;
    throw engineError('E_UMOUNT', `umount -f ${target} failed: ${(r.stderr || r.stdout).trim()}`, {
      hint: `see what holds it: fstat -f ${target}`,
    });
  }

  /** The host mount table from `mount -p`, in mount order. */
  async list(): Promise<MountEntry[]> {
    const r = await run(['mount', '-p'], { errorCode: 'E_MOUNT' });
    return parseMountP(r.stdout);
  }

  /** The type of the file system holding `path` ('ufs', 'zfs', 'nfs', 'nullfs', 'fusefs.glusterfs' ...), from `df -T`. */
  async fsType(path: string): Promise<string> {
    const r = await run(['df', '-T', path], { errorCode: 'E_FSTYPE' });
    return parseDfT(r.stdout, path);
  }
}
