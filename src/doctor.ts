/**
 * `berth doctor`: checks that this node's storage is fit for berth (issue 3 item 8,
 * design/product.md "Ownership: leases and fencing", cbsd-behaviour.md §7.5 and §12):
 * - each shared dir (jails-data, jails-system, jails-rcconf, jails-fstab; with a jname also
 *   that env's data, sysdir and fstab dir): its file system type, whether exclusive create
 *   (O_EXCL) and link(2) refuse an existing name (the lease claims by exclusive create), whether POSIX
 *   record locks (fcntl F_SETLK) work between two processes, and the free space;
 * - that var/db (the SQLite inventory) is on a local file system;
 * - bases and envs holding a FreeBSD pkg database (var/db/pkg/local.sqlite) on NFSv3 or
 *   GlusterFS: whether usr/local/etc/pkg.conf sets `NFS_WITH_PROPER_LOCKING = true;` (CBSD's
 *   known issue, §7.5); `fix` adds it;
 * - every configured hook (node defaults, each env's mnt_start / mnt_stop / clone_script) and
 *   every script in the env's host hook dirs (master_*.d, remove.d, clone.d, clone-local.d,
 *   rename.d): present, executable and safely owned ({@link checkHookSafe});
 * - when an env has an RBD disk or berth.conf has rbd_* settings: the node's RBD access
 *   (src/storage/rbd-check.ts: ceph.conf and keyring readable, each pool answers `rbd ls`
 *   within 10 s, qemu's rbd block driver).
 *
 * Record locks: Node has no fcntl(2), and flock(1) is a different lock (BSD flock, which NFS
 * and FUSE handle separately), so the probe is a short perl(1) script using the core Fcntl
 * module (perl is on Debian as perl-base, and on nearly every FreeBSD host as a dependency; when
 * it is missing the row says so as a warning). It takes a write lock, checks that a forked
 * second process is refused, releases it, and checks that the second process then gets it.
 * The `struct flock` layout is packed per platform (Linux and FreeBSD, 64-bit).
 *
 * The library never prints; the CLI renders {@link DoctorReport} as a table or JSON.
 */
