import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_RUNC_EXEC_START, cgroupsPath, ociConfig } from '../../src/engines/runc/oci.js';
import { RuncEngine } from '../../src/engines/runc/engine.js';
import { vethNames as netNames } from '../../src/net/veth.js';
import { BerthError } from '../../src/errors.js';

test('OCI config: root, hostname, process, namespaces per the runtime spec', () => {
  const c = ociConfig({ jname: 'web1', nodename: 'n1', conf: { host_hostname: 'web.example', exec_start: 'httpd -f' }, rootPath: '/wd/jails/web1' }) as any;
  assert.equal(c.ociVersion, '1.0.2');
  assert.deepEqual(c.root, { path: '/wd/jails/web1', readonly: false });
  assert.equal(c.hostname, 'web.example');
  assert.deepEqual(c.process.args, ['/bin/sh', '-c', 'httpd -f']);
  assert.equal(c.process.terminal, false);
  const ns = c.linux.namespaces.map((n: any) => n.type);
  assert.deepEqual(ns, ['pid', 'ipc', 'uts', 'mount'], 'ip4_addr=0: no network namespace, the host stack is shared');
  assert.equal(c.linux.cgroupsPath, '/berth/n1/web1');
  assert.ok(c.mounts.some((m: any) => m.destination === '/proc' && m.type === 'proc'));
  assert.ok(c.mounts.some((m: any) => m.destination === '/sys' && m.options.includes('ro')));
});

test('OCI config: vnet joins the given netns; defaults for hostname and command', () => {
  const c = ociConfig({ jname: 'db', nodename: 'n2', conf: {}, rootPath: '/r', netnsPath: '/var/run/netns/berth-n2-db' }) as any;
  assert.deepEqual(c.linux.namespaces.at(-1), { type: 'network', path: '/var/run/netns/berth-n2-db' });
  assert.equal(c.hostname, 'db');
  assert.deepEqual(c.process.args, ['/bin/sh', '-c', DEFAULT_RUNC_EXEC_START]);
  assert.notEqual(cgroupsPath('n1', 'db'), cgroupsPath('n2', 'db'));
});

test('runc network names fit Linux interface names (15) and differ per node', () => {
  const a = netNames('node1', 'x'.repeat(64));
  const b = netNames('node2', 'x'.repeat(64));
  assert.ok(a.hostVeth.length <= 15 && a.peerVeth.length <= 15);
  assert.notEqual(a.hostVeth, b.hostVeth);
  assert.notEqual(a.netns, b.netns);
});

test('runc validate: vnet needs A/N and a bridge; an address without vnet is refused', () => {
  const e = new RuncEngine();
  e.validate({ vnet: '0', ip4_addr: '0' });
  e.validate({ vnet: '1', ip4_addr: '10.1.2.3/24', interface: 'br0' });
  const bad: Record<string, string>[] = [{ vnet: '1', ip4_addr: '10.1.2.3', interface: 'br0' }, { vnet: '1', ip4_addr: '10.1.2.300/24', interface: 'br0' },
    { vnet: '1', ip4_addr: '10.1.2.3/24' }, { vnet: '0', ip4_addr: '10.0.0.1/24' }, { vnet: '2' },
    ...['.', '..', '-br', 'br/0', 'br 0', 'a23456789012345x'].map((interface_) => ({ vnet: '1', ip4_addr: '10.1.2.3/24', interface: interface_ }))];
  e.validate({ vnet: '1', ip4_addr: '10.1.2.3/24', interface: 'vmbr0.100' });
  e.validate({ vnet: '1', ip4_addr: '10.1.2.3/24', interface: 'a2345678901234x' });
  for (const c of bad) assert.throws(() => e.validate(c), (x: unknown) => x instanceof BerthError && x.exitCode === 2);
});
