/**
 * Every berth command: name, options (CBSD key names) and the module that handles it,
 * loaded only when that command runs (so `berth --version` stays fast).
 */
import type { CmdDef, OptDef } from './types.js';
import { ENGINE_MODULES } from '../engines/registry.js';
import { settingsHelp } from '../lifecycle/settings.js';

/** `runc (Linux) or jail (FreeBSD)`: the engines of a command family. */
function enginesHelp(family: 'j' | 'b'): string {
  return ENGINE_MODULES.map((m) => m.info).filter((i) => i.family === family).map((i) => `${i.name} (${i.platforms.map((p) => (p === 'linux' ? 'Linux' : 'FreeBSD')).join(', ')})`).join(' or ');
}

const o = (key: string, desc: string, arg?: string): OptDef => ({ key, desc, arg });
const f = (key: string, desc: string): OptDef => ({ key, desc, flag: true });

const JNAME = o('jname', "env name, or a glob such as 'web*'", 'jname');
const ENV_KEYS: OptDef[] = [
  o('emulator', `${enginesHelp('j')}; default: the platform's first`),
  ...settingsHelp('j').map((d) => o(d.key, d.help, d.arg)),
];

const load = <M>(imp: () => Promise<M>, name: keyof M) => async () => (await imp())[name] as never;
const env = () => import('./commands/env.js');
const base = () => import('./commands/base.js');
const reg = () => import('./commands/register.js');
const node = () => import('./commands/node.js');

