/**
 * RBD (Ceph block device) images for VM disks, through the `rbd` command (argv, src/proc.ts) and
 * QEMU's own userspace rbd driver (no kernel rbd module needed). Independent of any engine:
 * create and remove an image, clone one instantly (snapshot + protect + clone), and give the
 * `-drive file=` spec QEMU opens it with.
 *
 * Facts this relies on (Ceph 16.2 `rbd`, checked on the one-node cluster of scripts/ceph-up):
 * - `rbd create --size <N>M pool/image` exits 17 when the image exists; `rbd info`/`rbd rm` exit 2
 *   when it does not; `rbd rm` exits 39 while the image has snapshots (a protected snapshot
 *   with clones cannot be removed either: the parent of a clone cannot go away under it);
 * - `rbd snap create` + `rbd snap protect` + `rbd clone` is a copy-on-write clone: instant
 *   whatever the size, reading the parent's data and taking writes of its own;
 * - QEMU's rbd filename (block/rbd.c): `rbd:pool/image[@snap][:opt=val...]` where `id` is the
 *   cephx user (without `client.`), `conf` the ceph.conf to read (`/dev/null`: none), and any
 *   other option a Ceph setting (`keyring`, `mon_host`); `:`, `@` and `=` in values are escaped
 *   with a backslash;
 * - `rbd image-meta set <img> <key> <value>` stores a key on the image (`image-meta list --format
 *   json` prints them, nothing at all when there are none); `rbd clone` copies the parent's keys
 *   into the clone; `rbd create`/`import` cannot set one, so berth sets its mark right after;
 * - `rbd status --format json` lists the image's watchers: every client that has it open
 *   read-write (a running QEMU) is one; `rbd info`/`status` themselves are not.
 */
import { statSync } from 'node:fs';
import { BerthError, EXIT, usageError } from '../errors.js';
import { run, type RunResult } from '../proc.js';
import type { KV } from '../kvfile.js';

/** How to reach the cluster: the same fields `rbd` and QEMU take. */
export interface RbdAccess {
  /** a ceph.conf to read (rbd -c, QEMU conf=); omit for Ceph's default /etc/ceph/ceph.conf */
  conf?: string;
  /** cephx user without `client.` (rbd --id, QEMU id=); omit for `admin` */
  id?: string;
  /** the user's keyring file (rbd --keyring, QEMU keyring=) */
  keyring?: string;
  /** monitor addresses, comma separated (rbd -m, QEMU mon_host=); omit to take them from conf */
  monitors?: string;
}

/** The node settings (etc/berth.conf) that say how this node reaches the cluster for RBD disks. */
export const RBD_SETTING_KEYS = ['rbd_conf', 'rbd_id', 'rbd_keyring', 'rbd_mon_host'] as const;

/**
 * The node's {@link RbdAccess} from its settings: `rbd_conf` (a ceph.conf), `rbd_id` (the cephx
 * user without `client.`), `rbd_keyring` (its keyring: owned by root, not readable or
 * writable by group or others, as the CephFS hooks require of theirs), `rbd_mon_host`
 * (monitors, comma separated). All optional: unset, rbd and QEMU read Ceph's defaults
 * (/etc/ceph/ceph.conf, client.admin).
 * @throws BerthError E_BAD_SETTING (exit 2) naming the key and the value: a relative path, a
 *   bad user name, a keyring that is missing or that others can read
 */
export function rbdAccessFromSettings(raw: KV): RbdAccess {
  const bad = (k: string, v: string, why: string) => usageError('E_BAD_SETTING', `bad ${k}=${JSON.stringify(v)} in berth.conf: ${why}`);
  const a: RbdAccess = {};
  const path = (k: string): string | undefined => {
    const v = raw[k];
    if (v === undefined || v === '' || v === '0') return undefined;
    if (!v.startsWith('/') || /[\n\0]/.test(v)) throw bad(k, v, 'expected an absolute path');
    return v;
  };
  a.conf = path('rbd_conf');
  a.keyring = path('rbd_keyring');
  if (a.keyring) {
    let st;
    try { st = statSync(a.keyring); } catch { throw bad('rbd_keyring', a.keyring, 'no such file'); }
    if (st.uid !== 0 || (st.mode & 0o077) !== 0) throw bad('rbd_keyring', a.keyring, 'the keyring must be owned by root with mode 0600 (chmod 0600, chown root)');
  }
  const id = raw.rbd_id;
  if (id !== undefined && id !== '' && id !== '0') {
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(id) || id.startsWith('client.')) throw bad('rbd_id', id, 'expected a cephx user name without client. (e.g. berth-node1)');
    a.id = id;
  }
  const mon = raw.rbd_mon_host;
  if (mon !== undefined && mon !== '' && mon !== '0') {
    if (!/^[A-Za-z0-9_.:\[\],-]+$/.test(mon)) throw bad('rbd_mon_host', mon, 'expected monitor addresses host:port, comma separated');
    a.monitors = mon;
  }
  for (const k of Object.keys(a) as (keyof RbdAccess)[]) if (a[k] === undefined) delete a[k];
  return a;
}

