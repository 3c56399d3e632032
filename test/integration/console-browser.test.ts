/**
 * The web console (docs/console.md) in a real browser: Debian's chromium driven by
 * playwright-core (executablePath /usr/bin/chromium), against two nodes on one GlusterFS volume
 * (cluster-twonode.ts twoNodes), each running `berth agent` with console_port set.
 * - a wrong token cannot log in; an admin token can;
 * - the cluster page of node1 lists the envs of both nodes with their owners, and both nodes;
 * - a state changed by the CLI reaches the open page through server-sent events (no reload),
 *   which replaces only the rows that changed (the table itself stays);
 * - stop and start from the page, each through its confirmation step, with the CLI's line and
 *   exit code; a refusal (already running) shown with the CLI's exact message and exit code;
 * - no inline script: the CSP header says script-src 'self' only, the pages hold no script
 *   without src and no on* attribute;
 * - a POST without the CSRF token: 403, nothing changes; a viewer's action: 403, nothing changes;
 * - a shell websocket runs `echo` in the container and the output appears in xterm;
 * - migrate by button: the owner changes on both nodes' pages;
 * - every action is in var/log/audit.log (who, what, when, result).
 * Screenshots of the pages go to docs/console/ (taken by this test).
 */
import { strict as assert } from 'node:assert';
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { isRoot, ROOT } from '../helpers/cli.js';
import { freePort, sleep, twoNodes, type TestNode, type TwoNodes } from './cluster-twonode.js';

const SHOTS = join(ROOT, 'docs', 'console');
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'];

let fx: TwoNodes;
let browser: Browser;
const consoles = new Map<string, { url: string; admin: string; viewer: string }>();

