#!/usr/bin/env node
// Renders nginx/push.conf.template for the chosen process counts and ports.
// Usage: node scripts/lib/render-nginx.mjs --out FILE --prefix DIR --log-dir DIR \
//          --publishers "127.0.0.1:9010 127.0.0.1:9011" --listeners "127.0.0.1:8010 ..." [options]
// Options: --front-bind ADDR (127.0.0.1) --front-port N (8080) --pub-allow "CIDR ..." (empty = all)
//          --sub-conn-per-ip N (200) --max-body BYTES (1048576) --hold-s N (40) --ws-idle-s N (120)
//          --workers N|auto (auto) --nofile N (65536) --user "USER [GROUP]" (only used as root)
//          --access-log on|off (off) --max-fails N|auto (auto) --fail-timeout-s N (2) --template FILE
//          --njs-module FILE (/usr/lib/nginx/modules/ngx_http_js_module.so, Debian's libnginx-mod-http-js)
// Exits 2 with a message on a bad option, so the calling script can say what is wrong.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const opts = {
  template: `${root}nginx/push.conf.template`,
  'front-bind': '127.0.0.1',
  'front-port': '8080',
  'pub-allow': '',
  'sub-conn-per-ip': '200',
  'max-body': '1048576',
  'hold-s': '40',
  'ws-idle-s': '120',
  workers: 'auto',
  nofile: '65536',
  user: '',
  'access-log': 'off',
  'max-fails': 'auto',
  'fail-timeout-s': '2',
  'njs-module': '/usr/lib/nginx/modules/ngx_http_js_module.so',
};
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i += 2) {
  const k = args[i];
  const v = args[i + 1];
  if (!k?.startsWith('--') || v === undefined) fail(`bad argument ${JSON.stringify(k)} (expected --name value pairs)`);
  opts[k.slice(2)] = v;
}
function fail(msg) {
  process.stderr.write(`render-nginx: ${msg}\n`);
  process.exit(2);
}
const need = (k) => (opts[k] === undefined || opts[k] === '' ? fail(`--${k} is required`) : opts[k]);
const int = (k, min, max) => {
  const v = opts[k];
  if (!/^[0-9]+$/.test(v) || Number(v) < min || Number(v) > max) fail(`--${k}: whole number ${min}-${max} expected, got ${JSON.stringify(v)}`);
  return Number(v);
};
const hostPorts = (k) => {
  const list = need(k).split(/[\s,]+/).filter(Boolean);
  for (const hp of list) if (!/^[A-Za-z0-9.-]+:[0-9]{1,5}$|^\[[0-9a-fA-F:]+\]:[0-9]{1,5}$/.test(hp)) fail(`--${k}: ${JSON.stringify(hp)} is not host:port`);
  return list;
};

const publishers = hostPorts('publishers');
const listeners = hostPorts('listeners');
const allow = opts['pub-allow'].split(/[\s,]+/).filter(Boolean);
for (const a of allow) if (!/^[0-9a-fA-F.:]+(\/[0-9]{1,3})?$/.test(a)) fail(`--pub-allow: ${JSON.stringify(a)} is not an address or CIDR`);
if (!/^(auto|[0-9]{1,3})$/.test(opts.workers)) fail(`--workers: auto or a number, got ${JSON.stringify(opts.workers)}`);
const holdS = int('hold-s', 1, 3600);
const wsIdleS = int('ws-idle-s', 1, 3600);
const nofile = int('nofile', 1024, 10_000_000);
if (!['on', 'off'].includes(opts['access-log'])) fail('--access-log: on or off');
const logDir = need('log-dir');
if (!/^(auto|[0-9]{1,2})$/.test(opts['max-fails'])) fail(`--max-fails: auto or a number 0-99, got ${JSON.stringify(opts['max-fails'])}`);
const failTimeoutS = int('fail-timeout-s', 1, 3600);
// Passive health checks. A process on this host that is down refuses the connection at once, and
// nginx moves on to the next one for free; marking it failed would only keep a restarted process
// idle for fail_timeout (and, with one process left, answer 502 "no live upstreams" meanwhile). So
// loopback servers never count failures. A remote host that is down or unreachable costs a
// proxy_connect_timeout per attempt, and least_conn would keep choosing it (it has the fewest
// connections): after max_fails failures nginx leaves it alone for fail_timeout. Short (2 s), because
// a listener's 503 counts as a failure too (subscriber requests are retried on 503, for listeners
// that drain): while Redis fails over every listener answers 503, and a long fail_timeout then kept
// every listener disabled, and every subscriber on 502, for up to 10 s after they were ready again
// (the multi-host suite, docs/reliability.md "Several hosts"). An unreachable host costs one 2 s
// connect timeout per fail_timeout.
const isLoopback = (hp) => /^(127\.[0-9.]+|localhost|\[::1\]):/.test(hp);
const serverLine = (hp) => {
  const maxFails = opts['max-fails'] === 'auto' ? (isLoopback(hp) ? 0 : 3) : Number(opts['max-fails']);
  return maxFails === 0 ? `        server ${hp} max_fails=0;` : `        server ${hp} max_fails=${maxFails} fail_timeout=${failTimeoutS}s;`;
};
// Root masters drop their workers to this user; as an ordinary user the directive would only warn.
const user = process.getuid?.() === 0 && opts.user !== '' ? `user ${opts.user};` : '# user: workers run as the user that started nginx';

