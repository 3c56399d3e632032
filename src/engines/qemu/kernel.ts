/**
 * A "kernel base" for direct kernel boot of qemu guests, made from Debian's packages only:
 * the Debian cloud kernel (`linux-image-cloud-amd64`, fetched with `apt-get download` and
 * unpacked with `dpkg-deb -x`, never installed) and a small initramfs made from the host's
 * static busybox that loads the virtio modules, mounts the root disk and switches root to
 * its `/sbin/init`.
 *
 * Layout: `bases/<name>/vmlinuz`, `bases/<name>/initrd.img`, `bases/<name>/kernel.json`
 * ({@link KernelBaseInfo}). Built in a hidden temp dir under `bases/` and renamed into place
 * at the end, so a failed build leaves nothing behind (as src/bases.ts imports do).
 *
 * The initramfs (`/init`, a busybox sh script) reads from the kernel command line
 * `root=` (default /dev/vda), `rootfstype=` (default ext4), `ro`/`rw` (default rw) and
 * `rootwait=<seconds>` (default 10); it loads, in dependency order, {@link INITRD_MODULES}
 * and what they depend on (read from each module's `.modinfo` `depends=`), skipping modules
 * built into the kernel (`modules.builtin`), and {@link INITRD_OPTIONAL_MODULES} (pvpanic)
 * when the kernel has them. `button` and `evdev` are loaded so that the
 * guest sees the ACPI power button as /dev/input/event* (busybox acpid in the guest turns
 * QMP `system_powerdown` into a poweroff). When the root cannot be mounted it prints a line
 * starting with `berth-initrd:` on the console and powers the VM off (no panic loop).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { elfIsStatic } from '../../bases.js';
import { BerthError, EXIT, usageError } from '../../errors.js';
import { checkBaseName } from '../../names.js';
import type { Workdir } from '../../paths.js';
import { run } from '../../proc.js';

/** The Debian package of the guest kernel (a metapackage that depends on the current one). */
export const DEFAULT_KERNEL_PACKAGE = 'linux-image-cloud-amd64';

/**
 * Modules the initramfs loads (with their dependencies, in order): virtio PCI and block for
 * the root disk, virtio_net for NICs, button and evdev for the ACPI power button.
 */
export const INITRD_MODULES: readonly string[] = [
  'virtio_ring', 'virtio', 'virtio_pci_modern_dev', 'virtio_pci_legacy_dev', 'virtio_pci', 'virtio_blk', 'virtio_net', 'button', 'evdev',
];

/**
 * Modules the initramfs loads too when the kernel has them (a kernel without them still makes
 * a base): pvpanic_mmio, the driver of the VM's pvpanic device, through which the guest's
 * kernel reports a panic to qemu (what on_crash acts on).
 */
export const INITRD_OPTIONAL_MODULES: readonly string[] = ['pvpanic_mmio'];

/** The kernel command line a kernel base boots with (root on the first virtio disk). */
export const KERNEL_CMDLINE = 'console=ttyS0 root=/dev/vda rw quiet panic=-1';

/** Written as `kernel.json` in a kernel base. */
export interface KernelBaseInfo {
  /** always 'kernel' (a kernel base, not a root tree) */
  kind: 'kernel';
  name: string;
  /** the Debian package the kernel came from, its version and the kernel release */
  kernel: { package: string; version: string; release: string };
  /** the busybox in the initramfs: its path on the build host and the version it reports */
  busybox: { source: string; version: string };
  /** modules in the initramfs, in load order */
  modules: string[];
  /** the command line to boot with ({@link KERNEL_CMDLINE}) */
  cmdline: string;
  /** ISO 8601 */
  createdAt: string;
}

/** A kernel base on disk. */
export interface KernelBase {
  name: string;
  path: string;
  vmlinuz: string;
  initrd: string;
  info: KernelBaseInfo;
}

