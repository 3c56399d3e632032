/**
 * The bhyve_config(5) generator (src/engines/bhyve/config.ts), from descriptors through the
 * shared VM model: golden files for representative VMs in test/fixtures/bhyve/*.conf
 * (BERTH_UPDATE_GOLDEN=1 rewrites them), each also read by the bhyve_config(5) checker of
 * test/helpers/bhyveconfig-grammar.ts and its values compared with the VM's settings.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDescriptor } from '../../src/descriptor.js';
import type { EnvConf } from '../../src/descriptor.js';
import { BerthError } from '../../src/errors.js';
import { bhyveConfig, configValue, memsizeArg, pciLayout, type BhyveConfigInput } from '../../src/engines/bhyve/config.js';
import { consoleOf, firmwareFor } from '../../src/engines/bhyve/plan.js';
import { parseBhyveSettings } from '../../src/engines/bhyve/settings.js';
import { parseVmSpec } from '../../src/engines/vm/spec.js';
import { checkBhyveConfig, expandValue, pciAt, type CheckedBhyveConfig } from '../helpers/bhyveconfig-grammar.js';
import { ROOT } from '../helpers/cli.js';

const FIX = join(ROOT, 'test', 'fixtures', 'bhyve');
const WD = '/usr/jails';
const FW = '/usr/local/share/uefi-firmware';
const UUID = '6a7c1e52-3f0b-4d7e-9c1a-2b3c4d5e6f70';

/** A generator input from a descriptor, as the engine will build it. */
function input(conf: EnvConf, node: Partial<BhyveConfigInput> & { varsFile?: string } = {}): BhyveConfigInput {
  const spec = parseVmSpec({ emulator: 'bhyve', ...conf });
  const bhyve = parseBhyveSettings(conf);
  const { varsFile, ...rest } = node;
  return {
    spec, bhyve, dataDir: `${WD}/jails-data/${spec.jname}-data`,
    taps: spec.nics.map((_, i) => `tap${i}`), console: consoleOf(spec.jname).a,
    firmware: firmwareFor(spec, bhyve, { firmwareDir: FW, varsFile }),
    header: [`bhyve_config(5) of ${spec.jname}, written by berth on node node1 at every start`],
    ...rest,
  };
}

/** The representative VMs: name → generator input. */
const CASES: Record<string, BhyveConfigInput> = {
  // CBSD's everyday FreeBSD guest: bhyveload (vm_efi=none), the first disk on AHCI (CBSD's
  // virtio_type default), one NIC on bridge0, no VNC (no UEFI frame buffer).
  'freebsd-bhyveload': input({ jname: 'fbsd1', uuid: UUID, vm_ram: '1g', vm_cpus: '2', nic_parent1: 'bridge0', nic_hwaddr1: '02:a0:98:00:00:01' }),
  // A Linux cloud guest on UEFI: virtio disks and an NVMe one, two NICs (jumbo MTU, e1000),
  // VNC on an auto port with a password and an XHCI tablet, virtio-rnd, the cloud-init seed.
  'uefi-linux': input({
    jname: 'web1', uuid: UUID, vm_os_type: 'linux', vm_efi: 'uefi', vm_ram: '2g', vm_cpus: '4', virtio_type: 'virtio-blk',
    dsk_path2: 'data.vhd', dsk_controller2: 'nvme', nic_parent1: 'bridge0', nic_hwaddr1: '02:a0:98:00:00:02', nic_mtu1: '9000',
    nic_parent2: 'bridge1', nic_driver2: 'e1000', nic_hwaddr2: '02:a0:98:00:00:03', vnc_password: 'secret', xhci: '1', virtio_rnd: '1',
    ci_ip4_addr: '10.0.0.5/24', ci_gw4: '10.0.0.1',
  }, { vncPort: 5900, seedIso: `${WD}/jails-system/web1/seed.iso` }),
  // Installing from an ISO on UEFI with the VM's own variables file: the CD at slot 2 and
  // VNC waiting for the first client (cd_vnc_wait), AMD host bridge, VGA off, a keyboard layout.
  'uefi-cd-install': input({
    jname: 'win1', vm_os_type: 'windows', vm_efi: 'uefi', vm_boot: 'cd', vm_iso_path: '/iso/Win Server, 2022.iso', vm_ram: '4g',
    nic_parent1: 'bridge0', cd_vnc_wait: '1', bhyve_vnc_vgaconf: 'off', bhyve_vnc_resolution: '1600x900', vm_hostbridge: 'amd_hostbridge',
    bhyve_vnc_kbdlayout: 'fr', vm_vnc_port: '5950', fbuf: '1', tablet: '1', xhci: '1',
  }, { vncPort: 5950, varsFile: `${WD}/jails-system/win1/BHYVE_UEFI_VARS.fd` }),
  // Every bhyve flag CBSD maps, UEFI CSM, VNC off, memory not a whole MiB, slots chosen by
  // hand, and a disk path with % and a backslash (escaped for config.c's expansion).
  'csm-tuned': input({
    jname: 'legacy1', vm_os_type: 'other', vm_efi: 'uefi_csm', vm_ram: '1073745920', vm_vnc_port: '1',
    bhyve_generate_acpi: '0', bhyve_wire_memory: '1', bhyve_rts_keeps_utc: '1', bhyve_force_msi_irq: '1', bhyve_x2apic_mode: '1',
    bhyve_mptable_gen: '0', bhyve_ignore_msr_acc: '1', dsk_slot1: '7', dsk_controller1: 'virtio-blk',
    dsk_path2: '/vm/disks/100%\\raw.img', dsk_controller2: 'ahci-hd', nic_parent1: '0', nic_slot1: '9',
  }),
};
// A descriptor written by CBSD's jmkrcconf (bunregister), adopted as is: its bhyve keys honoured.
const cbsd = parseDescriptor(readFileSync(join(ROOT, 'test', 'fixtures', 'vm', 'cbsd-bunregister-debian1.conf'), 'utf8'), WD, 'rc.conf_debian1');
CASES['cbsd-adopted'] = input(cbsd, { vncPort: 5901 });