// The client's address as nginx sees it, on every proxying location. Set here, not inherited from
// the server block: nginx drops every inherited proxy_set_header in a location that sets one of its
// own. X-Forwarded-For is replaced by the peer too, never appended to: a list the client started
// proves nothing, and the processes must only ever see what this nginx saw.
const PROXY_HEADER_LINES = ['Host $host', 'X-Real-IP $remote_addr', 'X-Forwarded-For $remote_addr', 'X-Forwarded-Proto $scheme'];
// The header check (nginx/header-guard.js) needs nginx's JavaScript module.
const njsModule = opts['njs-module'];
if (!existsSync(njsModule)) fail(`--njs-module: ${njsModule} does not exist: install nginx's JavaScript module (Debian: apt-get install libnginx-mod-http-js) or name its file`);

const values = {
  NJS_MODULE: njsModule,
  HEADER_GUARD: `${root}nginx/header-guard.js`,
  USER_LINE: user,
  WORKERS: opts.workers,
  NOFILE: String(nofile),
  // Half of the descriptors per worker, each proxied connection needs two.
  WORKER_CONNECTIONS: String(Math.max(1024, Math.floor(nofile / 2))),
  PREFIX: need('prefix'),
  LOG_DIR: logDir,
  ACCESS_LOG: opts['access-log'] === 'on' ? `${logDir}/nginx-access.log push` : 'off',
  PUBLISHER_SERVERS: publishers.map(serverLine).join('\n'),
  LISTENER_SERVERS: listeners.map(serverLine).join('\n'),
  FRONT_BIND: opts['front-bind'].includes(':') && !opts['front-bind'].startsWith('[') ? `[${opts['front-bind']}]` : opts['front-bind'],
  FRONT_PORT: String(int('front-port', 1, 65535)),
  MAX_BODY: String(int('max-body', 1024, 64 * 1024 * 1024)),
  PUB_ALLOW: allow.length === 0 ? '            # open to all: set PUSH_PUB_ALLOW to restrict publishing to trusted networks' : [...allow.map((a) => `            allow ${a};`), '            deny all;'].join('\n'),
  SUB_CONN_PER_IP: String(int('sub-conn-per-ip', 1, 1_000_000)),
  HOLD_S: String(holdS),
  WS_IDLE_S: String(wsIdleS),
  READ_TIMEOUT_S: String(Math.max(holdS, wsIdleS) + 30),
  PUBLISHER_TRIES: String(Math.min(publishers.length, 3)),
  LISTENER_TRIES: String(Math.min(listeners.length, 3)),
  PROXY_HEADERS: PROXY_HEADER_LINES.map((h) => `            proxy_set_header ${h};`).join('\n'),
};
const text = readFileSync(opts.template, 'utf8').replace(/\{\{([A-Z_]+)\}\}/g, (m, name) => {
  if (!(name in values)) fail(`template uses unknown token ${m}`);
  return values[name];
});
// A location that proxies without the client-address headers would let every request reach the
// processes as if from nginx's own address (trusted): refuse to write such a config.
const locationRe = /(?:^|\n)\s*location\s+([^{]*)\{/g;
for (let m = locationRe.exec(text); m !== null; m = locationRe.exec(text)) {
  let depth = 1;
  let end = m.index + m[0].length;
  for (; end < text.length && depth > 0; end++) depth += text[end] === '{' ? 1 : text[end] === '}' ? -1 : 0;
  const body = text.slice(m.index + m[0].length, end - 1);
  if (/^\s*proxy_pass\s/m.test(body) && !PROXY_HEADER_LINES.every((h) => body.includes(`proxy_set_header ${h};`))) {
    fail(`template location ${JSON.stringify(m[1].trim())} proxies without {{PROXY_HEADERS}}`);
  }
}
writeFileSync(need('out'), text);
