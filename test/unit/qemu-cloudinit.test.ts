/**
 * The cloud-init NoCloud seed: meta-data, user-data and network-config made from the ci_*
 * keys, read back with PyYAML (the YAML library cloud-init itself uses) as the grammar
 * checker, public keys from text or files, and the ISO (volume id cidata) read with isoinfo.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BerthError } from '../../src/errors.js';
import { cloudInitFiles, makeSeedIso, resolvePubkeys, writeSeedIso } from '../../src/engines/qemu/cloudinit.js';
import { parseVmSpec } from '../../src/engines/vm/spec.js';

/** Parses YAML with PyYAML (safe_load) and returns it as JSON. */
function yaml(text: string): any {
  const r = spawnSync('python3', ['-c', 'import sys, json, yaml; print(json.dumps(yaml.safe_load(sys.stdin.read())))'], { input: text, encoding: 'utf8' });
  assert.equal(r.status, 0, `PyYAML refused:\n${text}\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

const spec = parseVmSpec({
  jname: 'web1', emulator: 'qemu', host_hostname: 'web1.example.org',
  nic_parent1: 'br0', nic_hwaddr1: '02:00:00:00:00:01', nic_parent2: 'br1', nic_hwaddr2: '02:00:00:00:00:02',
  ci_ip4_addr: '10.0.0.5/24,2001:db8::5/64', ci_gw4: '10.0.0.1', ci_interface_mtu: '1450', ci_nameserver_address: '8.8.8.8,9.9.9.9', ci_nameserver_search: 'example.org',
  ci_interface2: 'br1', ci_ip4_addr2: 'DHCP',
  ci_user_add: 'debian alice', ci_user_pubkey: 'ssh-ed25519 AAAAC3Nz key1', ci_user_pw_user: 'plain "pw": yes', ci_user_pw_root: '*', ci_user_shell: '/bin/bash',
});

test('the seed files are YAML cloud-init reads, with CBSD\'s structure (network-config v1, users with sudo and keys, chpasswd)', () => {
  const f = cloudInitFiles(spec);
  assert.deepEqual(yaml(f['meta-data']), { 'instance-id': 'web1', 'local-hostname': 'web1.example.org' });
  assert.ok(f['user-data'].startsWith('#cloud-config\n'));
  const u = yaml(f['user-data']);
  assert.equal(u.hostname, 'web1');
  assert.equal(u.fqdn, 'web1.example.org');
  assert.deepEqual(u.users, [
    { name: 'root', lock_passwd: true },
    { name: 'debian', sudo: 'ALL=(ALL) NOPASSWD:ALL', shell: '/bin/bash', ssh_authorized_keys: ['ssh-ed25519 AAAAC3Nz key1'], lock_passwd: false },
    { name: 'alice', sudo: 'ALL=(ALL) NOPASSWD:ALL', shell: '/bin/bash', ssh_authorized_keys: ['ssh-ed25519 AAAAC3Nz key1'], lock_passwd: false },
  ]);
  assert.deepEqual(u.chpasswd, { expire: false, list: 'debian:plain "pw": yes\nalice:plain "pw": yes\n' });
  assert.equal(u.ssh_pwauth, true);
  assert.deepEqual(yaml(f['network-config']), {
    version: 1,
    config: [
      { type: 'physical', name: 'eth0', mac_address: '02:00:00:00:00:01', mtu: 1450, subnets: [
        { type: 'static', address: '10.0.0.5/24', gateway: '10.0.0.1' }, { type: 'static', address: '2001:db8::5/64' }] },
      { type: 'physical', name: 'eth1', mac_address: '02:00:00:00:00:02', subnets: [{ type: 'dhcp' }] },
      { type: 'nameserver', address: ['8.8.8.8', '9.9.9.9'], search: ['example.org'] },
    ],
  });
});

test('a crypt hash is set as passwd (not chpasswd); DHCP is the default; keys without users go to the default user', () => {
  const s = parseVmSpec({ jname: 'v', emulator: 'qemu', ci_user_pw_root: '$6$salt$hash', ci_user_pubkey: 'ssh-rsa AAAB k' });
  const u = yaml(cloudInitFiles(s)['user-data']);
  assert.deepEqual(u.users, [{ name: 'root', lock_passwd: false, passwd: '$6$salt$hash' }]);
  assert.equal(u.chpasswd, undefined);
  assert.deepEqual(u.ssh_authorized_keys, ['ssh-rsa AAAB k']);
  assert.deepEqual(yaml(cloudInitFiles(s)['network-config']).config, [{ type: 'physical', name: 'eth0', subnets: [{ type: 'dhcp' }] }]);
  assert.throws(() => cloudInitFiles(parseVmSpec({ jname: 'v', emulator: 'qemu' })), (e: unknown) => e instanceof BerthError && e.exitCode === 2);
});

test('ci_user_pubkey as a file (absolute or relative to the workdir); an unreadable one is exit 2 naming the key', () => {
  const d = mkdtempSync(join(tmpdir(), 'berth-ci-'));
  try {
    writeFileSync(join(d, 'keys'), '# comment\nssh-ed25519 AAA one\n\nssh-rsa BBB two\n');
    assert.deepEqual(resolvePubkeys({ pubkeys: ['keys', 'ssh-ed25519 CCC three'] }, d), ['ssh-ed25519 AAA one', 'ssh-rsa BBB two', 'ssh-ed25519 CCC three']);
    assert.deepEqual(resolvePubkeys({ pubkeys: [join(d, 'keys')] }, '/'), ['ssh-ed25519 AAA one', 'ssh-rsa BBB two']);
    assert.throws(() => resolvePubkeys({ pubkeys: ['ssh-ed25519 X', 'nope/keys'] }, d), (e: unknown) => e instanceof BerthError && e.exitCode === 2 && /ci_user_pubkey2="nope\/keys"/.test(e.message));
    writeFileSync(join(d, 'empty'), '# none\n');
    assert.throws(() => resolvePubkeys({ pubkeys: ['empty'] }, d), /holds no key/);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('the seed ISO has volume id cidata and the three files; a new seed replaces the old one', async () => {
  const d = mkdtempSync(join(tmpdir(), 'berth-ci-'));
  try {
    const iso = join(d, 'seed.iso');
    const files = await writeSeedIso(spec, iso, d);
    const pvd = spawnSync('isoinfo', ['-d', '-i', iso], { encoding: 'utf8' }).stdout;
    assert.match(pvd, /^Volume id: cidata$/m);
    const list = spawnSync('isoinfo', ['-R', '-f', '-i', iso], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).sort();
    assert.deepEqual(list, ['/meta-data', '/network-config', '/user-data']);
    const ud = spawnSync('isoinfo', ['-R', '-x', '/user-data', '-i', iso], { encoding: 'utf8' }).stdout;
    assert.equal(ud, files['user-data']);
    await makeSeedIso(iso, { 'meta-data': 'instance-id: "x"\n', 'user-data': '#cloud-config\n', 'network-config': 'version: 1\nconfig: []\n' });
    assert.equal(spawnSync('isoinfo', ['-R', '-x', '/meta-data', '-i', iso], { encoding: 'utf8' }).stdout, 'instance-id: "x"\n');
    assert.ok(readFileSync(iso).length > 0);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