for (const [name, inp] of Object.entries(CASES)) {
  test(`bhyve config golden: ${name}`, () => {
    const text = bhyveConfig(inp);
    const file = join(FIX, `${name}.conf`);
    if (process.env.BERTH_UPDATE_GOLDEN === '1') writeFileSync(file, text);
    assert.equal(text, readFileSync(file, 'utf8'), `${file} differs; if the change is intended, rerun with BERTH_UPDATE_GOLDEN=1 and review the diff`);
  });

  test(`bhyve config grammar: ${name} is valid bhyve_config(5) and says what the VM's settings say`, () => {
    const c = checkBhyveConfig(readFileSync(join(FIX, `${name}.conf`), 'utf8'));
    const { spec } = inp;
    assert.equal(c.values.get('name'), spec.jname);
    assert.equal(c.memoryBytes, spec.ram);
    assert.equal(c.cpus, spec.cpus);
    assert.equal(c.values.get('uuid'), spec.uuid);
    assert.equal(pciAt(c, 0)?.device, 'hostbridge');
    assert.equal(pciAt(c, 31)?.device, 'lpc');
    assert.equal(c.values.get('lpc.com1.path'), `/dev/nmdm-${spec.jname}-1A`);
    assert.equal(c.values.get('x86.vmexit_on_hlt'), 'true');
    // every disk is attached once, at its file
    const paths = c.pci.flatMap((d) => [d.vars.get('path'), d.vars.get('port.0.path')]).filter((p): p is string => !!p);
    for (const d of spec.disks) {
      const f = d.path.startsWith('/') ? d.path : `${inp.dataDir}/${d.path}`;
      assert.equal(paths.filter((p) => p === f).length, 1, `disk ${d.index} (${f}) in ${paths.join(' ')}`);
    }
    // every NIC on its tap, with its MAC
    const nets = c.pci.filter((d) => d.vars.has('backend'));
    assert.deepEqual(nets.map((d) => d.vars.get('backend')), inp.taps);
    assert.deepEqual(nets.map((d) => d.vars.get('mac')), spec.nics.map((n) => n.hwaddr));
    // firmware: bhyveload (no boot ROM) for vm_efi=none, else the ROM
    assert.equal(c.values.get('lpc.bootrom'), inp.firmware?.bootrom);
    // VNC only on loopback, only with a port
    const fb = c.pci.find((d) => d.device === 'fbuf');
    assert.equal(fb?.vars.get('rfb'), inp.vncPort === undefined ? undefined : `127.0.0.1:${inp.vncPort}`);
    assert.equal(fb?.slot, inp.vncPort === undefined ? undefined : 29);
    // the boot device at slot 2 unless it chose a slot
    const boot = spec.boot === 'cd' ? spec.isoPath : spec.disks[0]!.slot ? undefined : (spec.disks[0]!.path.startsWith('/') ? spec.disks[0]!.path : `${inp.dataDir}/${spec.disks[0]!.path}`);
    if (boot) assert.equal(pciAt(c, 2)?.vars.get('port.0.path') ?? pciAt(c, 2)?.vars.get('path'), boot);
  });
}