import { enginesFor } from './engines/registry.js';
import { randomBytes } from 'node:crypto';
import { closeSync, constants as FS, existsSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, statfsSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { mkdir, unlink, writeFile } from 'node:fs/promises';
import { AgentClient } from './nodes/client.js';
import { BerthError, notFound } from './errors.js';
import { checkHookSafe, HOOK_DIRS } from './hooks.js';
import { isNetworkFs } from './initenv.js';
import { checkJnamePattern, jnameMatcher } from './names.js';
import type { NodeCtx } from './node.js';
import { run } from './proc.js';
import { readDescriptor, type EnvConf } from './descriptor.js';
import { RBD_SETTING_KEYS } from './storage/rbd.js';
import { checkRbd } from './storage/rbd-check.js';

/** Outcome of one check. `fixed`: it failed and `fix` repaired it. Only `fail` makes doctor exit 1. */
export type CheckStatus = 'ok' | 'warn' | 'fail' | 'fixed' | 'skip';

/** One row of the report. */
export interface DoctorCheck {
  /** 'shared dir' | 'env dir' | 'var/db' | 'pkg locking' | 'hook' | 'descriptor' | 'rbd' | 'engine' */
  check: string;
  /** the path (or name) checked */
  subject: string;
  status: CheckStatus;
  /** one line for humans */
  detail: string;
  /** machine-readable facts (sizes in bytes) */
  data?: Record<string, unknown>;
}

/** The whole report; `ok` is false when any check has status `fail`. */
export interface DoctorReport {
  ok: boolean;
  node: string;
  workdir: string;
  checks: DoctorCheck[];
}

/** Options of {@link doctor}. */
export interface DoctorOptions {
  /** an env name or glob: also check that env's dirs, and limit env checks to it */
  jname?: string;
  /** add NFS_WITH_PROPER_LOCKING = true; to pkg.conf where it is needed and missing */
  fix?: boolean;
}



/** Free space below which a dir gets a warning, bytes (1 GiB). */
export const LOW_SPACE_BYTES = 1024 ** 3;

/** The pkg.conf setting pkg(8) needs on NFSv3 / GlusterFS. */
export const PKG_LOCKING_LINE = 'NFS_WITH_PROPER_LOCKING = true;';

const worst = (a: CheckStatus[]): CheckStatus =>
  a.includes('fail') ? 'fail' : a.includes('warn') ? 'warn' : a.includes('fixed') ? 'fixed' : a.every((s) => s === 'skip') && a.length ? 'skip' : 'ok';

/** Human size: 1.5 GiB. */
export function humanBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${i === 0 ? v : v.toFixed(1)} ${u[i]}`;
}

/** Result of {@link probeExclusiveCreate}. */
export interface ExclusiveProbe {
  /** a second O_EXCL create of an existing name fails with EEXIST */
  exclusiveCreate: boolean;
  /** a second link(2) to an existing name fails with EEXIST */
  link: boolean;
  /** why the probe could not run (e.g. 'EROFS'), when it could not */
  error?: string;
}

/**
 * Creates a probe file in `dir` with O_CREAT|O_EXCL, checks that doing it again fails with
 * EEXIST, links it to a second name and checks that linking again fails with EEXIST, then
 * removes both. The probe names start with `.berth-doctor.`.
 */
export function probeExclusiveCreate(dir: string, tag = `${process.pid}`): ExclusiveProbe {
  const a = join(dir, `.berth-doctor.${tag}.${randomBytes(4).toString('hex')}`);
  const b = `${a}.link`;
  const out: ExclusiveProbe = { exclusiveCreate: false, link: false };
  try {
    const fd = openSync(a, FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL, 0o600);
    writeSync(fd, 'berth doctor probe\n');
    closeSync(fd);
  } catch (e) {
    out.error = (e as NodeJS.ErrnoException).code ?? String(e);
    return out;
  }
  try {
    try {
      closeSync(openSync(a, FS.O_WRONLY | FS.O_CREAT | FS.O_EXCL, 0o600));
    } catch (e) {
      out.exclusiveCreate = (e as NodeJS.ErrnoException).code === 'EEXIST';
    }
    try {
      linkSync(a, b);
      try { linkSync(a, b); } catch (e) { out.link = (e as NodeJS.ErrnoException).code === 'EEXIST'; }
    } catch (e) {
      out.error = `link: ${(e as NodeJS.ErrnoException).code ?? String(e)}`;
    }
  } finally {
    for (const p of [b, a]) { try { unlinkSync(p); } catch { /* gone */ } }
  }
  return out;
}

/** The perl probe of {@link probeRecordLocks}; prints one line: ok | nolock E | noexclusion R | nounlock E | stuck R | error E. */
export const LOCK_PROBE_PERL = String.raw`
use strict; use warnings;
use Fcntl qw(F_SETLK F_WRLCK F_UNLCK SEEK_SET O_RDWR O_CREAT);
my $f = shift;
sub fl { my $t = shift; $^O eq 'freebsd' ? pack('q q l s s l x4', 0, 0, 0, $t, SEEK_SET, 0) : pack('s s x4 q q l x4', $t, SEEK_SET, 0, 0, 0) }
sub other {
  pipe(my $r, my $w) or die "pipe: $!\n";
  my $pid = fork() // die "fork: $!\n";
  if ($pid == 0) {
    close $r;
    my $c;
    unless (sysopen($c, $f, O_RDWR)) { print $w "error open $!\n"; exit 0 }
    print $w (fcntl($c, F_SETLK, fl(F_WRLCK)) ? "acquired\n" : "refused $!\n");
    exit 0;
  }
  close $w; my $l = <$r> // "error no answer\n"; waitpid($pid, 0); chomp $l; return $l;
}
sysopen(my $fh, $f, O_RDWR | O_CREAT, 0600) or do { print "error open $!\n"; exit 0 };
unless (fcntl($fh, F_SETLK, fl(F_WRLCK))) { print "nolock $!\n"; exit 0 }
my $a = other();
if ($a !~ /^refused/) { print "noexclusion $a\n"; exit 0 }
unless (fcntl($fh, F_SETLK, fl(F_UNLCK))) { print "nounlock $!\n"; exit 0 }
my $b = other();
if ($b ne 'acquired') { print "stuck $b\n"; exit 0 }
print "ok\n";
`;

/** Result of {@link probeRecordLocks}: `ok`, or why not; `untested` when perl is missing. */
export interface LockProbe {
  result: 'ok' | 'failed' | 'untested';
  detail: string;
}

/**
 * Checks POSIX record locks (fcntl F_SETLK) on a probe file in `dir` between two processes
 * (see the module notes). Removes the probe file.
 */
export async function probeRecordLocks(dir: string, tag = `${process.pid}`): Promise<LockProbe> {
  const f = join(dir, `.berth-doctor-lock.${tag}.${randomBytes(4).toString('hex')}`);
  try {
    const r = await run(['perl', '-e', LOCK_PROBE_PERL, f], { check: false, timeoutSec: 30 });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    if (r.exitCode !== 0 && !line) return { result: 'failed', detail: `lock probe exited ${r.exitCode}: ${r.stderr.trim()}` };
    if (line === 'ok') return { result: 'ok', detail: 'fcntl locks ok' };
    const [what, ...rest] = line.split(' ');
    const why = rest.join(' ');
    const text: Record<string, string> = {
      nolock: `fcntl F_SETLK fails: ${why}`,
      noexclusion: 'a second process got a write lock that another held',
      nounlock: `unlock fails: ${why}`,
      stuck: `a released lock could not be taken: ${why}`,
      error: why,
    };
    return { result: 'failed', detail: text[what!] ?? line };
  } catch (e) {
    if (e instanceof BerthError && e.code === 'E_EXEC') return { result: 'untested', detail: 'perl not found: record locks not tested' };
    throw e;
  } finally {
    try { unlinkSync(f); } catch { /* gone */ }
  }
}

/** Free bytes for unprivileged users (statfs f_bavail × f_bsize) and total bytes. */
export function freeSpace(dir: string): { freeBytes: number; totalBytes: number } {
  const s = statfsSync(dir);
  return { freeBytes: Number(s.bavail) * Number(s.bsize), totalBytes: Number(s.blocks) * Number(s.bsize) };
}

/** True when pkg.conf text sets NFS_WITH_PROPER_LOCKING to true (UCL: `=` or `:`, true/yes/on). */
export function pkgConfHasProperLocking(text: string): boolean {
  let last: boolean | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    const m = /^NFS_WITH_PROPER_LOCKING\s*[=:]\s*"?([A-Za-z]+)"?\s*[;,]?$/i.exec(line);
    if (m) last = /^(true|yes|on)$/i.test(m[1]!);
  }
  return last === true;
}

/**
 * NFSv3 (or v2) or GlusterFS: the file systems where pkg(8) needs NFS_WITH_PROPER_LOCKING.
 * CephFS (`ceph`, `fuse.ceph-fuse`) does not: its MDS grants POSIX record locks across clients
 * (the doctor's lock probe checks them like on any shared dir).
 */
export function needsPkgLocking(fstype: string, options = ''): boolean {
  const t = fstype.toLowerCase();
  if (t.includes('gluster')) return true;
  if (t === 'nfs') return !/(^|,)(nfsv4|vers=4[.\d]*|nfsvers=4[.\d]*)(,|$)/.test(options);
  return false;
}

/**
 * Walks `root`/`rel` (a relative path) refusing symlinks on the way: an env's data is written
 * by whatever runs inside it, and berth runs as root on the host. Returns the full path and
 * whether it exists; throws naming the symlink it found.
 */
function safeChild(root: string, rel: string): { path: string; exists: boolean } {
  let p = root;
  for (const part of rel.split('/')) {
    p = join(p, part);
    let st;
    try { st = lstatSync(p); } catch { return { path: join(root, rel), exists: false }; }
    if (st.isSymbolicLink()) throw new Error(`${p} is a symlink; not followed`);
  }
  return { path: p, exists: true };
}

async function mountOptions(ctx: NodeCtx, path: string): Promise<string> {
  try {
    const table = await (await ctx.mounts()).list();
    let best: { target: string; options: string } | undefined;
    for (const m of table) {
      if (path === m.target || path.startsWith(m.target === '/' ? '/' : m.target + '/')) {
        if (!best || m.target.length >= best.target.length) best = m;
      }
    }
    return best?.options ?? '';
  } catch { return ''; }
}

async function checkDir(ctx: NodeCtx, kind: string, dir: string, tag: string): Promise<DoctorCheck> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    return { check: kind, subject: dir, status: kind === 'shared dir' ? 'fail' : 'warn', detail: 'missing (not created, or not mounted)', data: { exists: false } };
  }
  const fsType = await (await ctx.mounts()).fsType(dir);
  const ex = probeExclusiveCreate(dir, tag);
  const lk = ex.error ? { result: 'untested' as const, detail: 'not tested (cannot create files)' } : await probeRecordLocks(dir, tag);
  const sp = freeSpace(dir);
  const st: CheckStatus[] = [];
  const parts = [fsType];
  if (ex.error) { st.push('fail'); parts.push(`cannot create files (${ex.error})`); }
  else {
    st.push(ex.exclusiveCreate && ex.link ? 'ok' : 'fail');
    parts.push(`O_EXCL ${ex.exclusiveCreate ? 'ok' : 'NOT exclusive'}`, `link ${ex.link ? 'ok' : 'NOT exclusive'}`);
  }
  st.push(lk.result === 'ok' ? 'ok' : lk.result === 'untested' && !ex.error ? 'warn' : 'fail');
  parts.push(lk.detail);
  st.push(sp.freeBytes < LOW_SPACE_BYTES ? 'warn' : 'ok');
  parts.push(`${humanBytes(sp.freeBytes)} free${sp.freeBytes < LOW_SPACE_BYTES ? ' (low)' : ''}`);
  return {
    check: kind, subject: dir, status: worst(st), detail: parts.join(', '),
    data: { exists: true, fsType, exclusiveCreate: ex.exclusiveCreate, link: ex.link, createError: ex.error, recordLocks: lk.result, recordLocksDetail: lk.detail, ...sp },
  };
}

function checkHook(subject: string, what: string): DoctorCheck {
  try {
    checkHookSafe(subject);
    return { check: 'hook', subject, status: 'ok', detail: `${what}: present, executable, owned by root, not group/other writable` };
  } catch (e) {
    const be = e as BerthError;
    return { check: 'hook', subject, status: 'fail', detail: `${what}: ${be.message}${be.hint ? ` (${be.hint})` : ''}`, data: { code: be.code } };
  }
}

function checkHookDirs(sysdir: string, jname: string): DoctorCheck[] {
  const out: DoctorCheck[] = [];
  for (const d of HOOK_DIRS) {
    const dir = join(sysdir, d);
    let names: string[];
    try { names = readdirSync(dir).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)); } catch { continue; }
    for (const n of names) {
      if (n.startsWith('.')) continue;
      const p = join(dir, n);
      let st;
      try { st = statSync(p); } catch { out.push({ check: 'hook', subject: p, status: 'warn', detail: `${d} of ${jname}: dangling symlink, never runs` }); continue; }
      if (!st.isFile()) continue;
      if ((st.mode & 0o111) === 0) { out.push({ check: 'hook', subject: p, status: 'warn', detail: `${d} of ${jname}: no execute bit, never runs` }); continue; }
      out.push(checkHook(p, `${d} of ${jname}`));
    }
  }
  return out;
}

/** Envs to look at: registered ones matching `pattern` (all when none), with their conf. */
function selectEnvs(ctx: NodeCtx, pattern?: string): { jname: string; conf: EnvConf; registered: boolean }[] {
  const rows = ctx.inv.list();
  if (!pattern) return rows.map((r) => ({ jname: r.jname, conf: r.conf, registered: true }));
  checkJnamePattern(pattern);
  const match = jnameMatcher(pattern);
  const hit = rows.filter((r) => match(r.jname)).map((r) => ({ jname: r.jname, conf: r.conf, registered: true }));
  if (hit.length) return hit;
  if (!/[*?[]/.test(pattern)) {
    // not registered here: an env on the shared storage (sysdir descriptor, or jails-rcconf)
    for (const f of [ctx.wd.env(pattern).descriptor, ctx.wd.env(pattern).rcconfFile]) {
      if (existsSync(f)) {
        try { return [{ jname: pattern, conf: readDescriptor(f, ctx.wd.root), registered: false }]; } catch { /* bad descriptor: still check dirs */ }
      }
    }
    if (existsSync(ctx.wd.env(pattern).sysdir) || existsSync(ctx.wd.env(pattern).data)) return [{ jname: pattern, conf: {}, registered: false }];
  }
  throw notFound('E_NO_SUCH_ENV', `no env matches jname=${pattern} on this node or in its shared dirs`, { hint: 'see: berth jls' });
}

async function checkPkg(ctx: NodeCtx, what: string, root: string, fix: boolean): Promise<DoctorCheck | undefined> {
  let db;
  try { db = safeChild(root, 'var/db/pkg/local.sqlite'); } catch (e) {
    return { check: 'pkg locking', subject: root, status: 'warn', detail: `${what}: ${(e as Error).message}` };
  }
  if (!db.exists) return undefined;
  const dbDir = dirname(db.path);
  const fsType = await (await ctx.mounts()).fsType(dbDir);
  const opts = fsType.toLowerCase() === 'nfs' ? await mountOptions(ctx, dbDir) : '';
  if (!needsPkgLocking(fsType, opts)) {
    return { check: 'pkg locking', subject: db.path, status: 'ok', detail: `${what}: pkg database on ${fsType}, no setting needed`, data: { fsType } };
  }
  let conf;
  try { conf = safeChild(root, 'usr/local/etc/pkg.conf'); } catch (e) {
    return { check: 'pkg locking', subject: join(root, 'usr/local/etc/pkg.conf'), status: 'fail', detail: `${what}: ${(e as Error).message}`, data: { fsType } };
  }
  const text = conf.exists ? readFileSync(conf.path, 'utf8') : '';
  if (pkgConfHasProperLocking(text)) {
    return { check: 'pkg locking', subject: conf.path, status: 'ok', detail: `${what}: pkg database on ${fsType}; pkg.conf sets NFS_WITH_PROPER_LOCKING`, data: { fsType } };
  }
  if (!fix) {
    return {
      check: 'pkg locking', subject: conf.path, status: 'fail', data: { fsType },
      detail: `${what}: pkg database on ${fsType} but pkg.conf ${conf.exists ? 'lacks' : 'is missing, so no'} '${PKG_LOCKING_LINE}' (berth doctor fix=1 adds it)`,
    };
  }
  try {
    if (!conf.exists) {
      // create usr/local/etc without following symlinks: every existing part was lstat'ed by safeChild
      mkdirSync(dirname(conf.path), { recursive: true, mode: 0o755 });
      safeChild(root, 'usr/local/etc');
    }
    const fd = openSync(conf.path, FS.O_WRONLY | FS.O_APPEND | FS.O_CREAT | FS.O_NOFOLLOW, 0o644);
    try {
      writeSync(fd, `${text && !text.endsWith('\n') ? '\n' : ''}# added by berth doctor fix=1: pkg database on ${fsType}\n${PKG_LOCKING_LINE}\n`);
    } finally { closeSync(fd); }
  } catch (e) {
    return { check: 'pkg locking', subject: conf.path, status: 'fail', detail: `${what}: cannot add '${PKG_LOCKING_LINE}': ${(e as Error).message}`, data: { fsType } };
  }
  return { check: 'pkg locking', subject: conf.path, status: 'fixed', detail: `${what}: pkg database on ${fsType}; added '${PKG_LOCKING_LINE}'`, data: { fsType } };
}

