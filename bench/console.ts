/**
 * bench/console (issue 14): the web console at the size of a site, in Debian's chromium
 * (playwright-core). Three nodes on this machine share one ownership directory (`lease_dir=`
 * of initenv: one local directory, no DFS: this measures the console, not the storage); each
 * registers BENCH_CONSOLE_ENVS/3 runc envs (default 1,000 in all) cheaply (the descriptors
 * jregister adopts, written directly, then one `jregister jname=<prefix>*` per node), a few of
 * node1's are started; the three agents know each other (`node add`), node1 serves the console.
 *  - the cluster page: from the navigation to the table painted with every row (measured in the
 *    page: performance.now(), whose origin is the navigation, at the first animation frame
 *    after the last row is in the DOM, and after that frame's paint). Target <= 1 s at 1,000 envs.
 *    Baselines in the same run: `berth cluster ls --json` on node1 (the CLI computing the same
 *    view), and the same page saved as a static file without scripts, served by a plain HTTP
 *    server (what the browser alone needs to lay out 1,000 rows);
 *  - a state change reaching the open cluster page (server-sent events, no reload): `berth
 *    jstop`/`jstart` of a container through the CLI, from the moment the CLI returns to the
 *    moment the row's state cell shows the new state; three ways: on node1 through its agent
 *    (the CLI's fast path: the agent's API tells the console), on node1 by the CLI alone
 *    (BERTH_AGENT=0: seen at the console's next look, every second), on node2 through node2's
 *    agent (seen at the next look, from node2's agent's answer). Target <= 1 s. Baseline:
 *    `cluster ls`. Medians and worst of 7 each (a random pause before each change, so that the
 *    changes do not fall in step with the looks). Also the page's own part: from the event to
 *    the rows replaced.
 * Needs root (runc) and /usr/bin/chromium. BENCH_CONSOLE_ENVS (default 1000).
 */
import { appendFileSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { berthAsync, median, medians, report, writeUnregistered } from './common.js';
import { TestNode, freePort } from '../test/integration/cluster-twonode.js';
import { berthOk, tempDir } from '../test/helpers/cli.js';

const TOTAL = Number(process.env.BENCH_CONSOLE_ENVS ?? 1000);
const RUNNING = 3;
const PREFIX = ['ca', 'cb', 'cc'];
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'];

const base = tempDir('berth-bcon-');
const lease = join(base, 'lease');
const nodes = [0, 1, 2].map((i) => new TestNode(`node${i + 1}`, join(base, `n${i + 1}`, 'wd')));

/**
 * Navigates to `url` and returns the ms from the navigation to the first frame painted with
 * `rows` rows in #envs (in-page clock: performance.now() starts at the navigation).
 */
async function paintTime(page: Page, url: string, rows: number): Promise<number> {
  await page.goto(url, { waitUntil: 'commit' });
  // a string, not a function: tsx would wrap a named inner function in a helper the page lacks
  return page.evaluate(`new Promise((resolve) => {
    const look = () => {
      if (document.querySelectorAll('#envs tbody tr').length >= ${rows}) {
        // this frame renders the rows; the task after it runs once it is painted
        requestAnimationFrame(() => setTimeout(() => resolve(performance.now()), 0));
      } else requestAnimationFrame(look);
    };
    look();
  })`) as Promise<number>;
}

const envName = (k: number, i: number) => `${PREFIX[k]}${String(i).padStart(5, '0')}`;
const runName = (i: number) => `crun${i}`;
const REMOTE = 'cremote';

let stopStatic = () => {};
let browser: Awaited<ReturnType<typeof chromium.launch>> | undefined;
try {
  // three nodes, one ownership directory
  const port = await freePort();
  for (const [k, n] of nodes.entries()) {
    berthOk(['initenv', `workdir=${n.wd}`, `nodename=${n.name}`, `lease_dir=${lease}`]);
    n.ok(['base', 'busybox', 'name=bb']);
    if (k === 0) appendFileSync(join(n.wd, 'etc', 'berth.conf'), `console_port="${port}"\n`);
  }
  const t0 = performance.now();
  // RUNNING real containers on node1 and one on node2 (jcreate, started), the rest only registered
  const per = [0, 1, 2].map((k) => Math.floor(TOTAL / 3) + (k < TOTAL % 3 ? 1 : 0) - (k === 0 ? RUNNING : k === 1 ? 1 : 0));
  await Promise.all(nodes.map(async (n, k) => {
    for (let i = 0; i < per[k]!; i += 32) await Promise.all(Array.from({ length: Math.min(32, per[k]! - i) }, (_, j) => writeUnregistered(n.wd, envName(k, i + j))));
    await berthAsync(n, ['jregister', `jname=${PREFIX[k]}*`]);
  }));
  console.log(`# ${TOTAL} envs registered over 3 nodes in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  for (let i = 0; i < RUNNING; i++) {
    nodes[0]!.ok(['jcreate', `jname=${runName(i)}`, 'base=bb']);
    nodes[0]!.ok(['jstart', `jname=${runName(i)}`]);
  }
  nodes[1]!.ok(['jcreate', `jname=${REMOTE}`, 'base=bb']);
  nodes[1]!.ok(['jstart', `jname=${REMOTE}`]);
  for (const n of nodes) { n.port = await freePort(); await n.startAgent(); }
  for (const a of nodes) for (const b of nodes) if (a !== b) a.ok(['node', 'add', `name=${b.name}`, `url=${b.url}`, `token=${b.token}`]);
  const n1 = nodes[0]!;
  const token = n1.ok(['token', 'add', 'role=admin', '--json']).json.token.token as string;
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    try { await fetch(url + '/login'); break; } catch { if (i > 300) throw new Error('console did not answer'); await new Promise((r) => setTimeout(r, 100)); }
  }
  const seen = n1.ok(['cluster', 'ls', '--json']).json.envs.length as number;
  if (seen !== TOTAL) throw new Error(`cluster ls on node1 lists ${seen} envs, not ${TOTAL}`);

  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  await page.goto(url + '/login');
  await page.fill('input[name=token]', token);
  await page.click('#login button[type=submit]');
  await page.waitForSelector('#envs');

  // the same page, saved without its scripts, served as a static file (with its stylesheet)
  const cookie = (await ctx.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
  const saved = (await (await fetch(url + '/', { headers: { Cookie: cookie } })).text()).replace(/<script\b[^>]*><\/script>/g, '');
  const css = await (await fetch(url + '/assets/console.css')).text();
  const staticPort = await freePort();
  const srv = createServer((req, res) => {
    if (req.url === '/assets/console.css') { res.writeHead(200, { 'Content-Type': 'text/css' }); res.end(css); return; }
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(saved);
  }).listen(staticPort, '127.0.0.1');
  stopStatic = () => srv.close();
  const spage = await ctx.newPage();

  const paints: number[] = [];
  const statics: number[] = [];
  const [, , ls, served] = await medians(5, [
    async () => { paints.push(await paintTime(page, url + '/', TOTAL)); },
    async () => { statics.push(await paintTime(spage, `http://127.0.0.1:${staticPort}/`, TOTAL)); },
    () => n1.ok(['cluster', 'ls', '--json']),
    // the agent's part: the view computed (no page listens: nothing is cached) and rendered
    async () => { await (await fetch(url + '/', { headers: { Cookie: cookie } })).text(); },
  ]);
  const med = (x: number[]) => { const s = x.slice(1).sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; }; // without the warm-up
  const paint = med(paints);
  const stat = med(statics);
  report(`cluster page, ${TOTAL} envs over 3 nodes: navigation to all rows painted`, `${paint.toFixed(0)} ms (${(paint / ls!).toFixed(2)}x cluster ls, ${(paint / stat).toFixed(1)}x static)`, '<= 1000 ms', paint <= 1000);
  report('  baseline: the same table as a static page (no scripts)', `${stat.toFixed(0)} ms`, 'none', true);
  report('  baseline: berth cluster ls --json on the console\'s node', `${ls!.toFixed(0)} ms`, 'none', true);
  report('  of which the agent\'s answer (view computed, page rendered)', `${served!.toFixed(0)} ms`, 'none', true);

  // a state change reaching the open page
  await page.goto(url + '/');
  await page.waitForFunction(() => document.body.dataset.live === '1');
  // in the page: from each event to the page updated (client/console/main.js berth-updated)
  await page.evaluate(`(() => {
    window.benchUpdates = [];
    document.body.addEventListener('berth-updated', (e) => { window.benchUpdates.push([e.detail.ms, e.detail.rows]); });
  })()`);
  const on = new Map<string, boolean>();
  /**
   * Stops or starts `jname` on node `n` by the CLI; returns the ms from the CLI's return to the
   * open page showing the new state. A random pause first, so that the changes do not fall in
   * step with the console's looks (once a second).
   */
  const change = async (n: TestNode, jname: string, env: Record<string, string> = {}): Promise<number> => {
    await new Promise((r) => setTimeout(r, Math.random() * 1000));
    const was = on.get(jname) ?? true;
    const r = n.run([was ? 'jstop' : 'jstart', `jname=${jname}`], 60_000, env);
    const t0 = performance.now();
    if (r.code !== 0) throw new Error(`${was ? 'jstop' : 'jstart'} ${jname} on ${n.name}: ${r.stderr}`);
    on.set(jname, !was);
    await page.waitForFunction(({ j, w }) => document.querySelector(`#envs tr[data-jname="${j}"] td.state`)?.textContent === w, { j: jname, w: was ? 'Off' : 'On' }, { timeout: 30_000, polling: 20 });
    return performance.now() - t0;
  };
  const ways = [
    ['through this node\'s agent', () => change(n1, runName(0))], // the CLI hands jstop/jstart to the agent, whose API tells the console at once
    ['by the CLI alone (BERTH_AGENT=0)', () => change(n1, runName(1), { BERTH_AGENT: '0' })], // seen at the console's next look
    ['on another node, through its agent', () => change(nodes[1]!, REMOTE)], // its agent's answer at the next look
  ] as const;
  const lat: number[][] = ways.map(() => []);
  for (let i = 0; i < 8; i++) for (const [k, [, f]] of ways.entries()) { const t = await f(); if (i > 0) lat[k]!.push(t); }
  const ls2 = await median(3, () => n1.ok(['cluster', 'ls']));
  for (const [k, [what]] of ways.entries()) {
    const x = lat[k]!.sort((a, b) => a - b);
    const m = x[Math.floor(x.length / 2)]!;
    report(`state change to the open page (SSE), ${TOTAL} envs: ${what}`, `${m.toFixed(0)} ms, worst ${x[x.length - 1]!.toFixed(0)} (${(m / ls2).toFixed(1)}x cluster ls)`, '<= 1000 ms (median)', m <= 1000);
  }
  const updates = (await page.evaluate('window.benchUpdates')) as [number, number][];
  const upd = updates.map((u) => u[0]).sort((a, b) => a - b)[Math.floor(updates.length / 2)] ?? NaN;
  const replaced = updates.map((u) => (u[1] < 0 ? 'all' : String(u[1])));
  report('  of which the page\'s own update after the event (fetch + replace)', `${upd.toFixed(0)} ms (median of ${updates.length})`, 'none', true);
  console.log(`#   rows replaced per update: ${replaced.join(' ')}`);
  const rows = await page.locator('#envs tbody tr').count();
  if (rows !== TOTAL) throw new Error(`the open page shows ${rows} rows after the changes, not ${TOTAL}`);
} finally {
  stopStatic();
  await browser?.close();
  for (const n of nodes) await n.stopAgent('SIGTERM').catch(() => undefined);
  const n1 = nodes[0]!;
  for (let i = 0; i < RUNNING; i++) n1.run(['jstop', `jname=${runName(i)}`]);
  nodes[1]!.run(['jstop', `jname=${REMOTE}`]);
  const mounts = readFileSync('/proc/self/mounts', 'utf8');
  if (!mounts.includes(base + '/')) rmSync(base, { recursive: true, force: true });
}
