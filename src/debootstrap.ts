/**
 * `berth base debootstrap`: a real Debian base made by debootstrap(8) from a Debian mirror,
 * into `bases/<name>` (design/product.md "Bases"; issue 15).
 *
 * Rules:
 * - the mirror defaults to the first Debian archive this host's apt uses (deb822
 *   `/etc/apt/sources.list.d/*.sources`, then one-line `sources.list` files; security and
 *   update archives skipped), else http://deb.debian.org/debian ({@link hostMirror});
 * - before debootstrap runs, `<mirror>/dists/<suite>/Release` is asked for: no answer is
 *   E_MIRROR_UNREACHABLE (exit 1), a 404 is E_NO_SUCH_SUITE (exit 3): refused cleanly with
 *   nothing made;
 * - signatures: debootstrap checks the suite's Release file with `--keyring` =
 *   Debian's archive keyring ({@link KEYRING}, package debian-archive-keyring) and every
 *   package against it; berth never passes `--no-check-gpg`;
 * - downloaded packages are kept in a cache dir (`--cache-dir`, default
 *   `<workdir>/var/cache/debootstrap`), so a second run of the same suite downloads only
 *   the index files; and the finished tree is kept there too (`trees/<key>`, key = suite,
 *   mirror, variant, includes, arch): a later run whose mirror still serves the same signed
 *   `InRelease` file (byte for byte, and `gpgv` with the keyring accepts its signature)
 *   copies that tree instead of running debootstrap again (the same Release names the same
 *   packages); a changed Release runs debootstrap and replaces the kept tree;
 * - the tree is built in a hidden temp dir under bases/ and renamed into place at the end: a
 *   failure or ^C (src/proc.ts onInterrupt) kills debootstrap, unmounts whatever it mounted
 *   inside the tree (proc, sys) and removes the temp dir, so nothing is left in bases/;
 * - made fit to be an env's root: the host's `etc/hostname` that debootstrap copies is
 *   removed (the engine sets the hostname), `etc/hosts` is a neutral localhost file, and
 *   `etc/resolv.conf` holds the host's non-loopback name servers only (a loopback stub such
 *   as systemd-resolved's 127.0.0.53 does not answer inside an env with its own network), with
 *   a comment saying so; the apt cache of the build is emptied.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkNewBase, finishBase, tempName, type BaseCtx, type BaseImportResult } from './bases.js';
import { BerthError, EXIT, notFound, usageError } from './errors.js';
import { mountsUnder, unmountAllUnder } from './mounts/types.js';
import { onInterrupt, run, sleep } from './proc.js';
import { treeSize, watchTree, type ProgressFn } from './progress.js';

/** Debian's archive keyring (package debian-archive-keyring), passed to debootstrap's --keyring. */
export const KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
/** The mirror used when this host's apt names none. */
export const FALLBACK_MIRROR = 'http://deb.debian.org/debian';
/** debootstrap variants berth accepts (debootstrap(8) --variant; '-' is debootstrap's default, "required + important"). */
export const VARIANTS = ['minbase', 'buildd', 'fakechroot', '-'] as const;

/** Options of {@link debootstrapBase}. */
export interface DebootstrapOptions {
  /** Debian suite or codename: bookworm, trixie, stable ... */
  suite: string;
  /** archive URL (http/https/file); default {@link hostMirror} */
  mirror?: string;
  /** default 'minbase' */
  variant?: string;
  /** extra packages (--include) */
  include?: string[];
  /** package cache dir (absolute); default `<workdir>/var/cache/debootstrap` */
  cacheDir?: string;
  /** Debian architecture (--arch), default debootstrap's (the host's) */
  arch?: string;
  /** seconds to wait for the mirror's Release file in the pre-flight check (default 20) */
  probeTimeoutSec?: number;
  /** the growing tree's size while debootstrap runs (bytes, no total) */
  onProgressEvent?: ProgressFn;
  /** a short line before long steps */
  onProgress?: (line: string) => void;
  /** the debootstrap executable (tests); default `debootstrap` from PATH */
  debootstrap?: string;
}

/** Result of {@link debootstrapBase}. */
export interface DebootstrapResult extends BaseImportResult {
  suite: string;
  mirror: string;
  variant: string;
  include: string[];
  cacheDir: string;
  /** .deb files in the cache dir before this run (0 on a first run) */
  cachedDebs: number;
  /** true when the kept tree of an earlier run was copied (same Release), false when debootstrap ran */
  reusedTree: boolean;
  durationMs: number;
}

