/**
 * The status page: one self-contained HTML document (no external assets, so it works on an
 * isolated operations network) that polls /status/data every two seconds and redraws. All values
 * are inserted with textContent, never as HTML.
 */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Push server status</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1d2733; background: #f6f8fa; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  .muted { color: #66717d; }
  .cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
  .card { background: #fff; border: 1px solid #d8dee4; border-radius: 6px; padding: 10px 14px; min-width: 130px; }
  .card .v { font-size: 22px; font-weight: 600; }
  .ok { color: #1a7f37; } .bad { color: #cf222e; }
  table { border-collapse: collapse; background: #fff; border: 1px solid #d8dee4; min-width: 60%; }
  th, td { text-align: right; padding: 6px 10px; border-bottom: 1px solid #eaeef2; }
  th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
</style>
</head>
<body>
<h1>Push server status</h1>
<div class="muted">Refreshes every 2 s. Updated: <span id="updated">never</span> <span id="error" class="bad"></span></div>
<div class="cards">
  <div class="card"><div class="muted">Redis</div><div class="v" id="redis">?</div></div>
  <div class="card"><div class="muted">Processes</div><div class="v" id="procs">?</div></div>
  <div class="card"><div class="muted">WebSockets</div><div class="v" id="ws">?</div></div>
  <div class="card"><div class="muted">Long polls</div><div class="v" id="lp">?</div></div>
  <div class="card"><div class="muted">Channels</div><div class="v" id="channels">?</div></div>
  <div class="card"><div class="muted">Published / s</div><div class="v" id="pubrate">?</div></div>
  <div class="card"><div class="muted">Delivered / s</div><div class="v" id="delrate">?</div></div>
</div>
<table>
  <thead><tr><th>Process</th><th>Id</th><th>PID</th><th>Port</th><th>WebSockets</th><th>Long polls</th><th>Channels</th><th>Msgs / s</th><th>Reported</th></tr></thead>
  <tbody id="rows"></tbody>
</table>
<script>
const $ = (id) => document.getElementById(id);
const set = (id, v, cls) => { const e = $(id); e.textContent = String(v); if (cls !== undefined) e.className = 'v ' + cls; };
async function refresh() {
  try {
    const res = await fetch('/status/data', { cache: 'no-store' });
    if (!res.ok) throw new Error('HTTP ' + res.status);
    const d = await res.json();
    if (d.backend === 'memory') set('redis', 'none (memory backend)', '');
    else set('redis', d.redis.up ? 'up, ' + d.redis.latencyMs + ' ms' : 'DOWN', d.redis.up ? 'ok' : 'bad');
    set('procs', d.totals.publishers + ' pub / ' + d.totals.listeners + ' sub');
    set('ws', d.totals.websockets); set('lp', d.totals.pollings); set('channels', d.totals.channels);
    set('pubrate', d.totals.publishRate); set('delrate', d.totals.deliveryRate);
    const body = $('rows');
    body.replaceChildren(...d.processes.map((p) => {
      const tr = document.createElement('tr');
      tr.dataset.type = p.type;
      const cells = [p.type + (p.draining ? ' (draining)' : ''), p.processUniqueId, p.pid, p.port, p.websockets, p.pollings, p.channels, p.rate, Math.round(p.ageMs / 1000) + ' s ago'];
      for (const c of cells) { const td = document.createElement('td'); td.textContent = String(c); tr.append(td); }
      return tr;
    }));
    $('updated').textContent = new Date(d.generatedAt).toLocaleTimeString();
    $('error').textContent = '';
    document.body.dataset.loaded = 'yes';
  } catch (err) {
    $('error').textContent = 'refresh failed: ' + err.message;
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
`;
