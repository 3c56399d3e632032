/**
 * The qemu engine's disks on Ceph RBD (`dsk_typeN=rbd`, `dsk_pathN=pool/image`, any row N;
 * src/storage/rbd.ts): made by bcreate, opened by QEMU's rbd driver at bstart, cloned instantly
 * by bclone (snap create + protect + clone), removed by bremove. The node reaches the cluster
 * with the `rbd_*` settings of its etc/berth.conf (rbdAccessFromSettings). Nothing of such a
 * disk is in the env's data dir: moving the VM to another node copies nothing, and the lease
 * decides, as for file disks, which node may open, change or remove it. The data dir holds one
 * small file, {@link RBD_MARKER}, naming the images: it says where the disks are, and it keeps
 * the lifecycle's identity check (an empty data dir means its storage is not mounted) meaningful.
 * Every image berth makes for a VM (bcreate, bclone) carries the VM's uuid as image-meta
 * `berth.uuid`, set in the step that makes it; bremove removes only images whose mark names the
 * VM's uuid (a row pointed by bset at another VM's image, or at an image made by hand, is left).
 * bstart refuses an image another client has open (QEMU locks files, not `rbd:` images).
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError, EXIT, engineError, usageError } from '../../errors.js';
import { readSettings } from '../../settings.js';
import { parseRbdImage, qemuRbdFile, RBD_OWNER_KEY, rbdAccessFromSettings, rbdClone, rbdCreate, rbdImport, rbdMeta, rbdRemove, rbdSpec, rbdWatchers, type RbdAccess, type RbdImage } from '../../storage/rbd.js';
import type { EngineEnv } from '../types.js';
import { isRbdDisk, type VmDisk, type VmSpec } from '../vm/spec.js';
import { ext4FromTree, type Ext4Options } from './disk.js';

/** The file in the data dir of a VM with RBD disks: one line `dsk<N> <pool>/<image>` per RBD disk. */
export const RBD_MARKER = 'rbd-disks';

/** Writes {@link RBD_MARKER} for the RBD rows of `conf`-as-spec (replacing an older one). */
async function writeMarker(env: EngineEnv, rows: { index: number; path: string }[]): Promise<void> {
  await writeFile(join(env.paths.data, RBD_MARKER), rows.map((r) => `dsk${r.index} ${r.path}\n`).join(''), { mode: 0o644 });
}

/** How this node reaches the cluster (etc/berth.conf rbd_*). @throws BerthError E_BAD_SETTING (2) */
export function nodeRbdAccess(env: Pick<EngineEnv, 'wd'>): RbdAccess {
  return rbdAccessFromSettings(readSettings(env.wd.conf).raw);
}

/** The RBD disk rows of a spec. */
export function rbdDisks(spec: VmSpec): VmDisk[] {
  return spec.disks.filter(isRbdDisk);
}

/** `-drive file=` values of the RBD disks, by row index (buildQemuArgv's diskFiles). */
export function rbdDiskFiles(env: Pick<EngineEnv, 'wd'>, spec: VmSpec): Record<number, string> | undefined {
  const disks = rbdDisks(spec);
  if (!disks.length) return undefined;
  const a = nodeRbdAccess(env);
  return Object.fromEntries(disks.map((d) => [d.index, qemuRbdFile(a, parseRbdImage(d.path, `dsk_path${d.index}`))]));
}

/** The uuid berth marks `env`'s images with. @throws BerthError E_ENGINE (exit 5) when the env has none */
function ownerOf(env: EngineEnv): string {
  const u = env.conf.uuid;
  if (!u || u === '0') throw engineError('E_ENGINE', `${env.jname} has no uuid: its RBD images cannot be marked as its own`);
  return u;
}

/**
 * bstart (not a live migration's destination, whose source has the images open by design):
 * refuses when another client has one of the VM's RBD images open (`rbd status` lists a
 * watcher: another VM's QEMU, on this node or another). Images that do not exist are left to
 * QEMU to report. Changes nothing.
 * @throws BerthError E_RBD_IN_USE (exit 1) naming the image and the watcher; E_RBD (exit 5)
 */
export async function assertRbdDisksFree(env: EngineEnv, spec: VmSpec): Promise<void> {
  const disks = rbdDisks(spec);
  if (!disks.length) return;
  const a = nodeRbdAccess(env);
  for (const d of disks) {
    const img = parseRbdImage(d.path, `dsk_path${d.index}`);
    const w = await rbdWatchers(a, img);
    if (w?.length) {
      const who = w.map((x) => `client.${x.client} at ${x.address}`).join(', ');
      throw new BerthError('E_RBD_IN_USE', `the RBD image ${rbdSpec(img)} (dsk_path${d.index} of ${env.jname}) is open by ${who}: another VM runs on it`, EXIT.FAILURE, {
        hint: `stop the VM that uses ${rbdSpec(img)}, or give ${env.jname} an image of its own`, details: { image: rbdSpec(img), watchers: w },
      });
    }
  }
}

/**
 * bcreate of the VM's RBD disk rows (`rbdRows`, from {@link rbdDisks}): row 1 an ext4 image of
 * `first.baseDir` (made in a temp file in the data dir, imported with `rbd import`, the temp
 * file removed) or an empty image of `first.sizeBytes`; any other row N an empty image of its
 * dsk_sizeN (required). Every size is checked before anything is made. Refuses an image that
 * exists (E_DISK_EXISTS: it may be another env's); all or nothing: a failed row removes the
 * images made before it. Each image is marked with the env's uuid (image-meta `berth.uuid`) in
 * the step that makes it. Writes {@link RBD_MARKER} naming them all.
 * @returns the size in bytes of each image, by row index, and `undo`, which removes them (for
 *   a later step of bcreate that fails)
 * @throws BerthError E_BAD_VALUE (exit 2) for a row N >= 2 without dsk_sizeN; E_DISK_EXISTS
 *   (exit 1); E_RBD (exit 5)
 */