/** Options of {@link makeKernelBase}. */
export interface KernelBaseOptions {
  /** Debian package to fetch (default {@link DEFAULT_KERNEL_PACKAGE}) */
  package?: string;
  /** a .deb already on disk instead of apt-get download (tests, offline nodes) */
  deb?: string;
  /** the static busybox (default /bin/busybox, Debian busybox-static) */
  busybox?: string;
  /** called with a short line before each step */
  onProgress?: (line: string) => void;
}

/**
 * The `depends=` list of a kernel module, read from its `.modinfo` strings
 * (NUL-separated `key=value` entries, as modinfo(8) reads them).
 */
export function moduleDepends(ko: Buffer): string[] {
  const key = Buffer.from('\0depends=');
  const i = ko.indexOf(key);
  if (i < 0) return [];
  const end = ko.indexOf(0, i + key.length);
  const v = ko.subarray(i + key.length, end < 0 ? undefined : end).toString('latin1');
  return v.split(',').map((s) => s.trim()).filter(Boolean);
}

/**
 * Orders modules so that each comes after what it depends on.
 * @param wanted the modules asked for
 * @param deps every known module's dependencies
 * @param builtin modules built into the kernel (skipped, also as dependencies)
 * @throws BerthError E_KERNEL_MODULE (exit 1) naming a module that is neither a file nor built in
 */
export function moduleLoadOrder(wanted: readonly string[], deps: ReadonlyMap<string, readonly string[]>, builtin: ReadonlySet<string> = new Set()): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const visit = (m: string, path: string[]) => {
    const n = m.replace(/-/g, '_');
    if (seen.has(n) || builtin.has(n)) return;
    if (path.includes(n)) throw new BerthError('E_KERNEL_MODULE', `module dependency loop: ${[...path, n].join(' -> ')}`, EXIT.FAILURE);
    const d = deps.get(n);
    if (!d) throw new BerthError('E_KERNEL_MODULE', `the kernel has no module ${n} (needed by ${path.at(-1) ?? 'the initramfs'})`, EXIT.FAILURE);
    for (const x of d) visit(x, [...path, n]);
    seen.add(n);
    out.push(n);
  };
  for (const m of wanted) visit(m, []);
  return out;
}

/** The initramfs `/init` script (busybox sh). `modules` in load order, files under /lib/modules. */
export function initScript(modules: readonly string[]): string {
  return `#!/bin/busybox sh
# berth initramfs: load the virtio modules, mount the root disk, switch root to its /sbin/init.
B=/bin/busybox
$B mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
fail() { echo "berth-initrd: $*"; $B sync; $B poweroff -f; }
root=/dev/vda; fstype=ext4; mode=rw; wait=10
for a in $($B cat /proc/cmdline); do
  case "$a" in
    root=*) root="\${a#root=}" ;;
    rootfstype=*) fstype="\${a#rootfstype=}" ;;
    rootwait=*) wait="\${a#rootwait=}" ;;
    ro) mode=ro ;;
    rw) mode=rw ;;
  esac
done
for m in ${modules.join(' ')}; do
  $B insmod /lib/modules/$m.ko || echo "berth-initrd: insmod $m failed"
done
i=0
while [ ! -b "$root" ]; do
  i=$((i+1))
  [ $i -gt $((wait*100)) ] && fail "no root device $root after \${wait}s"
  $B usleep 10000
done
$B mount -t "$fstype" -o "$mode" "$root" /newroot || fail "cannot mount $root ($fstype, $mode)"
[ -x /newroot/sbin/init ] || [ -L /newroot/sbin/init ] || fail "$root has no /sbin/init"
$B mount --move /dev /newroot/dev 2>/dev/null || $B umount /dev
$B umount /proc /sys
exec $B switch_root /newroot /sbin/init
fail "switch_root failed"
`;
}

