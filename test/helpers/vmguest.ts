/**
 * Test helpers for qemu guests: a node workdir with a kernel base (Debian cloud kernel +
 * busybox initramfs) and a busybox base, an ext4 root disk made from that base, the argv
 * of a VM on them, and a client of the serial console socket that types commands and reads
 * their output. Everything real: apt-get download, dpkg-deb, mkfs.ext4, qemu under TCG.
 */
import { mkdirSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { busyboxBase } from '../../src/bases.js';
import { initenv } from '../../src/initenv.js';
import { Inventory } from '../../src/inventory.js';
import { Workdir } from '../../src/paths.js';
import { buildQemuArgv, qemuRunPaths, type QemuArgvInput, type QemuRunPaths } from '../../src/engines/qemu/argv.js';
import { ext4FromTree } from '../../src/engines/qemu/disk.js';
import { busyboxGuestFiles } from '../../src/engines/qemu/guest.js';
import { makeKernelBase, type KernelBase } from '../../src/engines/qemu/kernel.js';
import { parseVmSpec, type VmSpec } from '../../src/engines/vm/spec.js';
import { tempDir } from './cli.js';

/** A node workdir with a kernel base `k1` and a busybox base `bb`. */
export interface GuestNode {
  wd: Workdir;
  kernel: KernelBase;
  busyboxTree: string;
  close(): void;
}

/** Makes a node (initenv) with the kernel base and the busybox base. Takes a few seconds. */
export async function guestNode(prefix = 'berth-vm-'): Promise<GuestNode> {
  // a short path: unix socket paths must stay under 108 bytes
  const root = join(tempDir(prefix), 'wd');
  await initenv({ workdir: root, nodename: 'n1' }, {
    hostname: () => 'n1', isZfs: async () => false, isHammer: async () => false, fsType: async () => 'ext4', examplesDir: () => undefined,
  });
  const wd = new Workdir(root);
  const inv = Inventory.open(wd.dbFile);
  const kernel = await makeKernelBase(wd, 'k1');
  const bb = await busyboxBase({ wd, inv }, 'bb');
  return { wd, kernel, busyboxTree: bb.path, close: () => inv.close() };
}

/** A VM on a guest node: its spec, paths, and a root disk made from the busybox base. */
export interface GuestVm {
  spec: VmSpec;
  dataDir: string;
  run: QemuRunPaths;
  disk: string;
  argv(extra?: Partial<QemuArgvInput>): string[];
}

/** Makes the data dir and root disk of VM `jname` (vm_kernel=k1) and returns how to run it. */
export async function guestVm(node: GuestNode, jname: string, conf: Record<string, string> = {}): Promise<GuestVm> {
  const spec = parseVmSpec({ jname, emulator: 'qemu', vm_kernel: 'k1', vm_ram: '256m', vm_vnc_port: '1', ...conf });
  const dataDir = node.wd.env(jname).data;
  mkdirSync(dataDir, { recursive: true });
  const disk = join(dataDir, 'dsk1.vhd');
  await ext4FromTree(node.busyboxTree, disk, { files: busyboxGuestFiles({ hostname: jname }) });
  const run = qemuRunPaths(node.wd, jname);
  return {
    spec, dataDir, run, disk,
    argv: (extra = {}) => buildQemuArgv({ spec, dataDir, run, accel: { accel: 'tcg' }, kernel: node.kernel, ...extra }),
  };
}

/** A client of a VM's serial console socket: everything read is kept in `text`. */
export class Console {
  text = '';
  private constructor(private readonly sock: Socket) {
    sock.on('data', (d) => { this.text += d.toString('utf8'); });
  }

  static connect(path: string): Promise<Console> {
    return new Promise((resolve, reject) => {
      const s = createConnection(path);
      s.once('connect', () => resolve(new Console(s)));
      s.once('error', reject);
    });
  }

  /** Waits until the text read (after `from`) matches. @returns the match */
  async waitFor(re: RegExp, timeoutMs = 60_000, from = 0): Promise<RegExpMatchArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = this.text.slice(from).match(re);
      if (m) return m;
      if (Date.now() > end) throw new Error(`console: no ${re} within ${timeoutMs} ms; read so far:\n${this.text.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /**
   * Types a shell command and waits for its output, framed by a marker the command prints.
   * @returns the output between the markers
   */
  async run(cmd: string, timeoutMs = 30_000): Promise<string> {
    const tag = `M${Math.random().toString(36).slice(2, 8)}`;
    const from = this.text.length;
    this.sock.write(`echo ${tag}-A; ${cmd}; echo ${tag}-B\n`);
    // the echo of the typed line holds "<tag>-A;" too: match the marker at the start of a line
    // output without a final newline runs into the B marker: strip one newline before it
    const m = await this.waitFor(new RegExp(`(?:^|\\n)${tag}-A\\r?\\n([\\s\\S]*?)${tag}-B\\r?\\n`), timeoutMs, from);
    return m[1]!.replace(/\r/g, '').replace(/\n$/, '');
  }

  write(s: string): void {
    this.sock.write(s);
  }

  close(): void {
    this.sock.destroy();
  }
}