/** The archive URIs of deb822 `.sources` text (stanzas with Types: deb), in order. */
export function parseDeb822Sources(text: string): { uri: string; suites: string[] }[] {
  const out: { uri: string; suites: string[] }[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const f: Record<string, string> = {};
    let last = '';
    for (const line of stanza.split('\n')) {
      if (/^\s*#/.test(line) || !line.trim()) continue;
      if (/^\s/.test(line) && last) { f[last] += ' ' + line.trim(); continue; }
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
      if (m) { last = m[1]!.toLowerCase(); f[last] = m[2]!.trim(); }
    }
    if (f.enabled?.toLowerCase() === 'no') continue;
    if (!(f.types ?? '').split(/\s+/).includes('deb')) continue;
    const suites = (f.suites ?? '').split(/\s+/).filter(Boolean);
    for (const uri of (f.uris ?? '').split(/\s+/).filter(Boolean)) out.push({ uri, suites });
  }
  return out;
}

/** The archive URIs of one-line `sources.list` text (`deb [opts] uri suite comp...`), in order. */
export function parseOneLineSources(text: string): { uri: string; suites: string[] }[] {
  const out: { uri: string; suites: string[] }[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
    if (m) out.push({ uri: m[1]!, suites: [m[2]!] });
  }
  return out;
}

/** True for an archive that holds whole suites (not a security or updates-only archive). */
function isMainArchive(s: { uri: string; suites: string[] }): boolean {
  return !/security/.test(s.uri) && s.suites.some((x) => !/-(security|updates|backports)$|\/updates$/.test(x));
}

/**
 * The Debian mirror this host's apt uses: the first main archive of
 * `/etc/apt/sources.list.d/*.sources`, then of `/etc/apt/sources.list` and
 * `/etc/apt/sources.list.d/*.list`; {@link FALLBACK_MIRROR} when there is none.
 * @param aptDir apt's config dir (tests), default /etc/apt
 */
export function hostMirror(aptDir = '/etc/apt'): string {
  const read = (p: string): string => { try { return readFileSync(p, 'utf8'); } catch { return ''; } };
  const list = (d: string, ext: string): string[] => { try { return readdirSync(d).filter((n) => n.endsWith(ext)).sort().map((n) => join(d, n)); } catch { return []; } };
  const d = join(aptDir, 'sources.list.d');
  const all = [
    ...list(d, '.sources').flatMap((f) => parseDeb822Sources(read(f))),
    ...parseOneLineSources(read(join(aptDir, 'sources.list'))),
    ...list(d, '.list').flatMap((f) => parseOneLineSources(read(f))),
  ];
  const hit = all.find((s) => isMainArchive(s) && /^(https?|file):/.test(s.uri) && /debian/.test(s.uri));
  return (hit?.uri ?? FALLBACK_MIRROR).replace(/\/+$/, '');
}

/**
 * Checks the options; returns them completed (mirror, variant, include, cache dir).
 * @throws BerthError (exit 2, nothing made): E_BAD_SUITE, E_BAD_URL, E_BAD_VARIANT, E_BAD_PACKAGE,
 *   E_BAD_VALUE (cache= not absolute, arch= bad)
 */
export function checkDebootstrapOptions(o: DebootstrapOptions, defaultCache: string): Required<Pick<DebootstrapOptions, 'suite' | 'mirror' | 'variant' | 'include' | 'cacheDir'>> {
  if (!o.suite || !/^[a-z][a-z0-9.-]*$/.test(o.suite)) {
    throw usageError('E_BAD_SUITE', `bad suite ${JSON.stringify(o.suite ?? '')}: give a Debian codename such as suite=bookworm`);
  }
  const mirror = (o.mirror || hostMirror()).replace(/\/+$/, '');
  let u: URL;
  try { u = new URL(mirror); } catch { throw usageError('E_BAD_URL', `mirror=${JSON.stringify(mirror)} is not a URL`, { hint: 'e.g. mirror=http://deb.debian.org/debian' }); }
  if (!['http:', 'https:', 'file:'].includes(u.protocol)) throw usageError('E_BAD_URL', `mirror=${JSON.stringify(mirror)}: only http, https and file URLs`);
  const variant = o.variant || 'minbase';
  if (!(VARIANTS as readonly string[]).includes(variant)) throw usageError('E_BAD_VARIANT', `variant=${JSON.stringify(variant)}: one of ${VARIANTS.join(', ')}`);
  const include = (o.include ?? []).map((p) => p.trim()).filter(Boolean);
  for (const p of include) {
    if (!/^[a-z0-9][a-z0-9+.-]+$/.test(p)) throw usageError('E_BAD_PACKAGE', `include=: ${JSON.stringify(p)} is not a Debian package name`);
  }
  const cacheDir = o.cacheDir || defaultCache;
  if (!cacheDir.startsWith('/')) throw usageError('E_BAD_VALUE', `cache=${JSON.stringify(cacheDir)} must be an absolute path`);
  if (o.arch !== undefined && !/^[a-z0-9-]+$/.test(o.arch)) throw usageError('E_BAD_VALUE', `arch=${JSON.stringify(o.arch)} is not a Debian architecture`);
  return { suite: o.suite, mirror, variant, include, cacheDir };
}

/**
 * Asks the mirror for `dists/<suite>/Release` (HEAD, then GET when HEAD is refused).
 * @throws BerthError E_MIRROR_UNREACHABLE (exit 1): no answer, or an error status other than 404
 * @throws BerthError E_NO_SUCH_SUITE (exit 3): the mirror answers 404
 */
export async function probeSuite(mirror: string, suite: string, timeoutSec = 20): Promise<void> {
  const url = `${mirror}/dists/${suite}/Release`;
  if (url.startsWith('file:')) {
    if (!existsSync(new URL(url))) throw notFound('E_NO_SUCH_SUITE', `suite ${JSON.stringify(suite)} not found at ${mirror} (no ${url})`);
    return;
  }
  let status: number;
  try {
    let r = await fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(timeoutSec * 1000) });
    if (r.status === 405 || r.status === 501) r = await fetch(url, { signal: AbortSignal.timeout(timeoutSec * 1000) });
    status = r.status;
  } catch (e) {
    const c = (e as Error & { cause?: { code?: string; message?: string } }).cause;
    const why = c?.code ?? c?.message ?? (e as Error).message;
    throw new BerthError('E_MIRROR_UNREACHABLE', `the Debian mirror ${mirror} cannot be reached (${why}); nothing was made`, EXIT.FAILURE, {
      hint: 'check the network, or give another mirror=', details: { mirror, url, why },
    });
  }
  if (status === 404) {
    throw notFound('E_NO_SUCH_SUITE', `the mirror ${mirror} has no suite ${JSON.stringify(suite)} (${url}: 404); nothing was made`, {
      hint: 'give a Debian codename the mirror carries, e.g. suite=bookworm', details: { mirror, suite, url },
    });
  }
  if (status >= 400) {
    throw new BerthError('E_MIRROR_UNREACHABLE', `the Debian mirror ${mirror} answers ${status} for ${url}; nothing was made`, EXIT.FAILURE, {
      hint: 'give another mirror=', details: { mirror, url, status },
    });
  }
}

