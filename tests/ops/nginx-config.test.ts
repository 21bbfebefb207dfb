import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/apps.js';
import { eventually, freePort } from '../helpers/ports.js';
import { httpRequest, run } from './stack-helpers.js';

const NGINX = '/usr/sbin/nginx';

/** Every `location` block of an nginx config, braces matched (the rendered config has no braces in strings). */
function locationBlocks(conf: string): Array<{ head: string; body: string }> {
  const out: Array<{ head: string; body: string }> = [];
  const re = /(^|\n)\s*location\s+([^{]*)\{/g;
  for (let m = re.exec(conf); m !== null; m = re.exec(conf)) {
    let depth = 1;
    let i = m.index + m[0].length;
    for (; i < conf.length && depth > 0; i++) depth += conf[i] === '{' ? 1 : conf[i] === '}' ? -1 : 0;
    out.push({ head: (m[2] as string).trim(), body: conf.slice(m.index + m[0].length, i - 1) });
  }
  return out;
}

/**
 * What every proxying location must say so the processes learn the real client: X-Real-IP and
 * X-Forwarded-For set to the peer nginx sees (replacing the client's own), in the block itself,
 * because a location with any proxy_set_header of its own inherits none from the server block.
 */
function proxyingWithoutClientAddress(conf: string): string[] {
  return locationBlocks(conf)
    .filter((b) => /^\s*proxy_pass\s/m.test(b.body))
    .filter((b) => !/^\s*proxy_set_header X-Real-IP \$remote_addr;$/m.test(b.body) || !/^\s*proxy_set_header X-Forwarded-For \$remote_addr;$/m.test(b.body))
    .map((b) => b.head);
}

/** Every rendered variant must pass `nginx -t` with a private prefix (no root paths needed). */
describe('nginx config template', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'push-nginx-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const render = async (name: string, extra: string[]) => {
    const prefix = join(dir, name);
    mkdirSync(join(prefix, 'tmp'), { recursive: true });
    const out = join(prefix, 'nginx.conf');
    const r = await run('node', ['scripts/lib/render-nginx.mjs', '--out', out, '--prefix', prefix, '--log-dir', prefix, ...extra], {});
    return { r, out, prefix };
  };
  const test = (out: string, prefix: string) => run(NGINX, ['-t', '-p', prefix, '-c', out, '-e', join(prefix, 'error.log')], {});

  const variants: Record<string, string[]> = {
    'one of each': ['--publishers', '127.0.0.1:9010', '--listeners', '127.0.0.1:8010'],
    'bitrix layout 2x6': ['--publishers', '127.0.0.1:9010 127.0.0.1:9011', '--listeners', '127.0.0.1:8010 127.0.0.1:8011 127.0.0.1:8012 127.0.0.1:8013 127.0.0.1:8014 127.0.0.1:8015'],
    'many listeners, trusted publishers': ['--publishers', '127.0.0.1:9010,127.0.0.1:9011,127.0.0.1:9012', '--listeners', Array.from({ length: 32 }, (_, i) => `127.0.0.1:${8010 + i}`).join(' '), '--pub-allow', '127.0.0.1 10.0.0.0/8 192.168.0.0/16 ::1'],
    'public bind, access log, fixed workers': ['--publishers', '10.0.0.5:9010', '--listeners', '10.0.0.6:8010 10.0.0.7:8010', '--front-bind', '0.0.0.0', '--front-port', '80', '--access-log', 'on', '--workers', '4', '--nofile', '200000', '--sub-conn-per-ip', '1000'],
    'ipv6 bind, long hold, big bodies': ['--publishers', '[::1]:9010', '--listeners', '[::1]:8010', '--front-bind', '::', '--hold-s', '300', '--ws-idle-s', '60', '--max-body', '16777216'],
  };
  for (const [name, args] of Object.entries(variants)) {
    it(`renders a config nginx -t accepts: ${name}`, async () => {
      const { r, out, prefix } = await render(name.replace(/\W+/g, '-'), args);
      assert.equal(r.code, 0, r.stderr);
      const t = await test(out, prefix);
      assert.equal(t.code, 0, `nginx -t failed:\n${t.stderr}`);
      assert.match(t.stderr, /test is successful/);
    });
  }

  it('a publish is passed to another publisher only where it cannot be stored twice: never after a timeout, read timeout above the publish bound', async () => {
    const { r, out } = await render('publish-retry', variants['bitrix layout 2x6'] as string[]);
    assert.equal(r.code, 0, r.stderr);
    const conf = readFileSync(out, 'utf8');
    // Every location that proxies to the publishers, with its body.
    // The locations that can carry a publish (readiness checks may be retried on a timeout).
    const blocks = [...conf.matchAll(/location ([^{]+)\{([^}]*proxy_pass http:\/\/push_publishers;[^}]*)\}/g)].filter(([, where]) => /pub|rest/.test(where as string));
    assert.equal(blocks.length, 2, 'publish and /bitrix/rest/ locations found');
    for (const [, where, body] of blocks) {
      const next = /proxy_next_upstream ([^;]+);/.exec(body as string)?.[1] ?? '';
      assert.ok(!/\btimeout\b/.test(next), `${where}: no retry after a timeout (${next})`);
      // PUSH_PUBLISH_TIMEOUT_MS is at most 25 s: nginx must wait longer than a publisher may.
      const read = /proxy_read_timeout (\d+)s;/.exec(body as string);
      assert.ok(read !== null && Number(read[1]) > 25, `${where}: proxy_read_timeout above 25 s`);
    }
  });

  it('routes, upgrade handling, timeouts and limits are in the rendered file', async () => {
    const { r, out } = await render('content', [...(variants['many listeners, trusted publishers'] as string[]), '--hold-s', '40', '--ws-idle-s', '120']);
    assert.equal(r.code, 0, r.stderr);
    const conf = readFileSync(out, 'utf8');
    assert.equal((conf.match(/^\s+server 127\.0\.0\.1:80\d\d max_fails=0;$/gm) ?? []).length, 32, 'one upstream server per listener');
    assert.equal((conf.match(/^\s+server 127\.0\.0\.1:901\d max_fails=0;$/gm) ?? []).length, 3, 'one upstream server per publisher');
    // POST /channels (minting, used by pushctl and the PHP client) goes to the publishers behind the same allow list as /pub.
    assert.match(conf, /location ~ \^\/\(pub\|bitrix\/pub\|channels\|server-stat\|bitrix\/server-stat\|status\|register-client\|bitrix\/register-client\|systemctl\|bitrix\/systemctl\)\(\/\|\$\) \{\n\s+allow 127\.0\.0\.1;\n\s+allow 10\.0\.0\.0\/8;\n\s+allow 192\.168\.0\.0\/16;\n\s+allow ::1;\n\s+deny all;/);
    // Shared-memory zones: every worker balances on the same connection counts.
    const upstream = (name: string): string => {
      const at = conf.indexOf(`upstream ${name} {`);
      assert.ok(at >= 0, `upstream ${name}`);
      return conf.slice(at, conf.indexOf('}', at));
    };
    assert.match(upstream('push_publishers'), /^\s+zone push_publishers 64k;$/m);
    assert.match(upstream('push_publishers'), /^\s+least_conn;$/m);
    assert.match(upstream('push_listeners'), /^\s+zone push_listeners 256k;$/m);
    assert.match(upstream('push_listeners'), /^\s+least_conn;$/m);
    const sub = conf.slice(conf.indexOf('location ~ ^/(sub|ws|bitrix/sub|bitrix/subws)'));
    assert.match(sub, /proxy_set_header Upgrade \$http_upgrade;/);
    assert.match(sub, /proxy_set_header Connection \$push_connection;/);
    assert.match(sub, /proxy_buffering off;/);
    assert.match(sub, /limit_conn push_sub_per_ip 200;/);
    // Longer than both the 40 s hold and the 120 s WebSocket ping interval.
    assert.match(sub, /proxy_read_timeout 150s;/);
    assert.match(conf, /keepalive 64;/);
    const rest = locationBlocks(conf).find((b) => b.head === '~ ^/(rest|bitrix/rest)(/|$)');
    assert.ok(rest !== undefined, '/rest/ and /bitrix/rest/ (client publishing) go to the publishers');
    assert.match(rest.body, /proxy_pass http:\/\/push_publishers;/);
    assert.doesNotMatch(rest.body, /allow|deny/, '/bitrix/rest/ is not restricted to trusted networks');
    // The catch-all 404 carries CORS like the processes' own answers, so browsers see the 404.
    const fallback = locationBlocks(conf).find((b) => b.head === '/');
    assert.match(fallback?.body ?? '', /add_header Access-Control-Allow-Origin \* always;\n\s+return 404 "4107: /);
    assert.match(conf, /location = \/nginx-status \{\n\s+stub_status;/);
    assert.match(conf, /client_max_body_size 1048576;/);
    assert.doesNotMatch(conf, /\{\{/);
  });

  it('every location that proxies sets X-Real-IP and X-Forwarded-For to the peer itself (no inherited or appended client address)', async () => {
    for (const [name, args] of Object.entries(variants)) {
      const { r, out } = await render(`addr-${name.replace(/\W+/g, '-')}`, args);
      assert.equal(r.code, 0, r.stderr);
      const conf = readFileSync(out, 'utf8');
      const proxying = locationBlocks(conf).filter((b) => /^\s*proxy_pass\s/m.test(b.body)).map((b) => b.head);
      // The publisher, client-publishing, subscriber and readiness locations at least.
      assert.ok(proxying.length >= 4, `${name}: proxying locations found: ${proxying.join(', ')}`);
      assert.deepEqual(proxyingWithoutClientAddress(conf), [], `${name}: locations that proxy without the real client address`);
      assert.doesNotMatch(conf, /\$proxy_add_x_forwarded_for/, 'X-Forwarded-For is never appended to what the client sent');
    }
    // The check itself finds a location that lost the headers (e.g. a new location with its own proxy_set_header).
    assert.deepEqual(proxyingWithoutClientAddress('server {\n  proxy_set_header X-Real-IP $remote_addr;\n  location /x {\n    proxy_set_header Connection "";\n    proxy_pass http://u;\n  }\n}\n'), ['/x']);
  });

  it('the renderer refuses a template whose proxying location lacks the client-address headers', async () => {
    const template = join(dir, 'no-headers.template');
    const text = readFileSync(join(ROOT, 'nginx', 'push.conf.template'), 'utf8');
    const at = text.indexOf('{{PROXY_HEADERS}}', text.indexOf('location = /readyz'));
    assert.ok(at > 0, 'the readiness location uses the token');
    writeFileSync(template, text.slice(0, at) + text.slice(at + '{{PROXY_HEADERS}}'.length));
    const { r, out } = await render('no-headers', [...(variants['one of each'] as string[]), '--template', template]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^render-nginx: template location "= \/readyz" proxies without \{\{PROXY_HEADERS\}\}/);
    assert.throws(() => readFileSync(out), /ENOENT/);
  });

  it('passive health checks: loopback servers never count failures, remote ones are set aside after failing', async () => {
    const { r, out } = await render('fails', ['--publishers', '127.0.0.1:9010 10.0.0.5:9010', '--listeners', '[::1]:8010 10.0.0.6:8010 localhost:8011']);
    assert.equal(r.code, 0, r.stderr);
    const conf = readFileSync(out, 'utf8');
    assert.match(conf, /^\s+server 127\.0\.0\.1:9010 max_fails=0;$/m);
    assert.match(conf, /^\s+server \[::1\]:8010 max_fails=0;$/m);
    assert.match(conf, /^\s+server localhost:8011 max_fails=0;$/m);
    assert.match(conf, /^\s+server 10\.0\.0\.5:9010 max_fails=3 fail_timeout=2s;$/m);
    assert.match(conf, /^\s+server 10\.0\.0\.6:8010 max_fails=3 fail_timeout=2s;$/m);
    const fixed = await render('fails-fixed', ['--publishers', '127.0.0.1:9010', '--listeners', '10.0.0.6:8010', '--max-fails', '1', '--fail-timeout-s', '30']);
    assert.equal(fixed.r.code, 0, fixed.r.stderr);
    const conf2 = readFileSync(fixed.out, 'utf8');
    assert.match(conf2, /^\s+server 127\.0\.0\.1:9010 max_fails=1 fail_timeout=30s;$/m);
    assert.match(conf2, /^\s+server 10\.0\.0\.6:8010 max_fails=1 fail_timeout=30s;$/m);
    const t = await test(fixed.out, fixed.prefix);
    assert.equal(t.code, 0, t.stderr);
  });

  it('the access log names the upstream process that served each request', async () => {
    const { r, out } = await render('access-log', [...(variants['one of each'] as string[]), '--access-log', 'on']);
    assert.equal(r.code, 0, r.stderr);
    const conf = readFileSync(out, 'utf8');
    assert.match(conf, /log_format push '[^;]*upstream=\$upstream_addr upstream_status=\$upstream_status';/);
    assert.ok(conf.includes(`access_log ${join(dir, 'access-log')}/nginx-access.log push;`), 'access log uses the push format');
  });

  const bad: Record<string, string[]> = {
    'missing listeners': ['--publishers', '127.0.0.1:9010'],
    'listener without port': ['--publishers', '127.0.0.1:9010', '--listeners', '127.0.0.1'],
    'port out of range': ['--publishers', '127.0.0.1:9010', '--listeners', '127.0.0.1:8010', '--front-port', '70000'],
    'allow list with a hostname': ['--publishers', '127.0.0.1:9010', '--listeners', '127.0.0.1:8010', '--pub-allow', 'portal.example.com'],
    'workers not a number': ['--publishers', '127.0.0.1:9010', '--listeners', '127.0.0.1:8010', '--workers', 'many'],
    'dangling option': ['--publishers', '127.0.0.1:9010', '--listeners', '127.0.0.1:8010', '--hold-s'],
    'max fails not a number': ['--publishers', '127.0.0.1:9010', '--listeners', '127.0.0.1:8010', '--max-fails', 'some'],
    'fail timeout zero': ['--publishers', '127.0.0.1:9010', '--listeners', '127.0.0.1:8010', '--fail-timeout-s', '0'],
  };
  for (const [name, args] of Object.entries(bad)) {
    it(`refuses bad options with exit 2 and writes nothing: ${name}`, async () => {
      const { r, out } = await render(`bad-${name.replace(/\W+/g, '-')}`, args);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /^render-nginx: /);
      assert.throws(() => readFileSync(out), /ENOENT/);
    });
  }
});

describe('the TLS server block in docs/operations.md', () => {
  it('passes nginx -t inside the rendered config (throwaway certificate)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'push-nginx-tls-'));
    try {
      const prefix = join(dir, 'p');
      mkdirSync(join(prefix, 'tmp'), { recursive: true });
      const out = join(prefix, 'nginx.conf');
      const r = await run('node', ['scripts/lib/render-nginx.mjs', '--out', out, '--prefix', prefix, '--log-dir', prefix, '--publishers', '127.0.0.1:9010', '--listeners', '127.0.0.1:8010 127.0.0.1:8011'], {});
      assert.equal(r.code, 0, r.stderr);
      const cert = join(dir, 'cert.pem');
      const key = join(dir, 'key.pem');
      const ssl = await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=push.example.com', '-keyout', key, '-out', cert], {});
      assert.equal(ssl.code, 0, ssl.stderr);
      const doc = readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8');
      const block = /```nginx\n([\s\S]*?)```/.exec(doc)?.[1];
      assert.ok(block !== undefined, 'docs contain an nginx block');
      assert.match(block, /listen 443 ssl;/);
      // The documented block must not lose the client address either (operators copy it as is).
      assert.deepEqual(proxyingWithoutClientAddress(block), [], 'TLS block locations that proxy without the real client address');
      const tls = block
        .replace(/ssl_certificate\s+\S+;/, `ssl_certificate ${cert};`)
        .replace(/ssl_certificate_key\s+\S+;/, `ssl_certificate_key ${key};`)
        .replace('listen 443 ssl;', 'listen 127.0.0.1:8443 ssl;');
      const conf = readFileSync(out, 'utf8');
      const at = conf.lastIndexOf('}');
      writeFileSync(out, `${conf.slice(0, at)}\n${tls}\n}\n`);
      const t = await run(NGINX, ['-t', '-p', prefix, '-c', out, '-e', join(prefix, 'error.log')], {});
      assert.equal(t.code, 0, t.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * The rendered config in a real nginx, in front of an upstream that echoes the headers it got: on
 * every proxied route, what reaches the processes is the address nginx saw, whatever the client wrote.
 */
describe('the client address a real nginx hands the processes', () => {
  let dir: string;
  let echo: Server;
  let nginx: ReturnType<typeof spawn>;
  let front: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'push-nginx-addr-'));
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    echo = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end(JSON.stringify({ realIp: req.headers['x-real-ip'] ?? null, forwardedFor: req.headers['x-forwarded-for'] ?? null })));
    });
    const upstream = await freePort();
    await new Promise<void>((resolve) => echo.listen(upstream, '127.0.0.1', resolve));
    const port = await freePort();
    const out = join(dir, 'nginx.conf');
    // The echo server plays both a publisher and a listener.
    const r = await run('node', ['scripts/lib/render-nginx.mjs', '--out', out, '--prefix', dir, '--log-dir', dir, '--front-port', String(port), '--publishers', `127.0.0.1:${upstream}`, '--listeners', `127.0.0.1:${upstream}`, '--workers', '1', '--nofile', '4096'], {});
    assert.equal(r.code, 0, r.stderr);
    nginx = spawn(NGINX, ['-p', dir, '-c', out, '-e', join(dir, 'error.log'), '-g', 'daemon off;'], { stdio: 'ignore' });
    front = `http://127.0.0.1:${port}`;
    await eventually(async () => (await httpRequest(`${front}/healthz`).catch(() => ({ status: 0 }))).status === 200, 10_000, 'nginx up');
  });
  after(async () => {
    nginx?.kill('SIGTERM');
    await new Promise<void>((resolve) => echo?.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  const ROUTES = ['/pub', '/bitrix/pub/', '/bitrix/pub/batch', '/channels', '/server-stat/', '/bitrix/server-stat/', '/status', '/rest/', '/bitrix/rest/', '/sub', '/ws', '/bitrix/sub/', '/bitrix/subws/', '/readyz'];
  const READS = new Set(['/server-stat/', '/bitrix/server-stat/', '/status', '/sub', '/ws', '/bitrix/sub/', '/bitrix/subws/', '/readyz']);
  const FORGED: ReadonlyArray<Record<string, string>> = [{}, { 'X-Real-IP': '127.0.0.1' }, { 'X-Forwarded-For': '127.0.0.1' }, { 'X-Real-IP': '10.0.0.1, 127.0.0.1', 'X-Forwarded-For': '10.0.0.1, 127.0.0.1' }];
  for (const path of ROUTES) {
    it(`${path}: X-Real-IP and X-Forwarded-For are exactly the peer, however the client filled them`, async () => {
      for (const headers of FORGED) {
        for (const from of ['127.0.0.2', '127.0.0.3']) {
          const res = await httpRequest(`${front}${path}`, { ...(READS.has(path) ? { method: 'GET' } : { method: 'POST', body: '{}' }), headers, localAddress: from });
          assert.equal(res.status, 200, `${path} from ${from}: ${res.body}`);
          assert.deepEqual(JSON.parse(res.body), { realIp: from, forwardedFor: from }, `${path} from ${from} with ${JSON.stringify(headers)}`);
        }
      }
    });
  }
});
