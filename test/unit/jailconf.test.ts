/**
 * jail.conf generation (src/engines/jailconf.ts): golden files for representative envs in
 * test/fixtures/jailconf/*.conf (BERTH_UPDATE_GOLDEN=1 rewrites them), each also checked by
 * the jail.conf(5) checker in test/helpers/jailconf-grammar.ts and its effective values
 * compared with what berth meant; quoting round trips through the jail.conf lexer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jailConf, quoteJailValue, type JailConfInput } from '../../src/engines/jail/jailconf.js';
import { checkJailConf, effectiveParams, lex, parseJailConf, JailConfError } from '../helpers/jailconf-grammar.js';
import { ROOT } from '../helpers/cli.js';

const FIX = join(ROOT, 'test', 'fixtures', 'jailconf');
const WD = '/usr/jails';
const header = (j: string) => [`jail.conf of ${j}, written by berth on node node1; rewritten at every start and stop`];

/** The representative envs: name → generator input. */
export const CASES: Record<string, JailConfInput> = {
  // CBSD's everyday jail: baserw=0, one address aliased on the host NIC, default rc start/stop.
  basic: {
    jname: 'web1', path: `${WD}/jails/web1`, workdir: WD, ipInterface: 'em0', header: header('web1'),
    conf: { jname: 'web1', baserw: '0', host_hostname: 'web1.example.org', ip4_addr: '10.0.0.5/24', interface: 'em0', devfs_ruleset: '4', stop_timeout: '10', vnet: '0', persist: '0' },
  },
  // Several addresses of both families, no interface (no aliases added), sysv IPC and raw sockets.
  'multi-ip': {
    jname: 'db2', path: `${WD}/jails/db2`, workdir: WD, header: header('db2'),
    conf: { jname: 'db2', baserw: '1', ip4_addr: '10.0.0.7/24,10.0.0.8, fd00::7/64', ip6_addr: 'fd00::8', interface: '0', allow_raw_sockets: '1', allow_sysvipc: '1', sysvshm: 'new' },
  },
  // vnet: own stack, the jail end of the epair moved in and configured by exec.start.
  vnet: {
    jname: 'gw3', path: `${WD}/jails/gw3`, workdir: WD, vnetInterface: 'epair3b', header: header('gw3'),
    conf: { jname: 'gw3', vnet: '1', interface: 'bridge0', ip4_addr: '10.1.0.10/24,10.1.0.11/24,fd01::10/64', host_hostname: 'gw3', persist: '1', childrenmax: '2', allow_raw_sockets: '1' },
  },
  // Shares the host's addresses (ip4_addr=0), may mount nullfs/tmpfs inside, no devfs, console log.
  'hostnet-mount': {
    jname: 'build4', path: `${WD}/jails/build4`, workdir: WD, ipInterface: 'em0', header: header('build4'),
    conf: { jname: 'build4', ip4_addr: '0', interface: 'auto', allow_mount: '1', allow_nullfs: '1', allow_tmpfs: '1', devfs: '0', allow_reserved_ports: '0', exec_consolelog: '1', exec_timeout: '120' },
  },
  // Custom commands with characters jail.conf treats specially; exec_stop=0; stop timeout set at stop time.
  'exec-hooks': {
    jname: 'app5', path: `${WD}/jails/app5`, workdir: WD, stopTimeout: 30, header: header('app5'),
    conf: {
      jname: 'app5', ip4_addr: '192.0.2.5',
      exec_start: '/usr/local/bin/app --name "app 5" --home $HOME --re \'a\\.b\' --tab\tend',
      exec_stop: '0', exec_prestart: '/usr/local/sbin/prep ${jname}', exec_poststart: 'logger started app5',
      exec_prestop: 'logger stopping app5', exec_poststop: '/bin/echo done # not a comment',
      exec_timeout: '60', stop_timeout: '10', exec_consolelog: '/var/log/app5 console.log',
    },
  },
  // A descriptor written by CBSD: its extra keys (mount_devfs, allow_*, exec_fib, sysvsem) honoured.
  'cbsd-import': {
    jname: 'legacy6', path: `${WD}/jails/legacy6`, workdir: WD, ipInterface: 'igb0', header: header('legacy6'),
    conf: {
      jname: 'legacy6', ip4_addr: '198.51.100.6/24', interface: 'igb0', mount_devfs: '0', allow_socket_af: '0', allow_chflags: '0',
      allow_mlock: '1', allow_nfsd: '1', allow_vmm: '1', allow_set_hostname: '0', exec_fib: '1', enforce_statfs: '2',
      sysvsem: 'inherit', mount_fdescfs: '1', mount_procfs: '1', devfs_ruleset: '0', astart: '1', emulator: 'jail',
    },
  },
};

