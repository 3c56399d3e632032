/**
 * The bhyve_config(5) checker of test/helpers/bhyveconfig-grammar.ts, tested on its own: it
 * must accept what bhyve(8) accepts and the manual documents (the examples of bhyve(8) as a
 * config file, references, escapes, every boolean and integer form) and reject, naming the
 * line, what bhyve rejects or what berth must never write.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BhyveConfigError, checkBhyveConfig, expandValue, parseBhyveConfig, parseBool, parseInteger, parseMemsize, pciAt,
} from '../helpers/bhyveconfig-grammar.js';
import { ROOT } from '../helpers/cli.js';

/**
 * bhyve(8) EXAMPLES, the UEFI VM ("-c 2 -m 4G -w -H -s 0,hostbridge -s 3,ahci-cd,... -s 4,ahci-hd,disk.img
 * -s 5,virtio-net,tap0 -s 29,fbuf,tcp=0.0.0.0:5900,w=800,h=600,wait -s 30,xhci,tablet -s 31,lpc
 * -l com1,tcp=127.0.0.1:1234 -l bootrom,...BHYVE_UEFI.fd uefivm") written as the variables the
 * options set (bhyverun.c option parsing, pci_parse_slot and the devices' legacy parsers).
 */
const UEFI_EXAMPLE = `# bhyve(8) example as a config file
name=uefivm
cpus=2
memory.size=4G
x86.strictmsr=false
x86.vmexit_on_hlt=true
pci.0.0.0.device=hostbridge
pci.0.3.0.device=ahci
pci.0.3.0.port.0.type=cd
pci.0.3.0.port.0.path=/path/to/uefi-OS-install.iso
pci.0.4.0.device=ahci
pci.0.4.0.port.0.type=hd
pci.0.4.0.port.0.path=/vm/disk.img
pci.0.5.0.device=virtio-net
pci.0.5.0.backend=tap0
pci.0.29.0.device=fbuf
pci.0.29.0.tcp=0.0.0.0:5900
pci.0.29.0.w=800
pci.0.29.0.h=600
pci.0.29.0.wait=true
pci.0.30.0.device=xhci
pci.0.30.0.slot.1.device=tablet
pci.0.31.0.device=lpc
lpc.com1.path=tcp=127.0.0.1:1234
lpc.bootrom=/usr/local/share/uefi-firmware/BHYVE_UEFI.fd
`;

const rejects = (text: string, line: number, re: RegExp) => {
  assert.throws(() => checkBhyveConfig(text), (e: unknown) => {
    assert.ok(e instanceof BhyveConfigError, `not a BhyveConfigError: ${String(e)}`);
    assert.equal(e.line, line, `wrong line for ${JSON.stringify(text)}: ${e.message}`);
    assert.match(e.message, re);
    return true;
  }, text);
};

test('accepts bhyve(8)\'s UEFI example and reads its devices, memory and CPUs', () => {
  const c = checkBhyveConfig(UEFI_EXAMPLE);
  assert.equal(c.memoryBytes, 4 * 1024 ** 3);
  assert.equal(c.cpus, 2);
  assert.deepEqual(c.pci.map((d) => [d.slot, d.device]), [[0, 'hostbridge'], [3, 'ahci'], [4, 'ahci'], [5, 'virtio-net'], [29, 'fbuf'], [30, 'xhci'], [31, 'lpc']]);
  assert.equal(pciAt(c, 4)!.vars.get('port.0.path'), '/vm/disk.img');
  assert.equal(pciAt(c, 30)!.vars.get('slot.1.device'), 'tablet');
  assert.equal(c.values.get('lpc.com1.path'), 'tcp=127.0.0.1:1234');
  assert.equal(c.lines[0]!.line, 2, 'the comment line is skipped, numbering kept');
});

test('values: %(name) references and \\ escapes expand as config.c does, only in values with a %', () => {
  const c = checkBhyveConfig('name=vm1\npci.0.4.0.device=virtio-blk\npci.0.4.0.path=/dev/zvol/bhyve/%(name)\nsystem.product_name=a\\b\nsystem.version=50\\%\\\\\n');
  assert.equal(c.values.get('pci.0.4.0.path'), '/dev/zvol/bhyve/vm1');
  assert.equal(c.values.get('system.product_name'), 'a\\b', 'no % in the value: the backslash is kept');
  assert.equal(c.values.get('system.version'), '50%\\');
  assert.equal(expandValue('%(a)-%(b)', (n) => ({ a: '%(b)', b: 'x' } as Record<string, string>)[n]), 'x-x');
  assert.throws(() => expandValue('%(a)', (n) => (n === 'a' ? '%(a)' : undefined)), /Too many recursive/);
});