/** An image name: `pool/image`. */
export interface RbdImage {
  pool: string;
  image: string;
}

/** What `rbd info` says about an image. */
export interface RbdImageInfo {
  /** bytes */
  size: number;
  snapshotCount: number;
  /** the snapshot this image is a clone of */
  parent?: { pool: string; image: string; snapshot: string };
}

/** Pool and image names berth accepts: letters, digits, `_`, `-`, `.`, not starting with `.` or `-`, at most 100 bytes. */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$/;

/** The snapshot berth makes in a clone's source: one per clone, named after the clone. */
export function cloneSnapshotName(dst: RbdImage): string {
  return `berth-clone-${dst.pool}-${dst.image}`;
}

/**
 * Parses `pool/image` (what `dsk_path` names for an RBD disk).
 * @param key the setting it came from, named in the error (default `dsk_path`)
 * @throws BerthError E_BAD_VALUE (exit 2) naming the value when it is not pool/image
 */
export function parseRbdImage(s: string, key = 'dsk_path'): RbdImage {
  const parts = s.split('/');
  if (parts.length !== 2 || !NAME.test(parts[0]!) || !NAME.test(parts[1]!)) {
    throw usageError('E_BAD_VALUE', `${key}="${s}" is not an RBD image name pool/image`, {
      hint: 'name the pool and the image, e.g. rbd/vm1-dsk1 (letters, digits, _ - .; not starting with . or -)',
    });
  }
  return { pool: parts[0]!, image: parts[1]! };
}

/** `pool/image` of an image. */
export function rbdSpec(img: RbdImage): string {
  return `${img.pool}/${img.image}`;
}

/** The access options of an `rbd` argv. */
export function rbdAccessArgs(a: RbdAccess): string[] {
  const out: string[] = [];
  if (a.conf) out.push('-c', a.conf);
  if (a.id) out.push('--id', a.id);
  if (a.keyring) out.push('--keyring', a.keyring);
  if (a.monitors) out.push('-m', a.monitors);
  return out;
}

async function rbd(a: RbdAccess, args: string[]): Promise<RunResult> {
  return run(['rbd', ...rbdAccessArgs(a), ...args], { check: false, timeoutSec: 120 });
}

/** The last line of rbd's stderr that says something (librbd log lines and progress dropped). */
function why(r: RunResult): string {
  const lines = r.stderr.split(/[\r\n]/).map((l) => l.trim()).filter((l) => l && !/% complete/.test(l));
  const rbdLine = lines.filter((l) => l.startsWith('rbd:')).pop();
  return rbdLine ?? lines.pop() ?? `exit ${r.exitCode}`;
}

function failed(what: string, r: RunResult, opts: { hint?: string } = {}): BerthError {
  return new BerthError('E_RBD', `${what} failed: ${why(r)}`, EXIT.ENGINE, { hint: opts.hint, details: { argv: r.argv, exitCode: r.exitCode } });
}

/**
 * What `rbd info` says of an image, or undefined when it does not exist.
 * @throws BerthError E_RBD (exit 5) when rbd fails otherwise (cluster unreachable, no access)
 */
export async function rbdInfo(a: RbdAccess, img: RbdImage): Promise<RbdImageInfo | undefined> {
  const r = await rbd(a, ['info', '--format', 'json', rbdSpec(img)]);
  if (r.exitCode === 2) return undefined;
  if (r.exitCode !== 0) throw failed(`rbd info ${rbdSpec(img)}`, r);
  const j = JSON.parse(r.stdout) as { size: number; snapshot_count?: number; parent?: { pool: string; image: string; snapshot: string } };
  return { size: j.size, snapshotCount: j.snapshot_count ?? 0, parent: j.parent ? { pool: j.parent.pool, image: j.parent.image, snapshot: j.parent.snapshot } : undefined };
}

/** The image-meta key of berth's mark: the uuid of the env an image was made for. */
export const RBD_OWNER_KEY = 'berth.uuid';