for (const [name, input] of Object.entries(CASES)) {
  test(`jail.conf golden: ${name}`, () => {
    const text = jailConf(input);
    const file = join(FIX, `${name}.conf`);
    if (process.env.BERTH_UPDATE_GOLDEN === '1') writeFileSync(file, text);
    assert.equal(text, readFileSync(file, 'utf8'), `${file} differs; if the change is intended, rerun with BERTH_UPDATE_GOLDEN=1 and review the diff`);
  });

  test(`jail.conf grammar: ${name} is valid jail.conf(5) and says what berth meant`, () => {
    const conf = checkJailConf(readFileSync(join(FIX, `${name}.conf`), 'utf8'));
    assert.equal(conf.global.length, 0);
    assert.equal(conf.jails.length, 1);
    const j = conf.jails[0]!;
    assert.equal(j.name, input.jname);
    const eff = effectiveParams(j);
    assert.deepEqual(eff.get('path'), [input.path]);
    assert.deepEqual(eff.get('host.hostname'), [input.conf.host_hostname && input.conf.host_hostname !== '0' ? input.conf.host_hostname : input.jname]);
    // every list parameter starts with '=' and continues with '+=' (CBSD)
    const seen = new Set<string>();
    for (const p of j.params) {
      if (p.op === '+=') assert.ok(seen.has(p.name), `${p.name} += before =`);
      else if (seen.has(p.name)) assert.fail(`${p.name} assigned twice`);
      seen.add(p.name);
      assert.deepEqual(p.vars, [], `${p.name} would expand a variable`);
    }
  });
}

test('basic: address aliased on the interface, CBSD defaults', () => {
  const eff = effectiveParams(checkJailConf(jailConf(CASES.basic!)).jails[0]!);
  assert.deepEqual(eff.get('ip4.addr'), ['em0|10.0.0.5/24']);
  assert.deepEqual(eff.get('exec.start'), ['/bin/sh /etc/rc']);
  assert.deepEqual(eff.get('exec.stop'), ['/bin/sh /etc/rc.shutdown']);
  assert.deepEqual(eff.get('mount.devfs'), []);
  assert.deepEqual(eff.get('devfs_ruleset'), ['4']);
  assert.deepEqual(eff.get('stop.timeout'), ['10']);
  assert.deepEqual(eff.get('allow.socket_af'), []);
  assert.deepEqual(eff.get('allow.chflags'), []);
  assert.equal(eff.has('persist'), false);
  assert.equal(eff.has('vnet'), false);
  assert.equal(eff.has('ip4'), false);
});

test('multi-ip: IPv6 entries of ip4_addr go to ip6.addr, = then +=, no interface prefix', () => {
  const j = checkJailConf(jailConf(CASES['multi-ip']!)).jails[0]!;
  const eff = effectiveParams(j);
  assert.deepEqual(eff.get('ip4.addr'), ['10.0.0.7/24', '10.0.0.8']);
  assert.deepEqual(eff.get('ip6.addr'), ['fd00::7/64', 'fd00::8']);
  assert.deepEqual(j.params.filter((p) => p.name === 'ip4.addr').map((p) => p.op), ['=', '+=']);
  assert.deepEqual(eff.get('allow.sysvipc'), []);
  assert.deepEqual(eff.get('sysvshm'), ['new']);
});

