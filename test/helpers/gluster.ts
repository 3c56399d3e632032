/**
 * Test helpers: throw-away GlusterFS volumes on this machine (glusterd must run: `make test`
 * calls scripts/gluster-up) and FUSE mounts of them, with cleanup that always runs.
 *
 * Facts checked on this machine (Debian 12, GlusterFS 10.3), which the helpers rely on:
 * - glusterd refuses bricks named `localhost:` or `127.0.0.1:`, but accepts `$(hostname):/path`
 *   when the hostname resolves to a local address (loopback included); `force` is needed because
 *   the brick is on the root file system. Override the server name with GLUSTER_SERVER.
 * - Sub-directory mounts work: `mount -t glusterfs server:/vol/sub dir` (the sub-dir must exist on
 *   the volume). When it does not exist, mount.glusterfs still exits 0 (the client logs
 *   AUTH_FAILED and unmounts), so {@link GlusterVolume.mount} checks /proc/self/mountinfo.
 * - Two FUSE mounts of one volume see each other's changes at once for new names (no negative
 *   lookup caching), but may return data of a file replaced or rewritten through the other mount
 *   for up to ~1 s (entry/attribute timeouts and md-cache).
 * - Timings (2-core VM): glusterd start ~3.5 s; volume create ~0.15 s; start ~0.25 s;
 *   one FUSE mount ~0.25 s; stop+delete ~1 s. {@link glusterTimings} records them per run.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseMountinfo } from '../../src/mounts/linux.js';
import { run } from '../../src/proc.js';

/** A test volume with one brick under a temp dir. */
export interface GlusterVolume {
  /** volume name, `berthtest_<pid>_<random>` unless given */
  name: string;
  /** the server name used in the brick and mount source (the hostname) */
  server: string;
  /** the (first) brick directory (under {@link GlusterVolume.tempRoot}) */
  brick: string;
  /** every brick directory */
  bricks: string[];
  /** the temp dir holding the brick; removed by remove() */
  tempRoot: string;
  /**
   * FUSE-mounts the volume (`mount -t glusterfs server:/vol dir`), or its sub-directory `sub`
   * (`server:/vol/sub`, which must exist on the volume) on `dir` (created when missing).
   * Checks that the mount is really there. Throws when it is not.
   */
  mount(dir: string, sub?: string): Promise<void>;
  /** Creates `sub` (relative) on the volume through a short-lived mount. */
  mkdirOnVolume(sub: string): Promise<void>;
  /** Unmounts every mount made through {@link GlusterVolume.mount}, deepest first. */
  unmountAll(): Promise<void>;
  /** unmountAll, then `gluster --mode=script volume stop <name> force` + `volume delete`, then rm the brick. Idempotent. */
  remove(): Promise<void>;
}

/** Seconds taken by the steps of the last glusterVolume()/mount() calls (for notes and benches). */
export const glusterTimings: { createSec?: number; startSec?: number; mountSec?: number; removeSec?: number } = {};

/** The brick/mount server name: GLUSTER_SERVER, else the hostname (see the module notes). */
export function glusterServer(): string {
  return process.env.GLUSTER_SERVER || hostname();
}

const PREFIX = 'berthtest_';
const live = new Set<{ removeSync(): void }>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Safety net when a test forgets remove() or the process is exiting: synchronous cleanup.
  process.on('exit', () => { for (const v of live) v.removeSync(); });
}

/** Mount targets (of fuse.glusterfs type) at or under `dir`, deepest first. */
function glusterMountsUnder(dir: string): string[] {
  const all = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'));
  return all.filter((m) => m.fstype === 'fuse.glusterfs' && (m.target === dir || m.target.startsWith(dir + '/')))
    .map((m) => m.target).sort((a, b) => b.length - a.length);
}

function isMountedGluster(dir: string): boolean {
  return glusterMountsUnder(dir).includes(dir);
}

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

async function gluster(args: string[], check = true) {
  return run(['gluster', '--mode=script', ...args], { check, timeoutSec: 120, errorCode: 'E_COMMAND_FAILED' });
}

/**
 * Deletes test volumes (`berthtest_<pid>_*`) left behind by test processes that no longer run
 * (a killed test run): their FUSE mounts, the volume, and its temp brick dir. Volumes of live
 * processes (other test runs) are left alone.
 */
export async function removeStaleTestVolumes(): Promise<string[]> {
  const r = await gluster(['volume', 'list'], false);
  const removed: string[] = [];
  for (const name of r.stdout.split('\n').map((s) => s.trim())) {
    const m = /^berthtest_(\d+)_/.exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    const mounts = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'))
      .filter((e) => e.fstype === 'fuse.glusterfs' && (e.source.endsWith(`:/${name}`) || e.source.includes(`:/${name}/`)))
      .map((e) => e.target).sort((a, b) => b.length - a.length);
    for (const t of mounts) await unmountGluster(t).catch(() => undefined);
    const info = await gluster(['volume', 'info', name], false);
    const bricks = [...info.stdout.matchAll(/^Brick\d+: [^:]+:(\S+)$/gm)].map((b) => b[1]!);
    await gluster(['volume', 'stop', name, 'force'], false);
    await gluster(['volume', 'delete', name], false);
    for (const b of bricks) {
      const top = resolve(b, '..');
      if (/\/berth-gluster-[^/]+$/.test(top)) rmSync(top, { recursive: true, force: true });
    }
    removed.push(name);
  }
  return removed;
}

