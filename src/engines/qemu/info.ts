/**
 * What the qemu engine supports (its row of the engine registry, src/engines/registry.ts):
 * Linux VMs run by qemu-system-x86_64 on disk images in the env's data dir (root 'disk'), a
 * serial console, no jexec; CBSD's VM settings (src/engines/vm/settings.ts) plus the first NIC
 * row and the cloud-init keys on the command line; every dsk_*N / nic_*N / ci_* key in a
 * descriptor.
 */
import { checkBaseName } from '../../names.js';
import { text } from '../settings.js';
import type { EngineInfo } from '../types.js';
import { vmEngineSettings } from '../vm/settings.js';
import { CI_KEYS } from '../vm/spec.js';

export const qemuInfo: EngineInfo = {
  name: 'qemu',
  summary: 'Linux VMs: qemu-system-x86_64 (KVM when it really runs a guest, else TCG), disks in the env\'s data, a serial console',
  platforms: ['linux'],
  root: 'disk',
  exec: false,
  console: 'serial',
  liveMigration: true,
  network: ['tap'],
  verified: 'live',
  family: 'b',
  settings: [
    { key: 'base', help: 'a base tree the first disk is made from (ext4, mkfs.ext4 -d); none: an empty disk of imgsize', normalize: (v) => checkBaseName(v) },
    text('host_hostname', 'the guest\'s hostname (cloud-init, busybox guests; default: jname)'),
    ...vmEngineSettings('qemu'),
    text('dsk_type1', 'the first disk: vhd (a file in the env data, default) or rbd (a Ceph RBD image, dsk_path1=pool/image; the node reaches the cluster with rbd_* of berth.conf)'),
    text('dsk_path1', 'the first disk: a file in the env data (default dsk1.vhd), or pool/image with dsk_type1=rbd'),
    text('nic_parent1', 'the bridge the first NIC\'s tap joins (0: no NIC)'),
    text('nic_hwaddr1', 'the first NIC\'s MAC address (0: berth picks one and stores it)'),
    text('nic_driver1', 'the first NIC\'s model: vtnet (virtio-net) or e1000'),
    text('nic_mtu1', 'the first NIC\'s MTU (0: the bridge\'s)'),
    ...CI_KEYS.map((k) => text(k, `cloud-init: ${k.slice(3).replace(/_/g, ' ')}`)),
  ],
  settingPatterns: [
    { pattern: /^dsk_(controller|path|slot|type|size|format)[1-9]\d*$/, help: 'dsk_<column>N: disk N (controller path slot type size format); dsk_typeN=rbd dsk_pathN=pool/image dsk_sizeN=<size>: an RBD image bcreate makes' },
    { pattern: /^nic_(order|driver|slot|type|parent|hwaddr|mtu)[1-9]\d*$/, help: 'nic_<column>N: NIC N (order driver slot type parent hwaddr mtu)' },
    { pattern: /^ci_[a-z0-9_]+$/, help: 'ci_*: cloud-init NoCloud keys' },
  ],
};
