/**
 * The console's pages, rendered on the server as strings. Every value goes through
 * {@link esc} (the `html` tag escapes each interpolation unless it is already {@link Html});
 * no page holds any inline script or event handler attribute: the only scripts are the bundled
 * files under /assets/ (htmx, the console's client, xterm, uPlot), as the CSP demands.
 */
import type { ClusterView } from '../../nodes/cluster.js';
import { formatHeartbeat } from '../../nodes/cluster.js';
import type { Outcome } from './actions.js';
import type { Role } from '../../tokens.js';

/** Markup that is already safe. */
export class Html {
  constructor(readonly s: string) {}
  toString(): string { return this.s; }
}

/** Escapes text for HTML content and quoted attribute values. */
export function esc(v: unknown): string {
  return String(v ?? '').replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Tagged template: interpolations are escaped, arrays joined, Html kept as is. */
export function html(strings: TemplateStringsArray, ...vals: unknown[]): Html {
  let out = strings[0]!;
  vals.forEach((v, i) => {
    const one = (x: unknown): string => (x instanceof Html ? x.s : Array.isArray(x) ? x.map(one).join('') : x === undefined || x === null || x === false ? '' : esc(x));
    out += one(v) + strings[i + 1]!;
  });
  return new Html(out);
}

/** What every page needs to know of its viewer. */
export interface PageCtx {
  node: string;
  role?: Role;
  tokenId?: string;
  csrf?: string;
}

const HTMX_CONFIG = JSON.stringify({ allowEval: false, allowScriptTags: false, includeIndicatorStyles: false, selfRequestsOnly: true, historyCacheSize: 0 });

/** A whole page. `scripts`: extra bundled files (/assets/...). */
export function page(p: PageCtx, title: string, body: Html, scripts: string[] = [], modules: string[] = []): string {
  return '<!doctype html>' + html`<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="htmx-config" content="${HTMX_CONFIG}">
${p.csrf ? html`<meta name="berth-csrf" content="${p.csrf}">` : ''}
<title>${title} · berth ${p.node}</title>
<link rel="stylesheet" href="/assets/console.css">
<script src="/assets/htmx.min.js" defer></script>
<script src="/assets/console.js" defer></script>
${scripts.map((s) => html`<script src="${s}" defer></script>`)}
${modules.map((s) => html`<script type="module" src="${s}"></script>`)}
</head><body${p.csrf ? html` data-sse="/events"` : ''}>
<header><a href="/">berth</a> · node <b>${p.node}</b>
${p.role ? html`<span class="who">token ${p.tokenId} (${p.role})</span>
<form method="post" action="/logout" class="inline"><input type="hidden" name="_csrf" value="${p.csrf}"><button>log out</button></form>` : ''}
</header>
<main>${body}</main></body></html>`.s;
}

export function loginPage(node: string, error?: string): string {
  return page({ node }, 'log in', html`<h1>Log in</h1>
${error ? html`<p class="error" id="login-error">${error}</p>` : ''}
<form method="post" action="/login" id="login">
<label>token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
<button type="submit">log in</button></form>
<p class="note">Make a token on this node: <code>berth token add role=admin</code> (or role=viewer).</p>`);
}

const actionButtons = (jname: string, state: string, p: PageCtx): Html => {
  if (p.role !== 'admin') return html`<span class="note">view only</span>`;
  const acts = state === 'On' ? ['stop', 'restart', 'migrate'] : state === 'Off' ? ['start', 'migrate', 'unregister'] : ['unregistered', 'released'].includes(state) ? ['register'] : ['start', 'stop'];
  return html`${acts.map((a) => html`<button class="act" data-act="${a}" hx-get="/env/${encodeURIComponent(jname)}/confirm/${a}" hx-target="#dialog" hx-swap="innerHTML">${a}</button> `)}`;
};

/** One row of the cluster table (data-jname: what a live update replaces). */
export function envRow(e: ClusterView['envs'][number], node: string, p: PageCtx): Html {
  return html`<tr data-jname="${e.jname}"><td><a href="/env/${encodeURIComponent(e.jname)}">${e.jname}</a></td><td>${e.emulator}</td><td class="owner">${e.owner ?? '-'}</td><td class="gen">${e.generation}</td><td class="state">${e.state}</td><td>${formatHeartbeat(e.heartbeat)}</td><td>${e.ip4_addr || '-'}</td><td>${e.owner === node || !e.owner ? actionButtons(e.jname, e.state, p) : ''}</td></tr>`;
}

/** The nodes table. */
export function nodesTable(v: ClusterView): Html {
  return html`<table id="nodes"><thead><tr><th>node</th><th>agent</th><th>heartbeat</th><th>envs</th></tr></thead><tbody>
${v.nodes.map((n) => html`<tr data-node="${n.name}"><td>${n.name}${n.self ? ' (this node)' : ''}</td><td class="answering">${n.self ? 'this node' : n.answering === null ? 'not asked' : n.answering ? 'answering' : html`not answering${n.problem ? html` <span class="note">${n.problem}</span>` : ''}`}</td><td>${formatHeartbeat(n.heartbeat)}</td><td class="count">${n.envs}</td></tr>`)}
</tbody></table>`;
}

/** The cluster table and the nodes table (the page's #cluster; also the partial of a full refresh). */
export function clusterTable(v: ClusterView, p: PageCtx): Html {
  return html`<table id="envs"><thead><tr><th>jname</th><th>emulator</th><th>owner</th><th>generation</th><th>state</th><th>heartbeat</th><th>address</th><th></th></tr></thead><tbody>
${v.envs.map((e) => envRow(e, v.node, p))}
</tbody></table>
<h2>Nodes</h2>
${nodesTable(v)}`;
}

/**
 * The rows of `jnames` (those the view has) and the nodes table: what a live update of the
 * cluster page replaces when only some rows changed.
 */
export function clusterRows(v: ClusterView, jnames: Set<string>, p: PageCtx): Html {
  return html`<table><tbody>${v.envs.filter((e) => jnames.has(e.jname)).map((e) => envRow(e, v.node, p))}</tbody></table>${nodesTable(v)}`;
}

export function clusterPage(v: ClusterView, p: PageCtx): string {
  return page(p, 'cluster', html`<h1>Cluster as node ${v.node} sees it</h1>
<div id="cluster" data-rows="/partials/rows" data-full="/partials/cluster">${clusterTable(v, p)}</div>
<div id="dialog"></div>`);
}

/**
 * The confirmation step of an action. `live`: migrate offers live (jmigrate live=1), checked:
 * the env runs and its engine has live migration (actions.ts liveOffered).
 */
export function confirmForm(jname: string, action: string, p: PageCtx, nodes: string[], live = false): Html {
  return html`<form class="confirm" hx-post="/env/${encodeURIComponent(jname)}/${action}" hx-target="#dialog" hx-swap="innerHTML">
<input type="hidden" name="_csrf" value="${p.csrf}">
<p>${action} <b>${jname}</b> on node ${p.node}?</p>
${action === 'migrate' ? html`<label>destination <select name="dst">${nodes.map((n) => html`<option value="${n}">${n}</option>`)}</select></label>` : ''}
${action === 'migrate' && live ? html`<label><input type="checkbox" name="live" value="1" checked> live: it keeps running (memory sent, disk shared); unchecked, it is stopped here and started there</label>` : ''}
<button type="submit" class="confirm-yes">yes, ${action}</button>
<button type="button" class="confirm-no" hx-get="/partials/empty" hx-target="#dialog">cancel</button></form>`;
}

/** The result of an action, as the CLI prints it. */
export function outcomeBox(o: Outcome): Html {
  return html`<div class="outcome ${o.exitCode === 0 ? 'ok' : 'refused'}" data-exit="${o.exitCode}">
<p>berth ${o.command} jname=${o.jname}: exit code <b class="exit">${o.exitCode}</b>${o.code ? html` (<code>${o.code}</code>)` : ''}</p>
${o.stdout ? html`<pre class="stdout">${o.stdout}</pre>` : ''}${o.stderr ? html`<pre class="stderr">${o.stderr}</pre>` : ''}</div>`;
}

/** Settings whose value the pages never show (only that it is set). */
const SECRET_KEYS = new Set(['vnc_password']);

/** What the env page shows. */
export interface EnvView {
  jname: string;
  cluster?: ClusterView['envs'][number];
  settings: Record<string, string> | null;
  descriptor: string | null;
  hooks: { mnt_start: string; mnt_stop: string };
  log: string;
  history: { generation: number; kind: string; node: string; at: string; from?: string }[];
  running: boolean;
  emulator: string;
  consoleKind: string;
}

export function envState(v: EnvView, p: PageCtx, node: string): Html {
  const e = v.cluster;
  return html`<table id="state"><tr><th>state</th><td class="state">${e?.state ?? '-'}</td></tr>
<tr><th>owner</th><td class="owner">${e?.owner ?? '-'}</td></tr><tr><th>generation</th><td class="gen">${e?.generation ?? 0}</td></tr>
<tr><th>heartbeat</th><td>${formatHeartbeat(e?.heartbeat ?? null)}</td></tr><tr><th>address</th><td>${e?.ip4_addr || '-'}</td></tr></table>
<p>${!e?.owner || e.owner === node ? actionButtons(v.jname, e?.state ?? '', p) : html`<span class="note">owned by ${e.owner}: act on its node's console</span>`}</p>`;
}

export function envPage(v: EnvView, p: PageCtx): string {
  const vm = v.emulator === 'qemu' || v.emulator === 'bhyve';
  const shell = p.role === 'admin' && v.running && !vm;
  // a VM's serial console and screen: admin only, like the shell (the websockets refuse a viewer too)
  const serial = p.role === 'admin' && v.running && vm && v.consoleKind === 'serial';
  const screen = p.role === 'admin' && v.running && v.emulator === 'qemu';
  const j = encodeURIComponent(v.jname);
  return page(p, v.jname, html`<h1>${v.jname} <span class="note">${v.emulator}</span></h1>
<div id="env-state" hx-get="/partials/env/${encodeURIComponent(v.jname)}" hx-trigger="berth-changed from:body" hx-swap="innerHTML">${envState(v, p, p.node)}</div>
<div id="dialog"></div>
${v.running ? html`<h2>CPU and memory (last hour)</h2><div id="plots" data-stats="/env/${encodeURIComponent(v.jname)}/stats"></div>` : ''}
${shell ? html`<h2>Shell</h2><p><button id="shell-open" data-ws="/ws/shell/${encodeURIComponent(v.jname)}">open a shell</button></p><div id="terminal"></div>` : ''}
${serial ? html`<h2>Serial console</h2><p><button id="shell-open" data-ws="/ws/console/${j}">open the serial console</button></p><div id="terminal"></div>` : ''}
${screen ? html`<h2>Screen</h2><p><button id="screen-open" data-ws="/ws/vnc/${j}">show the screen</button>
<form id="screen-password" hidden><label>VNC password <input type="password" name="password" autocomplete="off"></label> <button type="submit">send</button></form>
<span id="screen-status" class="note"></span></p><div id="screen"></div>` : ''}
<h2>Settings</h2>${v.settings ? html`<table id="settings">${Object.entries(v.settings).sort(([a], [b]) => a.localeCompare(b)).map(([k, val]) => html`<tr><th>${k}</th><td>${SECRET_KEYS.has(k) && val ? '(set)' : val}</td></tr>`)}</table>` : html`<p class="note">not registered on this node</p>`}
<h2>Hooks</h2><table id="hooks"><tr><th>mnt_start</th><td>${v.hooks.mnt_start}</td></tr><tr><th>mnt_stop</th><td>${v.hooks.mnt_stop}</td></tr></table>
<h2>Descriptor</h2><pre id="descriptor">${v.descriptor ?? '(none readable on this node)'}</pre>
<h2>Lease generations</h2><table id="history"><tr><th>generation</th><th>kind</th><th>node</th><th>at</th><th>from</th></tr>
${v.history.map((h) => html`<tr><td>${h.generation}</td><td>${h.kind}</td><td>${h.node}</td><td>${h.at}</td><td>${h.from ?? ''}</td></tr>`)}</table>
<h2>Log (last lines of var/log/${v.jname}.log)</h2><pre id="log">${v.log || '(empty)'}</pre>`, shell || v.running ? ['/assets/extras.js'] : [], screen ? ['/assets/vnc.js'] : []);
}

export function errorPage(p: PageCtx, status: number, message: string): string {
  return page(p, String(status), html`<h1>${status}</h1><p class="error">${message}</p>`);
}