/** Fetches `url` as bytes. @throws BerthError E_MIRROR_UNREACHABLE (exit 1) */
async function getBytes(url: string, timeoutSec: number): Promise<Buffer> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(timeoutSec * 1000) });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    return Buffer.from(await r.arrayBuffer());
  } catch (e) {
    throw new BerthError('E_MIRROR_UNREACHABLE', `cannot get ${url}: ${(e as Error).message}; nothing was made`, EXIT.FAILURE, { details: { url } });
  }
}

/** The cache key of a tree: the sha256 of what decides its contents. */
export function treeKey(o: { suite: string; mirror: string; variant: string; include: string[]; arch?: string }): string {
  const j = JSON.stringify({ suite: o.suite, mirror: o.mirror, variant: o.variant, include: [...o.include].sort(), arch: o.arch ?? process.arch });
  return createHash('sha256').update(j).digest('hex').slice(0, 24);
}

/** The `InRelease` file debootstrap kept in a tree (var/lib/apt/lists/*_dists_<suite>_InRelease), or undefined. */
function treeInRelease(root: string, suite: string): Buffer | undefined {
  const d = join(root, 'var', 'lib', 'apt', 'lists');
  let names: string[];
  try { names = readdirSync(d); } catch { return undefined; }
  const n = names.find((x) => x.endsWith(`_dists_${suite}_InRelease`));
  return n ? readFileSync(join(d, n)) : undefined;
}

/**
 * Whether the kept tree `root` was made from the signed `InRelease` file the mirror serves
 * now: byte-identical to the tree's, and `gpgv` with Debian's keyring accepts its signature.
 * False on any doubt (no tree, file: mirror, changed, bad signature).
 */
