/**
 * `base fetch`: downloads a FreeBSD release's `base.txz`, checks it against the release's
 * MANIFEST, and extracts it into `bases/<name>`.
 *
 * Mirror layout (bsdinstall's BSDINSTALL_DISTSITE, `releases/$(uname -m)/$(uname -p)/<ver>`):
 *   `<mirror>/<machine>/<machine_arch>/<ver>-RELEASE/{MANIFEST,base.txz}`, e.g.
 *   https://download.freebsd.org/releases/amd64/amd64/14.1-RELEASE/base.txz. `arch` is
 *   machine_arch or machine (amd64, aarch64|arm64, i386, armv7, powerpc64, powerpc64le,
 *   riscv64); `ver` is `14.1` (read as 14.1-RELEASE) or a full name such as 14.1-RC1.
 * MANIFEST (FreeBSD release/scripts/make-manifest.sh): one tab-separated line per
 *   distribution: `file  sha256  file-count  dist-name  "description"  on|off`.
 *
 * Download: into `<workdir>/var/cache/fetch/<ver>-<machine_arch>/base.txz.part` (node-local,
 * never in bases/). An interrupted transfer is resumed with an HTTP Range request, within
 * one run (up to `attempts` tries) and by the next `base fetch` of the same release; a
 * server that ignores Range is read from the start again. Only a file whose SHA-256
 * matches MANIFEST is extracted (`tar -x --numeric-owner -f`, compression detected by tar)
 * into a hidden `bases/.fetch-<name>-<random>` dir that is renamed to `bases/<name>` at the
 * end (with the mount-point dirs of src/bases.ts added), so a failure leaves nothing in
 * bases/. A checksum mismatch deletes the download (it is not resumable).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync, lstatSync } from 'node:fs';
import { chmod, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BerthError, EXIT, notFound, ownedError, usageError } from './errors.js';
import { ensureMountDirs } from './bases.js';
import { checkBaseName } from './names.js';
import type { Workdir } from './paths.js';
import { pidAlive, run, sleep } from './proc.js';

/** The default mirror: the FreeBSD project's download server. */
export const DEFAULT_MIRROR = 'https://download.freebsd.org/releases';

/** machine (uname -m) of each machine_arch (uname -p) berth knows; aliases map to machine_arch. */
const MACHINE: Record<string, string> = {
  amd64: 'amd64', i386: 'i386', aarch64: 'arm64', armv7: 'arm', armv6: 'arm', powerpc: 'powerpc',
  powerpc64: 'powerpc', powerpc64le: 'powerpc', powerpcspe: 'powerpc', riscv64: 'riscv',
};
const ALIAS: Record<string, string> = { arm64: 'aarch64', x86_64: 'amd64', x64: 'amd64' };

/** A progress report: bytes received so far and the total when the server told it. */
export interface FetchProgress {
  phase: 'download' | 'verify' | 'extract';
  /** bytes of base.txz on disk so far (download), or checked so far (verify) */
  received: number;
  /** size of base.txz in bytes, when known */
  total?: number;
}

/** Options of {@link fetchBase}. */
export interface FetchBaseOptions {
  workdir: Workdir;
  /** base name (default `<ver>-<machine_arch>` as given, e.g. 14.1-amd64) */
  name?: string;
  /** release: `14.1` or `14.1-RELEASE`, `15.0-RC1` ... */
  ver: string;
  /** machine_arch or machine (default: the host's) */
  arch?: string;
  /** mirror URL up to `releases` (default {@link DEFAULT_MIRROR}) */
  mirror?: string;
  onProgress?: (p: FetchProgress) => void;
  /** download tries in this run, each resuming the last (default 4) */
  attempts?: number;
  /** seconds without any data before a try is abandoned (default 60) */
  idleTimeoutSec?: number;
  /** pause before the n-th retry is n × this many milliseconds (default 1000) */
  retryDelayMs?: number;
}

/** Result of {@link fetchBase}. `bytes`: size of base.txz. */
export interface FetchBaseResult {
  name: string;
  path: string;
  bytes: number;
  sha256: string;
  url: string;
}

/** One MANIFEST line. */
export interface ManifestEntry {
  file: string;
  sha256: string;
  count: number;
  dist: string;
  desc: string;
  default: string;
}

