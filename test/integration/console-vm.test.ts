/**
 * The web console's VM parts (docs/console.md) in a real browser: Debian's chromium driven by
 * playwright-core, one node running `berth agent` with a console, a qemu VM booted under TCG
 * (direct kernel boot of the busybox guest, test/helpers/vmguest.ts):
 * - the cluster page lists the VM (emulator qemu) with its state; start and stop by button,
 *   through the confirmation step, with the CLI's line (`berth bstart`) and exit code;
 * - the serial console in xterm: the boot line (GUEST_READY_LINE, from the console log), a
 *   shell prompt after Enter, a typed command's output (keys reach the guest);
 * - the CPU/memory plots of the running VM (Engine.usage: QMP query-cpus-fast's vCPU threads
 *   in /proc, qemu's resident memory, the guest's RAM from QMP): samples above 0, two plots;
 * - the screen in noVNC: the VNC password (vnc_password) asked in the page's form, never shown
 *   in the settings or the descriptor; the RFB `connect` event over the agent's /ws/vnc relay
 *   (the browser never reaches qemu's port) and a drawn, non-empty canvas;
 * - the migrate form of the running VM offers live (jmigrate live=1), checked;
 * - a viewer has no console or screen and both websockets are refused; so is the admin's
 *   session cookie sent from another Origin;
 * - the CLI's fast path through the agent: `berth jstop vm1` refused as without the agent
 *   (use bstop, exit 2), the VM running on; bstop and bstart handed to the agent;
 * - the audit log holds the console and the screen; nothing is left running after.
 */
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { berth, berthOk, BIN, isRoot, ROOT } from '../helpers/cli.js';
import { guestNode, type GuestNode } from '../helpers/vmguest.js';
import { GUEST_READY_LINE } from '../../src/engines/qemu/guest.js';
import { qemuPid, waitPidGone } from '../../src/engines/qemu/process.js';
import { qemuRunPaths } from '../../src/engines/qemu/argv.js';

const SHOTS = join(ROOT, 'docs', 'console');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'];
const VNC_PASSWORD = 'vnc-s3cr'; // at most 8 bytes (RFB VNC authentication)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let node: GuestNode;
let wd: string;
let agent: ChildProcess | undefined;
let browser: Browser;
let url: string;
let admin: string;
let viewer: string;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
  });
}

const ok = (args: string[], timeoutMs?: number) => berthOk(args, { workdir: wd, timeoutMs });
const vmState = (): string => (ok(['bls', '--json', 'jname=vm1']).json.envs as { status: string }[])[0]!.status;

async function login(ctx: BrowserContext, token: string): Promise<Page> {
  const page = await ctx.newPage();
  await page.goto(url + '/login');
  await page.fill('input[name=token]', token);
  await page.click('#login button[type=submit]');
  await page.waitForSelector('#envs');
  await page.waitForFunction(() => document.body.dataset.live === '1');
  return page;
}

/** The lines of the page's xterm buffer. */
const termLines = (page: Page) => page.evaluate(() => {
  const t = (window as any).berthTerm;
  if (!t) return [] as string[];
  return Array.from({ length: t.buffer.active.length }, (_, i) => t.buffer.active.getLine(i).translateToString(true) as string);
});

async function waitTerm(page: Page, what: string, f: (lines: string[]) => boolean, ms = 120_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const lines = await termLines(page);
    if (f(lines)) return;
    if (Date.now() > end) assert.fail(`xterm: no ${what} within ${ms} ms; it shows:\n${lines.filter(Boolean).slice(-30).join('\n')}`);
    await sleep(200);
  }
}