async function checkBusybox(bb: string): Promise<string> {
  const hint = 'install it: apt-get install busybox-static';
  if (!existsSync(bb)) throw new BerthError('E_NO_BUSYBOX', `${bb} not found`, EXIT.FAILURE, { hint });
  const head = (await readFile(bb)).subarray(0, 4096);
  const st = elfIsStatic(head);
  if (st !== true) throw new BerthError('E_NO_BUSYBOX', `${bb} is ${st === undefined ? 'not an ELF executable' : 'dynamically linked'}`, EXIT.FAILURE, { hint });
  const r = await run([bb, '--help'], { check: false });
  return /BusyBox v(\S+)/.exec(r.stdout + r.stderr)?.[1] ?? 'unknown';
}

/** Finds `boot/vmlinuz-<release>` and `lib/modules/<release>` in an unpacked kernel package. */
function findKernel(root: string): { release: string; vmlinuz: string; modules: string } {
  const boot = join(root, 'boot');
  const v = existsSync(boot) ? readdirSync(boot).filter((f) => f.startsWith('vmlinuz-')) : [];
  if (v.length !== 1) throw new BerthError('E_KERNEL_PACKAGE', `the package holds ${v.length} kernels in boot/ (expected one vmlinuz-*)`, EXIT.FAILURE);
  const release = v[0]!.slice('vmlinuz-'.length);
  for (const lib of ['lib', 'usr/lib']) {
    const m = join(root, lib, 'modules', release);
    if (existsSync(m)) return { release, vmlinuz: join(boot, v[0]!), modules: m };
  }
  throw new BerthError('E_KERNEL_PACKAGE', `the package has no lib/modules/${release}`, EXIT.FAILURE);
}

/** Every module file (`.ko`, `.ko.xz`) under a modules dir, by name (`-` read as `_`). */
function moduleFiles(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop()!;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (/\.ko(\.xz)?$/.test(e.name)) out.set(e.name.replace(/\.ko(\.xz)?$/, '').replace(/-/g, '_'), p);
    }
  }
  return out;
}