export const COMMANDS: CmdDef[] = [
  {
    name: 'initenv', summary: 'initialise (or re-initialise) this node\'s workdir, non-interactively',
    options: [o('nodename', 'this node\'s name (default: the hostname)'), o('zfsfeat', 'use ZFS datasets for env data (workdir must be on ZFS)', '0|1'),
      o('hammerfeat', 'HAMMER2 (DragonFly only)', '0|1'), o('lease_ttl', 'lease time to live, seconds (default 30)'),
      o('mnt_timeout', 'default hook timeout, seconds (default 300)'), o('default_mnt_start', 'node default mnt_start hook'),
      o('default_mnt_stop', 'node default mnt_stop hook'), o('api_port', 'agent API loopback TCP port (0 = unix socket only)'),
      o('lease_dir', 'the shared ownership directory, mounted whole on every node (default <workdir>/jails-lease)')],
    load: load(() => import('./commands/initenv.js'), 'initenv'),
  },
  { name: 'base import', summary: 'import a base from a directory, .tar, .tar.gz, .tar.xz or base.txz', options: [o('name', 'base name'), o('source', 'directory or archive')], load: load(base, 'baseImport') },
  { name: 'base busybox', summary: 'make a minimal base from the host\'s busybox-static (tests, demo)', options: [o('name', 'base name')], load: load(base, 'baseBusybox') },
  { name: 'base fetch', summary: 'download a FreeBSD base.txz (checksum checked against MANIFEST) into bases/', options: [o('name', 'base name (default <ver>-<arch>)'), o('ver', 'release, e.g. 14.1'), o('arch', 'amd64, arm64 ...'), o('mirror', 'mirror URL')], load: load(() => import('./commands/basefetch.js'), 'baseFetch') },
  { name: 'base list', summary: 'list bases', options: [], load: load(base, 'baseList') },
  { name: 'base remove', summary: 'remove a base (refused while an env uses it)', options: [o('name', 'base name')], positional: '[name]', load: load(base, 'baseRemove') },
  { name: 'jcreate', summary: 'create an env from a base', options: [JNAME, o('jconf', 'a descriptor file to create from'), ...ENV_KEYS], positional: '[jname]', load: load(env, 'jcreate') },
  { name: 'jstart', summary: 'start env(s)', options: [JNAME], positional: '[jname...]', load: load(env, 'jstart') },
  { name: 'jstop', summary: 'stop env(s)', options: [JNAME], positional: '[jname...]', load: load(env, 'jstop') },
  { name: 'jrestart', summary: 'stop then start env(s)', options: [JNAME], positional: '[jname...]', load: load(env, 'jrestart') },
  { name: 'jremove', aliases: ['jdestroy'], summary: 'remove env(s): data, sysdir, fstab, inventory row', options: [JNAME], positional: '[jname...]', load: load(env, 'jremove') },
  { name: 'jls', summary: 'list envs (CBSD columns JNAME JID IP4_ADDR HOST_HOSTNAME PATH STATUS)', options: [JNAME, o('display', 'comma list of columns'), o('header', '0 hides the header', '0|1')], positional: '[jname...]', help: "--json gives each env's jname, jid, status, uuid, emulator, generation and the settings of the default columns (berth jget shows all of an env's settings).\nStatus words (CBSD): On, Off, Maintenance (starting, stopping or being torn down), Unregister (a descriptor in jails-rcconf/ waiting for jregister).", load: load(env, 'jls') },
  { name: 'jexec', summary: 'run a command inside a running env', options: [JNAME], positional: '[command...]', help: "Example: berth jexec jname=web1 cat /etc/hostname", load: load(env, 'jexec') },
  { name: 'jset', summary: 'change env settings (key=value ...)', options: [JNAME, ...ENV_KEYS.filter((k) => k.key !== 'emulator')], positional: '[jname]', load: load(env, 'jset') },
  { name: 'jget', summary: 'show env settings (all, or the keys named)', options: [JNAME, o('key', 'one key only: print its bare value')], positional: '[jname] [key...]', load: load(env, 'jget'),
    help: 'Examples: berth jget jname=web1 (every setting); berth jget jname=web1 ip4_addr host_hostname (those, as key: value); berth jget jname=web1 key=uuid (the bare value, for scripts).' },
  { name: 'jclone', summary: 'clone an env (local copy, zfs clone, or a storage clone hook)', options: [o('old', 'source env'), o('new', 'new env name'), o('host_hostname', 'hostname of the clone'), o('ip4_addr', 'address of the clone')], load: load(() => import('./commands/clone.js'), 'jclone') },
  { name: 'jregister', summary: 'adopt env(s) whose data exists (from jails-rcconf/ or rcfile=)', options: [JNAME, o('rcfile', 'descriptor file'), o('mnt_start', 'hook to mount the env first'), o('mnt_stop', 'hook to unmount'), f('force', 'take over a lease whose owner node stopped heartbeating (watches it for lease_ttl)'), f('start', 'start the env once registered')], positional: '[jname...]',
    help: 'The descriptor comes from rcfile=, else jails-rcconf/rc.conf_<jname>, else the copy in the env\'s ownership record (lease_dir/envs/<jname>/), which every node sees: an env whose owner died can be taken over with --force from any node, even with per-env storage mounts.',
    load: load(reg, 'jregister') },
  { name: 'junregister', summary: 'let env(s) go: write jails-rcconf/rc.conf_<jname>, release the lease', options: [JNAME, o('rcfile', 'where to write the descriptor')], positional: '[jname...]', load: load(reg, 'junregister') },
  { name: 'jmigrate', summary: 'move an env to another node through its agent, without copying data', options: [JNAME, o('dst', 'destination node (see node add)')], positional: '[jname]', load: load(() => import('./commands/migrate.js'), 'jmigrate') },
  { name: 'doctor', summary: 'check shared dirs, locks, var/db, pkg.conf and hooks', options: [JNAME, f('fix', 'add NFS_WITH_PROPER_LOCKING to pkg.conf where needed')], load: load(() => import('./commands/doctor.js'), 'doctor') },
  { name: 'agent', summary: 'run the node agent in the foreground (leases, fencing, reconcile, autostart, API)', options: [o('api_port', 'also listen on 127.0.0.1:<port>')], load: load(() => import('./commands/agent.js'), 'agent') },
  { name: 'node add', summary: 'add a remote node (its agent URL and token)', options: [o('name', 'node name'), o('url', 'agent URL, http://127.0.0.1:PORT or unix:/path'), o('token', 'the node\'s API token (visible in ps: prefer token_file=)'), o('token_file', 'a file holding the token, e.g. a copy of that node\'s etc/api.token')], load: load(node, 'nodeAdd') },
  { name: 'node list', summary: 'list known nodes', options: [], load: load(node, 'nodeList') },
  { name: 'node remove', summary: 'forget a node', options: [o('name', 'node name')], positional: '[name]', load: load(node, 'nodeRemove') },
  { name: 'cluster ls', summary: 'every env on the shared storage: owner, generation, state, heartbeat age; and every node', options: [],
    help: 'Read from the shared ownership directory (lease_dir) and the known nodes\' agents: the same owner, generation and state from every node.\nHeartbeat: the owner node\'s, as this node observed it (>=Ns: first sighting; "silent": unchanged for lease_ttl).',
    load: load(node, 'clusterLs') },
];