test('value forms: booleans, strtol integers, memory sizes', () => {
  for (const t of ['true', 'TRUE', 'on', 'Yes', '1']) assert.equal(parseBool(t), true, t);
  for (const f of ['false', 'Off', 'NO', '0']) assert.equal(parseBool(f), false, f);
  for (const x of ['', 'y', '01', ' true', 'True ']) assert.equal(parseBool(x), undefined, x);
  assert.equal(parseInteger('0x1022'), 0x1022);
  assert.equal(parseInteger('010'), 8);
  assert.equal(parseInteger('-3'), -3);
  for (const x of ['', '0x', '1e3', ' 1', '08', '12a']) assert.equal(parseInteger(x), undefined, x);
  assert.equal(parseMemsize('512'), 512 * 1024 * 1024, 'a bare number below 1 MiB is megabytes (vm_parse_memsize)');
  assert.equal(parseMemsize('536870912'), 512 * 1024 * 1024);
  assert.equal(parseMemsize('2g'), 2 * 1024 ** 3);
  assert.equal(parseMemsize('1048576k'), 1024 ** 3);
  for (const x of ['', '1.5G', '1GB', 'lots', '-1', '512 M']) assert.equal(parseMemsize(x), undefined, x);
});

test('line rules of parse_simple_config_file and the variable tree of config.c', () => {
  assert.deepEqual(parseBhyveConfig('# c\n\nname=a\n').lines.map((l) => l.line), [3]);
  assert.equal(parseBhyveConfig('name=a\nname=b\n', { allowRepeat: true }).raw.get('name'), 'b', 'bhyve itself keeps the last value');
  rejects('name=vm1\ncpus\n', 2, /invalid config option 'cpus'/);
  rejects('name=vm1\ncpus=\n', 2, /non-empty value/);
  rejects('name = vm1\n', 1, /white space/);
  rejects(' name=vm1\n', 1, /white space/);
  rejects('  \n', 1, /invalid config option/);
  rejects('name=vm1\r\n', 1, /control character/);
  rejects('pci..0.0.device=lpc\n', 1, /Invalid configuration node/);
  rejects('lpc=x\nlpc.com1.path=stdio\n', 2, /child of existing variable lpc \(line 1\)/);
  rejects('lpc.com1.path=stdio\nlpc.com1=x\n', 2, /existing node lpc\.com1/);
  rejects('name=a\ncpus=1\nname=b\n', 3, /set twice \(also line 1\)/);
});