async function keptTreeCurrent(root: string, o: { suite: string; mirror: string }, tmpDir: string, timeoutSec: number): Promise<boolean> {
  if (!existsSync(root) || o.mirror.startsWith('file:')) return false;
  const kept = treeInRelease(root, o.suite);
  if (!kept) return false;
  const rel = await getBytes(`${o.mirror}/dists/${o.suite}/InRelease`, timeoutSec);
  if (!rel.equals(kept)) return false;
  const f = join(tmpDir, `.InRelease-${process.pid}`);
  await writeFile(f, rel);
  try {
    return (await run(['gpgv', '--keyring', KEYRING, f], { check: false })).exitCode === 0;
  } finally {
    await rm(f, { force: true });
  }
}

/** The argv of debootstrap for these (checked) options. */
export function debootstrapArgv(exe: string, o: { suite: string; mirror: string; variant: string; include: string[]; cacheDir: string; arch?: string }, target: string): string[] {
  return [exe, `--variant=${o.variant}`, `--keyring=${KEYRING}`, `--cache-dir=${o.cacheDir}`,
    ...(o.include.length ? [`--include=${o.include.join(',')}`] : []), ...(o.arch ? [`--arch=${o.arch}`] : []),
    o.suite, target, o.mirror];
}

/** The text berth puts in a base's etc/resolv.conf: the host's non-loopback `nameserver` lines. */
export function baseResolvConf(hostText: string): string {
  const ns = hostText.split('\n').map((l) => l.trim()).filter((l) => /^nameserver\s+\S+/.test(l))
    .filter((l) => !/^nameserver\s+(127\.|::1$|0\.0\.0\.0)/.test(l));
  const keep = hostText.split('\n').map((l) => l.trim()).filter((l) => /^(search|domain|options)\s/.test(l));
  return `# written by berth base debootstrap: the build host's non-loopback name servers;\n# edit this file in the env (its etc) if the env's network needs others\n${[...keep, ...ns].join('\n')}${ns.length || keep.length ? '\n' : ''}`;
}

const HOSTS = '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n';

/**
 * Keeps a copy of the finished tree `tmp` as `kept` (replacing an older one through a temp
 * name). Best effort: a failure to keep it does not fail the base.
 */
async function keepTree(tmp: string, kept: string): Promise<void> {
  const next = `${kept}.new`;
  try {
    await rm(next, { recursive: true, force: true });
    await mkdir(next, { recursive: true, mode: 0o755 });
    await run(['cp', '-a', '-x', `${tmp}/.`, `${next}/`]);
    await rm(kept, { recursive: true, force: true });
    await rename(next, kept);
  } catch {
    await rm(next, { recursive: true, force: true }).catch(() => undefined);
  }
}

function countDebs(dir: string): number {
  try { return readdirSync(dir).filter((n) => n.endsWith('.deb')).length; } catch { return 0; }
}

/**
 * Makes base `name` with debootstrap (see the file's docstring for every rule).
 * @throws BerthError, with nothing left in bases/: E_BAD_BASE_NAME (2), E_BASE_EXISTS (1),
 *   E_NOT_INITIALISED (1), the option errors of {@link checkDebootstrapOptions} (2),
 *   E_NO_DEBOOTSTRAP / E_NO_KEYRING (1: package missing), E_MIRROR_UNREACHABLE (1),
 *   E_NO_SUCH_SUITE (3), E_DEBOOTSTRAP_FAILED (1: debootstrap failed, its last lines in the message)
 */
