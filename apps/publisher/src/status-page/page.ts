/**
 * The status page: one HTML document that polls /status/data every second and redraws. Its only
 * assets (the uPlot chart library, the icon) are served by the process itself, so it works on an
 * isolated operations network. All values are inserted with textContent, never as HTML.
 */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Push server status</title>
<link rel="icon" href="/favicon.ico">
<link rel="stylesheet" href="/status/assets/uplot.min.css">
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2733; background: #f6f8fa; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  h2 { font-size: 14px; margin: 0 0 4px; font-weight: 600; }
  .muted { color: #66717d; }
  .cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
  .card { background: #fff; border: 1px solid #d8dee4; border-radius: 6px; padding: 10px 14px; min-width: 120px; }
  .card .v { font-size: 22px; font-weight: 600; }
  .ok { color: #1a7f37; } .bad { color: #cf222e; }
  .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 12px; margin: 0 0 16px; }
  .chart { background: #fff; border: 1px solid #d8dee4; border-radius: 6px; padding: 10px 12px; min-height: 230px; }
  table { border-collapse: collapse; background: #fff; border: 1px solid #d8dee4; min-width: 60%; }
  th, td { text-align: right; padding: 6px 10px; border-bottom: 1px solid #eaeef2; }
  th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
</style>
</head>
<body>
<h1>Push server status</h1>
<div class="muted">Refreshes every second. Updated: <span id="updated">never</span>; process reports at most <span id="age">?</span> old. <span id="error" class="bad"></span></div>
<div class="cards">
  <div class="card"><div class="muted">Redis</div><div class="v" id="redis">?</div></div>
  <div class="card"><div class="muted">Processes</div><div class="v" id="procs">?</div></div>
  <div class="card"><div class="muted">WebSockets</div><div class="v" id="ws">?</div></div>
  <div class="card"><div class="muted">Long polls</div><div class="v" id="lp">?</div></div>
  <div class="card"><div class="muted">Channels</div><div class="v" id="channels">?</div></div>
  <div class="card"><div class="muted">Published / s</div><div class="v" id="pubrate">?</div></div>
  <div class="card"><div class="muted">Delivered / s</div><div class="v" id="delrate">?</div></div>
  <div class="card"><div class="muted">Latency p50 / p99</div><div class="v" id="latency">?</div></div>
</div>
<div class="charts">
  <div class="chart"><h2>Publishes / s</h2><div id="chart-pub"></div></div>
  <div class="chart"><h2>Deliveries / s</h2><div id="chart-del"></div></div>
  <div class="chart"><h2>Connections</h2><div id="chart-conn"></div></div>
  <div class="chart"><h2>End-to-end latency, store to listener (ms)</h2><div id="chart-lat"></div></div>
</div>
<table>
  <thead><tr><th>Process</th><th>Id</th><th>PID</th><th>Port</th><th>WebSockets</th><th>Long polls</th><th>Channels</th><th>Msgs / s</th><th>Latency p99</th><th>Reported</th></tr></thead>
  <tbody id="rows"></tbody>
</table>
<script src="/status/assets/uplot.min.js"></script>
<script>
const $ = (id) => document.getElementById(id);
const set = (id, v, cls) => { const e = $(id); e.textContent = String(v); if (cls !== undefined) e.className = 'v ' + cls; };
const ms = (v) => (v === null || v === undefined ? '-' : (v < 10 ? v.toFixed(1) : Math.round(v)) + ' ms');
const WINDOW_S = 600;
// Chart series: [seconds, ...values]; points arrive once a second from /status/data?since=.
const series = { t: [], pub: [], del: [], ws: [], lp: [], p50: [], p99: [] };
let lastT = 0;
const charts = [];
function chart(id, names, colors, keys) {
  if (typeof uPlot !== 'function') return null;
  const el = $(id);
  const opts = {
    width: Math.max(300, el.clientWidth), height: 190, legend: { live: false },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] } },
    series: [{}, ...names.map((n, i) => ({ label: n, stroke: colors[i], width: 1.5, spanGaps: false }))],
    axes: [{}, { size: 55 }],
  };
  const u = new uPlot(opts, [[], ...names.map(() => [])], el);
  charts.push({ u, keys, el });
  return u;
}
chart('chart-pub', ['published'], ['#1f6feb'], ['pub']);
chart('chart-del', ['delivered'], ['#1a7f37'], ['del']);
chart('chart-conn', ['WebSockets', 'long polls'], ['#8250df', '#bf8700'], ['ws', 'lp']);
chart('chart-lat', ['p50', 'p99'], ['#1f6feb', '#cf222e'], ['p50', 'p99']);
window.addEventListener('resize', () => { for (const c of charts) c.u.setSize({ width: Math.max(300, c.el.clientWidth), height: 190 }); });
function addHistory(points) {
  for (const p of points) {
    if (p.t <= lastT) continue;
    lastT = p.t;
    series.t.push(p.t / 1000); series.pub.push(p.publishRate); series.del.push(p.deliveryRate);
    series.ws.push(p.websockets); series.lp.push(p.pollings); series.p50.push(p.latencyP50); series.p99.push(p.latencyP99);
  }
  const from = series.t.findIndex((t) => t >= lastT / 1000 - WINDOW_S);
  if (from > 0) for (const k of Object.keys(series)) series[k].splice(0, from);
  for (const c of charts) c.u.setData([series.t, ...c.keys.map((k) => series[k])]);
  document.body.dataset.points = String(series.t.length);
}
async function refresh() {
  try {
    const res = await fetch('/status/data?since=' + lastT, { cache: 'no-store' });
    if (!res.ok) throw new Error('HTTP ' + res.status);
    const d = await res.json();
    if (d.backend === 'memory') set('redis', 'none (memory backend)', '');
    else set('redis', d.redis.up ? 'up, ' + d.redis.latencyMs + ' ms' : 'DOWN', d.redis.up ? 'ok' : 'bad');
    set('procs', d.totals.publishers + ' pub / ' + d.totals.listeners + ' sub');
    set('ws', d.totals.websockets); set('lp', d.totals.pollings); set('channels', d.totals.channels);
    set('pubrate', d.totals.publishRate); set('delrate', d.totals.deliveryRate);
    set('latency', d.totals.latencyP50 === null ? '-' : ms(d.totals.latencyP50) + ' / ' + ms(d.totals.latencyP99));
    const body = $('rows');
    body.replaceChildren(...d.processes.map((p) => {
      const tr = document.createElement('tr');
      tr.dataset.type = p.type;
      const cells = [p.type + (p.draining ? ' (draining)' : ''), p.processUniqueId, p.pid, p.port, p.websockets, p.pollings, p.channels, p.rate, p.type === 'listener' ? ms(p.latencyP99) : '', (p.ageMs / 1000).toFixed(1) + ' s ago'];
      for (const c of cells) { const td = document.createElement('td'); td.textContent = String(c); tr.append(td); }
      return tr;
    }));
    const oldest = d.processes.reduce((a, p) => Math.max(a, p.ageMs), 0);
    $('age').textContent = (oldest / 1000).toFixed(1) + ' s';
    $('updated').textContent = new Date(d.generatedAt).toLocaleTimeString();
    addHistory(d.history);
    $('error').textContent = typeof uPlot === 'function' ? '' : 'charts unavailable: the chart library did not load';
    document.body.dataset.loaded = 'yes';
  } catch (err) {
    $('error').textContent = 'refresh failed: ' + err.message;
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
`;