/** Unmounts a FUSE mount (lazily when busy); no-op when not mounted. */
export async function unmountGluster(dir: string): Promise<void> {
  for (let i = 0; i < 5 && isMountedGluster(dir); i++) {
    const r = await run(['umount', dir], { check: false });
    if (r.exitCode === 0) return;
    await new Promise((res) => setTimeout(res, 100 * (i + 1)));
  }
  if (isMountedGluster(dir)) await run(['umount', '-l', dir], { check: false });
  if (isMountedGluster(dir)) throw new Error(`cannot unmount ${dir}`);
}

/** Layout of a test volume: default one brick (distribute). */
export interface GlusterVolumeOptions {
  /** number of bricks, all on this machine (default 1); with replica, a multiple of it */
  bricks?: number;
  /** replica count (default none: a distribute volume) */
  replica?: number;
}

/**
 * Creates and starts a fresh volume `name` (default `berthtest_<pid>_<random>`) with one brick
 * `<server>:<tmp>/brick` (`force`), or the layout of `opts`. Call `remove()` in an
 * `after`/`finally`; a process exit hook removes it anyway when a test forgets.
 * @throws when glusterd does not run (start it with scripts/gluster-up) or a gluster command fails.
 */
export async function glusterVolume(name?: string, opts: GlusterVolumeOptions = {}): Promise<GlusterVolume> {
  installExitHook();
  await removeStaleTestVolumes();
  const volName = name ?? `${PREFIX}${process.pid}_${randomBytes(3).toString('hex')}`;
  const server = glusterServer();
  const tempRoot = mkdtempSync(join(tmpdir(), 'berth-gluster-'));
  const count = Math.max(1, opts.bricks ?? 1);
  const bricks = Array.from({ length: count }, (_, i) => join(tempRoot, i ? `brick${i}` : 'brick'));
  for (const b of bricks) mkdirSync(b);
  const brick = bricks[0]!;
  const mounts: string[] = [];
  let removed = false;

  let t = performance.now();
  try {
    await gluster(['volume', 'create', volName, ...(opts.replica ? ['replica', String(opts.replica)] : []),
      ...bricks.map((b) => `${server}:${b}`), 'force']);
  } catch (e) {
    rmSync(tempRoot, { recursive: true, force: true });
    throw e;
  }
  glusterTimings.createSec = (performance.now() - t) / 1000;

  const removeSync = (): void => {
    if (removed) return;
    removed = true;
    for (const m of [...mounts].reverse()) {
      if (isMountedGluster(m)) {
        if (spawnSync('umount', [m]).status !== 0) spawnSync('umount', ['-l', m]);
      }
    }
    spawnSync('gluster', ['--mode=script', 'volume', 'stop', volName, 'force'], { stdio: 'ignore' });
    spawnSync('gluster', ['--mode=script', 'volume', 'delete', volName], { stdio: 'ignore' });
    rmSync(tempRoot, { recursive: true, force: true });
  };

  const vol: GlusterVolume & { removeSync(): void } = {
    name: volName,
    server,
    brick,
    bricks,
    tempRoot,
    async mount(dir: string, sub?: string) {
      dir = resolve(dir);
      mkdirSync(dir, { recursive: true });
      const clean = sub ? sub.replace(/^\/+|\/+$/g, '') : '';
      const source = `${server}:/${volName}${clean ? '/' + clean : ''}`;
      const t0 = performance.now();
      await run(['mount', '-t', 'glusterfs', source, dir], { errorCode: 'E_MOUNT' });
      if (!isMountedGluster(dir)) {
        throw new Error(`mount -t glusterfs ${source} ${dir} exited 0 but nothing is mounted` +
          (clean ? ` (does '${clean}' exist on the volume?)` : ''));
      }
      glusterTimings.mountSec = (performance.now() - t0) / 1000;
      mounts.push(dir);
    },
    async mkdirOnVolume(sub: string) {
      const m = mkdtempSync(join(tempRoot, 'mkdir-'));
      await vol.mount(m);
      try {
        mkdirSync(join(m, sub), { recursive: true });
      } finally {
        await unmountGluster(m);
        mounts.splice(mounts.indexOf(m), 1);
        rmSync(m, { recursive: true, force: true });
      }
    },
    async unmountAll() {
      const errors: string[] = [];
      for (const m of [...mounts].sort((a, b) => b.length - a.length)) {
        try { await unmountGluster(m); } catch (e) { errors.push((e as Error).message); }
      }
      mounts.length = 0;
      if (errors.length) throw new Error(errors.join('; '));
    },
    async remove() {
      if (removed) return;
      const t0 = performance.now();
      try {
        await vol.unmountAll();
      } finally {
        removed = true;
        live.delete(vol);
        await gluster(['volume', 'stop', volName, 'force'], false);
        await gluster(['volume', 'delete', volName], false);
        rmSync(tempRoot, { recursive: true, force: true });
        glusterTimings.removeSec = (performance.now() - t0) / 1000;
      }
    },
    removeSync,
  };
  live.add(vol);

  t = performance.now();
  try {
    await gluster(['volume', 'start', volName]);
  } catch (e) {
    await vol.remove();
    throw e;
  }
  glusterTimings.startSec = (performance.now() - t) / 1000;
  return vol;
}