/** The release name: `14.1` → `14.1-RELEASE`; names with a suffix are kept. @throws BerthError E_BAD_VER (2) */
export function releaseName(ver: string): string {
  const v = ver.trim();
  if (/^\d+\.\d+$/.test(v)) return `${v}-RELEASE`;
  if (/^\d+\.\d+-(RELEASE|BETA\d*|RC\d*|ALPHA\d*)$/.test(v)) return v;
  throw usageError('E_BAD_VER', `bad ver=${JSON.stringify(ver)}: expected a FreeBSD release such as 14.1 or 14.1-RELEASE`);
}

/** [machine, machine_arch] of an arch name. @throws BerthError E_BAD_ARCH (2) */
export function machineOf(arch: string): [string, string] {
  const a = ALIAS[arch] ?? arch;
  const m = MACHINE[a];
  if (!m) throw usageError('E_BAD_ARCH', `bad arch=${JSON.stringify(arch)}: expected one of ${[...Object.keys(MACHINE), ...Object.keys(ALIAS)].join(', ')}`);
  return [m, a];
}

/** The host's machine_arch (FreeBSD naming). */
export function hostArch(): string {
  return ALIAS[process.arch] ?? process.arch;
}

/** The release directory URL, with a trailing slash. */
export function releaseUrl(mirror: string, arch: string, ver: string): string {
  const [m, a] = machineOf(arch);
  return `${mirror.replace(/\/+$/, '')}/${m}/${a}/${releaseName(ver)}/`;
}

/**
 * Parses MANIFEST text. Lines that are not six tab-separated fields with a 64-digit hex
 * checksum are skipped.
 */
export function parseManifest(text: string): ManifestEntry[] {
  const out: ManifestEntry[] = [];
  for (const line of text.split('\n')) {
    const f = line.replace(/\r$/, '').split('\t');
    if (f.length < 6 || !/^[0-9a-fA-F]{64}$/.test(f[1]!)) continue;
    out.push({ file: f[0]!, sha256: f[1]!.toLowerCase(), count: Number(f[2]), dist: f[3]!, desc: f[4]!.replace(/^"|"$/g, ''), default: f[5]! });
  }
  return out;
}

/** SHA-256 (hex) of a file, streamed. */
export async function sha256File(file: string, onBytes?: (n: number) => void): Promise<string> {
  const h = createHash('sha256');
  let n = 0;
  for await (const chunk of createReadStream(file)) {
    h.update(chunk as Buffer);
    n += (chunk as Buffer).length;
    onBytes?.(n);
  }
  return h.digest('hex');
}


/** A failure worth another try (network, 5xx, truncated body). */
class Retryable extends Error {}

async function size(file: string): Promise<number> {
  try { return (await stat(file)).size; } catch { return 0; }
}

/** GETs a small text file, retrying network errors and 5xx. */
async function getText(url: string, o: Required<Pick<FetchBaseOptions, 'attempts' | 'retryDelayMs' | 'idleTimeoutSec'>>): Promise<string> {
  let last: unknown;
  for (let i = 1; i <= o.attempts; i++) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(o.idleTimeoutSec * 1000) });
      if (res.status === 404 || res.status === 410) {
        throw notFound('E_NO_SUCH_RELEASE', `${url} does not exist (HTTP ${res.status})`, { hint: 'check ver= and arch=, or give another mirror=' });
      }
      if (res.status >= 500) throw new Retryable(`HTTP ${res.status}`);
      if (!res.ok) throw new BerthError('E_FETCH', `${url}: HTTP ${res.status} ${res.statusText}`, EXIT.FAILURE);
      return await res.text();
    } catch (e) {
      if (e instanceof BerthError) throw e;
      last = e;
      if (i < o.attempts) await sleep(o.retryDelayMs * i);
    }
  }
  throw new BerthError('E_FETCH', `cannot download ${url}: ${(last as Error)?.message ?? last}`, EXIT.FAILURE, { hint: 'check the network and mirror=, then run the same command again' });
}

/**
 * One download try: resumes `part` from its current size with a Range request.
 * @returns the total size when the file is complete
 * @throws Retryable for a broken transfer (the part file keeps what arrived)
 */
