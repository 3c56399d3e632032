/**
 * The env descriptor `rc.conf_<jname>` (design/product.md "Descriptor"; CBSD jmkrcconf,
 * cbsd-behaviour.md §4.3). Lines `key="value";`, parsed strictly (src/kvfile.ts) and never
 * sourced. The workdir inside a value is written as the token `CBSDROOT` so another node,
 * with another workdir, can adopt the env; `jname` is written last, without `;`, as CBSD
 * does. The sysdir copy is rewritten atomically (temp file + fsync + rename).
 */
import { lstatSync, readFileSync } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { parseKV, quoteValue, type KV } from './kvfile.js';
import { sleep } from './proc.js';
import { readSharedBytesAsync, readSharedText, readSharedTextAs, readSharedTextAsync, replaceFileAtomic, textDigest } from './sharedfs.js';

/** An env's settings, keyed by CBSD names (jname, emulator, baserw, ip4_addr ...). */
export type EnvConf = KV;

/** Keys CBSD's JARG list knows (share/jail-arg) that berth reads and writes, in CBSD order. */
export const CBSD_KEYS = [
  'allow_mount', 'allow_nullfs', 'allow_raw_sockets', 'allow_sysvipc', 'allow_mlock', 'allow_reserved_ports',
  'astart', 'b_order', 'basename', 'baserw', 'childrenmax', 'data', 'devfs_ruleset', 'emulator', 'enforce_statfs',
  'exec_consolelog', 'exec_poststart', 'exec_poststop', 'exec_prestart', 'exec_prestop', 'exec_start', 'exec_stop',
  'exec_timeout', 'host_hostname', 'interface', 'ip4_addr', 'ip6_addr', 'mnt_start', 'mnt_stop', 'mount_devfs',
  'mount_fstab', 'path', 'persist', 'protected', 'rcconf', 'stop_timeout', 'ver', 'arch', 'vnet',
];

/** berth's own keys, written after CBSD's. */
export const BERTH_KEYS = ['uuid', 'base', 'mnt_timeout', 'clone_script', 'created_by_node'];

/** Values that name a path and so get the CBDSROOT treatment. */
const PATH_KEYS = new Set(['data', 'path', 'rcconf', 'mount_fstab', 'mnt_start', 'mnt_stop', 'clone_script', 'exec_consolelog']);

/**
 * Parses descriptor text; `CBSDROOT` at the start of a value (or after a `/`-free prefix as
 * CBSD writes it) becomes `workdir`; relative `path`/`data`/`rcconf`/`mount_fstab` values
 * (CBSD `relative_path`) are made absolute under the workdir.
 * @throws BerthError E_BAD_CONF naming file and line
 */
export function parseDescriptor(text: string, workdir: string, source = 'descriptor'): EnvConf {
  const kv = parseKV(text, source);
  const out: EnvConf = {};
  const rel = kv.relative_path !== '0';
  for (const [k, v] of Object.entries(kv)) {
    if (k === 'relative_path') continue;
    let val = v.split('CBSDROOT').join(workdir);
    if (rel && PATH_KEYS.has(k) && ['data', 'path', 'rcconf', 'mount_fstab'].includes(k) && val && val !== '0' && !val.startsWith('/')) {
      val = `${workdir}/${val}`;
    }
    out[k] = val;
  }
  return out;
}

/** Reads and parses a descriptor file. @throws BerthError E_BAD_CONF; Node ENOENT. */
export function readDescriptor(file: string, workdir: string): EnvConf {
  // lstat first: on GlusterFS FUSE a file another node replaced is otherwise opened through the
  // stale cached entry and close(2) fails with ESTALE, which makes Node 20's
  // readFileSync(file, 'utf8') ABORT the process; read bytes, retry a replace in progress.
  for (let i = 0; ; i++) {
    try { lstatSync(file); } catch { /* the read says why */ }
    try {
      return parseDescriptor(readFileSync(file).toString('utf8'), workdir, file);
    } catch (e) {
      const c = (e as NodeJS.ErrnoException).code;
      if (i >= 4 || (c !== 'ENOENT' && c !== 'ESTALE' && (e as NodeJS.ErrnoException).errno !== -116)) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20 * (i + 1)); // a rename on another node settles
    }
  }
}

/**
 * {@link readDescriptor}, asynchronous: the same lookup afresh, bytes read (src/sharedfs.ts
 * readSharedTextAsync, which also retries ESTALE), a replace in progress (ENOENT) retried after
 * 20, 40, 60, 80 ms. For the paths that read many descriptors at once on shared storage
 * (jregister of a glob), where a synchronous call holds the whole process for one network
 * round trip (about 1 ms on GlusterFS FUSE).
 * @throws BerthError E_BAD_CONF; Node errors (ENOENT)
 */
