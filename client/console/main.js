// The console's client code (bundled by scripts/bundle.mjs into dist/console/console.js; no
// inline script anywhere: the CSP forbids it). Live updates: one EventSource on /events per
// page; each `change` triggers `berth-changed` on <body>, which the page's hx-trigger
// attributes listen to (htmx then fetches the parts again).
/* global htmx */
function start() {
  const src = document.body.dataset.sse;
  if (!src) return;
  const es = new EventSource(src);
  window.berthEvents = 0;
  es.addEventListener('change', () => {
    window.berthEvents++;
    htmx.trigger(document.body, 'berth-changed');
  });
  es.addEventListener('hello', () => { document.body.dataset.live = '1'; });
}
if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
