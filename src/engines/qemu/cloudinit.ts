/**
 * The cloud-init NoCloud seed of a VM: `meta-data`, `user-data` and `network-config` made
 * from its `ci_*` keys, on an ISO 9660 image with volume id `cidata` (cloud-init's NoCloud
 * datasource finds it by that label on any block device; made with genisoimage, or xorriso
 * in its genisoimage mode). Like CBSD's bstart, which rebuilds `seed.iso` from `cloud-init/`
 * at every start, the seed is made again at each start.
 *
 * The files follow CBSD's templates (modules/bsdconf.d/cloud-tpl/centos9): network-config
 * version 1 (a `physical` entry per interface, `dhcp`/`dhcp6`/`static` subnets, a `nameserver`
 * entry), user-data with `users:` (sudo without password, `ssh_authorized_keys`,
 * `lock_passwd`) and `chpasswd`. An interface is matched by the MAC address of its NIC row
 * when the NIC has one. Passwords: `*` locks the account; a crypt(3) hash (`$6$...`) is set as
 * `passwd`; anything else is a plain password set through `chpasswd` (and enables SSH password
 * login). Strings are written as JSON strings, which YAML reads as double-quoted scalars.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { engineError, EXIT, usageError } from '../../errors.js';
import { run } from '../../proc.js';
import type { CloudInitSpec, VmSpec } from '../vm/spec.js';

/** The three files of a NoCloud seed. */
export interface SeedFiles {
  'meta-data': string;
  'user-data': string;
  'network-config': string;
}

/** The volume id cloud-init's NoCloud datasource looks for. */
export const SEED_VOLUME_ID = 'cidata';

const q = (s: string): string => JSON.stringify(s);
const isKey = (s: string) => /^(ssh-|ecdsa-|sk-ssh-|sk-ecdsa-)/.test(s.trim());
const isHash = (s: string) => /^\$[0-9a-z]+\$/.test(s);

/**
 * The public keys of ci_user_pubkey / ci_user_pubkey2: a key's text as is, else a path to an
 * authorized_keys file (absolute, or relative to `baseDir`, CBSD's workdir) whose key lines are read.
 * @throws BerthError E_BAD_VALUE (exit 2) naming the key when the file cannot be read
 */
export function resolvePubkeys(ci: Pick<CloudInitSpec, 'pubkeys'>, baseDir: string): string[] {
  const out: string[] = [];
  ci.pubkeys.forEach((v, i) => {
    if (isKey(v)) { out.push(v.trim()); return; }
    const key = i === 0 ? 'ci_user_pubkey' : 'ci_user_pubkey2';
    const file = isAbsolute(v) ? v : join(baseDir, v);
    let text: string;
    try { text = readFileSync(file, 'utf8'); } catch (e) {
      throw usageError('E_BAD_VALUE', `bad ${key}=${q(v)}: neither a public key nor a readable file (${(e as Error).message})`);
    }
    const keys = text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    if (!keys.length) throw usageError('E_BAD_VALUE', `bad ${key}=${q(v)}: ${file} holds no key`);
    out.push(...keys);
  });
  return out;
}

function metaData(ci: CloudInitSpec): string {
  return `instance-id: ${q(ci.instanceId)}\nlocal-hostname: ${q(ci.hostname)}\n`;
}

function userData(ci: CloudInitSpec, pubkeys: string[]): string {
  const l: string[] = ['#cloud-config', `hostname: ${q(ci.hostname.split('.')[0]!)}`];
  if (ci.hostname.includes('.')) l.push(`fqdn: ${q(ci.hostname)}`);
  l.push('manage_etc_hosts: true');
  const chpasswd: string[] = [];
  const users: string[] = [];
  const pw = (name: string, p: string | undefined, indent: string) => {
    if (p === undefined) return;
    if (p === '*') users.push(`${indent}lock_passwd: true`);
    else if (isHash(p)) users.push(`${indent}lock_passwd: false`, `${indent}passwd: ${q(p)}`);
    else { users.push(`${indent}lock_passwd: false`); chpasswd.push(`${name}:${p}`); }
  };
  if (ci.pwRoot !== undefined) {
    users.push(`  - name: "root"`);
    pw('root', ci.pwRoot, '    ');
  }
  const shell = ci.extra.ci_user_shell;
  const groups = ci.extra.ci_user_member_groups;
  const gecos = ci.extra.ci_user_gecos;
  for (const u of ci.users) {
    users.push(`  - name: ${q(u)}`, '    sudo: "ALL=(ALL) NOPASSWD:ALL"');
    if (gecos) users.push(`    gecos: ${q(gecos)}`);
    if (groups) users.push(`    groups: ${q(groups)}`);
    if (shell) users.push(`    shell: ${q(shell)}`);
    if (pubkeys.length) users.push('    ssh_authorized_keys:', ...pubkeys.map((k) => `      - ${q(k)}`));
    pw(u, ci.pwUser, '    ');
  }
  if (!ci.users.length && pubkeys.length) l.push('ssh_authorized_keys:', ...pubkeys.map((k) => `  - ${q(k)}`));
  if (users.length) l.push('users:', ...users);
  if (chpasswd.length) l.push('ssh_pwauth: true', 'chpasswd:', '  expire: false', `  list: ${q(chpasswd.join('\n') + '\n')}`);
  return l.join('\n') + '\n';
}