export async function readDescriptorAsync(file: string, workdir: string): Promise<EnvConf> {
  return parseDescriptor((await readDescriptorBytes(file)).toString('utf8'), workdir, file);
}

/** The bytes of a descriptor file, read as {@link readDescriptorAsync} says. @throws Node errors (ENOENT after the retries) */
async function readDescriptorBytes(file: string): Promise<Buffer> {
  for (let i = 0; ; i++) {
    try { await lstat(file); } catch { /* the read says why */ }
    try {
      return await readSharedBytesAsync(file);
    } catch (e) {
      if (i >= 4 || (e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      await sleep(20 * (i + 1)); // a rename on another node settles
    }
  }
}

/**
 * readDescriptor for a descriptor that another node may rewrite on shared storage (the copy in
 * the ownership record, jails-rcconf/): read as src/sharedfs.ts readSharedText does.
 * @throws BerthError E_BAD_CONF; Node errors (ENOENT)
 */
export function readSharedDescriptor(file: string, workdir: string): EnvConf {
  return parseDescriptor(readSharedText(file), workdir, file);
}

/** {@link readSharedDescriptor}, asynchronous (src/sharedfs.ts readSharedTextAsync). @throws BerthError E_BAD_CONF; Node errors (ENOENT) */
export async function readSharedDescriptorAsync(file: string, workdir: string): Promise<EnvConf> {
  return parseDescriptor(await readSharedTextAsync(file), workdir, file);
}

/**
 * {@link readSharedDescriptor} of the version whose text has sha256 `digest` (what another node
 * just wrote and read back: src/sharedfs.ts readSharedTextAs waits out this node's DFS cache).
 * @returns the settings and the digest of the text they were read from, or `undefined` when this
 *   node still read another version after the wait
 * @throws BerthError E_BAD_CONF; Node errors (ENOENT)
 */
export async function readSharedDescriptorAs(file: string, workdir: string, digest: string | undefined): Promise<{ conf: EnvConf; digest: string } | undefined> {
  const text = await readSharedTextAs(file, digest);
  return text === undefined ? undefined : { conf: parseDescriptor(text, workdir, file), digest: textDigest(text) };
}

/**
 * Formats a descriptor: header, `relative_path="1";`, CBSD keys then berth keys then any
 * others (sorted), `jname="X"` last. Every occurrence of `workdir` followed by `/` or the
 * end of the value becomes `CBSDROOT`.
 */
export function formatDescriptor(conf: EnvConf, workdir: string): string {
  const w = workdir.replace(/\/+$/, '');
  const tok = (v: string): string => v.split(w + '/').join('CBSDROOT/').replace(new RegExp(`^${w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`), 'CBSDROOT');
  const known = new Set([...CBSD_KEYS, ...BERTH_KEYS, 'jname']);
  const keys = [
    ...CBSD_KEYS.filter((k) => conf[k] !== undefined),
    ...BERTH_KEYS.filter((k) => conf[k] !== undefined),
    ...Object.keys(conf).filter((k) => !known.has(k)).sort(),
  ];
  let s = `# berth env descriptor: do not edit by hand while the env is registered.\n# Use: berth jset jname=${conf.jname ?? ''} key=value\n\nrelative_path="1";\n`;
  for (const k of keys) s += `${k}=${quoteValue(tok(conf[k]!))};\n`;
  s += `jname=${quoteValue(conf.jname ?? '')}\n`;
  return s;
}

/**
 * Writes the descriptor (as {@link writeDescriptor}) unless the file already holds exactly that
 * text: on shared storage a read is cheaper than a durable replace (jregister of hundreds of
 * envs whose descriptor copy is already current). `known`: the file's text as the caller read
 * it, when the caller knows nobody wrote it since (src/lifecycle/register.ts), saving the read.
 * @returns true when it was written
 */
export async function writeDescriptorIfChanged(file: string, conf: EnvConf, workdir: string, known?: string): Promise<boolean> {
  const text = formatDescriptor(conf, workdir);
  let current = known;
  if (current === undefined) {
    try {
      current = await readSharedTextAsync(file);
    } catch { /* missing or unreadable: write it */ }
  }
  if (current === text) return false;
  await replaceFileAtomic(file, text, { mode: 0o644 });
  return true;
}

/**
 * Writes the descriptor atomically (temp file, fsync, rename; src/sharedfs.ts), mode 0644.
 * @throws the file system error (ENOENT when its directory is missing)
 */
export async function writeDescriptor(file: string, conf: EnvConf, workdir: string): Promise<void> {
  await replaceFileAtomic(file, formatDescriptor(conf, workdir), { mode: 0o644 });
}