test('vnet: vnet = new, vnet.interface, addresses configured first by exec.start, no ip4.addr', () => {
  const eff = effectiveParams(checkJailConf(jailConf(CASES.vnet!)).jails[0]!);
  assert.deepEqual(eff.get('vnet'), ['new']);
  assert.deepEqual(eff.get('vnet.interface'), ['epair3b']);
  assert.deepEqual(eff.get('exec.start'), [
    '/sbin/ifconfig epair3b inet 10.1.0.10/24 up',
    '/sbin/ifconfig epair3b inet 10.1.0.11/24 alias',
    '/sbin/ifconfig epair3b inet6 fd01::10/64 alias',
    '/bin/sh /etc/rc',
  ]);
  assert.equal(eff.has('ip4.addr'), false);
  assert.equal(eff.has('ip6.addr'), false);
  assert.deepEqual(eff.get('persist'), []);
  assert.deepEqual(eff.get('children.max'), ['2']);
});

test('hostnet-mount: ip4_addr=0 inherits the host stack; allow.mount with enforce_statfs 1; nodevfs', () => {
  const eff = effectiveParams(checkJailConf(jailConf(CASES['hostnet-mount']!)).jails[0]!);
  assert.deepEqual(eff.get('ip4'), ['inherit']);
  assert.deepEqual(eff.get('ip6'), ['inherit']);
  assert.equal(eff.has('ip4.addr'), false);
  assert.deepEqual(eff.get('mount.nodevfs'), []);
  assert.equal(eff.has('mount.devfs'), false);
  assert.deepEqual(eff.get('allow.mount'), []);
  assert.deepEqual(eff.get('allow.mount.nullfs'), []);
  assert.deepEqual(eff.get('allow.mount.tmpfs'), []);
  assert.equal(eff.has('allow.mount.devfs'), false);
  assert.deepEqual(eff.get('enforce_statfs'), ['1']);
  assert.deepEqual(eff.get('allow.noreserved_ports'), []);
  assert.deepEqual(eff.get('exec.consolelog'), ['/usr/jails/var/log/build4.console.log']);
  assert.deepEqual(eff.get('exec.timeout'), ['120']);
});

test('exec-hooks: commands reach jail(8) byte for byte; exec_stop=0 omits exec.stop; stop timeout override', () => {
  const c = CASES['exec-hooks']!;
  const eff = effectiveParams(checkJailConf(jailConf(c)).jails[0]!);
  assert.deepEqual(eff.get('exec.start'), [c.conf.exec_start]);
  assert.deepEqual(eff.get('exec.prestart'), [c.conf.exec_prestart]);
  assert.deepEqual(eff.get('exec.poststart'), [c.conf.exec_poststart]);
  assert.deepEqual(eff.get('exec.prestop'), [c.conf.exec_prestop]);
  assert.deepEqual(eff.get('exec.poststop'), [c.conf.exec_poststop]);
  assert.equal(eff.has('exec.stop'), false);
  assert.deepEqual(eff.get('stop.timeout'), ['30']);
  assert.deepEqual(eff.get('exec.consolelog'), ['/var/log/app5 console.log']);
  assert.deepEqual(eff.get('host.hostname'), ['app5']);
  assert.deepEqual(eff.get('ip4.addr'), ['192.0.2.5']);
});

