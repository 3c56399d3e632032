/**
 * The pure parts of kernel bases and guests: a module's depends= from its .modinfo, the load
 * order (dependencies first, built-in modules skipped, missing ones and loops named), the
 * initramfs /init script (checked by busybox sh -n), the busybox guest files, VNC ports.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { BerthError } from '../../src/errors.js';
import { initScript, INITRD_MODULES, KERNEL_CMDLINE, moduleDepends, moduleLoadOrder } from '../../src/engines/qemu/kernel.js';
import { busyboxGuestFiles, GUEST_READY_LINE } from '../../src/engines/qemu/guest.js';
import { chooseVncPorts, portFree, WEBSOCKET_OFFSET } from '../../src/engines/qemu/ports.js';
import { parseVmSpec } from '../../src/engines/vm/spec.js';

test('moduleDepends reads the NUL-separated .modinfo strings', () => {
  const ko = Buffer.concat([Buffer.from('\x7fELF...junk\0license=GPL\0depends=virtio_ring,virtio,net_failover\0retpoline=Y\0'), Buffer.alloc(8)]);
  assert.deepEqual(moduleDepends(ko), ['virtio_ring', 'virtio', 'net_failover']);
  assert.deepEqual(moduleDepends(Buffer.from('\0depends=\0vermagic=6.1')), []);
  assert.deepEqual(moduleDepends(Buffer.from('no modinfo here')), []);
});

test('moduleLoadOrder: dependencies first, each once, built-in ones skipped; a missing module or a loop is named', () => {
  const deps = new Map<string, string[]>([
    ['virtio_ring', []], ['virtio', ['virtio_ring']], ['virtio_pci_modern_dev', []], ['virtio_pci_legacy_dev', []],
    ['virtio_pci', ['virtio_ring', 'virtio_pci_modern_dev', 'virtio_pci_legacy_dev', 'virtio']], ['virtio_blk', ['virtio', 'virtio_ring']],
    ['failover', []], ['net_failover', ['failover']], ['virtio_net', ['virtio_ring', 'virtio', 'net_failover']], ['button', []], ['evdev', []],
  ]);
  assert.deepEqual(moduleLoadOrder(INITRD_MODULES, deps), [
    'virtio_ring', 'virtio', 'virtio_pci_modern_dev', 'virtio_pci_legacy_dev', 'virtio_pci', 'virtio_blk', 'failover', 'net_failover', 'virtio_net', 'button', 'evdev',
  ]);
  assert.deepEqual(moduleLoadOrder(['virtio_blk', 'virtio-net'], deps, new Set(['virtio', 'virtio_ring'])), ['virtio_blk', 'failover', 'net_failover', 'virtio_net']);
  assert.throws(() => moduleLoadOrder(['virtio_net'], new Map([['virtio_net', ['nope']]])), (e: unknown) => e instanceof BerthError && e.code === 'E_KERNEL_MODULE' && /no module nope \(needed by virtio_net\)/.test(e.message));
  assert.throws(() => moduleLoadOrder(['a'], new Map([['a', ['b']], ['b', ['a']]])), /loop: a -> b -> a/);
});

test('the initramfs /init is valid sh, loads the modules in order and powers off (no panic loop) when it cannot boot', () => {
  const s = initScript(['virtio_ring', 'virtio', 'virtio_blk']);
  assert.ok(s.startsWith('#!/bin/busybox sh\n'));
  const r = spawnSync('/bin/busybox', ['sh', '-n'], { input: s, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(s, /for m in virtio_ring virtio virtio_blk; do/);
  assert.match(s, /fail\(\) \{ echo "berth-initrd: \$\*"; \$B sync; \$B poweroff -f; \}/);
  assert.match(s, /exec \$B switch_root \/newroot \/sbin\/init/);
  assert.match(KERNEL_CMDLINE, /console=ttyS0 .*root=\/dev\/vda .*panic=-1/);
});

test('the busybox guest files: inittab, rcS (valid sh, prints the ready line, starts acpid), the power button action', () => {
  const f = busyboxGuestFiles({ hostname: 'vm1' });
  const by = Object.fromEntries(f.map((x) => [x.path, x]));
  assert.deepEqual(Object.keys(by).sort(), ['etc/acpi/PWRF/00000080', 'etc/hostname', 'etc/init.d/rcS', 'etc/inittab']);
  assert.match(by['etc/inittab']!.content, /^::sysinit:\/etc\/init\.d\/rcS$/m);
  assert.match(by['etc/inittab']!.content, /^ttyS0::respawn:/m);
  assert.match(by['etc/inittab']!.content, /^::shutdown:\/bin\/umount -a -r$/m);
  for (const p of ['etc/init.d/rcS', 'etc/acpi/PWRF/00000080']) {
    assert.equal(by[p]!.mode, 0o755);
    assert.equal(spawnSync('/bin/busybox', ['sh', '-n'], { input: by[p]!.content }).status, 0, p);
  }
  assert.ok(by['etc/init.d/rcS']!.content.includes(`echo "${GUEST_READY_LINE} `));
  assert.match(by['etc/init.d/rcS']!.content, /^acpid$/m);
  assert.match(by['etc/acpi/PWRF/00000080']!.content, /poweroff/);
  assert.equal(by['etc/hostname']!.content, 'vm1\n');
  assert.equal(busyboxGuestFiles().length, 3, 'no hostname file without a hostname');
});

test('VNC ports: auto takes the first free pair in 5900-6900 (websocket = port - 200), a fixed port must be free, off is none', async () => {
  const taken = new Set([5900, 5701]);
  const free = async (p: number) => !taken.has(p);
  assert.deepEqual(await chooseVncPorts(parseVmSpec({ jname: 'v', emulator: 'qemu' }), free), { port: 5902, websocketPort: 5702 });
  assert.deepEqual(await chooseVncPorts(parseVmSpec({ jname: 'v', emulator: 'qemu', vm_vnc_port: '6000' }), free), { port: 6000, websocketPort: 6000 - WEBSOCKET_OFFSET });
  assert.equal(await chooseVncPorts(parseVmSpec({ jname: 'v', emulator: 'qemu', vm_vnc_port: '1' }), free), undefined);
  await assert.rejects(chooseVncPorts(parseVmSpec({ jname: 'v', emulator: 'qemu', vm_vnc_port: '5900' }), free), (e: unknown) => e instanceof BerthError && e.code === 'E_PORT_TAKEN' && /5900/.test(e.message));
  await assert.rejects(chooseVncPorts(parseVmSpec({ jname: 'v', emulator: 'qemu', vm_vnc_port: '5901' }), free), /5701/);
  await assert.rejects(chooseVncPorts(parseVmSpec({ jname: 'v', emulator: 'qemu' }), async () => false), /no free port in 5900-6900/);
  const { createServer } = await import('node:net');
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  assert.equal(await portFree(port), false);
  srv.close();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(await portFree(port), true);
});
