/**
 * The web console's VM parts of the env page (src/agent/console/html.ts envPage) and the CLI
 * command a VM's action is named as (actions.ts commandOf): the serial console and the screen
 * for an admin only, noVNC loaded as a module, vnc_password never shown.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { confirmForm, envPage, type EnvView, type PageCtx } from '../../src/agent/console/html.js';
import { commandOf, liveOffered } from '../../src/agent/console/actions.js';
import { STATUS } from '../../src/inventory.js';
import type { NodeCtx } from '../../src/node.js';

const view = (over: Partial<EnvView> = {}): EnvView => ({
  jname: 'vm1', settings: { emulator: 'qemu', vnc_password: 'abc12345', vm_ram: '268435456' }, descriptor: 'vnc_password="(set)";\n',
  hooks: { mnt_start: '0', mnt_stop: '0' }, log: '', history: [], running: true, emulator: 'qemu', consoleKind: 'serial', ...over,
});
const admin: PageCtx = { node: 'n1', role: 'admin', tokenId: 't1', csrf: 'c' };
const viewer: PageCtx = { node: 'n1', role: 'viewer', tokenId: 't2', csrf: 'c' };

test('a running qemu VM: the admin gets the serial console and the screen; noVNC is a module script', () => {
  const h = envPage(view(), admin);
  assert.match(h, /id="shell-open" data-ws="\/ws\/console\/vm1"/);
  assert.match(h, /id="screen-open" data-ws="\/ws\/vnc\/vm1"/);
  assert.match(h, /<script type="module" src="\/assets\/vnc.js"><\/script>/);
  assert.ok(!h.includes('/ws/shell/'), 'a VM has no jexec shell');
  assert.ok(!h.includes('abc12345'), 'vnc_password is never shown');
  assert.match(h, /<th>vnc_password<\/th><td>\(set\)<\/td>/);
});

test('a viewer, or a stopped VM: no console, no screen, no noVNC', () => {
  for (const h of [envPage(view(), viewer), envPage(view({ running: false }), admin)]) {
    assert.ok(!/shell-open|screen-open|vnc\.js/.test(h), h);
  }
});

test('a VM\'s actions are named as the b commands; a container\'s as the j commands; migrate is jmigrate', () => {
  const ctx = (emulator?: string) => ({ inv: { get: () => (emulator ? { emulator } : undefined) } }) as unknown as NodeCtx;
  assert.equal(commandOf(ctx('qemu'), 'start', 'vm1'), 'bstart');
  assert.equal(commandOf(ctx('bhyve'), 'stop', 'vm1'), 'bstop');
  assert.equal(commandOf(ctx('qemu'), 'migrate', 'vm1'), 'jmigrate');
  assert.equal(commandOf(ctx('runc'), 'start', 'w1'), 'jstart');
  assert.equal(commandOf(ctx(), 'register', 'x'), 'jregister');
});

test('the migrate form offers live (checked) only for a running env whose engine has live migration', () => {
  const ctx = (emulator: string, status: number) => ({ inv: { get: () => ({ emulator, status }) } }) as unknown as NodeCtx;
  assert.equal(liveOffered(ctx('qemu', STATUS.ON), 'vm1'), true);
  assert.equal(liveOffered(ctx('qemu', STATUS.OFF), 'vm1'), false, 'a stopped VM moves cold');
  assert.equal(liveOffered(ctx('bhyve', STATUS.ON), 'vm1'), false, 'bhyve has no live migration');
  assert.equal(liveOffered(ctx('runc', STATUS.ON), 'w1'), false);
  assert.equal(liveOffered({ inv: { get: () => undefined } } as unknown as NodeCtx, 'x'), false);
  const live = confirmForm('vm1', 'migrate', admin, ['n2'], true).s;
  assert.match(live, /<input type="checkbox" name="live" value="1" checked>/);
  assert.match(live, /<option value="n2">n2<\/option>/);
  assert.ok(!confirmForm('w1', 'migrate', admin, ['n2'], false).s.includes('name="live"'));
  assert.ok(!confirmForm('vm1', 'stop', admin, ['n2'], true).s.includes('name="live"'), 'only migrate has it');
});
