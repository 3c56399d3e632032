/**
 * Mount primitives: the one interface the lifecycle uses to assemble and tear down an env's
 * root, implemented by Linux (bind mounts, src/mounts/linux.ts) and FreeBSD (nullfs,
 * src/mounts/freebsd.ts). The lifecycle never knows which one runs.
 */

/** One line of the host mount table. */
export interface MountEntry {
  source: string;
  target: string;
  fstype: string;
  options: string;
}

/** Platform mount operations. All paths absolute. Every call runs external commands via src/proc.ts. */
export interface MountPrimitive {
  readonly platform: 'linux' | 'freebsd';
  /**
   * Mounts directory `src` on `dst`: a bind mount on Linux, mount_nullfs on FreeBSD.
   * @throws BerthError E_MOUNT (exit 5)
   */
  bind(src: string, dst: string, opts: { readonly: boolean }): Promise<void>;
  /**
   * Mounts an fstab entry of any type on `dst`. `nullfs` (and `bind`) go through {@link bind}
   * with `ro` taken from options; other types are passed to mount(8) as given.
   * @throws BerthError E_MOUNT (exit 5)
   */
  mount(device: string, dst: string, fstype: string, options: string): Promise<void>;
  /** Unmounts one mount point (forced where the platform allows). @throws BerthError E_UMOUNT (exit 5) */
  unmount(target: string): Promise<void>;
  /**
   * Optional: unmounts `dir` and everything below it, deepest first, in one call (Linux
   * `umount -R`). {@link unmountAllUnder} uses it when present and then checks.
   */
  unmountTree?(dir: string): Promise<void>;
  /**
   * Optional: whether mounts whose mount points are not nested in one another may be made side
   * by side (Linux: yes, each mount(8) on its own; not where the order of the calls is what is
   * checked, as the FreeBSD transcripts do). Default false.
   */
  readonly concurrent?: boolean;
  /** The host mount table, in mount order. */
  list(): Promise<MountEntry[]>;
  /** The file system type holding `path` ('ext4', 'fuse.glusterfs', 'nfs', 'zfs', 'ufs' ...). */
  fsType(path: string): Promise<string>;
}

/** Mount points at or below `dir`, deepest (last mounted) first: the unmount order. */
export function mountsUnder(table: MountEntry[], dir: string): MountEntry[] {
  const d = dir.replace(/\/+$/, '');
  const hits = table.map((m, i) => ({ m, i })).filter(({ m }) => m.target === d || m.target.startsWith(d + '/'));
  return hits.sort((a, b) => b.i - a.i).map(({ m }) => m);
}

/** True when `path` is a mount point in `table`. */
export function isMountpoint(table: MountEntry[], path: string): boolean {
  const p = path.replace(/\/+$/, '');
  return table.some((m) => m.target === p);
}

/**
 * Unmounts everything at or below `dir`, deepest first, re-reading the table after each
 * pass so stacked mounts on one point all go.
 * @returns the targets unmounted, in order
 */
export async function unmountAllUnder(prim: MountPrimitive, dir: string): Promise<string[]> {
  const done: string[] = [];
  if (prim.unmountTree) {
    const under = mountsUnder(await prim.list(), dir);
    if (under.length === 0) return done;
    const top = under.reduce((a, b) => (a.target.length <= b.target.length ? a : b)).target;
    try {
      await prim.unmountTree(top);
      done.push(...under.map((m) => m.target));
    } catch {
      // fall back to one mount point at a time below
    }
  }
  for (let pass = 0; pass < 64; pass++) {
    const under = mountsUnder(await prim.list(), dir);
    if (under.length === 0) return done;
    await prim.unmount(under[0]!.target);
    done.push(under[0]!.target);
  }
  return done;
}