before(async () => {
  assert.ok(isRoot, 'integration tests run as root (qemu, taps, the inventory)');
  node = await guestNode('berth-cvm-');
  node.close();
  wd = node.wd.root;
  const port = await freePort();
  // a CPU/memory sample every second (the plots)
  appendFileSync(join(wd, 'etc', 'berth.conf'), `console_port="${port}"\nconsole_stats_sec="1"\n`);
  url = `http://127.0.0.1:${port}`;
  admin = ok(['token', 'add', 'role=admin', '--json']).json.token.token;
  viewer = ok(['token', 'add', 'role=viewer', '--json']).json.token.token;
  // vm_vnc_port=0: a free port in 5900-6900, found again by the agent through QMP query-vnc
  // vnc_password: asked in the page by noVNC, never shown by the console
  ok(['bcreate', 'jname=vm1', 'base=bb', 'vm_kernel=k1', 'vm_ram=256m', 'vm_vnc_port=0', `vnc_password=${VNC_PASSWORD}`]);
  const fd = openSync(join(wd, 'var', 'log', 'agent-test.log'), 'a');
  try {
    agent = spawn(process.execPath, [BIN, 'agent', `--api_port=${await freePort()}`], { env: { ...process.env, BERTH_WORKDIR: wd }, stdio: ['ignore', fd, fd] });
  } finally { closeSync(fd); }
  const end = Date.now() + 30_000;
  for (;;) {
    if (agent.exitCode !== null) assert.fail(`the agent exited ${agent.exitCode}: ${readFileSync(join(wd, 'var', 'log', 'agent-test.log'), 'utf8')}`);
    try { if ((await fetch(url + '/login')).ok) break; } catch { /* not yet */ }
    if (Date.now() > end) assert.fail('the console did not answer within 30 s');
    await sleep(100);
  }
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  if (agent && agent.exitCode === null) {
    const gone = new Promise((r) => agent!.once('exit', r));
    agent.kill('SIGTERM');
    await Promise.race([gone, sleep(20_000)]);
    if (agent.exitCode === null) agent.kill('SIGKILL');
  }
  // nothing of a failed test left running
  const pid = node ? qemuPid(qemuRunPaths(node.wd, 'vm1')) : undefined;
  if (pid) { process.kill(pid, 'SIGKILL'); await waitPidGone(pid, 10_000); }
  if (node) berth(['bstop', 'jname=vm1'], { workdir: wd, timeoutMs: 30_000 });
});