export async function debootstrapBase(ctx: BaseCtx, name: string, opts: DebootstrapOptions): Promise<DebootstrapResult> {
  const t0 = performance.now();
  const dst = checkNewBase(ctx.wd, name);
  const o = checkDebootstrapOptions(opts, join(ctx.wd.root, 'var', 'cache', 'debootstrap'));
  const exe = opts.debootstrap ?? 'debootstrap';
  const hint = 'install it: apt-get install debootstrap debian-archive-keyring (scripts/install-deps does)';
  const found = exe.includes('/') ? existsSync(exe) : (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').concat(['/usr/sbin', '/sbin']).some((d) => existsSync(join(d, exe)));
  if (!found) throw new BerthError('E_NO_DEBOOTSTRAP', `${exe} not found`, EXIT.FAILURE, { hint });
  if (!existsSync(KEYRING)) throw new BerthError('E_NO_KEYRING', `Debian's archive keyring ${KEYRING} is missing: berth does not make unverified bases`, EXIT.FAILURE, { hint });
  await probeSuite(o.mirror, o.suite, opts.probeTimeoutSec);

  await mkdir(o.cacheDir, { recursive: true, mode: 0o755 });
  const cachedDebs = countDebs(o.cacheDir);
  const tmp = join(ctx.wd.bases, tempName('debootstrap', name));
  await mkdir(tmp, { mode: 0o755 });
  const abort = new AbortController();
  let work: Promise<unknown> = Promise.resolve();
  const cleanup = async () => {
    // debootstrap mounts proc and sys inside the tree: unmount before deleting, never through
    // a mount. A few tries: after a ^C, debootstrap's children (dpkg, tar) may still be
    // writing into the tree for a moment.
    for (let i = 0; i < 10 && existsSync(tmp); i++) {
      if (i) await sleep(500);
      if (ctx.mounts) {
        const prim = await ctx.mounts();
        if (mountsUnder(await prim.list(), tmp).length) await unmountAllUnder(prim, tmp).catch(() => undefined);
        if (mountsUnder(await prim.list(), tmp).length) continue; // never delete through a mount
      }
      await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    }
  };
  const unregister = onInterrupt(async () => {
    abort.abort();
    await work.catch(() => undefined);
    await cleanup();
  });
  const watch = watchTree(tmp, opts.onProgressEvent, { phase: 'debootstrap' });
  try {
    const kept = join(o.cacheDir, 'trees', treeKey({ ...o, arch: opts.arch }));
    const reusedTree = await keptTreeCurrent(kept, o, o.cacheDir, opts.probeTimeoutSec ?? 20);
    if (reusedTree) {
      watch.stop();
      opts.onProgress?.(`copying the tree kept from an earlier debootstrap of ${o.suite} (the mirror's Release is unchanged) ...`);
      const w = watchTree(tmp, opts.onProgressEvent, { phase: 'copying cached tree', total: opts.onProgressEvent ? treeSize(kept) : undefined });
      const p = run(['cp', '-a', '-x', `${kept}/.`, `${tmp}/`], { errorCode: 'E_DEBOOTSTRAP_FAILED', errorExit: EXIT.FAILURE, signal: abort.signal });
      work = p;
      try { await p; } finally { w.stop(); }
      if (abort.signal.aborted) throw new BerthError('E_DEBOOTSTRAP_FAILED', 'interrupted; nothing was made', EXIT.FAILURE);
    } else {
      opts.onProgress?.(`debootstrap ${o.suite} (${o.variant}) from ${o.mirror} into ${dst} (cache ${o.cacheDir}, ${cachedDebs} packages cached) ...`);
      const argv = debootstrapArgv(exe, { ...o, arch: opts.arch }, tmp);
      const p = run(argv, { check: false, signal: abort.signal, env: { DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C' } });
      work = p;
      const r = await p;
      watch.stop();
      if (abort.signal.aborted) throw new BerthError('E_DEBOOTSTRAP_FAILED', 'debootstrap was interrupted; nothing was made', EXIT.FAILURE);
      if (r.exitCode !== 0) {
        const log = join(tmp, 'debootstrap', 'debootstrap.log');
        const tail = [r.stdout, r.stderr, existsSync(log) ? readFileSync(log, 'utf8') : ''].join('\n').split('\n').filter((l) => l.trim()).slice(-8);
        throw new BerthError('E_DEBOOTSTRAP_FAILED', `debootstrap ${o.suite} from ${o.mirror} failed with exit code ${r.exitCode}${r.signal ? ` (${r.signal})` : ''}; nothing was made; last lines:\n${tail.map((l) => '  ' + l).join('\n')}`, EXIT.FAILURE, {
          details: { argv, exitCode: r.exitCode, tail },
        });
      }
    }
    // fit for an env's root: nothing of the build host's identity
    await rm(join(tmp, 'etc', 'hostname'), { force: true });
    await writeFile(join(tmp, 'etc', 'hosts'), HOSTS, { mode: 0o644 });
    await rm(join(tmp, 'etc', 'resolv.conf'), { force: true });
    let hostResolv = '';
    try { hostResolv = readFileSync('/etc/resolv.conf', 'utf8'); } catch { /* none */ }
    await writeFile(join(tmp, 'etc', 'resolv.conf'), baseResolvConf(hostResolv), { mode: 0o644 });
    await run(['find', join(tmp, 'var', 'cache', 'apt', 'archives'), '-maxdepth', '1', '-name', '*.deb', '-type', 'f', '-delete'], { check: false });
    if (!reusedTree) await keepTree(tmp, kept);
    const res = await finishBase(ctx, tmp, dst, name, 'debootstrap', o.mirror);
    return { ...res, suite: o.suite, mirror: o.mirror, variant: o.variant, include: o.include, cacheDir: o.cacheDir, cachedDebs, reusedTree, durationMs: Math.round(performance.now() - t0) };
  } catch (e) {
    watch.stop();
    await cleanup();
    throw e;
  } finally {
    unregister();
  }
}