const checked = (name: string): CheckedBhyveConfig => checkBhyveConfig(bhyveConfig(CASES[name]!));

test('freebsd-bhyveload: CBSD defaults: AHCI disk at slot 2, virtio-net at 3, ACPI, no boot ROM, no frame buffer', () => {
  const c = checked('freebsd-bhyveload');
  assert.deepEqual(c.pci.map((d) => [d.slot, d.device]), [[0, 'hostbridge'], [2, 'ahci'], [3, 'virtio-net'], [31, 'lpc']]);
  assert.equal(pciAt(c, 2)!.vars.get('port.0.type'), 'hd');
  assert.equal(c.values.get('acpi_tables'), 'true');
  assert.equal(c.values.get('memory.size'), '1024M');
  for (const k of ['lpc.bootrom', 'x86.mptable', 'memory.wired', 'virtio_msix', 'rtc.use_localtime', 'keyboard.layout']) assert.equal(c.values.has(k), false, k);
});

test('uefi-linux: virtio and NVMe disks, MTU on virtio-net only, VNC with password and tablet, rnd and seed after the disks', () => {
  const c = checked('uefi-linux');
  assert.deepEqual(c.pci.map((d) => [d.slot, d.device]), [[0, 'hostbridge'], [2, 'virtio-blk'], [3, 'nvme'], [4, 'ahci'], [5, 'virtio-net'], [6, 'e1000'], [7, 'virtio-rnd'], [29, 'fbuf'], [30, 'xhci'], [31, 'lpc']]);
  assert.equal(pciAt(c, 4)!.vars.get('port.0.path'), '/usr/jails/jails-system/web1/seed.iso');
  assert.equal(pciAt(c, 4)!.vars.get('port.0.ro'), 'true');
  assert.equal(pciAt(c, 5)!.vars.get('mtu'), '9000');
  assert.equal(pciAt(c, 6)!.vars.has('mtu'), false, 'e1000 has no mtu variable');
  assert.equal(pciAt(c, 29)!.vars.get('password'), 'secret');
  assert.equal(pciAt(c, 29)!.vars.get('w'), '1024');
  assert.equal(pciAt(c, 29)!.vars.has('wait'), false);
  assert.equal(pciAt(c, 30)!.vars.get('slot.1.device'), 'tablet');
  assert.equal(c.values.get('lpc.bootrom'), `${FW}/BHYVE_UEFI.fd`);
  assert.equal(c.values.has('lpc.bootvars'), false);
});

test('uefi-cd-install: the ISO (a path with a comma and spaces) at slot 2, VNC waits, vars file with the code-only ROM and fwcfg=qemu, AMD ids', () => {
  const c = checked('uefi-cd-install');
  assert.equal(pciAt(c, 2)!.vars.get('port.0.path'), '/iso/Win Server, 2022.iso');
  assert.equal(pciAt(c, 2)!.vars.get('port.0.type'), 'cd');
  assert.equal(pciAt(c, 3)!.vars.get('port.0.type'), 'hd', 'the disk after the CD');
  const fb = pciAt(c, 29)!;
  assert.deepEqual([fb.vars.get('rfb'), fb.vars.get('wait'), fb.vars.get('vga'), fb.vars.get('w'), fb.vars.get('h')], ['127.0.0.1:5950', 'true', 'off', '1600', '900']);
  assert.equal(c.values.get('lpc.bootrom'), `${FW}/BHYVE_UEFI_CODE.fd`);
  assert.equal(c.values.get('lpc.bootvars'), '/usr/jails/jails-system/win1/BHYVE_UEFI_VARS.fd');
  assert.equal(c.values.get('lpc.fwcfg'), 'qemu');
  assert.equal(pciAt(c, 0)!.vars.get('vendor'), '0x1022');
  assert.equal(pciAt(c, 0)!.vars.get('pcireg.device'), '0x7432');
  assert.equal(c.values.get('keyboard.layout'), 'fr');
});