async function fetchDeb(pkg: string, dir: string, progress: (l: string) => void): Promise<{ deb: string; name: string; version: string }> {
  progress(`downloading ${pkg} (apt-get download) ...`);
  // the download dir is root's 0700 temp dir, which apt's _apt user cannot write: run as root
  await run(['apt-get', 'download', '-o', 'APT::Sandbox::User=root', pkg], { cwd: dir, errorCode: 'E_KERNEL_DOWNLOAD', errorExit: EXIT.FAILURE });
  const debs = readdirSync(dir).filter((f) => f.endsWith('.deb'));
  if (debs.length !== 1) throw new BerthError('E_KERNEL_DOWNLOAD', `apt-get download ${pkg} left ${debs.length} .deb files`, EXIT.FAILURE);
  const deb = join(dir, debs[0]!);
  const f = await run(['dpkg-deb', '-f', deb, 'Package', 'Version', 'Depends'], { errorCode: 'E_KERNEL_PACKAGE', errorExit: EXIT.FAILURE });
  const field = (k: string) => new RegExp(`^${k}: (.*)$`, 'm').exec(f.stdout)?.[1]?.trim() ?? '';
  const c = await run(['dpkg-deb', '-c', deb], { errorCode: 'E_KERNEL_PACKAGE', errorExit: EXIT.FAILURE });
  if (/\.\/boot\/vmlinuz-/.test(c.stdout)) return { deb, name: field('Package'), version: field('Version') };
  // a metapackage (linux-image-cloud-amd64): follow its first linux-image-* dependency
  const dep = /(linux-image-[^\s,(|]+)/.exec(field('Depends'))?.[1];
  if (!dep) throw new BerthError('E_KERNEL_PACKAGE', `${pkg} holds no kernel and depends on no linux-image-* package`, EXIT.FAILURE);
  await rm(deb);
  return fetchDeb(dep, dir, progress);
}

/**
 * Makes a kernel base `bases/<name>` from a Debian kernel package and the host's busybox.
 * Needs `apt-get` (unless `opts.deb`), `dpkg-deb`, `cpio`, and `xz` for compressed modules.
 * @returns the base, with the info written to kernel.json
 * @throws BerthError E_BAD_BASE_NAME (2), E_BASE_EXISTS (1), E_NOT_INITIALISED (1),
 *   E_NO_BUSYBOX (1), E_KERNEL_DOWNLOAD (1), E_KERNEL_PACKAGE (1), E_KERNEL_MODULE (1);
 *   nothing is left behind
 */
export async function makeKernelBase(wd: Workdir, name: string, opts: KernelBaseOptions = {}): Promise<KernelBase> {
  checkBaseName(name);
  if (!existsSync(wd.bases)) throw new BerthError('E_NOT_INITIALISED', `${wd.bases} does not exist`, EXIT.FAILURE, { hint: `run: berth initenv workdir=${wd.root}` });
  const dst = wd.base(name);
  if (existsSync(dst)) throw new BerthError('E_BASE_EXISTS', `base ${JSON.stringify(name)} already exists (${dst})`, EXIT.FAILURE, { hint: `choose another name= or run: berth base remove name=${name}` });
  const progress = opts.onProgress ?? (() => {});
  const bb = opts.busybox ?? '/bin/busybox';
  const bbVersion = await checkBusybox(bb);
  const tmp = join(wd.bases, `.kernel-${name}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp, { mode: 0o700 });
  const work = await mkdtemp(join(tmp, '.work-'));
  try {
    let deb: { deb: string; name: string; version: string };
    if (opts.deb) {
      if (!existsSync(opts.deb)) throw usageError('E_BAD_SOURCE', `deb=${JSON.stringify(opts.deb)} does not exist`);
      const f = await run(['dpkg-deb', '-f', opts.deb, 'Package', 'Version'], { errorCode: 'E_KERNEL_PACKAGE', errorExit: EXIT.FAILURE });
      deb = { deb: opts.deb, name: /^Package: (.*)$/m.exec(f.stdout)?.[1] ?? '', version: /^Version: (.*)$/m.exec(f.stdout)?.[1] ?? '' };
    } else {
      deb = await fetchDeb(opts.package ?? DEFAULT_KERNEL_PACKAGE, work, progress);
    }
    progress(`unpacking ${deb.name} ${deb.version} ...`);
    const x = join(work, 'x');
    await run(['dpkg-deb', '-x', deb.deb, x], { errorCode: 'E_KERNEL_PACKAGE', errorExit: EXIT.FAILURE });
    const k = findKernel(x);
    const files = moduleFiles(k.modules);
    const builtinFile = join(k.modules, 'modules.builtin');
    const builtin = new Set(existsSync(builtinFile)
      ? readFileSync(builtinFile, 'utf8').split('\n').map((l) => l.split('/').pop()!.replace(/\.ko$/, '').replace(/-/g, '_')).filter(Boolean)
      : []);
    // read the dependencies of the modules reachable from INITRD_MODULES
    const deps = new Map<string, string[]>();
    const raw = new Map<string, Buffer>();
    const load = async (m: string): Promise<void> => {
      if (deps.has(m) || builtin.has(m)) return;
      const f = files.get(m);
      if (!f) return; // moduleLoadOrder names it
      let file = f;
      if (f.endsWith('.xz')) {
        // decompressed in place (the unpacked package is berth's scratch copy); busybox insmod takes plain .ko
        await run(['xz', '-d', '-f', f], { errorCode: 'E_KERNEL_MODULE', errorExit: EXIT.FAILURE });
        file = f.slice(0, -'.xz'.length);
      }
      const buf = await readFile(file);
      raw.set(m, buf);
      deps.set(m, moduleDepends(buf));
      for (const d of deps.get(m)!) await load(d.replace(/-/g, '_'));
    };
    for (const m of INITRD_MODULES) await load(m);
    const optional = INITRD_OPTIONAL_MODULES.filter((m) => files.has(m) && !builtin.has(m));
    for (const m of optional) await load(m);
    const order = moduleLoadOrder([...INITRD_MODULES, ...optional], deps, builtin);
    progress(`making the initramfs (busybox ${bbVersion}, ${order.length} modules) ...`);
    const ird = join(work, 'initrd');
    for (const d of ['bin', 'dev', 'proc', 'sys', 'newroot', 'lib/modules']) await mkdir(join(ird, d), { recursive: true, mode: 0o755 });
    await copyFile(bb, join(ird, 'bin', 'busybox'));
    await chmod(join(ird, 'bin', 'busybox'), 0o755);
    for (const m of order) await writeFile(join(ird, 'lib', 'modules', `${m}.ko`), raw.get(m)!, { mode: 0o644 });
    await writeFile(join(ird, 'init'), initScript(order), { mode: 0o755 });
    const list = ['.', 'init', 'bin', 'bin/busybox', 'dev', 'proc', 'sys', 'newroot', 'lib', 'lib/modules', ...order.map((m) => `lib/modules/${m}.ko`)];
    const cpio = join(work, 'initrd.cpio');
    await run(['cpio', '--quiet', '-o', '-H', 'newc', '-R', '0:0', '-O', cpio], { cwd: ird, input: list.join('\n') + '\n', errorCode: 'E_INITRD', errorExit: EXIT.FAILURE });
    await writeFile(join(tmp, 'initrd.img'), gzipSync(await readFile(cpio), { level: 9 }), { mode: 0o644 });
    await copyFile(k.vmlinuz, join(tmp, 'vmlinuz'));
    await chmod(join(tmp, 'vmlinuz'), 0o644);
    const info: KernelBaseInfo = {
      kind: 'kernel', name, kernel: { package: deb.name, version: deb.version, release: k.release },
      busybox: { source: bb, version: bbVersion }, modules: order, cmdline: KERNEL_CMDLINE, createdAt: new Date().toISOString(),
    };
    await writeFile(join(tmp, 'kernel.json'), JSON.stringify(info, null, 2) + '\n', { mode: 0o644 });
    await rm(work, { recursive: true, force: true });
    await chmod(tmp, 0o755);
    try {
      await rename(tmp, dst);
    } catch (e) {
      if (['ENOTEMPTY', 'EEXIST'].includes((e as NodeJS.ErrnoException).code ?? '')) {
        throw new BerthError('E_BASE_EXISTS', `base ${JSON.stringify(name)} already exists (${dst}); it appeared during the build`, EXIT.FAILURE);
      }
      throw e;
    }
    progress(`kernel base ${name}: Linux ${k.release}`);
    return { name, path: dst, vmlinuz: join(dst, 'vmlinuz'), initrd: join(dst, 'initrd.img'), info };
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Reads a kernel base.
 * @throws BerthError E_BAD_BASE_NAME (2), E_NO_SUCH_BASE (3: missing, or not a kernel base)
 */
export function readKernelBase(wd: Workdir, name: string): KernelBase {
  checkBaseName(name);
  const path = wd.base(name);
  let info: KernelBaseInfo;
  try {
    info = JSON.parse(readFileSync(join(path, 'kernel.json'), 'utf8')) as KernelBaseInfo;
  } catch {
    throw new BerthError('E_NO_SUCH_BASE', `no kernel base ${JSON.stringify(name)} in ${wd.bases} (no readable kernel.json)`, EXIT.NOT_FOUND, {
      hint: `make one: berth base kernel name=${name}`,
    });
  }
  const vmlinuz = join(path, 'vmlinuz');
  const initrd = join(path, 'initrd.img');
  for (const f of [vmlinuz, initrd]) {
    if (!existsSync(f)) throw new BerthError('E_NO_SUCH_BASE', `kernel base ${name} lacks ${f}`, EXIT.NOT_FOUND, { hint: `remove it and make it again: berth base kernel name=${name}` });
  }
  return { name, path, vmlinuz, initrd, info };
}