describe('the VM console in chromium', () => {
  let ctx: BrowserContext;
  let page: Page;

  test('the cluster page lists the VM; start by button through the confirmation, as bstart prints it', async () => {
    ctx = await browser.newContext();
    page = await login(ctx, admin);
    assert.equal(await page.textContent('#envs tr[data-jname="vm1"] td:nth-child(2)'), 'qemu');
    assert.equal(await page.textContent('#envs tr[data-jname="vm1"] td.state'), 'Off');
    await page.click('#envs tr[data-jname="vm1"] button[data-act="start"]');
    await page.waitForSelector('form.confirm');
    assert.equal(vmState(), 'Off', 'nothing happens before the confirmation');
    await page.click('form.confirm button.confirm-yes');
    await page.waitForSelector('.outcome', { timeout: 60_000 });
    assert.equal(await page.getAttribute('.outcome', 'data-exit'), '0', (await page.textContent('.outcome')) ?? '');
    assert.match((await page.textContent('.outcome p'))!, /^berth bstart jname=vm1: exit code 0/);
    assert.equal(await page.textContent('.outcome pre.stdout'), 'started: vm1');
    assert.equal(vmState(), 'On');
    await page.waitForFunction(() => document.querySelector('#envs tr[data-jname="vm1"] td.state')?.textContent === 'On', undefined, { timeout: 30_000 });
  });

  test('the migrate form of the running VM offers live, checked (its engine has live migration)', async () => {
    await page.click('#envs tr[data-jname="vm1"] button[data-act="migrate"]');
    await page.waitForSelector('form.confirm');
    assert.equal(await page.isChecked('form.confirm input[name=live]'), true);
    await page.click('form.confirm button.confirm-no');
  });

  test('the serial console in xterm: the boot line, a shell prompt, a typed command\'s output', async () => {
    await page.goto(url + '/env/vm1');
    await page.click('#shell-open');
    await waitTerm(page, GUEST_READY_LINE, (l) => l.some((x) => x.includes(GUEST_READY_LINE)));
    // a prompt first: keys typed while the shell starts are lost
    const end = Date.now() + 90_000;
    for (;;) {
      await page.keyboard.press('Enter');
      try { await waitTerm(page, 'a prompt', (l) => l.some((x) => /^[^ ]* # ?$/.test(x)), 5_000); break; } catch (e) { if (Date.now() > end) throw e; }
    }
    await page.keyboard.type('echo vm-$((6*7))\n');
    await waitTerm(page, 'vm-42', (l) => l.some((x) => x.trim() === 'vm-42'), 60_000);
  });

  test('the plots of the running VM: CPU of its vCPU threads and qemu\'s memory (QMP, /proc), both above 0; its RAM as the limit', async () => {
    await page.goto(url + '/env/vm1');
    type S = { t: number; cpu: number; mem: number; memMax?: number };
    const samples = async (): Promise<S[]> => page.evaluate(async () => (await (await fetch('/env/vm1/stats')).json()).samples);
    // an idle guest may use less than a clock tick between two samples: wait for one that shows CPU
    const end = Date.now() + 90_000;
    let got: S[] = [];
    for (;;) {
      got = await samples();
      if (got.length >= 2 && got.some((x) => x.cpu > 0)) break;
      if (Date.now() > end) assert.fail(`no sample with CPU > 0: ${JSON.stringify(got.slice(-5))}`);
      await sleep(500);
    }
    for (const x of got) {
      assert.ok(x.mem > 0, `memory ${x.mem}`);
      assert.ok(x.cpu >= 0, `cpu ${x.cpu}`);
      assert.equal(x.memMax, 256 * 1048576, 'the guest RAM (vm_ram=256m) from QMP');
      assert.ok(x.mem < 2 * x.memMax!, `qemu's resident memory ${x.mem} is about its guest's RAM, not more`);
    }
    await page.reload();
    await page.waitForSelector('#plots .uplot');
    assert.equal(await page.locator('#plots .uplot').count(), 2);
    assert.match((await page.textContent('#plots'))!, /memory \(of 256 MiB\)/);
  });

  test('the screen in noVNC: the VNC password asked in the page, connected through the agent\'s relay, the canvas drawn', async () => {
    const text = await page.textContent('body');
    assert.ok(!text!.includes(VNC_PASSWORD), 'the page never shows vnc_password');
    assert.equal(await page.textContent('#settings tr:has(th:text-is("vnc_password")) td'), '(set)');
    await page.click('#screen-open');
    await page.waitForSelector('#screen-password:not([hidden])', { timeout: 60_000 });
    await page.fill('#screen-password input', VNC_PASSWORD);
    await page.click('#screen-password button');
    await page.waitForFunction(() => document.getElementById('screen')?.dataset.state === 'connected', undefined, { timeout: 60_000 });
    // the first framebuffer update: a canvas of the guest's size with pixels drawn (alpha set)
    await page.waitForFunction(() => {
      const c = document.querySelector<HTMLCanvasElement>('#screen canvas');
      if (!c || !c.width || !c.height) return false;
      const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      for (let i = 3; i < d.length; i += 4 * 97) if (d[i]) return true;
      return false;
    }, undefined, { timeout: 60_000 });
    const size = await page.evaluate(() => { const c = document.querySelector<HTMLCanvasElement>('#screen canvas')!; return [c.width, c.height]; });
    assert.ok(size[0]! >= 320 && size[1]! >= 200, `canvas ${size}`);
    // the page never spoke to qemu: its only websockets are the console's own
    const sockets = await page.evaluate(() => performance.getEntriesByType('resource').map((e) => e.name).filter((n) => n.startsWith('ws')));
    for (const s of sockets) assert.ok(s.startsWith(url.replace('http', 'ws')), s);
    await sleep(500);
    await page.screenshot({ path: join(SHOTS, 'vm.png'), fullPage: true });
  });

  test('the admin\'s session from another Origin: both websockets refused (403) before the upgrade', async () => {
    const cookie = (await ctx.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
    for (const path of ['/ws/console/vm1', '/ws/vnc/vm1']) {
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(url + path, { headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', Cookie: cookie, Origin: 'http://evil.example' } });
        req.on('response', (r) => { r.resume(); resolve(r.statusCode!); });
        req.on('upgrade', (_r, sock) => { sock.destroy(); resolve(101); });
        req.on('error', reject);
        req.end();
      });
      assert.equal(status, 403, path);
    }
  });

  test('a viewer has no console and no screen; both websockets are refused', async () => {
    const vctx = await browser.newContext();
    const v = await login(vctx, viewer);
    await v.goto(url + '/env/vm1');
    assert.equal(await v.locator('#shell-open, #screen-open').count(), 0);
    const r = await v.evaluate(() => Promise.all(['/ws/console/vm1', '/ws/vnc/vm1'].map((p) => new Promise<string>((resolve) => {
      const s = new WebSocket(`ws://${location.host}${p}`);
      s.onopen = () => { s.close(); resolve('open'); };
      s.onerror = () => resolve('refused');
    }))));
    assert.deepEqual(r, ['refused', 'refused']);
    await vctx.close();
  });

  test('through the agent (the CLI fast path) a jstop of the VM is refused as in-process (use bstop, exit 2); bstop and bstart go through it', async () => {
    const agentLog = join(wd, 'var', 'log', 'agent-test.log');
    const handed = (route: string) => readFileSync(agentLog, 'utf8').split('\n').filter((l) => l.includes(`"path":"/v1/envs/vm1/${route}"`)).length;
    const pid = qemuPid(qemuRunPaths(node.wd, 'vm1'));
    assert.ok(pid);
    const before = handed('stop');
    const viaAgent = berth(['jstop', 'vm1'], { workdir: wd });
    assert.equal(handed('stop'), before + 1, 'the agent took the jstop');
    assert.deepEqual({ code: viaAgent.code, stdout: viaAgent.stdout }, { code: 2, stdout: '' });
    assert.match(viaAgent.stderr, /^berth jstop: vm1 is a qemu VM: use bstop$/m);
    const local = berth(['jstop', 'vm1'], { workdir: wd, env: { BERTH_AGENT: '0' } });
    assert.deepEqual({ code: local.code, stdout: local.stdout, stderr: local.stderr }, { code: viaAgent.code, stdout: viaAgent.stdout, stderr: viaAgent.stderr }, 'the same answer without the agent');
    assert.equal(vmState(), 'On');
    assert.equal(qemuPid(qemuRunPaths(node.wd, 'vm1')), pid, 'the same qemu runs on');
    const stop = berth(['bstop', 'vm1'], { workdir: wd, timeoutMs: 120_000 });
    assert.deepEqual([stop.code, stop.stdout], [0, 'stopped: vm1\n'], stop.stderr);
    assert.equal(handed('stop'), before + 2, 'the agent took the bstop');
    assert.equal(vmState(), 'Off');
    assert.equal(qemuPid(qemuRunPaths(node.wd, 'vm1')), undefined);
    const startsBefore = handed('start');
    const start = berth(['bstart', 'jname=vm1'], { workdir: wd });
    assert.deepEqual([start.code, start.stdout], [0, 'started: vm1\n'], start.stderr);
    assert.equal(handed('start'), startsBefore + 1, 'the agent took the bstart');
    assert.equal(vmState(), 'On');
  });

  test('stop by button: bstop, the VM is Off and qemu gone; the audit log has the console and the screen', async () => {
    await page.goto(url + '/');
    await page.waitForFunction(() => document.body.dataset.live === '1');
    await page.click('#envs tr[data-jname="vm1"] button[data-act="stop"]');
    await page.waitForSelector('form.confirm');
    await page.click('form.confirm button.confirm-yes');
    await page.waitForSelector('.outcome', { timeout: 120_000 });
    assert.equal(await page.getAttribute('.outcome', 'data-exit'), '0', (await page.textContent('.outcome')) ?? '');
    assert.equal(await page.textContent('.outcome pre.stdout'), 'stopped: vm1');
    assert.equal(vmState(), 'Off');
    assert.equal(qemuPid(qemuRunPaths(node.wd, 'vm1')), undefined);
    await page.waitForFunction(() => document.querySelector('#envs tr[data-jname="vm1"] td.state')?.textContent === 'Off', undefined, { timeout: 30_000 });
    const lines = readFileSync(join(wd, 'var', 'log', 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    for (const what of ['console', 'screen']) {
      assert.ok(lines.some((l) => l.what === what && l.result === 'ok' && l.jname === 'vm1' && l.who?.role === 'admin'), `${what} opened by the admin`);
      assert.ok(lines.some((l) => l.what === what && l.result === 'refused' && l.who?.role === 'viewer'), `${what} refused to the viewer`);
    }
    assert.ok(!existsSync(qemuRunPaths(node.wd, 'vm1').consoleSocket));
    await ctx.close();
  });
});