test('cbsd-import: CBSD keys map to their jail(8) parameters', () => {
  const eff = effectiveParams(checkJailConf(jailConf(CASES['cbsd-import']!)).jails[0]!);
  assert.deepEqual(eff.get('mount.nodevfs'), []);
  assert.equal(eff.has('allow.socket_af'), false);
  assert.equal(eff.has('allow.chflags'), false);
  for (const k of ['allow.mlock', 'allow.nfsd', 'allow.vmm', 'allow.noset_hostname', 'mount.fdescfs', 'mount.procfs']) assert.deepEqual(eff.get(k), [], k);
  assert.deepEqual(eff.get('exec.fib'), ['1']);
  assert.deepEqual(eff.get('enforce_statfs'), ['2']);
  assert.deepEqual(eff.get('sysvsem'), ['inherit']);
  assert.deepEqual(eff.get('devfs_ruleset'), ['0']);
  assert.deepEqual(eff.get('ip4.addr'), ['igb0|198.51.100.6/24']);
});

test('quoteJailValue: any text comes back unchanged through the jail.conf lexer, never as a variable', () => {
  const samples = ['', 'plain', 'two words', 'say "hi"', "it's", '$HOME', '${path}', 'a\\b', 'back\\', 'tab\there', 'line\nbreak',
    'cr\rx', '\x01\x1f\x7f', 'octal\\101', '\\x41', 'ünïcødé ✓', '#not comment', '// nor this', '/* nor */', 'a;b{c}d,e=f', '+= x', "'single'"];
  for (const s of samples) {
    const toks = lex(`p = ${quoteJailValue(s)};`);
    assert.equal(toks.length, 4, JSON.stringify(s));
    const w = toks[2]!;
    assert.ok(w.pieces.every((p) => p.kind === 'text'), `variable in ${JSON.stringify(s)}`);
    assert.equal(w.pieces.map((p) => (p.kind === 'text' ? p.text : '')).join(''), s);
  }
});

test('checker: accepts jail.conf(5) features berth does not write (variables, comments, wildcard, bare values)', () => {
  const text = [
    '# global', 'exec.start = "/bin/sh /etc/rc"; // C++ comment', '/* block', 'comment */', '$base = /usr/jails;',
    'path = "$base/$name";', 'foo {', '  host.hostname = foo.example.org;', '  ip4.addr 10.1.1.1, 10.1.1.2;', '  ip4.addr += \'10.1.1.3\';',
    '  allow.nomount;', '  persist = "true";', '  ;', '}', '"*" {', '}',
  ].join('\n');
  const c = checkJailConf(text.replace('"*" {', 'bar {\n  persist;'));
  assert.equal(c.jails.length, 2);
  assert.deepEqual(effectiveParams(c.jails[0]!).get('ip4.addr'), ['10.1.1.1', '10.1.1.2', '10.1.1.3']);
  assert.deepEqual(c.global.find((p) => p.name === 'path')!.vars, ['base', 'name']);
});

test('checker: rejects what jail(8) rejects', () => {
  const bad: [string, RegExp][] = [
    ['j { path = "/x; }', /unterminated string/],
    ['j { path = "/x" }', /expected ';'/],
    ['j { pth = "/x"; }', /unknown parameter pth/],
    ['j { persist = "maybe"; }', /unknown boolean/],
    ['j { path; }', /needs a value/],
    ['j { stop.timeout = "ten"; }', /non-integer/],
    ['j { host.hostname = "a"; host.hostname += "b"; }', /scalar/],
    ['j { path = "/j/$jname"; }', /variable "jname" not found/],
    ['path = "/j/${base}"; j { persist; }', /variable "base" not found/],
    ['j { vnet = "maybe"; }', /jailsys/],
    ['j { enforce_statfs = "3"; }', /0, 1 or 2/],
    ['j { /* open', /unterminated comment/],
    ['j { path = "/x";', /missing '}'/],
  ];
  for (const [text, re] of bad) assert.throws(() => checkJailConf(text), (e: unknown) => e instanceof JailConfError && re.test(e.message), text);
  assert.doesNotThrow(() => parseJailConf('j { pth = "/x"; }'));
});