/**
 * The descriptors waiting in jails-rcconf/ for a jregister that cannot be parsed: `jls` leaves
 * them out and `jregister` refuses them, so doctor names each with the parser's reason (one
 * 'descriptor' check with status fail per file; nothing when all parse).
 */
function checkWaitingDescriptors(ctx: NodeCtx): DoctorCheck[] {
  const out: DoctorCheck[] = [];
  for (const { file } of ctx.wd.waitingDescriptors()) {
    try {
      readDescriptor(file, ctx.wd.root);
    } catch (e) {
      out.push({ check: 'descriptor', subject: file, status: 'fail', detail: `cannot be parsed, so jls does not list it and jregister refuses it: ${(e as Error).message}` });
    }
  }
  return out;
}

/**
 * Runs every check (see the module notes) and returns the report. Probe files are created
 * and removed in each dir checked; with `fix`, pkg.conf files are appended to.
 * @throws BerthError E_BAD_JNAME (exit 2) for a bad jname; E_NO_SUCH_ENV (exit 3) when the
 *   jname matches nothing
 */
export async function doctor(ctx: NodeCtx, opts: DoctorOptions = {}): Promise<DoctorReport> {
  const wd = ctx.wd;
  const tag = `${ctx.nodename}.${process.pid}`;
  const envs = selectEnvs(ctx, opts.jname);
  const checks: DoctorCheck[] = [];

  for (const d of [wd.jailsData, wd.jailsSystem, wd.jailsRcconf, wd.jailsFstab]) checks.push(await checkDir(ctx, 'shared dir', d, tag));
  if (!opts.jname) {
    const own = await checkDir(ctx, 'shared dir', wd.leaseDir, tag);
    checks.push({ ...own, check: 'ownership dir', status: own.data?.exists === false ? 'fail' : own.status });
    checks.push(await checkOwnershipShared(ctx, String(own.data?.fsType ?? '')));
  }
  if (opts.jname) {
    for (const e of envs) {
      const p = wd.env(e.jname);
      for (const d of [p.data, p.sysdir, p.fstabDir]) checks.push(await checkDir(ctx, 'env dir', d, tag));
    }
  }

  {
    const varDb = existsSync(wd.varDb) ? wd.varDb : wd.root;
    const t = await (await ctx.mounts()).fsType(varDb);
    checks.push(isNetworkFs(t)
      ? { check: 'var/db', subject: wd.varDb, status: 'fail', detail: `on ${t}: the inventory (SQLite WAL) must be on a local file system`, data: { fsType: t } }
      : { check: 'var/db', subject: wd.varDb, status: 'ok', detail: `local (${t})`, data: { fsType: t } });
  }

  if (!opts.jname) {
    let bases: string[] = [];
    try { bases = readdirSync(wd.bases).sort(); } catch { /* none */ }
    for (const b of bases) {
      const c = await checkPkg(ctx, `base ${b}`, wd.base(b), !!opts.fix);
      if (c) checks.push(c);
    }
  }
  for (const e of envs) {
    const data = e.conf.data && e.conf.data.startsWith('/') ? e.conf.data : wd.env(e.jname).data;
    const c = await checkPkg(ctx, `env ${e.jname}`, data, !!opts.fix);
    if (c) checks.push(c);
  }

  if (!opts.jname) checks.push(...checkWaitingDescriptors(ctx));

  if (!opts.jname) {
    for (const k of ['default_mnt_start', 'default_mnt_stop'] as const) {
      const h = ctx.settings[k];
      if (h && h !== '0') checks.push(checkHook(h, `node ${k}`));
    }
  }
  for (const e of envs) {
    for (const k of ['mnt_start', 'mnt_stop', 'clone_script']) {
      const h = e.conf[k];
      if (h && h !== '0') checks.push(checkHook(h, `${k} of ${e.jname}`));
    }
    checks.push(...checkHookDirs(wd.env(e.jname).sysdir, e.jname));
  }

  // RBD access: when an env has an RBD disk, or the node has rbd_* settings
  {
    const pools = new Set<string>();
    for (const e of envs) {
      for (const [k, v] of Object.entries(e.conf)) {
        const m = /^dsk_type(\d+)$/.exec(k);
        const path = m && v === 'rbd' ? e.conf[`dsk_path${m[1]}`] : undefined;
        if (path) pools.add(path.split('/')[0]!);
      }
    }
    const configured = RBD_SETTING_KEYS.some((k) => { const v = ctx.settings.raw[k]; return v !== undefined && v !== '' && v !== '0'; });
    if (pools.size || configured) checks.push(...await checkRbd(ctx.settings.raw, [...pools]));
  }

  if (!opts.jname) {
    // each engine of this platform says what it found (qemu: its accelerator), from the registry
    for (const info of enginesFor(ctx.platform)) {
      const engine = await ctx.engine(info.name);
      if (!engine.doctor) continue;
      const r = await engine.doctor(wd).catch((e: Error) => ({ status: 'warn' as const, detail: `cannot check: ${e.message}`, data: undefined }));
      checks.push({ check: 'engine', subject: info.name, ...r });
    }
  }

  return { ok: !checks.some((c) => c.status === 'fail'), node: ctx.nodename, workdir: wd.root, checks };
}