test('csm-tuned: every CBSD bhyve flag, the CSM ROM, no VNC, hand-placed slots, a path with % and \\ read back unchanged', () => {
  const c = checked('csm-tuned');
  assert.deepEqual(c.pci.map((d) => [d.slot, d.device, d.vars.get('path') ?? d.vars.get('port.0.path') ?? d.vars.get('backend') ?? '']), [
    [0, 'hostbridge', ''], [3, 'ahci', '/vm/disks/100%\\raw.img'], [7, 'virtio-blk', '/usr/jails/jails-data/legacy1-data/dsk1.vhd'], [9, 'virtio-net', 'tap0'], [31, 'lpc', ''],
  ]);
  assert.equal(c.memoryBytes, 1073745920);
  assert.equal(c.values.get('memory.size'), '1073745920', 'not whole MiB: bytes');
  for (const [k, v] of [['memory.wired', 'true'], ['rtc.use_localtime', 'false'], ['virtio_msix', 'false'], ['x86.x2apic', 'true'], ['x86.mptable', 'false'], ['x86.strictmsr', 'false']]) assert.equal(c.values.get(k!), v, k);
  assert.equal(c.values.has('acpi_tables'), false);
  assert.equal(c.values.get('lpc.bootrom'), `${FW}/BHYVE_UEFI_CSM.fd`);
  assert.equal(c.pci.some((d) => d.device === 'fbuf'), false);
});

test('cbsd-adopted: a CBSD descriptor: its efi_firmware, xhci tablet, virtio_rnd, both virtio disks; a CBSD media name is not attached', () => {
  const c = checked('cbsd-adopted');
  assert.equal(c.values.get('lpc.bootrom'), '/usr/local/cbsd/upgrade/patch/efi.fd');
  assert.deepEqual(c.pci.map((d) => [d.slot, d.device]), [[0, 'hostbridge'], [2, 'virtio-blk'], [3, 'virtio-blk'], [4, 'virtio-net'], [5, 'virtio-rnd'], [29, 'fbuf'], [30, 'xhci'], [31, 'lpc']]);
  assert.equal(pciAt(c, 4)!.vars.get('mac'), '00:a0:98:3c:1f:7e');
  assert.equal(c.values.has('uuid'), false, 'uuid="0" in a CBSD descriptor means none');
});

test('values with %, \\ and , survive config.c\'s expansion; control characters and empty values are refused', () => {
  for (const s of ['/a/b', '/a,b c', '/100%', '/x\\y', '%(name)', '\\%', 'a%%b\\\\', 'ünï ✓']) {
    assert.equal(expandValue(configValue(s, 'v'), () => 'EXPANDED'), s, JSON.stringify(s));
  }
  assert.throws(() => configValue('/a\nb', 'dsk_path1'), (e: unknown) => e instanceof BerthError && e.exitCode === 2 && /dsk_path1/.test(e.message));
  assert.throws(() => configValue('', 'x'), /empty value/);
  assert.equal(memsizeArg(512 * 1024 * 1024), '512M');
  assert.equal(memsizeArg(1024 * 1024 + 4096), '1052672');
});

test('layout errors name the keys: two rows on one slot, a reserved slot, a bad slot value, too many devices', () => {
  const base = { jname: 'v1', vm_efi: 'uefi', vm_os_type: 'linux', nic_parent1: 'bridge0' };
  const fails = (conf: EnvConf, re: RegExp, vncPort?: number) => assert.throws(() => pciLayout(input(conf, { vncPort })), (e: unknown) => e instanceof BerthError && e.exitCode === 2 && re.test(e.message), JSON.stringify(conf));
  fails({ ...base, dsk_slot1: '5', nic_slot1: '5' }, /nic_slot1: PCI slot 5 is taken by disk1/);
  fails({ ...base, dsk_slot1: '31' }, /dsk_slot1=31: PCI slot 31 is the LPC bridge's/);
  fails({ ...base, dsk_slot1: '29' }, /slot 29 is the VNC frame buffer's/, 5900);
  fails({ ...base, nic_slot1: 'auto' }, /nic_slot1="auto": bhyve needs 0 \(auto\) or a PCI slot 1-31/);
  const many: EnvConf = { ...base };
  for (let i = 2; i <= 28; i++) many[`dsk_path${i}`] = `d${i}.img`;
  fails(many, /no PCI slot left for/);
  // 26 more disks fit: slots 2..28
  const fit: EnvConf = { ...base };
  for (let i = 2; i <= 26; i++) fit[`dsk_path${i}`] = `d${i}.img`;
  assert.equal(pciLayout(input(fit)).length, 1 + 26 + 1 + 1);
});