async function waitFor(what: string, f: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const t0 = performance.now();
  for (;;) {
    if (await f()) return;
    if (performance.now() - t0 > ms) assert.fail(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function enableConsole(n: TestNode): Promise<void> {
  const port = await freePort();
  appendFileSync(join(n.wd, 'etc', 'berth.conf'), `console_port="${port}"\nconsole_stats_sec="1"\n`);
  const admin = n.ok(['token', 'add', 'role=admin', 'comment=browser test', '--json']).json.token.token as string;
  const viewer = n.ok(['token', 'add', 'role=viewer', '--json']).json.token.token as string;
  consoles.set(n.name, { url: `http://127.0.0.1:${port}`, admin, viewer });
}

async function login(ctx: BrowserContext, node: string, token: string): Promise<Page> {
  const page = await ctx.newPage();
  await page.goto(consoles.get(node)!.url + '/');
  assert.match(page.url(), /\/login$/);
  await page.fill('input[name=token]', token);
  await page.click('#login button[type=submit]');
  await page.waitForSelector('#envs');
  await page.waitForFunction(() => document.body.dataset.live === '1');
  return page;
}

const cell = (page: Page, jname: string, col: string) => page.textContent(`#envs tr[data-jname="${jname}"] td.${col}`);
const jlsState = (n: TestNode, jname: string): string => n.envs()[jname]?.status;
const audit = (n: TestNode): Record<string, any>[] => readFileSync(join(n.wd, 'var', 'log', 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

before(async () => {
  assert.ok(isRoot, 'integration tests run as root (runc, FUSE mounts, glusterd)');
  fx = await twoNodes(['lease_ttl=6']);
  const { n1, n2 } = fx;
  await enableConsole(n1);
  await enableConsole(n2);
  n1.ok(['jcreate', 'jname=w1', 'base=bb']);
  n2.ok(['jcreate', 'jname=w2', 'base=bb']);
  await n1.startAgent();
  await n2.startAgent();
  n1.ok(['node', 'add', 'name=node2', `url=${n2.url}`, `token_file=${n2.wd}/etc/api.token`]);
  n2.ok(['node', 'add', 'name=node1', `url=${n1.url}`, `token_file=${n1.wd}/etc/api.token`]);
  n2.ok(['jstart', 'jname=w2']);
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
});
after(async () => {
  await browser?.close();
  await fx?.cleanup();
});

describe('web console in chromium', () => {
  let ctx: BrowserContext;
  let page: Page;

  test('a wrong token cannot log in; the admin token can; the cluster page lists the envs and nodes of both nodes', async () => {
    ctx = await browser.newContext();
    const p = await ctx.newPage();
    await p.goto(consoles.get('node1')!.url + '/login');
    await p.fill('input[name=token]', 'btk_' + 'x'.repeat(43));
    const [resp] = await Promise.all([p.waitForResponse((r) => r.url().endsWith('/login') && r.request().method() === 'POST'), p.click('#login button[type=submit]')]);
    assert.equal(resp.status(), 401);
    assert.equal(await p.textContent('#login-error'), 'wrong token');
    await p.screenshot({ path: join(SHOTS, 'login.png') });
    await p.close();

    page = await login(ctx, 'node1', consoles.get('node1')!.admin);
    const cookies = await ctx.cookies();
    const sc = cookies.find((c) => c.name === 'berth_session')!;
    assert.ok(sc.httpOnly && sc.sameSite === 'Strict', JSON.stringify(sc));
    assert.ok(!page.url().includes('btk_'), 'no token in any URL');
    assert.equal(await cell(page, 'w1', 'owner'), 'node1');
    assert.equal(await cell(page, 'w2', 'owner'), 'node2');
    assert.equal(await cell(page, 'w1', 'state'), 'Off');
    await waitFor('w2 On from node2\'s agent', async () => { await page.reload(); return (await cell(page, 'w2', 'state')) === 'On'; });
    await page.waitForFunction(() => document.body.dataset.live === '1');
    assert.equal(await page.textContent('#nodes tr[data-node="node2"] td.answering'), 'answering');
    assert.equal(await page.textContent('#nodes tr[data-node="node2"] td.count'), '1');
  });

  test('no inline script: the CSP allows scripts from the console only; the page holds none inline', async () => {
    const r = await page.goto(consoles.get('node1')!.url + '/');
    const csp = r!.headers()['content-security-policy']!;
    const scriptSrc = /script-src ([^;]*)/.exec(csp)![1]!.trim();
    assert.equal(scriptSrc, "'self'");
    assert.match(csp, /default-src 'none'/);
    const inline = await page.evaluate(() => ({
      scripts: [...document.querySelectorAll('script')].filter((s) => !s.src).length,
      handlers: [...document.querySelectorAll('*')].filter((e) => [...e.attributes].some((a) => a.name.startsWith('on'))).length,
      external: [...document.querySelectorAll('script[src],link[href]')].filter((e) => !((e as HTMLScriptElement).src || (e as HTMLLinkElement).href).startsWith(location.origin)).length,
    }));
    assert.deepEqual(inline, { scripts: 0, handlers: 0, external: 0 });
    await page.waitForFunction(() => document.body.dataset.live === '1');
  });

  test('a state changed by the CLI reaches the open page by server-sent events, without a reload, replacing only the rows that changed', async () => {
    await page.evaluate(() => {
      (window as any).notReloaded = true;
      // the table is marked: a row replaced in it keeps the mark, a redrawn table would not
      (document.querySelector('#envs') as HTMLElement).dataset.mark = 'kept';
    });
    fx.n1.ok(['jstart', 'jname=w1']);
    await page.waitForFunction(() => document.querySelector('#envs tr[data-jname="w1"] td.state')?.textContent === 'On', undefined, { timeout: 30_000 });
    assert.equal(await page.evaluate(() => (window as any).notReloaded), true);
    assert.ok((await page.evaluate(() => (window as any).berthEvents)) >= 1);
    assert.equal(await page.getAttribute('#envs', 'data-mark'), 'kept', 'the table itself was not redrawn');
    // the replaced row's buttons work (htmx processed them): stop asks for a confirmation
    assert.equal(await page.locator('#envs tr[data-jname="w1"] button[data-act="stop"]').count(), 1);
    await page.screenshot({ path: join(SHOTS, 'cluster.png'), fullPage: true });
  });

  test('stop and start from the page through the confirmation step, with the CLI\'s line and exit code', async () => {
    await page.click('#envs tr[data-jname="w1"] button[data-act="stop"]');
    await page.waitForSelector('form.confirm');
    assert.equal(jlsState(fx.n1, 'w1'), 'On', 'nothing happens before the confirmation');
    await page.screenshot({ path: join(SHOTS, 'confirm.png') });
    await page.click('form.confirm button.confirm-yes');
    await page.waitForSelector('.outcome');
    assert.equal(await page.getAttribute('.outcome', 'data-exit'), '0');
    assert.equal(await page.textContent('.outcome pre.stdout'), 'stopped: w1');
    assert.equal(jlsState(fx.n1, 'w1'), 'Off');
    await page.waitForFunction(() => document.querySelector('#envs tr[data-jname="w1"] td.state')?.textContent === 'Off', undefined, { timeout: 30_000 });

    await page.click('#envs tr[data-jname="w1"] button[data-act="start"]');
    await page.waitForSelector('form.confirm');
    await page.click('form.confirm button.confirm-yes');
    await page.waitForSelector('.outcome[data-exit="0"]');
    assert.equal(await page.textContent('.outcome pre.stdout'), 'started: w1');
    assert.equal(jlsState(fx.n1, 'w1'), 'On');
  });

  test('a refusal is shown as the CLI prints it: the env was started meanwhile', async () => {
    fx.n1.ok(['jstop', 'jname=w1']);
    await page.waitForFunction(() => document.querySelector('#envs tr[data-jname="w1"] td.state')?.textContent === 'Off', undefined, { timeout: 30_000 });
    await page.click('#envs tr[data-jname="w1"] button[data-act="start"]');
    await page.waitForSelector('form.confirm');
    fx.n1.ok(['jstart', 'jname=w1']);
    await page.click('form.confirm button.confirm-yes');
    await page.waitForSelector('.outcome');
    const cli = fx.n1.run(['jstart', 'jname=w1']);
    assert.notEqual(cli.code, 0);
    assert.equal(await page.getAttribute('.outcome', 'data-exit'), String(cli.code));
    assert.equal(await page.textContent('.outcome pre.stderr'), cli.stderr);
    await page.screenshot({ path: join(SHOTS, 'refusal.png') });
  });

  test('a POST without the CSRF token is refused (403) and changes nothing', async () => {
    const r = await page.evaluate(async () => {
      const res = await fetch('/env/w1/stop', { method: 'POST', body: new URLSearchParams({}), credentials: 'same-origin' });
      return { status: res.status, text: await res.text() };
    });
    assert.equal(r.status, 403);
    assert.match(r.text, /CSRF/);
    const forged = await page.evaluate(async () => {
      const res = await fetch('/env/w1/stop', { method: 'POST', body: new URLSearchParams({ _csrf: 'forged' }), credentials: 'same-origin' });
      return res.status;
    });
    assert.equal(forged, 403);
    assert.equal(jlsState(fx.n1, 'w1'), 'On');
  });

  test('a viewer sees no buttons; its action is refused (403) and changes nothing', async () => {
    const vctx = await browser.newContext();
    const v = await login(vctx, 'node1', consoles.get('node1')!.viewer);
    assert.equal(await v.locator('button.act').count(), 0);
    const r = await v.evaluate(async () => {
      const csrf = document.querySelector<HTMLMetaElement>('meta[name=berth-csrf]')!.content;
      const res = await fetch('/env/w1/stop', { method: 'POST', body: new URLSearchParams({ _csrf: csrf }), credentials: 'same-origin' });
      const conf = await fetch('/env/w1/confirm/stop', { credentials: 'same-origin' });
      return { status: res.status, text: await res.text(), confirm: conf.status };
    });
    assert.deepEqual([r.status, r.confirm], [403, 403]);
    assert.match(r.text, /viewer may not act/);
    assert.equal(jlsState(fx.n1, 'w1'), 'On');
    const ws = await v.evaluate(() => new Promise<string>((resolve) => {
      const s = new WebSocket(`ws://${location.host}/ws/shell/w1`);
      s.onopen = () => resolve('open');
      s.onerror = () => resolve('refused');
    }));
    assert.equal(ws, 'refused');
    await vctx.close();
  });

  test('a shell in the running container: echo through the websocket appears in xterm', async () => {
    await page.goto(consoles.get('node1')!.url + '/env/w1');
    await page.click('#shell-open');
    await page.waitForFunction(() => document.getElementById('terminal')?.dataset.open === '1');
    await page.waitForFunction(() => { const t = (window as any).berthTerm; return t && t.buffer.active.getLine(0) && /#/.test(Array.from({ length: t.buffer.active.length }, (_, i) => t.buffer.active.getLine(i).translateToString(true)).join('\n')); }, undefined, { timeout: 30_000 });
    await page.keyboard.type('echo console-$((6*7))\n');
    await page.waitForFunction(() => { const t = (window as any).berthTerm; return Array.from({ length: t.buffer.active.length }, (_, i) => t.buffer.active.getLine(i).translateToString(true)).some((l: string) => l.trim() === 'console-42'); }, undefined, { timeout: 30_000 });
    // the plots: samples every console_stats_sec (1 s here) from the env's cgroup
    await waitFor('CPU/memory samples', async () => (await page.evaluate(async () => (await (await fetch('/env/w1/stats')).json()).samples.length)) >= 2);
    await page.reload();
    await page.waitForSelector('#plots .uplot');
    assert.equal(await page.locator('#plots .uplot').count(), 2);
    await page.click('#shell-open');
    await page.waitForFunction(() => document.getElementById('terminal')?.dataset.open === '1');
    await page.keyboard.type('echo shell-ok\n');
    await sleep(500);
    await page.screenshot({ path: join(SHOTS, 'env.png'), fullPage: true });
  });

  test('migrate by button: the owner changes on both nodes\' pages', async () => {
    const p2ctx = await browser.newContext();
    const p2 = await login(p2ctx, 'node2', consoles.get('node2')!.admin);
    assert.equal(await cell(p2, 'w1', 'owner'), 'node1');
    await page.goto(consoles.get('node1')!.url + '/');
    await page.waitForFunction(() => document.body.dataset.live === '1');
    await page.click('#envs tr[data-jname="w1"] button[data-act="migrate"]');
    await page.waitForSelector('form.confirm select[name=dst]');
    assert.equal(await page.locator('form.confirm input[name=live]').count(), 0, 'a container moves cold: no live choice');
    await page.selectOption('form.confirm select[name=dst]', 'node2');
    await page.click('form.confirm button.confirm-yes');
    await page.waitForSelector('.outcome', { timeout: 120_000 });
    assert.equal(await page.getAttribute('.outcome', 'data-exit'), '0', await page.textContent('.outcome') ?? '');
    assert.match((await page.textContent('.outcome pre.stdout'))!, /^downtime: \d+ ms \(stopped on node1 -> started on node2\)\nmigrated: w1 node1 -> node2 \(generation \d+/);
    await page.waitForFunction(() => document.querySelector('#envs tr[data-jname="w1"] td.owner')?.textContent === 'node2', undefined, { timeout: 30_000 });
    await p2.waitForFunction(() => document.querySelector('#envs tr[data-jname="w1"] td.owner')?.textContent === 'node2', undefined, { timeout: 30_000 });
    assert.equal(jlsState(fx.n2, 'w1'), 'On');
    await p2.waitForFunction(() => document.querySelector('#envs tr[data-jname="w1"] td.state')?.textContent === 'On', undefined, { timeout: 30_000 });
    await p2.screenshot({ path: join(SHOTS, 'cluster-node2.png'), fullPage: true });
    await p2ctx.close();
  });

  test('log out: the session ends; the next page asks for a login again', async () => {
    await page.goto(consoles.get('node1')!.url + '/');
    await page.click('header form button');
    await page.waitForURL(/\/login$/);
    await page.goto(consoles.get('node1')!.url + '/');
    assert.match(page.url(), /\/login$/);
    const r = await page.evaluate(async () => (await fetch('/partials/cluster')).status);
    assert.equal(r, 401);
  });

  test('every action is in the audit log: who, what, when, result', () => {
    const lines = audit(fx.n1);
    const admin = fx.n1.ok(['token', 'list', '--json']).json.tokens.find((t: any) => t.role === 'admin').id;
    const has = (f: (l: Record<string, any>) => boolean, what: string) => assert.ok(lines.some(f), `${what} not in ${JSON.stringify(lines, null, 1)}`);
    for (const l of lines) assert.ok(typeof l.time === 'number' && l.what && l.result, JSON.stringify(l));
    has((l) => l.what === 'login' && l.result === 'refused' && l.who === null, 'the failed login');
    has((l) => l.what === 'login' && l.result === 'ok' && l.who?.token === admin, 'the admin login');
    has((l) => l.what === 'stop' && l.jname === 'w1' && l.result === 'ok' && l.exitCode === 0 && l.who?.role === 'admin', 'the stop');
    has((l) => l.what === 'start' && l.result === 'failed' && l.exitCode > 0 && l.code, 'the refused start');
    has((l) => l.what === 'stop' && l.result === 'refused' && /CSRF/.test(l.message), 'the CSRF refusal');
    has((l) => l.what === 'stop' && l.result === 'refused' && l.who?.role === 'viewer', 'the viewer refusal');
    has((l) => l.what === 'shell' && l.result === 'ok' && l.jname === 'w1', 'the shell');
    has((l) => l.what === 'migrate' && l.result === 'ok' && l.detail?.dst === 'node2', 'the migration');
    has((l) => l.what === 'logout' && l.result === 'ok' && l.who?.token === admin, 'the logout');
  });
});