/**
 * Is the ownership directory (lease_dir) really the same directory on every known node? This
 * node writes a marker (a fresh random value) into `<lease_dir>/nodes/<node>/probe`, then asks
 * every known node's agent to read it back through its own lease_dir (GET /v1/ownership/probe).
 * A node that reads something else does not share it: leases, takeovers and `cluster ls` would
 * then be wrong there (fail). With no known node, a local file system is a warning: fine for a
 * single node, not for several.
 */
async function checkOwnershipShared(ctx: NodeCtx, fsType: string): Promise<DoctorCheck> {
  const subject = ctx.wd.leaseDir;
  const nodes = ctx.inv.listNodes();
  const id = randomBytes(8).toString('hex');
  const marker = `${ctx.nodename}:${id}\n`;
  const file = ctx.own.probeFile(ctx.nodename, id);
  try {
    await mkdir(ctx.own.nodeDir(), { recursive: true });
    await writeFile(file, marker, { mode: 0o644, flag: 'wx' });
  } catch (e) {
    return { check: 'ownership shared', subject, status: 'fail', detail: `cannot write ${file}: ${(e as Error).message}` };
  }
  try {
    return await askProbe(ctx, subject, fsType, nodes, id, marker);
  } finally {
    await unlink(file).catch(() => undefined);
  }
}

