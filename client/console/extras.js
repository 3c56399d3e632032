// The env page's extras (dist/console/extras.js): a shell (or a VM's serial console: the same
// terminal, another websocket) in xterm over a websocket and the
// CPU/memory plots (uPlot). Loaded only by the env page.
import { Terminal } from '@xterm/xterm';
import uPlot from 'uplot';

function openShell(btn) {
  const box = document.getElementById('terminal');
  const term = new Terminal({ cols: 100, rows: 24, convertEol: false });
  term.open(box);
  window.berthTerm = term;
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${proto}//${location.host}${btn.dataset.ws}`);
  ws.binaryType = 'arraybuffer'; // the VM serial console sends raw bytes
  ws.onopen = () => { ws.send(`1${term.cols}x${term.rows}`); box.dataset.open = '1'; term.focus(); };
  ws.onmessage = (e) => term.write(typeof e.data === 'string' ? e.data : new Uint8Array(e.data));
  ws.onclose = (e) => { box.dataset.closed = String(e.code); term.write(`\r\n[closed ${e.code}]\r\n`); };
  term.onData((d) => { if (ws.readyState === 1) ws.send(`0${d}`); });
  btn.disabled = true;
}

async function plots(div) {
  const r = await fetch(div.dataset.stats, { credentials: 'same-origin' });
  if (!r.ok) return;
  const { samples } = await r.json();
  div.textContent = '';
  div.dataset.samples = String(samples.length);
  if (!samples.length) { div.textContent = 'no samples yet (one every console_stats_sec seconds)'; return; }
  const t = samples.map((s) => s.t);
  const mk = (label, values, fmt) => new uPlot({
    width: 420, height: 140, title: label,
    series: [{}, { label, stroke: '#2266aa', value: (u, v) => (v == null ? '-' : fmt(v)) }],
    axes: [{}, { size: 72, values: (u, vals) => vals.map(fmt) }],
  }, [t, values], div);
  mk('CPU', samples.map((s) => s.cpu * 100), (v) => `${v.toFixed(1)}%`);
  // a VM's line: qemu's resident memory; the most it may use (its RAM) in the title
  const max = samples[samples.length - 1].memMax;
  mk(max ? `memory (of ${(max / 1048576).toFixed(0)} MiB)` : 'memory', samples.map((s) => s.mem / 1048576), (v) => `${v.toFixed(1)} MiB`);
}

function start() {
  const btn = document.getElementById('shell-open');
  if (btn) btn.addEventListener('click', () => openShell(btn));
  const div = document.getElementById('plots');
  if (div) { void plots(div); setInterval(() => void plots(div), 30000); }
}
if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
