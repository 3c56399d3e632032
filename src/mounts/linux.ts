/**
 * Linux mount primitive: bind mounts (CBSD's nullfs, so CBSD fstab files work unchanged),
 * mount(8)/umount(8) from util-linux, the table from /proc/self/mountinfo.
 * Every bind mount is made private (`--make-private`) so that mounts made under it (the
 * data sub-dirs on top of a read-only base) never propagate back into the base or the host
 * when / is a shared mount (systemd's default).
 */
import { readFile, realpath } from 'node:fs/promises';
import { engineError } from '../errors.js';
import { run } from '../proc.js';
import type { MountEntry, MountPrimitive } from './types.js';

/** Decodes the octal escapes (\040 for space ...) of /proc/self/mountinfo. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parses /proc/self/mountinfo text (proc(5)) into mount entries, in mount order. */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (sep < 0) continue;
    out.push({ target: unescape(f[4]!), options: f[5]!, fstype: f[sep + 1]!, source: unescape(f[sep + 2] ?? '') });
  }
  return out;
}

export class LinuxMounts implements MountPrimitive {
  readonly platform = 'linux' as const;
  readonly concurrent = true;

  /**
   * One mount(8) call: util-linux (>= 2.27) applies `-o ro` to a bind mount by a second
   * mount(2) and the propagation flag by a third, and undoes the bind when they fail.
   */
  async bind(src: string, dst: string, opts: { readonly: boolean }): Promise<void> {
    await run(['mount', '--bind', '--make-private', ...(opts.readonly ? ['-o', 'ro'] : []), src, dst], { errorCode: 'E_MOUNT' });
  }

  /** `umount --recursive`: the whole tree under `dir`, deepest first, in one call. */
  async unmountTree(dir: string): Promise<void> {
    await run(['umount', '--recursive', dir], { errorCode: 'E_UMOUNT' });
  }

  async mount(device: string, dst: string, fstype: string, options: string): Promise<void> {
    if (fstype === 'nullfs' || fstype === 'bind') {
      const ro = options.split(',').includes('ro');
      return this.bind(device, dst, { readonly: ro });
    }
    const argv = ['mount', '-t', fstype];
    if (options && options !== 'defaults') argv.push('-o', options);
    argv.push(device, dst);
    await run(argv, { errorCode: 'E_MOUNT' });
  }

  async unmount(target: string): Promise<void> {
    for (let i = 0; i < 8; i++) {
      const r = await run(['umount', target], { check: false });
      if (r.exitCode === 0) return;
      if (!/busy/i.test(r.stderr)) {
        if (!(await this.list()).some((m) => m.target === target)) return;
        throw engineError('E_UMOUNT', `umount ${target} failed: ${r.stderr.trim()}`);
      }
      // busy: a process that is just exiting still has its cwd there (10, 20, 40 ... 1280 ms)
      if (i < 7) await new Promise((res) => setTimeout(res, 10 * 2 ** i));
    }
    // Still busy after retries: detach it (lazy) so the mount table is clean; the kernel
    // frees it when the last user goes.
    await run(['umount', '-l', target], { errorCode: 'E_UMOUNT' });
  }

  async list(): Promise<MountEntry[]> {
    return parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8'));
  }

  async fsType(path: string): Promise<string> {
    let p: string;
    try { p = await realpath(path); } catch { p = path; }
    let best: MountEntry | undefined;
    for (const m of await this.list()) {
      const t = m.target;
      if (p === t || p.startsWith(t === '/' ? '/' : t + '/')) {
        if (!best || t.length >= best.target.length) best = m;
      }
    }
    return best?.fstype ?? 'unknown';
  }
}