/**
 * The image-meta keys of `img` (`rbd image-meta list`), or undefined when it does not exist.
 * @throws BerthError E_RBD (exit 5) when rbd fails otherwise
 */
export async function rbdMeta(a: RbdAccess, img: RbdImage): Promise<Record<string, string> | undefined> {
  const r = await rbd(a, ['image-meta', 'list', '--format', 'json', rbdSpec(img)]);
  if (r.exitCode === 2) return undefined;
  if (r.exitCode !== 0) throw failed(`rbd image-meta list ${rbdSpec(img)}`, r);
  return r.stdout.trim() ? (JSON.parse(r.stdout) as Record<string, string>) : {};
}

/**
 * Marks a just-made `img` as made for the env of uuid `owner` (image-meta {@link RBD_OWNER_KEY});
 * when that fails the image is removed again (`rbd rm`), so that a failed step leaves nothing.
 * @throws BerthError E_RBD (exit 5)
 */
async function markOrRemove(a: RbdAccess, img: RbdImage, owner: string): Promise<void> {
  const r = await rbd(a, ['image-meta', 'set', rbdSpec(img), RBD_OWNER_KEY, owner]);
  if (r.exitCode === 0) return;
  await rbd(a, ['rm', '--no-progress', rbdSpec(img)]);
  throw failed(`rbd image-meta set ${rbdSpec(img)} ${RBD_OWNER_KEY}`, r);
}

/** One client that has an image open (`rbd status`). */
export interface RbdWatcher {
  /** its address, e.g. `127.0.0.1:0/3721098765` */
  address: string;
  /** the cluster's client id (`client.<n>`) */
  client: number;
}

/**
 * The watchers of `img` (`rbd status`): every client that has it open (a running QEMU is one).
 * @returns undefined when the image does not exist
 * @throws BerthError E_RBD (exit 5) when rbd fails otherwise
 */
export async function rbdWatchers(a: RbdAccess, img: RbdImage): Promise<RbdWatcher[] | undefined> {
  const r = await rbd(a, ['status', '--format', 'json', rbdSpec(img)]);
  if (r.exitCode === 2) return undefined;
  if (r.exitCode !== 0) throw failed(`rbd status ${rbdSpec(img)}`, r);
  const j = JSON.parse(r.stdout) as { watchers?: { address: string; client: number }[] };
  return (j.watchers ?? []).map((w) => ({ address: w.address, client: w.client }));
}

/** What the {@link rbdCreate}, {@link rbdImport} and {@link rbdClone} of an env's image take. */
export interface RbdMakeOptions {
  /** the uuid of the env the image is made for: set as its {@link RBD_OWNER_KEY} mark in the same step */
  owner?: string;
}

/**
 * Creates image `img` of `sizeBytes` bytes (rounded up to whole MiB, as rbd counts), marked
 * with `opts.owner` when given (a failed mark removes the image again).
 * @throws BerthError E_BAD_VALUE (exit 2) for a size below 1 byte;
 *   E_DISK_EXISTS (exit 1) when the image exists (it is left as it is);
 *   E_RBD (exit 5) when rbd fails otherwise
 */
export async function rbdCreate(a: RbdAccess, img: RbdImage, sizeBytes: number, opts: RbdMakeOptions = {}): Promise<void> {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 1) throw usageError('E_BAD_VALUE', `RBD image size ${sizeBytes} is not a positive number of bytes`);
  const mib = Math.ceil(sizeBytes / (1 << 20));
  const r = await rbd(a, ['create', '--size', `${mib}M`, rbdSpec(img)]);
  if (r.exitCode === 17) throw new BerthError('E_DISK_EXISTS', `the RBD image ${rbdSpec(img)} exists`, EXIT.FAILURE, { hint: 'choose another image name, or remove the image first' });
  if (r.exitCode !== 0) throw failed(`rbd create ${rbdSpec(img)}`, r);
  if (opts.owner) await markOrRemove(a, img, opts.owner);
}

/**
 * Removes image `img`. When it is a clone made by {@link rbdClone}, the snapshot of its source
 * made for it (named by {@link cloneSnapshotName}) is unprotected and removed too, unless
 * something else was cloned from it.
 * @returns false when the image did not exist (nothing changed)
 * @throws BerthError E_RBD_IN_USE (exit 1) when the image has snapshots (e.g. clones were made
 *   from it) or is open (a running VM): nothing is removed; E_RBD (exit 5) otherwise
 */