async function downloadTry(url: string, part: string, idleSec: number, onProgress?: (p: FetchProgress) => void): Promise<number> {
  const have = await size(part);
  const ac = new AbortController();
  let idle = setTimeout(() => ac.abort(new Error(`no data for ${idleSec} s`)), idleSec * 1000);
  const poke = () => { clearTimeout(idle); idle = setTimeout(() => ac.abort(new Error(`no data for ${idleSec} s`)), idleSec * 1000); };
  try {
    let res: Response;
    try {
      res = await fetch(url, { headers: have > 0 ? { Range: `bytes=${have}-` } : {}, signal: ac.signal });
    } catch (e) {
      throw new Retryable((e as Error).message);
    }
    if (res.status === 416 && have > 0) {
      // Range not satisfiable: complete already when the server's size equals ours.
      const total = Number(/\/(\d+)$/.exec(res.headers.get('content-range') ?? '')?.[1] ?? NaN);
      await res.body?.cancel();
      if (total === have) return have;
      await rm(part, { force: true });
      throw new Retryable(`the server's copy changed size (${total} bytes, ${have} here)`);
    }
    if (res.status === 404 || res.status === 410) {
      await res.body?.cancel();
      throw notFound('E_NO_SUCH_RELEASE', `${url} does not exist (HTTP ${res.status})`, { hint: 'check ver= and arch=, or give another mirror=' });
    }
    if (res.status >= 500) { await res.body?.cancel(); throw new Retryable(`HTTP ${res.status}`); }
    if (res.status !== 200 && res.status !== 206) {
      await res.body?.cancel();
      throw new BerthError('E_FETCH', `${url}: HTTP ${res.status} ${res.statusText}`, EXIT.FAILURE);
    }
    let offset = 0;
    let total: number | undefined;
    const len = Number(res.headers.get('content-length') ?? NaN);
    if (res.status === 206) {
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get('content-range') ?? '');
      if (!m || Number(m[1]) !== have) {
        await res.body?.cancel();
        await rm(part, { force: true });
        throw new Retryable(`unexpected Content-Range ${JSON.stringify(res.headers.get('content-range'))}`);
      }
      offset = have;
      total = m[3] === '*' ? (Number.isFinite(len) ? have + len : undefined) : Number(m[3]);
    } else {
      total = Number.isFinite(len) ? len : undefined; // 200: the whole file again
    }
    const fh = await open(part, offset > 0 ? 'a' : 'w', 0o600);
    let received = offset;
    try {
      onProgress?.({ phase: 'download', received, total });
      if (!res.body) throw new Retryable('empty response body');
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          poke();
          await fh.write(chunk);
          received += chunk.length;
          onProgress?.({ phase: 'download', received, total });
        }
      } catch (e) {
        throw new Retryable((e as Error).message || String(e));
      }
    } finally {
      await fh.close();
    }
    if (total !== undefined && received !== total) throw new Retryable(`transfer ended after ${received} of ${total} bytes`);
    return received;
  } finally {
    clearTimeout(idle);
  }
}

