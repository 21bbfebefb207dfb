import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../helpers/apps.js';
import { run } from './stack-helpers.js';

const NGINX = '/usr/sbin/nginx';

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
    assert.match(conf, /location ~ \^\/\(pub\|bitrix\/pub\|channels\|server-stat\|status\)\(\/\|\$\) \{\n\s+allow 127\.0\.0\.1;\n\s+allow 10\.0\.0\.0\/8;\n\s+allow 192\.168\.0\.0\/16;\n\s+allow ::1;\n\s+deny all;/);
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
    assert.match(conf, /location \^~ \/bitrix\/rest\/ \{\n\s+proxy_set_header/, '/bitrix/rest/ is not restricted to trusted networks');
    assert.match(conf, /location = \/nginx-status \{\n\s+stub_status;/);
    assert.match(conf, /client_max_body_size 1048576;/);
    assert.doesNotMatch(conf, /\{\{/);
  });

  it('passive health checks: loopback servers never count failures, remote ones are set aside after failing', async () => {
    const { r, out } = await render('fails', ['--publishers', '127.0.0.1:9010 10.0.0.5:9010', '--listeners', '[::1]:8010 10.0.0.6:8010 localhost:8011']);
    assert.equal(r.code, 0, r.stderr);
    const conf = readFileSync(out, 'utf8');
    assert.match(conf, /^\s+server 127\.0\.0\.1:9010 max_fails=0;$/m);
    assert.match(conf, /^\s+server \[::1\]:8010 max_fails=0;$/m);
    assert.match(conf, /^\s+server localhost:8011 max_fails=0;$/m);
    assert.match(conf, /^\s+server 10\.0\.0\.5:9010 max_fails=3 fail_timeout=10s;$/m);
    assert.match(conf, /^\s+server 10\.0\.0\.6:8010 max_fails=3 fail_timeout=10s;$/m);
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