test('rejects unknown variables, bad values and bad device nodes, naming the line', () => {
  const base = 'name=vm1\npci.0.31.0.device=lpc\n';
  const cases: [string, number, RegExp][] = [
    ['memroy.size=1G\n', 3, /unknown variable/],
    ['memory.size=lots\n', 3, /not a size/],
    ['memory.size=1048577\n', 3, /4 KiB page/],
    ['acpi_tables=maybe\n', 3, /not a boolean/],
    ['cpus=0\n', 3, /out of range 1\.\.65535/],
    ['cpus=4\nsockets=1\ncores=2\n', 3, /does not match 4 vCPUs/],
    ['uuid=not-a-uuid\n', 3, /not a UUID/],
    ['config.dump=1\n', 3, /exit without running the VM/],
    ['lpc.bootrom=BHYVE_UEFI.fd\n', 3, /absolute path/],
    ['lpc.com1.path=nmdm0A\n', 3, /stdio, a \/dev\/ path/],
    ['lpc.fwcfg=ovmf\n', 3, /bhyve, qemu/],
    ['pci.0.4.0.device=ahci-hd\npci.0.4.0.path=/d\n', 3, /-s spelling.*ahci with port\.0\.type=hd/],
    ['pci.0.4.0.device=virtio-disk\n', 3, /unknown device model/],
    ['pci.0.4.0.path=/d\n', 3, /has no device variable/],
    ['pci.0.04.0.device=virtio-rnd\n', 3, /decimal numbers without padding/],
    ['pci.0.32.0.device=virtio-rnd\n', 3, /out of range/],
    ['pci.0.4.0.device=virtio-blk\npci.0.4.0.pth=/d\n', 4, /unknown variable for a virtio-blk/],
    ['pci.0.4.0.device=virtio-blk\n', 3, /no path/],
    ['pci.0.4.0.device=virtio-blk\npci.0.4.0.path=/d\npci.0.4.0.sectorsize=520\n', 5, /powers of two/],
    ['pci.0.4.0.device=virtio-blk\npci.0.4.0.path=/d\npci.0.4.0.ser=012345678901234567890\n', 5, /longer than 20/],
    ['pci.0.4.0.device=ahci\n', 3, /no port/],
    ['pci.0.4.0.device=ahci\npci.0.4.0.port.1.type=hd\npci.0.4.0.port.1.path=/d\n', 4, /successive from 0/],
    ['pci.0.4.0.device=ahci\npci.0.4.0.port.0.type=hd\n', 4, /port\.0 has no path/],
    ['pci.0.4.0.device=ahci\npci.0.4.0.port.0.type=dvd\npci.0.4.0.port.0.path=/d\n', 4, /hd, cd/],
    ['pci.0.4.0.device=nvme\n', 3, /exactly one of path and ram/],
    ['pci.0.5.0.device=virtio-net\n', 3, /no backend/],
    ['pci.0.5.0.device=virtio-net\npci.0.5.0.backend=em0\n', 4, /tapN/],
    ['pci.0.5.0.device=virtio-net\npci.0.5.0.backend=tap0\npci.0.5.0.mac=01:00:5e:00:00:01\n', 5, /multicast/],
    ['pci.0.5.0.device=virtio-net\npci.0.5.0.backend=tap0\npci.0.6.0.device=e1000\npci.0.6.0.backend=tap0\n', 6, /tap0 is the backend of two devices/],
    ['pci.0.29.0.device=fbuf\npci.0.29.0.rfb=localhost:5900\n', 4, /numeric IPv4/],
    ['pci.0.29.0.device=fbuf\npci.0.29.0.rfb=127.0.0.1:70000\n', 4, /\[IP:\]port/],
    ['pci.0.29.0.device=fbuf\npci.0.29.0.w=320\n', 4, /640\.\.3840/],
    ['pci.0.29.0.device=fbuf\npci.0.30.0.device=fbuf\n', 4, /Only one frame buffer/],
    ['pci.0.30.0.device=xhci\npci.0.30.0.slot.0.device=tablet\n', 4, /begin at 1/],
    ['pci.0.30.0.device=xhci\npci.0.30.0.slot.1.device=mouse\n', 4, /tablet/],
    ['pci.1.31.0.device=lpc\n', 3, /more than one LPC|bus 0/],
    ['pci.0.4.0.device=virtio-blk\npci.0.4.0.path=%(nope)\n', 4, /Failed to fetch referenced configuration variable nope/],
    ['system.version=5%\n', 3, /Invalid reference/],
  ];
  for (const [extra, line, re] of cases) rejects(base + extra, line, re);
  rejects('pci.0.4.0.device=lpc\npci.1.5.0.device=lpc\n', 2, /bus 0/);
  rejects('name=vm1\nlpc.com1.path=/dev/nmdm0A\n', 2, /needs an lpc device/);
  rejects('name=a_very_long_name_of_thirty_two_x\n', 1, /at most 31/);
});

test('run as a program (as the fake bhyve does): prints expanded values, or the error with exit status 4', () => {
  const T = mkdtempSync(join(tmpdir(), 'berth-bhyvecfg-'));
  try {
    const grammar = join(ROOT, 'test', 'helpers', 'bhyveconfig-grammar.ts');
    writeFileSync(join(T, 'good.conf'), UEFI_EXAMPLE);
    const out = execFileSync(process.execPath, ['--import', 'tsx', grammar, join(T, 'good.conf')], { cwd: ROOT, encoding: 'utf8' });
    const kv = new Map(out.trim().split('\n').map((l) => l.split('\t') as [string, string]));
    assert.equal(kv.get('name'), 'uefivm');
    assert.equal(kv.get('@memory.bytes'), String(4 * 1024 ** 3));
    assert.equal(kv.get('pci.0.5.0.backend'), 'tap0');
    writeFileSync(join(T, 'bad.conf'), 'name=vm1\nmemory.size=\n');
    const bad = spawnSync(process.execPath, ['--import', 'tsx', grammar, join(T, 'bad.conf')], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(bad.status, 4);
    assert.match(bad.stderr, /bad\.conf: bhyve config line 2: invalid config option/);
  } finally {
    rmSync(T, { recursive: true, force: true });
  }
});
