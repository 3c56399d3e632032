/**
 * The qemu engine's disks on Ceph RBD (`dsk_typeN=rbd`, `dsk_pathN=pool/image`;
 * src/storage/rbd.ts): made by bcreate, opened by QEMU's rbd driver at bstart, cloned instantly
 * by bclone (snap create + protect + clone), removed by bremove. The node reaches the cluster
 * with the `rbd_*` settings of its etc/berth.conf (rbdAccessFromSettings). Nothing of such a
 * disk is in the env's data dir: moving the VM to another node copies nothing, and the lease
 * decides, as for file disks, which node may open, change or remove it. The data dir holds one
 * small file, {@link RBD_MARKER}, naming the images: it says where the disks are, and it keeps
 * the lifecycle's identity check (an empty data dir means its storage is not mounted) meaningful.
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readSettings } from '../../settings.js';
import { parseRbdImage, qemuRbdFile, rbdAccessFromSettings, rbdClone, rbdCreate, rbdImport, rbdRemove, rbdSpec, type RbdAccess, type RbdImage } from '../../storage/rbd.js';
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

/**
 * bcreate of a first disk on RBD: an ext4 image of `baseDir` (made in a temp file in the data
 * dir, imported with `rbd import`, the temp file removed) or an empty image of `sizeBytes`.
 * Refuses an image that exists (E_DISK_EXISTS: it may be another env's), and removes what it
 * made when a step fails.
 * @returns the image's size in bytes
 */
export async function createRbdDisk(env: EngineEnv, disk: VmDisk, input: { baseDir?: string; sizeBytes: number; ext4?: Ext4Options }): Promise<number> {
  const a = nodeRbdAccess(env);
  const img = parseRbdImage(disk.path, `dsk_path${disk.index}`);
  let size: number;
  if (!input.baseDir) {
    await rbdCreate(a, img, input.sizeBytes);
    size = Math.ceil(input.sizeBytes / (1 << 20)) * (1 << 20);
  } else {
    const tmp = join(env.paths.data, `.dsk${disk.index}.rbd-import.raw`);
    try {
      const r = await ext4FromTree(input.baseDir, tmp, input.ext4 ?? {});
      await rbdImport(a, tmp, img);
      size = r.sizeBytes;
    } finally {
      await rm(tmp, { force: true });
    }
  }
  try {
    await writeMarker(env, [{ index: disk.index, path: rbdSpec(img) }]);
  } catch (e) {
    await rbdRemove(a, img).catch(() => undefined);
    throw e;
  }
  return size;
}

/** bremove: removes the RBD images of the VM's disk rows; returns `rbd:pool/image` of each removed. */
export async function removeRbdDisks(env: EngineEnv, spec: VmSpec): Promise<string[]> {
  const disks = rbdDisks(spec);
  if (!disks.length) return [];
  const a = nodeRbdAccess(env);
  const out: string[] = [];
  for (const d of disks) {
    const img = parseRbdImage(d.path, `dsk_path${d.index}`);
    if (await rbdRemove(a, img)) out.push(`rbd:${rbdSpec(img)}`);
  }
  return out;
}

/** The image of the clone's disk row N: `<pool>/<new jname>-dsk<N>`, in the source's pool. */
export function cloneImageName(src: RbdImage, newJname: string, index: number): RbdImage {
  return { pool: src.pool, image: `${newJname}-dsk${index}` };
}

/**
 * bclone: an instant rbd clone of each RBD disk of `srcSpec` for `dst` (named by
 * {@link cloneImageName}), with `dst.conf`'s dsk_pathN pointed at it. All or nothing.
 */
export async function cloneRbdDisks(srcSpec: VmSpec, dst: EngineEnv): Promise<{ made: string[]; undo(): Promise<void> }> {
  const disks = rbdDisks(srcSpec);
  if (!disks.length) return { made: [], undo: async () => undefined };
  const a = nodeRbdAccess(dst);
  const made: RbdImage[] = [];
  const undo = async () => { for (const i of [...made].reverse()) await rbdRemove(a, i); };
  try {
    for (const d of disks) {
      const src = parseRbdImage(d.path, `dsk_path${d.index}`);
      const img = cloneImageName(src, dst.jname, d.index);
      await rbdClone(a, src, img);
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
