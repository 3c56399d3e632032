/**
 * The VM settings model (src/engines/vm): sizes, CBSD defaults, validation naming key and
 * value, numbered disk/NIC rows, cloud-init keys, the reverse (spec -> flat keys), and a
 * descriptor written by CBSD's bunregister (jailctl/jmkrcconf) adopted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatDescriptor, parseDescriptor } from '../../src/descriptor.js';
import { BerthError } from '../../src/errors.js';
import { formatSize, parseSize } from '../../src/engines/vm/size.js';
import { normalizeVmSetting, VM_SETTINGS, vmDefaults } from '../../src/engines/vm/settings.js';
import {
  diskFile, FIRST_DISK, isVmKey, newNic, normalizeVmConf, orderVmKeys, parseVmSpec, randomHwaddr, vmSpecToConf, vncSetting, type VmSpec,
} from '../../src/engines/vm/spec.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'vm');

function usage(re: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof BerthError, String(e));
    assert.equal(e.exitCode, 2, e.message);
    assert.match(e.message, re);
    return true;
  };
}

test('sizes: bytes, k/m/g/t units in either case with an optional b, as expand_number(3); formatSize inverts', () => {
  assert.equal(parseSize('536870912', 'vm_ram'), 536870912);
  assert.equal(parseSize('512m', 'vm_ram'), 512 * 1024 ** 2);
  assert.equal(parseSize('1G', 'vm_ram'), 1024 ** 3);
  assert.equal(parseSize('10gb', 'imgsize'), 10 * 1024 ** 3);
  assert.equal(parseSize('0', 'imgsize'), 0);
  for (const [v, why] of [['lots', /not a size/], ['-1', /negative/], ['1.5g', /fractions/], ['1x', /not a size/], ['', /not a size/], ['99999999e', /too large/]] as const) {
    assert.throws(() => parseSize(v, 'imgsize'), usage(new RegExp(`imgsize=${JSON.stringify(v).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*`)));
    assert.throws(() => parseSize(v, 'imgsize'), usage(why));
  }
  for (const n of [0, 1, 1023, 1024, 536870912, 1536 * 1024 ** 2, 10 * 1024 ** 3, 3 * 1024 ** 4 + 1]) assert.equal(parseSize(formatSize(n), 'x'), n);
  assert.equal(formatSize(1536 * 1024 ** 2), '1536m');
});

test('a minimal VM gets CBSD defaults (qemu and bhyve differ only where documented) and the first disk dsk1.vhd', () => {
  const q = parseVmSpec({ jname: 'vm1', emulator: 'qemu' });
  assert.equal(q.cpus, 1);
  assert.equal(q.ram, 536870912, 'local-bhyve.schema: vm_ram default 536870912');
  assert.equal(q.boot, 'hdd');
  assert.equal(q.efi, 'none');
  assert.equal(q.vncPort, 0);
  assert.deepEqual(vncSetting(q), { kind: 'auto' });
  assert.equal(q.stopTimeout, 30);
  assert.equal(q.onPoweroff, 'destroy');
  assert.equal(q.onReboot, 'restart');
  assert.equal(q.onCrash, 'destroy');
  assert.equal(q.virtioType, 'virtio-blk');
  assert.equal(q.osType, 'linux');
  assert.equal(q.imgtype, 'md');
  assert.equal(q.hostname, 'vm1');
  assert.equal(q.cloudInit, undefined);
  assert.deepEqual(q.nics, []);
  assert.deepEqual(q.disks, [{ index: 1, controller: 'virtio-blk', path: FIRST_DISK, slot: 0, type: 'vhd', size: 0, format: 'raw' }]);
  assert.equal(diskFile(q.disks[0]!, '/w/jails-data/vm1-data'), '/w/jails-data/vm1-data/dsk1.vhd');
  assert.equal(diskFile({ path: '/dev/zvol/tank/vm1' }, '/w/jails-data/vm1-data'), '/dev/zvol/tank/vm1');
  const b = parseVmSpec({ jname: 'vm1', emulator: 'bhyve' });
  assert.equal(b.virtioType, 'ahci-hd', 'local-bhyve.schema: virtio_type default ahci-hd');
  assert.equal(b.osType, 'freebsd');
  assert.equal(b.disks[0]!.controller, 'ahci-hd');
  assert.deepEqual(parseVmSpec({ jname: 'vm1', emulator: 'qemu', imgtype: 'none', vm_boot: 'net' }).disks, []);
  for (const d of VM_SETTINGS) assert.ok(d.help.length > 10 && vmDefaults('qemu')[d.key] !== undefined, d.key);
});

test('user values are stored as CBSD stores them: vm_ram=1g is bytes, MAC addresses lower case', () => {
  assert.equal(normalizeVmSetting('vm_ram', '1g', 'qemu'), '1073741824');
  assert.equal(normalizeVmSetting('imgsize', '10g', 'qemu'), '10737418240');
  assert.deepEqual(normalizeVmConf({ vm_ram: '512m', dsk_size2: '1g', nic_hwaddr1: '02:AA:BB:CC:DD:EE', nic_driver1: 'virtio-net', host_hostname: 'x' }, 'qemu'), {
    vm_ram: '536870912', dsk_size2: '1073741824', nic_hwaddr1: '02:aa:bb:cc:dd:ee', nic_driver1: 'vtnet', host_hostname: 'x',
  });
  const s = parseVmSpec({ jname: 'v', emulator: 'qemu', vm_ram: '2g', vm_cpus: '4', imgsize: '20g', vm_vnc_port: '5905', vnc_password: 'secret' });
  assert.equal(s.ram, 2 * 1024 ** 3);
  assert.equal(s.cpus, 4);
  assert.equal(s.imgsize, 20 * 1024 ** 3);
  assert.equal(s.disks[0]!.size, 20 * 1024 ** 3, 'the first disk takes imgsize');
  assert.deepEqual(vncSetting(s), { kind: 'port', port: 5905 });
  assert.deepEqual(vncSetting({ vncPort: 1 }), { kind: 'off' });
  assert.equal(s.vncPassword, 'secret');
});

test('bad values are exit 2 naming the key and the value', () => {
  const base = { jname: 'v', emulator: 'qemu' };
  const cases: [Record<string, string>, RegExp][] = [
    [{ vm_ram: 'lots' }, /vm_ram="lots"/],
    [{ vm_ram: '512' }, /vm_ram="512".*512 bytes/],
    [{ vm_cpus: '0' }, /vm_cpus="0"/],
    [{ vm_cpus: 'two' }, /vm_cpus="two"/],
    [{ imgsize: '-1' }, /imgsize="-1"/],
    [{ vm_boot: 'floppy' }, /vm_boot="floppy".*hdd \| cd \| net/],
    [{ vm_efi: 'bios' }, /vm_efi="bios"/],
    [{ vm_os_type: 'beos' }, /vm_os_type="beos"/],
    [{ vm_vnc_port: '80' }, /vm_vnc_port="80"/],
    [{ vm_vnc_port: '70000' }, /vm_vnc_port="70000"/],
    [{ vnc_password: 'muchtoolong' }, /vnc_password=.*8 bytes/],
    [{ on_reboot: 'reboot' }, /on_reboot="reboot"/],
    [{ stop_timeout: '-5' }, /stop_timeout="-5"/],
    [{ imgtype: 'zvol' }, /imgtype="zvol"/],
    [{ virtio_type: 'scsi' }, /virtio_type="scsi"/],
    [{ vm_iso_path: 'a b' }, /vm_iso_path="a b"/],
    [{ vm_boot: 'cd' }, /vm_boot="cd"/],
    [{ vm_boot: 'cd', vm_iso_path: 'cbsd-iso-x.iso' }, /vm_iso_path="cbsd-iso-x.iso".*absolute/],
    [{ vm_kernel: 'k1', vm_boot: 'net' }, /vm_boot="net"/],
    [{ vm_kernel: '../etc' }, /vm_kernel="..\/etc"/],
    [{ imgtype: 'none' }, /vm_boot="hdd".*no disk/],
    [{ dsk_path1: '../../etc/shadow' }, /dsk_path1="..\/..\/etc\/shadow"/],
    [{ dsk_path1: 'dsk1.vhd', dsk_path3: 'dsk3.vhd' }, /dsk_path3.*row 2 is missing/],
    [{ dsk_controller2: 'virtio-blk' }, /disk row 2 has no dsk_path2/],
    [{ imgtype: 'none', vm_kernel: 'k', dsk_path2: 'd2' }, /dsk_path2.*row 1 is missing/],
    [{ nic_parent2: 'br0' }, /nic_parent2.*row 1 is missing/],
    [{ dsk_path1: 'a.vhd', dsk_path2: './a.vhd' }, /dsk_path2="\.\/a\.vhd"/],
    [{ dsk_size1: 'big' }, /dsk_size1="big"/],
    [{ dsk_format1: 'vmdk' }, /dsk_format1="vmdk"/],
    [{ dsk_controller1: 'floppy', dsk_path1: 'd' }, /dsk_controller1="floppy"/],
    [{ nic_parent1: 'br0', nic_hwaddr1: '01:00:5e:00:00:01' }, /nic_hwaddr1="01:00:5e:00:00:01".*unicast/],
    [{ nic_parent1: 'br0', nic_hwaddr1: 'zz' }, /nic_hwaddr1="zz"/],
    [{ nic_hwaddr1: '02:00:00:00:00:01', nic_hwaddr2: '02:00:00:00:00:01' }, /nic_hwaddr2="02:00:00:00:00:01"/],
    [{ nic_parent1: 'br0; rm -rf' }, /nic_parent1=/],
    [{ nic_mtu1: '12' }, /nic_mtu1="12"/],
    [{ nic_driver1: 'rtl8139' }, /nic_driver1="rtl8139"/],
    [{ ci_ip4_addr: '10.0.0.300/24' }, /ci_ip4_addr="10.0.0.300\/24"/],
    [{ ci_ip4_addr: '10.0.0.5/33' }, /ci_ip4_addr="10.0.0.5\/33"/],
    [{ ci_gw4: 'gateway', ci_user_add: 'u' }, /ci_gw4="gateway"/],
    [{ ci_ip4_addr2: '10.1.0.5/24' }, /ci_ip4_addr2 set, but ci_interface2 is empty/],
    [{ ci_nameserver_address: '8.8.8.8,dns' }, /ci_nameserver_address="8.8.8.8,dns"/],
    [{ ci_user_add: 'Root!' }, /ci_user_add="Root!"/],
    [{ ci_user_pubkey: 'ssh-ed25519 AAA\nroot' }, /ci_user_pubkey.*newlines/],
  ];
  for (const [extra, re] of cases) assert.throws(() => parseVmSpec({ ...base, ...extra }), usage(re), JSON.stringify(extra));
  // emulator-specific rules
  assert.throws(() => parseVmSpec({ jname: 'v', emulator: 'bhyve', imgtype: 'qcow2' }), usage(/imgtype="qcow2"/));
  assert.throws(() => parseVmSpec({ jname: 'v', emulator: 'bhyve', dsk_path1: 'd', dsk_format1: 'qcow2' }), usage(/dsk_format1="qcow2"/));
  assert.doesNotThrow(() => parseVmSpec({ jname: 'v', emulator: 'bhyve', vm_vnc_port: '2000' }), 'bhyve takes any port');
  assert.throws(() => parseVmSpec({ jname: 'v', emulator: 'runc' }), usage(/emulator="runc"/));
  assert.throws(() => parseVmSpec({ emulator: 'qemu' }), usage(/jname/));
  // normalizeVmConf checks key by key too
  assert.throws(() => normalizeVmConf({ vm_ram: 'lots' }, 'qemu'), usage(/vm_ram="lots"/));
  assert.throws(() => normalizeVmSetting('vm_colour', 'x', 'qemu'), usage(/vm_colour/));
});

test('rows: several disks and NICs, CBSD defaults for missing columns, a qcow2 disk for qemu', () => {
  const s = parseVmSpec({
    jname: 'v', emulator: 'qemu', virtio_type: 'nvme',
    dsk_path1: 'dsk1.vhd', dsk_path2: '/srv/disks/extra.qcow2', dsk_format2: 'qcow2', dsk_controller2: 'virtio-blk', dsk_size2: '4g', dsk_slot2: '7',
    nic_parent1: 'br0', nic_hwaddr1: '02:00:00:00:00:01', nic_parent2: '0', nic_driver2: 'e1000', nic_mtu2: '9000', nic_order2: '1',
  });
  assert.deepEqual(s.disks, [
    { index: 1, controller: 'nvme', path: 'dsk1.vhd', slot: 0, type: 'vhd', size: 0, format: 'raw' },
    { index: 2, controller: 'virtio-blk', path: '/srv/disks/extra.qcow2', slot: 7, type: 'vhd', size: 4 * 1024 ** 3, format: 'qcow2' },
  ]);
  assert.deepEqual(s.nics, [
    { index: 1, order: 0, driver: 'vtnet', slot: '0', type: '0', parent: 'br0', hwaddr: '02:00:00:00:00:01', mtu: 0 },
    { index: 2, order: 1, driver: 'e1000', slot: '0', type: '0', parent: '0', hwaddr: undefined, mtu: 9000 },
  ]);
  const n = newNic(1, 'br0');
  assert.match(n.hwaddr!, /^02(:[0-9a-f]{2}){5}$/);
  assert.equal(randomHwaddr(new Uint8Array([1, 2, 3, 254, 255])), '02:01:02:03:fe:ff');
  assert.notEqual(randomHwaddr(), randomHwaddr());
});

test('cloud-init keys: CBSD names typed, two interfaces, other ci_* kept; ci_gw4 alone (a JARG key CBSD writes for every env) is no cloud-init', () => {
  assert.equal(parseVmSpec({ jname: 'v', emulator: 'qemu', ci_gw4: '0' }).cloudInit, undefined);
  assert.equal(parseVmSpec({ jname: 'v', emulator: 'qemu', ci_gw4: '10.0.0.1' }).cloudInit, undefined);
  const s = parseVmSpec({
    jname: 'web1', emulator: 'qemu', host_hostname: 'web1.example.org',
    ci_ip4_addr: '10.0.0.5/24,2001:db8::5/64', ci_gw4: '10.0.0.1', ci_nameserver_address: '8.8.8.8, 9.9.9.9', ci_nameserver_search: 'example.org',
    ci_user_add: 'debian alice', ci_user_pubkey: 'ssh-ed25519 AAAAC3Nz root@h', ci_user_pw_root: '*', ci_user_pw_user: 'pw', ci_interface_mtu: '1450',
    ci_interface2: 'bridge2', ci_ip4_addr2: 'DHCP', ci_user_shell: '/bin/bash', ci_template: 'centos9',
  });
  const ci = s.cloudInit!;
  assert.equal(ci.instanceId, 'web1');
  assert.equal(ci.hostname, 'web1.example.org', 'ci_fqdn defaults to host_hostname');
  assert.deepEqual(ci.interfaces, [
    { index: 1, hostInterface: undefined, guestName: 'eth0', addresses: [{ address: '10.0.0.5', prefix: 24, family: 4 }, { address: '2001:db8::5', prefix: 64, family: 6 }], gateway: '10.0.0.1', mtu: 1450 },
    { index: 2, hostInterface: 'bridge2', guestName: 'eth1', dhcp: 'dhcp4', addresses: [], gateway: undefined, mtu: 0 },
  ]);
  assert.deepEqual(ci.nameservers, ['8.8.8.8', '9.9.9.9']);
  assert.deepEqual(ci.users, ['debian', 'alice']);
  assert.deepEqual(ci.pubkeys, ['ssh-ed25519 AAAAC3Nz root@h']);
  assert.equal(ci.pwRoot, '*');
  assert.equal(ci.template, 'centos9');
  assert.deepEqual(ci.extra, { ci_user_shell: '/bin/bash' });
  const d = parseVmSpec({ jname: 'v', emulator: 'qemu', ci_user_add: 'u' }).cloudInit!;
  assert.equal(d.interfaces[0]!.dhcp, 'dhcp4', 'CBSD default ci_ip4_addr=DHCP');
  assert.equal(parseVmSpec({ jname: 'v', emulator: 'qemu', ci_ip4_addr: '192.168.1.9' }).cloudInit!.interfaces[0]!.addresses[0]!.prefix, 24);
});

function roundTrip(spec: VmSpec, extra: Record<string, string> = {}): VmSpec {
  return parseVmSpec({ jname: spec.jname, emulator: spec.emulator, ...(spec.hostname !== spec.jname ? { host_hostname: spec.hostname } : {}), ...extra, ...vmSpecToConf(spec) });
}

test('the reverse: vmSpecToConf writes CBSD rows, and parsing them gives the same spec', () => {
  const specs = [
    parseVmSpec({ jname: 'a', emulator: 'qemu' }),
    parseVmSpec({ jname: 'b', emulator: 'bhyve', vm_efi: 'uefi', vm_vnc_port: '1', imgtype: 'none', vm_boot: 'cd', vm_iso_path: '/iso/x.iso' }),
    parseVmSpec({
      jname: 'c', emulator: 'qemu', host_hostname: 'c.example', vm_ram: '1g', vm_cpus: '2', imgtype: 'qcow2', imgsize: '8g', vnc_password: 'pw',
      vm_kernel: 'deb12', vm_cmdline: 'quiet', dsk_path2: 'dsk2.vhd', dsk_size2: '1g', nic_parent1: 'br0', nic_hwaddr1: '02:00:00:00:00:09', nic_mtu1: '1400',
      ci_jname: 'inst-c', ci_fqdn: 'other.example', ci_ip4_addr: '10.0.0.7/24', ci_gw4: '10.0.0.1', ci_user_add: 'u', ci_user_pubkey: 'ssh-ed25519 K',
      ci_user_pubkey2: 'ssh-rsa L', ci_interface_name2: 'ens4', ci_ip4_addr2: 'DHCPv6', ci_interface_mtu2: '9000', ci_gw42: '10.1.0.1', ci_extra_thing: 'x',
    }),
  ];
  for (const s of specs) assert.deepEqual(roundTrip(s), s, s.jname);
  const c = vmSpecToConf(specs[2]!);
  assert.equal(c.vm_ram, '1073741824');
  assert.equal(c.dsk_path1, 'dsk1.vhd');
  assert.equal(c.dsk_format1, 'qcow2');
  assert.equal(c.dsk_size1, String(8 * 1024 ** 3));
  assert.equal(c.nic_hwaddr1, '02:00:00:00:00:09');
  assert.equal(c.nic_mtu1, '1400');
  assert.equal(vmSpecToConf(specs[0]!).dsk_size1, undefined, 'dsk_size written only when known');
  assert.ok(Object.keys(c).every(isVmKey), 'only VM keys');
  // through the descriptor file format and another workdir
  const text = formatDescriptor({ jname: 'c', emulator: 'qemu', host_hostname: 'c.example', ...c }, '/var/lib/berth');
  assert.deepEqual(parseVmSpec(parseDescriptor(text, '/srv/b')), specs[2]);
});

test('orderVmKeys puts VM keys after the others, as jmkrcconf: columns, disk rows, NIC rows, ci_*', () => {
  const keys = ['ci_user_add', 'nic_parent1', 'dsk_path2', 'host_hostname', 'dsk_controller1', 'vm_ram', 'dsk_path1', 'nic_hwaddr1', 'vm_cpus', 'emulator', 'ci_zzz', 'dsk_controller10', 'ci_jname'];
  assert.deepEqual(orderVmKeys(keys), [
    'host_hostname', 'emulator', 'vm_cpus', 'vm_ram', 'dsk_controller1', 'dsk_path1', 'dsk_path2', 'dsk_controller10', 'nic_parent1', 'nic_hwaddr1', 'ci_jname', 'ci_user_add', 'ci_zzz',
  ]);
  assert.equal(isVmKey('nic_hwaddr'), false, 'the unnumbered nic_hwaddr is a jail key (JARG)');
  assert.equal(isVmKey('dsk_path0'), false);
});

test('a descriptor written by CBSD bunregister (jmkrcconf: JARG, every bhyve column, dsk/nic rows) is adopted', () => {
  const text = readFileSync(join(FIXTURES, 'cbsd-bunregister-debian1.conf'), 'utf8');
  const conf = parseDescriptor(text, '/var/lib/berth', 'rc.conf_debian1');
  assert.equal(conf.data, '/var/lib/berth/jails-data/debian1-data', 'CBSDROOT is the workdir');
  const s = parseVmSpec(conf);
  assert.equal(s.jname, 'debian1');
  assert.equal(s.emulator, 'bhyve');
  assert.equal(s.uuid, undefined, 'CBSD writes uuid="0" (a bhyve column): no uuid');
  assert.equal(s.hostname, 'debian1.my.domain');
  assert.equal(s.cpus, 2);
  assert.equal(s.ram, 1024 ** 3);
  assert.equal(s.osType, 'linux');
  assert.equal(s.efi, 'uefi');
  assert.equal(s.boot, 'hdd');
  assert.equal(s.isoPath, 'cbsd-cloud-cloud-debian-x86-12.5.0', 'a CBSD media name is kept');
  assert.equal(s.vncPort, 0);
  assert.equal(s.vncPassword, undefined);
  assert.equal(s.stopTimeout, 10, 'the jails row stop_timeout');
  assert.equal(s.cloudInit, undefined);
  assert.deepEqual(s.disks.map((d) => [d.index, d.controller, d.path, diskFile(d, conf.data!)]), [
    [1, 'virtio-blk', 'dsk1.vhd', '/var/lib/berth/jails-data/debian1-data/dsk1.vhd'],
    [2, 'virtio-blk', 'dsk2.vhd', '/var/lib/berth/jails-data/debian1-data/dsk2.vhd'],
  ]);
  assert.deepEqual(s.nics, [{ index: 1, order: 0, driver: 'vtnet', slot: '0', type: '0', parent: 'bridge1', hwaddr: '00:a0:98:3c:1f:7e', mtu: 0 }]);
  // the same VM run by qemu on Linux: the CBSD keys mean the same
  const q = parseVmSpec(conf, { emulator: 'qemu' });
  assert.equal(q.emulator, 'qemu');
  assert.deepEqual(q.disks, s.disks);
  // written back, the rows are CBSD's lines
  const back = vmSpecToConf(s);
  for (const l of ['dsk_controller1="virtio-blk";', 'dsk_path1="dsk1.vhd";', 'dsk_slot1="0";', 'dsk_type1="vhd";', 'nic_parent1="bridge1";', 'nic_hwaddr1="00:a0:98:3c:1f:7e";', 'vm_ram="1073741824";']) {
    const [k, v] = l.replace(/;$/, '').split('=') as [string, string];
    assert.equal(back[k], JSON.parse(v), k);
    assert.ok(text.includes(l), `CBSD wrote ${l}`);
  }
});