async function askProbe(ctx: NodeCtx, subject: string, fsType: string, nodes: { name: string; url: string; token: string }[], id: string, marker: string): Promise<DoctorCheck> {
  if (!nodes.length) {
    const local = !isNetworkFs(fsType);
    return { check: 'ownership shared', subject, status: local ? 'warn' : 'ok',
      detail: local ? `on a local file system (${fsType}) and no other node is known: right for one node; several nodes must all mount one shared directory there (then: berth node add, and run doctor again)`
        : `on ${fsType}; no other node is known to check that they see it (berth node add)`, data: { fsType, nodes: [] } };
  }
  const results = await Promise.all(nodes.map(async (n) => {
    try {
      const a = await new AgentClient(n.name, n.url, n.token).call('GET', `/v1/ownership/probe?node=${encodeURIComponent(ctx.nodename)}&id=${id}`, undefined, 5000);
      return { node: n.name, seen: a.probe === marker ? 'same' : a.probe ? 'other' : 'none' };
    } catch (e) {
      return { node: n.name, seen: 'unreachable', error: (e as Error).message };
    }
  }));
  const bad = results.filter((r) => r.seen === 'other' || r.seen === 'none');
  const unreachable = results.filter((r) => r.seen === 'unreachable');
  const same = results.filter((r) => r.seen === 'same').map((r) => r.node);
  const parts: string[] = [];
  if (same.length) parts.push(`read back by ${same.join(', ')}`);
  if (bad.length) parts.push(`NOT seen by ${bad.map((r) => r.node).join(', ')} (their lease_dir is another directory: mount the same shared directory there)`);
  if (unreachable.length) parts.push(`not checked on ${unreachable.map((r) => r.node).join(', ')} (agent unreachable)`);
  return { check: 'ownership shared', subject, status: bad.length ? 'fail' : unreachable.length ? 'warn' : 'ok', detail: parts.join('; '), data: { fsType, nodes: results } };
}

/** `subject` shown relative to the workdir when it is inside it. */
export function displaySubject(workdir: string, p: string): string {
  if (!p.startsWith('/')) return p;
  const r = relative(workdir, p);
  return r === '' ? '.' : r.startsWith('..') ? p : r;
}