/** Takes the per-release download lock. @returns a release function @throws BerthError E_BUSY (4) */
async function lockDownload(dir: string): Promise<() => Promise<void>> {
  const lock = join(dir, 'lock');
  for (let i = 0; i < 2; i++) {
    try {
      const fh = await open(lock, 'wx', 0o600);
      await fh.writeFile(String(process.pid));
      await fh.close();
      return () => rm(lock, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const pid = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
      if (pid > 0 && pidAlive(pid)) throw ownedError('E_BUSY', `another base fetch (pid ${pid}) is downloading into ${dir}`, { hint: 'wait for it to finish' });
      await rm(lock, { force: true });
    }
  }
  throw ownedError('E_BUSY', `cannot lock ${dir}`);
}

/**
 * Downloads base.txz of FreeBSD `ver`/`arch` from `mirror`, checks its SHA-256 against the
 * release's MANIFEST, and extracts it into `bases/<name>` (see the module doc).
 * @throws BerthError E_BAD_VER/E_BAD_ARCH/E_BAD_BASE_NAME (2), E_BASE_EXISTS (1),
 *   E_NO_SUCH_RELEASE (3: MANIFEST or base.txz not on the mirror), E_MANIFEST (1: no
 *   base.txz line), E_FETCH (1: download failed after every try; run again to resume),
 *   E_CHECKSUM (1), E_EXTRACT (1), E_BUSY (4: the same release is being fetched),
 *   E_NOT_INITIALISED (1). bases/ is unchanged after any of them.
 */
export async function fetchBase(opts: FetchBaseOptions): Promise<FetchBaseResult> {
  const wd = opts.workdir;
  const [, arch] = machineOf(opts.arch || hostArch());
  const rel = releaseName(opts.ver);
  const name = checkBaseName(opts.name || `${opts.ver.trim()}-${arch}`);
  const dst = wd.base(name);
  if (!existsSync(wd.bases)) throw new BerthError('E_NOT_INITIALISED', `${wd.bases} does not exist`, EXIT.FAILURE, { hint: `run: berth initenv workdir=${wd.root}` });
  const exists = (): boolean => { try { lstatSync(dst); return true; } catch { return false; } };
  if (exists()) {
    throw new BerthError('E_BASE_EXISTS', `base ${JSON.stringify(name)} already exists (${dst})`, EXIT.FAILURE, { hint: `choose another name= or run: berth base remove name=${name}` });
  }
  const o = { attempts: opts.attempts ?? 4, retryDelayMs: opts.retryDelayMs ?? 1000, idleTimeoutSec: opts.idleTimeoutSec ?? 60 };
  const dir = releaseUrl(opts.mirror || DEFAULT_MIRROR, arch, rel);
  const manifest = parseManifest(await getText(dir + 'MANIFEST', o));
  const entry = manifest.find((e) => e.file === 'base.txz');
  if (!entry) throw new BerthError('E_MANIFEST', `${dir}MANIFEST has no base.txz line with a SHA-256`, EXIT.FAILURE, { hint: 'check mirror=: it must serve a FreeBSD release directory' });

  const cache = join(wd.root, 'var', 'cache', 'fetch', `${rel}-${arch}`);
  await mkdir(cache, { recursive: true, mode: 0o700 });
  const unlock = await lockDownload(cache);
  const part = join(cache, 'base.txz.part');
  const url = dir + 'base.txz';
  try {
    let bytes = 0;
    for (let i = 1; ; i++) {
      try {
        bytes = await downloadTry(url, part, o.idleTimeoutSec, opts.onProgress);
        break;
      } catch (e) {
        if (!(e instanceof Retryable)) throw e;
        if (i >= o.attempts) {
          throw new BerthError('E_FETCH', `download of ${url} failed after ${o.attempts} tries: ${e.message}`, EXIT.FAILURE, {
            hint: `run the same command again to resume (${await size(part)} bytes kept in ${part})`,
            details: { url, part, bytes: await size(part) },
          });
        }
        await sleep(o.retryDelayMs * i);
      }
    }
    const sum = await sha256File(part, (n) => opts.onProgress?.({ phase: 'verify', received: n, total: bytes }));
    if (sum !== entry.sha256) {
      await rm(part, { force: true });
      throw new BerthError('E_CHECKSUM', `base.txz from ${url} has SHA-256 ${sum}, but MANIFEST says ${entry.sha256}; the download was deleted`, EXIT.FAILURE, {
        hint: 'run the command again; if it fails again, the mirror is corrupt or tampered with: use another mirror=',
      });
    }
    const file = join(cache, 'base.txz');
    await rename(part, file);
    opts.onProgress?.({ phase: 'extract', received: bytes, total: bytes });
    const tmp = join(wd.bases, `.fetch-${name}-${randomBytes(4).toString('hex')}`);
    await mkdir(tmp, { mode: 0o700 });
    try {
      await run(['tar', '-x', '--numeric-owner', '-f', file, '-C', tmp], { errorCode: 'E_EXTRACT', errorExit: EXIT.FAILURE });
      await ensureMountDirs(tmp);
      await chmod(tmp, 0o755);
      if (exists()) throw new BerthError('E_BASE_EXISTS', `base ${JSON.stringify(name)} appeared during the fetch (${dst})`, EXIT.FAILURE);
      await rename(tmp, dst);
    } catch (e) {
      await rm(tmp, { recursive: true, force: true });
      throw e;
    } finally {
      await rm(file, { force: true });
    }
    await unlock();
    await rm(cache, { recursive: true, force: true });
    return { name, path: dst, bytes, sha256: sum, url };
  } catch (e) {
    await unlock();
    throw e;
  }
}