export async function rbdRemove(a: RbdAccess, img: RbdImage): Promise<boolean> {
  const info = await rbdInfo(a, img);
  if (!info) return false;
  if (info.snapshotCount > 0) {
    const snaps = await rbd(a, ['snap', 'ls', '--format', 'json', rbdSpec(img)]);
    const names = snaps.exitCode === 0 ? (JSON.parse(snaps.stdout) as { name: string }[]).map((s) => s.name) : [];
    throw new BerthError('E_RBD_IN_USE', `the RBD image ${rbdSpec(img)} has snapshots (${names.join(', ') || info.snapshotCount}): clones of it depend on them`, EXIT.FAILURE, {
      hint: 'remove its clones first (or flatten them with rbd flatten), then its snapshots', details: { snapshots: names },
    });
  }
  const r = await rbd(a, ['rm', '--no-progress', rbdSpec(img)]);
  if (r.exitCode === 2) return false;
  if (r.exitCode === 16) throw new BerthError('E_RBD_IN_USE', `the RBD image ${rbdSpec(img)} is open (it still has watchers: a running VM?)`, EXIT.FAILURE, { hint: 'stop what uses it first' });
  if (r.exitCode !== 0) throw failed(`rbd rm ${rbdSpec(img)}`, r);
  const p = info.parent;
  if (p && p.snapshot === cloneSnapshotName(img)) {
    const parent = { pool: p.pool, image: p.image };
    const snap = `${rbdSpec(parent)}@${p.snapshot}`;
    const kids = await rbd(a, ['children', '--format', 'json', snap]);
    if (kids.exitCode === 0 && (JSON.parse(kids.stdout) as unknown[]).length === 0) {
      const u = await rbd(a, ['snap', 'unprotect', snap]);
      if (u.exitCode !== 0) throw failed(`rbd snap unprotect ${snap}`, u);
      const s = await rbd(a, ['snap', 'rm', '--no-progress', snap]);
      if (s.exitCode !== 0) throw failed(`rbd snap rm ${snap}`, s);
    }
  }
  return true;
}

/** One `rbd` invocation of {@link rbdClone}: its sub-command and wall time (ms, process start to exit). */
export interface RbdStepTime {
  step: 'snap create' | 'snap protect' | 'clone';
  ms: number;
}

/**
 * Clones `src` into a new image `dst`, copy-on-write: `rbd snap create src@<snap>`, `rbd snap
 * protect`, `rbd clone src@<snap> dst`, with the snapshot named after the clone
 * ({@link cloneSnapshotName}) so that {@link rbdRemove} of the clone removes it again. Three
 * `rbd` processes and nothing else (no `rbd info` before: an existing dst makes `rbd clone` fail
 * with EEXIST, or `snap create` when the snapshot for that name is there, and only then is it
 * looked at). The same time whatever the size: about 1 s here, ~0.9 s of it `snap create`
 * waiting for the monitor to commit the new snapshot id (a monitor batches its changes: it
 * proposes at most once per `paxos propose interval`, 1 s by default); protect and clone take
 * ~50 ms each. The source should not be written meanwhile (a running VM's unflushed writes are
 * not in the snapshot): the caller stops it or accepts a crash-consistent copy.
 * With `opts.owner`, the clone is marked as made for that env (a fourth process,
 * `rbd image-meta set`, not in the times), replacing the mark it inherits from its source.
 * All or nothing: a failed step undoes the steps before it.
 * @returns the time of each rbd invocation (ms)
 * @throws BerthError E_DISK_EXISTS (exit 1) when dst exists; E_RBD (exit 5)
 *   when src does not exist or rbd fails
 */