function networkConfig(ci: CloudInitSpec, spec: Pick<VmSpec, 'nics'>): string {
  const l = ['version: 1', 'config:'];
  for (const itf of ci.interfaces) {
    const nic = spec.nics[itf.index - 1];
    l.push('  - type: physical', `    name: ${q(itf.guestName)}`);
    if (nic?.hwaddr) l.push(`    mac_address: ${q(nic.hwaddr)}`);
    if (itf.mtu) l.push(`    mtu: ${itf.mtu}`);
    l.push('    subnets:');
    if (itf.dhcp) l.push(`      - type: ${itf.dhcp === 'dhcp4' ? 'dhcp' : 'dhcp6'}`);
    let gw = itf.gateway;
    for (const a of itf.addresses) {
      l.push(`      - type: static`, `        address: ${q(`${a.address}/${a.prefix}`)}`);
      if (gw && a.family === (gw.includes(':') ? 6 : 4)) { l.push(`        gateway: ${q(gw)}`); gw = undefined; }
    }
  }
  if (ci.nameservers.length || ci.searchDomains.length) {
    l.push('  - type: nameserver');
    if (ci.nameservers.length) l.push('    address:', ...ci.nameservers.map((a) => `      - ${q(a)}`));
    if (ci.searchDomains.length) l.push('    search:', ...ci.searchDomains.map((s) => `      - ${q(s)}`));
  }
  return l.join('\n') + '\n';
}

/**
 * The seed files of a VM with cloud-init (see the module comment).
 * @param pubkeys the resolved public keys ({@link resolvePubkeys}); default: the ci_user_pubkey values that are keys
 * @throws BerthError E_BAD_VALUE (exit 2) when the spec has no cloud-init keys
 */
export function cloudInitFiles(spec: Pick<VmSpec, 'cloudInit' | 'nics' | 'jname'>, pubkeys?: string[]): SeedFiles {
  const ci = spec.cloudInit;
  if (!ci) throw usageError('E_BAD_VALUE', `VM ${spec.jname} has no ci_* settings: no cloud-init seed to make`);
  const keys = pubkeys ?? ci.pubkeys.filter(isKey);
  return { 'meta-data': metaData(ci), 'user-data': userData(ci, keys), 'network-config': networkConfig(ci, spec) };
}

/**
 * Writes the seed ISO (volume id `cidata`) to `out`, replacing an older seed atomically.
 * @throws BerthError E_NO_ISO_TOOL (exit 5: neither genisoimage nor xorriso), E_COMMAND_FAILED (5)
 */
export async function makeSeedIso(out: string, files: SeedFiles): Promise<void> {
  const stage = await mkdtemp(join(tmpdir(), 'berth-seed-'));
  const tmp = join(dirname(out), `.${basename(out)}.tmp-${process.pid}`);
  try {
    for (const [n, t] of Object.entries(files)) await writeFile(join(stage, n), t, { mode: 0o600 });
    const names = Object.keys(files);
    const tool = ['/usr/bin/genisoimage', '/usr/bin/xorriso'].find((t) => existsSync(t));
    if (!tool) throw engineError('E_NO_ISO_TOOL', 'cannot make the cloud-init seed: neither genisoimage nor xorriso is installed', { hint: 'apt-get install genisoimage' });
    const argv = tool.endsWith('xorriso')
      ? [tool, '-as', 'genisoimage', '-quiet', '-output', tmp, '-volid', SEED_VOLUME_ID, '-joliet', '-rock', ...names]
      : [tool, '-quiet', '-output', tmp, '-volid', SEED_VOLUME_ID, '-joliet', '-rock', ...names];
    await run(argv, { cwd: stage, errorCode: 'E_SEED_ISO', errorExit: EXIT.ENGINE });
    await rename(tmp, out);
  } finally {
    await rm(stage, { recursive: true, force: true });
    await rm(tmp, { force: true });
  }
}

/**
 * Makes the seed ISO of a VM: resolves its public keys (paths relative to `baseDir`), renders
 * the files, writes `out`. @returns the files written
 */
export async function writeSeedIso(spec: VmSpec, out: string, baseDir: string): Promise<SeedFiles> {
  const files = cloudInitFiles(spec, resolvePubkeys(spec.cloudInit ?? { pubkeys: [] }, baseDir));
  await makeSeedIso(out, files);
  return files;
}
