/**
 * The qemu command line (src/engines/qemu/argv.ts) against golden files (one argument per
 * line in test/fixtures/vm/qemu-argv/<case>.argv; `UPDATE_GOLDEN=1` rewrites them, then
 * review the diff), and the checks that refuse an incomplete input.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Workdir } from '../../src/paths.js';
import { BerthError } from '../../src/errors.js';
import { buildQemuArgv, qemuOptValue, qemuRunPaths, type QemuArgvInput } from '../../src/engines/qemu/argv.js';
import { parseVmSpec } from '../../src/engines/vm/spec.js';

const GOLDEN = join(import.meta.dirname, '..', 'fixtures', 'vm', 'qemu-argv');
const wd = new Workdir('/var/lib/berth');

function input(conf: Record<string, string>, extra: Partial<QemuArgvInput> = {}): QemuArgvInput {
  const spec = parseVmSpec({ emulator: 'qemu', ...conf });
  return { spec, dataDir: wd.env(spec.jname).data, run: qemuRunPaths(wd, spec.jname), accel: { accel: 'tcg' }, ...extra };
}

function golden(name: string, argv: string[]): void {
  const file = join(GOLDEN, `${name}.argv`);
  const text = argv.join('\n') + '\n';
  if (process.env.UPDATE_GOLDEN === '1') {
    mkdirSync(GOLDEN, { recursive: true });
    writeFileSync(file, text);
  }
  assert.equal(text, readFileSync(file, 'utf8'), `${name}: the argv differs from ${file}`);
}

const kernel = { vmlinuz: '/var/lib/berth/bases/k1/vmlinuz', initrd: '/var/lib/berth/bases/k1/initrd.img' };

test('golden: a direct-kernel-boot VM with defaults (TCG, no VNC, one virtio disk)', () => {
  golden('kernel-minimal', buildQemuArgv(input({ jname: 'vm1', vm_kernel: 'k1', vm_vnc_port: '1' }, { kernel })));
});

test('golden: KVM, uuid, 2 CPUs, 1g, VNC with password, UEFI, three disks on three controllers, two NICs, cloud-init seed, reboot/crash actions, daemonized', () => {
  const i = input({
    jname: 'web1', uuid: '0b6f6c2e-4f3c-4d2e-9a51-3c2f1e0d9b8a', vm_cpus: '2', vm_ram: '1g', vm_efi: 'uefi', vm_vnc_port: '5901', vnc_password: 'secret',
    on_reboot: 'destroy', on_crash: 'restart', imgtype: 'qcow2',
    dsk_path2: 'dsk2.vhd', dsk_controller2: 'ahci-hd', dsk_path3: '/srv/shared/extra.img', dsk_controller3: 'nvme',
    nic_parent1: 'br0', nic_hwaddr1: '02:00:00:00:00:01', nic_mtu1: '1400', nic_parent2: 'br1', nic_driver2: 'e1000', nic_hwaddr2: '02:00:00:00:00:02',
    ci_user_add: 'alice',
  }, {
    accel: { accel: 'kvm' }, vnc: { port: 5901, websocketPort: 5701 }, taps: ['tap-web1-1', 'tap-web1-2'], seedIso: '/var/lib/berth/jails-system/web1/seed.iso',
    uefi: { code: '/usr/share/OVMF/OVMF_CODE_4M.fd', vars: '/var/lib/berth/jails-system/web1/OVMF_VARS.fd' }, daemonize: true,
  });
  const argv = buildQemuArgv(i);
  golden('full', argv);
  assert.ok(!argv.includes('secret') && !argv.join(' ').includes('secret'), 'never the VNC password on the command line');
  for (const a of argv.filter((x) => x.startsWith('file=') && !x.startsWith('file=/usr/share'))) {
    if (a.includes('pflash') || a.includes('seed')) continue;
    assert.match(a, /cache=none/, `shared-storage disks bypass the page cache: ${a}`);
  }
});

test('golden: vm_boot=cd boots the ISO first; vm_boot=net the first NIC; the receiving side of a live migration waits (-incoming defer -S)', () => {
  golden('cdrom', buildQemuArgv(input({ jname: 'inst', vm_boot: 'cd', vm_iso_path: '/iso/debian-12,netinst.iso', imgsize: '10g', vm_vnc_port: '0' }, { vnc: { port: 5900, websocketPort: 5700 } })));
  golden('netboot', buildQemuArgv(input({ jname: 'pxe', vm_boot: 'net', imgtype: 'none', nic_parent1: 'br0', nic_hwaddr1: '02:00:00:00:00:03', vm_vnc_port: '1' }, { taps: ['tap0'] })));
  golden('incoming', buildQemuArgv(input({ jname: 'vm1', vm_kernel: 'k1', vm_vnc_port: '1' }, { kernel, incoming: true })));
});

test('golden: on_poweroff=restart holds the powered-off guest (shutdown=pause) behind a watch socket; the defaults add neither', () => {
  const argv = buildQemuArgv(input({ jname: 'vm1', vm_kernel: 'k1', vm_vnc_port: '1', on_poweroff: 'restart' }, { kernel }));
  golden('poweroff-restart', argv);
  assert.ok(argv.includes('shutdown=pause') && argv.includes('unix:/var/lib/berth/var/run/qemu/vm1.watch,server=on,wait=off'));
  const plain = buildQemuArgv(input({ jname: 'vm1', vm_kernel: 'k1', vm_vnc_port: '1' }, { kernel }));
  assert.ok(!plain.includes('shutdown=pause') && !plain.some((a) => a.includes('.watch')) && plain.includes('panic=shutdown'));
});

test('option values are escaped for QEMU (a comma is doubled), argv carries no shell quoting', () => {
  assert.equal(qemuOptValue('/a,b/c'), '/a,,b/c');
  const argv = buildQemuArgv(input({ jname: 'vm1', vm_boot: 'cd', vm_iso_path: '/iso/a,b.iso', imgtype: 'none', vm_vnc_port: '1' }));
  assert.ok(argv.includes('file=/iso/a,,b.iso,format=raw,if=none,id=cd0,media=cdrom,readonly=on'));
});

test('an incomplete input is refused, naming what is missing', () => {
  const bad = (i: QemuArgvInput, re: RegExp) => assert.throws(() => buildQemuArgv(i), (e: unknown) => e instanceof BerthError && e.code === 'E_QEMU_ARGV' && e.exitCode === 5 && re.test(e.message));
  bad(input({ jname: 'v', vm_kernel: 'k1' }), /vm_kernel=k1/);
  bad(input({ jname: 'v', nic_parent1: 'br0', nic_hwaddr1: '02:00:00:00:00:01' }), /1 NIC\(s\) but 0 tap/);
  bad(input({ jname: 'v', nic_parent1: 'br0' }, { taps: ['t'] }), /nic_hwaddr1 is 0/);
  bad(input({ jname: 'v', ci_user_add: 'a' }), /seed ISO/);
  bad(input({ jname: 'v', vm_efi: 'uefi' }), /OVMF/);
  bad(input({ jname: 'v', vm_vnc_port: '0' }, { vnc: { port: 5800, websocketPort: 5600 } }), /below 5900/);
});

test('run paths live in var/run/qemu and var/log; a socket path over 107 bytes is refused', () => {
  assert.deepEqual(qemuRunPaths(wd, 'vm1'), {
    qmpSocket: '/var/lib/berth/var/run/qemu/vm1.qmp', consoleSocket: '/var/lib/berth/var/run/qemu/vm1.console', watchSocket: '/var/lib/berth/var/run/qemu/vm1.watch',
    consoleLog: '/var/lib/berth/var/log/vm1.console.log', pidFile: '/var/lib/berth/var/run/qemu/vm1.pid', qemuLog: '/var/lib/berth/var/log/vm1.qemu.log',
    migrateSocket: '/var/lib/berth/var/run/qemu/vm1.migrate',
  });
  assert.throws(() => qemuRunPaths(new Workdir(`/tmp/${'x'.repeat(60)}`), 'a'.repeat(30)), (e: unknown) => e instanceof BerthError && e.code === 'E_SOCKET_PATH');
});