export async function rbdClone(a: RbdAccess, src: RbdImage, dst: RbdImage, opts: RbdMakeOptions = {}): Promise<RbdStepTime[]> {
  const snap = `${rbdSpec(src)}@${cloneSnapshotName(dst)}`;
  const undo: string[][] = [];
  const times: RbdStepTime[] = [];
  const exists = () => new BerthError('E_DISK_EXISTS', `the RBD image ${rbdSpec(dst)} exists`, EXIT.FAILURE, { hint: 'choose another name for the clone' });
  const step = async (name: RbdStepTime['step'], args: string[], what: string, back?: string[]) => {
    const r = await rbd(a, args);
    times.push({ step: name, ms: r.durationMs });
    if (r.exitCode !== 0) {
      for (const u of undo.reverse()) await rbd(a, u);
      // snap create on a missing image: exit 2 (ENOENT); said plainly (the source is named)
      if (r.exitCode === 2 && !undo.length) throw new BerthError('E_RBD', `the RBD image ${rbdSpec(src)} does not exist`, EXIT.ENGINE, { details: { argv: r.argv } });
      // EEXIST: from clone, dst exists; from snap create, the snapshot named after dst does
      // (a clone of that name was made): an error about dst only if dst is there
      if (r.exitCode === 17 && (name === 'clone' || (await rbdInfo(a, dst)))) throw exists();
      throw failed(what, r);
    }
    if (back) undo.push(back);
  };
  await step('snap create', ['snap', 'create', '--no-progress', snap], `rbd snap create ${snap}`, ['snap', 'rm', '--no-progress', snap]);
  await step('snap protect', ['snap', 'protect', snap], `rbd snap protect ${snap}`, ['snap', 'unprotect', snap]);
  await step('clone', ['clone', snap, rbdSpec(dst)], `rbd clone ${snap} ${rbdSpec(dst)}`);
  if (opts.owner) {
    // the clone carries its parent's keys (the source's mark): replaced by its own
    try {
      await markOrRemove(a, dst, opts.owner);
    } catch (e) {
      for (const u of undo.reverse()) await rbd(a, u);
      throw e;
    }
  }
  return times;
}

/**
 * A full copy of `src` into a new image `dst` (`rbd cp`, one process: an existing dst makes it
 * exit 17, EEXIST): every allocated byte is read and written. For comparison with {@link rbdClone} (bench/ceph.ts) and for a clone that must not
 * depend on its source.
 * @throws BerthError E_DISK_EXISTS (exit 1) when dst exists; E_RBD (exit 5) when rbd fails
 */
export async function rbdCopy(a: RbdAccess, src: RbdImage, dst: RbdImage): Promise<void> {
  const r = await rbd(a, ['cp', '--no-progress', rbdSpec(src), rbdSpec(dst)]);
  if (r.exitCode === 17) throw new BerthError('E_DISK_EXISTS', `the RBD image ${rbdSpec(dst)} exists`, EXIT.FAILURE, { hint: 'choose another name for the copy' });
  if (r.exitCode !== 0) throw failed(`rbd cp ${rbdSpec(src)} ${rbdSpec(dst)}`, r);
}

/**
 * Makes a new image `dst` holding the raw disk file `file` (`rbd import`; runs of zeros are not
 * written, so a sparse file stays sparse; an existing dst makes it exit 17, EEXIST, writing
 * nothing). The image's size is the file's; marked with `opts.owner` when given (a failed mark
 * removes the image again).
 * @throws BerthError E_DISK_EXISTS (exit 1) when dst exists; E_RBD (exit 5) when rbd fails
 */
export async function rbdImport(a: RbdAccess, file: string, dst: RbdImage, opts: RbdMakeOptions = {}): Promise<void> {
  const r = await rbd(a, ['import', '--no-progress', file, rbdSpec(dst)]);
  if (r.exitCode === 17) throw new BerthError('E_DISK_EXISTS', `the RBD image ${rbdSpec(dst)} exists`, EXIT.FAILURE, { hint: 'choose another image name, or remove the image first' });
  if (r.exitCode !== 0) throw failed(`rbd import ${file} ${rbdSpec(dst)}`, r);
  if (opts.owner) await markOrRemove(a, dst, opts.owner);
}

/** Escapes a value of QEMU's rbd filename: a backslash before `\`, `:`, `@` and `=`. */
function rbdOptValue(v: string): string {
  return v.replace(/[\\:@=]/g, (c) => `\\${c}`);
}

/**
 * The QEMU `file=` value that opens `img` through QEMU's rbd driver (block/rbd.c):
 * `rbd:pool/image:id=<id>:conf=<conf>:keyring=<keyring>:mon_host=<monitors>` (only the options
 * given; without conf, `conf=/dev/null` is written when monitors are given, so that no default
 * ceph.conf is read). Not yet escaped for `-drive`'s comma syntax: the caller doubles commas
 * (src/engines/qemu/argv.ts qemuOptValue), as it does for file paths.
 */
export function qemuRbdFile(a: RbdAccess, img: RbdImage): string {
  const opts: string[] = [];
  if (a.id) opts.push(`id=${rbdOptValue(a.id)}`);
  const conf = a.conf ?? (a.monitors ? '/dev/null' : undefined);
  if (conf) opts.push(`conf=${rbdOptValue(conf)}`);
  if (a.keyring) opts.push(`keyring=${rbdOptValue(a.keyring)}`);
  if (a.monitors) opts.push(`mon_host=${rbdOptValue(a.monitors)}`);
  return [`rbd:${rbdSpec(img)}`, ...opts].join(':');
}
