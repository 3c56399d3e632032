/**
 * What the bhyve engine supports (its row of the engine registry, src/engines/registry.ts):
 * FreeBSD VMs, the `b` command family (bcreate, bstart ...), disk images in the env's data
 * dir, the serial console on an nmdm(4) pair, taps on a bridge, no jexec and no live
 * migration (upstream FreeBSD bhyve cannot send a running guest: CBSD's bmigrate needs the
 * out-of-tree "warm migration" patches). Verified by command transcripts against fake
 * bhyve, bhyvectl, bhyveload, ifconfig and truncate (test/helpers/fakebsd), never run on a
 * FreeBSD host.
 *
 * Settings: CBSD's VM keys shared with qemu (src/engines/vm/settings.ts) as bhyve reads them
 * (its defaults: vm_os_type=freebsd, virtio_type=ahci-hd; no qcow2), without berth's
 * qemu-only direct kernel boot keys (vm_kernel, vm_cmdline) and without stop_timeout (the
 * lifecycle's common setting); then the bhyve-only keys (src/engines/bhyve/settings.ts). The
 * numbered disk and NIC rows and the cloud-init keys are owned by pattern (the first NIC's
 * keys and the typed cloud-init keys are listed too, for the command line); their values are
 * checked by the engine's validate (src/engines/bhyve/engine.ts).
 */
import { text } from '../settings.js';
import type { EngineInfo, SettingDef, SettingPattern } from '../types.js';
import { VM_SETTINGS, type VmSettingDef } from '../vm/settings.js';
import { CI_KEYS } from '../vm/spec.js';
import { BHYVE_SETTINGS } from './settings.js';

/** VM keys bhyve does not take: berth's direct kernel boot is qemu's; stop_timeout is every env's. */
const NOT_BHYVE = new Set(['vm_kernel', 'vm_cmdline', 'stop_timeout']);

const asSetting = (d: VmSettingDef): SettingDef => ({ key: d.key, help: `${d.help} (default ${JSON.stringify(d.defaults.bhyve)})`, normalize: (v) => d.normalize(v, 'bhyve') });

/** The row keys of a VM (CBSD jmkrcconf: dsk_*N, nic_*N) and the cloud-init keys (CBSD bcreate ci_*). */
export const BHYVE_SETTING_PATTERNS: readonly SettingPattern[] = [
  { pattern: /^dsk_(controller|path|slot|type|size|format)[1-9]\d*$/, help: 'dsk_<controller|path|slot|type|size|format>N: disk N (dsk_path1=dsk1.vhd, in the data dir; raw images only)' },
  { pattern: /^nic_(order|driver|slot|type|parent|hwaddr|mtu)[1-9]\d*$/, help: 'nic_<order|driver|slot|type|parent|hwaddr|mtu>N: NIC N (nic_parentN: the bridge its tap joins; nic_driverN vtnet or e1000)' },
  { pattern: /^ci_[a-z0-9_]+$/, help: 'ci_*: cloud-init keys as CBSD (ci_fqdn, ci_ip4_addr, ci_gw4, ci_user_pubkey ...)' },
];

export const bhyveInfo: EngineInfo = {
  name: 'bhyve',
  summary: 'FreeBSD virtual machines: bhyve with a bhyve_config(5) file berth writes, bhyveload or UEFI firmware, taps on a bridge, an nmdm serial console (verified by command transcripts, not run on a FreeBSD host)',
  platforms: ['freebsd'],
  root: 'disk',
  exec: false,
  console: 'serial',
  liveMigration: false,
  network: ['tap'],
  verified: 'transcript',
  family: 'b',
  settings: [
    text('host_hostname', 'the guest\'s hostname (cloud-init; default: jname)'),
    ...[...VM_SETTINGS.filter((d) => !NOT_BHYVE.has(d.key)), ...BHYVE_SETTINGS].map(asSetting),
    // the first NIC and the cloud-init keys on the command line (every row in a descriptor: the patterns)
    text('nic_parent1', 'the bridge the first NIC\'s tap joins (0: a tap on no bridge)'),
    text('nic_hwaddr1', 'the first NIC\'s MAC address (0: bhyve derives one from the VM name and slot)'),
    text('nic_driver1', 'the first NIC\'s model: vtnet (virtio-net) or e1000'),
    text('nic_mtu1', 'the first NIC\'s MTU (0: the bridge\'s)'),
    ...CI_KEYS.map((k) => text(k, `cloud-init: ${k.slice(3).replace(/_/g, ' ')}`)),
  ],
  settingPatterns: BHYVE_SETTING_PATTERNS,
};