export async function createRbdDisks(env: EngineEnv, rbdRows: VmDisk[], first: { baseDir?: string; sizeBytes: number; ext4?: Ext4Options }): Promise<{ sizes: Record<number, number>; undo(): Promise<void> }> {
  if (!rbdRows.length) return { sizes: {}, undo: async () => undefined };
  const a = nodeRbdAccess(env);
  const owner = ownerOf(env);
  const rows = rbdRows.map((d) => ({ disk: d, img: parseRbdImage(d.path, `dsk_path${d.index}`), size: d.index === 1 ? first.sizeBytes : d.size }));
  for (const r of rows) {
    if (r.disk.index !== 1 && !(r.size > 0)) {
      throw usageError('E_BAD_VALUE', `disk ${r.disk.index} (dsk_path${r.disk.index}=${r.disk.path}, an RBD image) has no size`, { hint: `set dsk_size${r.disk.index}=1g` });
    }
  }
  const made: RbdImage[] = [];
  const undo = async () => { for (const i of [...made].reverse()) await rbdRemove(a, i).catch(() => undefined); };
  const sizes: Record<number, number> = {};
  try {
    for (const r of rows) {
      if (r.disk.index === 1 && first.baseDir) {
        const tmp = join(env.paths.data, `.dsk${r.disk.index}.rbd-import.raw`);
        try {
          const e = await ext4FromTree(first.baseDir, tmp, first.ext4 ?? {});
          await rbdImport(a, tmp, r.img, { owner });
          sizes[r.disk.index] = e.sizeBytes;
        } finally {
          await rm(tmp, { force: true });
        }
      } else {
        await rbdCreate(a, r.img, r.size, { owner });
        sizes[r.disk.index] = Math.ceil(r.size / (1 << 20)) * (1 << 20);
      }
      made.push(r.img);
    }
    await writeMarker(env, rows.map((r) => ({ index: r.disk.index, path: rbdSpec(r.img) })));
  } catch (e) {
    await undo();
    throw e;
  }
  return { sizes, undo };
}

/**
 * bremove: removes the RBD images of the VM's disk rows that were made for it (their
 * `berth.uuid` mark is the env's uuid); an image without the mark (made by hand, or by a berth
 * before marks) or marked for another env is left, and said so in `notes`.
 * @returns `rbd:pool/image` of each removed; a note `<pool>/<image> left: not made for <jname>`
 *   for each left
 * @throws BerthError E_RBD_IN_USE (exit 1), E_RBD (exit 5) from rbdRemove
 */
export async function removeRbdDisks(env: EngineEnv, spec: VmSpec): Promise<{ removed: string[]; notes: string[] }> {
  const disks = rbdDisks(spec);
  const out = { removed: [] as string[], notes: [] as string[] };
  if (!disks.length) return out;
  const a = nodeRbdAccess(env);
  const owner = env.conf.uuid;
  for (const d of disks) {
    const img = parseRbdImage(d.path, `dsk_path${d.index}`);
    const meta = await rbdMeta(a, img);
    if (!meta) continue;
    if (!owner || meta[RBD_OWNER_KEY] !== owner) {
      out.notes.push(`${rbdSpec(img)} left: not made for ${env.jname}`);
      continue;
    }
    if (await rbdRemove(a, img)) out.removed.push(`rbd:${rbdSpec(img)}`);
  }
  return out;
}

/** The image of the clone's disk row N: `<pool>/<new jname>-dsk<N>`, in the source's pool. */
export function cloneImageName(src: RbdImage, newJname: string, index: number): RbdImage {
  return { pool: src.pool, image: `${newJname}-dsk${index}` };
}

/**
 * bclone: an instant rbd clone of each RBD disk of `srcSpec` for `dst` (named by
 * {@link cloneImageName}), marked with `dst`'s uuid, with `dst.conf`'s dsk_pathN pointed at it.
 * All or nothing.
 */
export async function cloneRbdDisks(srcSpec: VmSpec, dst: EngineEnv): Promise<{ made: string[]; undo(): Promise<void> }> {
  const disks = rbdDisks(srcSpec);
  if (!disks.length) return { made: [], undo: async () => undefined };
  const a = nodeRbdAccess(dst);
  const owner = ownerOf(dst);
  const made: RbdImage[] = [];
  const undo = async () => { for (const i of [...made].reverse()) await rbdRemove(a, i); };
  try {
    for (const d of disks) {
      const src = parseRbdImage(d.path, `dsk_path${d.index}`);
      const img = cloneImageName(src, dst.jname, d.index);
      await rbdClone(a, src, img, { owner });
      made.push(img);
      dst.conf[`dsk_path${d.index}`] = rbdSpec(img);
      dst.conf[`dsk_type${d.index}`] = 'rbd';
    }
    await writeMarker(dst, disks.map((d) => ({ index: d.index, path: dst.conf[`dsk_path${d.index}`]! })));
  } catch (e) {
    await undo().catch(() => undefined);
    throw e;
  }
  return { made: made.map((i) => `rbd:${rbdSpec(i)}`), undo };
}
