import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import { getPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { parseEnvFile } from '@push/runtime';
import { createHmac } from 'node:crypto';
import { encodeRequestBatch, signChannel, signChannelPair, signSubscriptionToken, type ChannelSecret } from '@push/protocol';
import WebSocket from 'ws';
import { ROOT } from '../helpers/apps.js';
import { WsClient, channelId, longPoll, publish } from '../helpers/clients.js';
import { eventually, sleep } from '../helpers/ports.js';
import { ed25519Key, signatureHeaders, signedFetch } from '../security/signing.js';
import { ResumingPoll, ResumingWs, childPids, openFilesLimit, parsePrometheus, run, sampleSum, script, stackPorts, type PromFamily } from './stack-helpers.js';

const ZERO_MID = '0'.repeat(26);

/**
 * The whole stack as an operator runs it: `npm start` (private Redis, 2 publishers, 3 listeners,
 * nginx in front), status, traffic through nginx, metrics, the status page in Chromium, a rolling
 * restart under load, `npm stop`. Temporary run directory and free ports: never clashes.
 */
describe('npm start / status / restart / stop', () => {
  const LISTENERS = 3;
  let runDir: string;
  let env: Record<string, string>;
  let front: string;
  let secret: ChannelSecret;
  let listenerPorts: number[];
  let publisherPorts: number[];
  let logDir: string;
  const NOFILE = 17000;
  // The portal's signing key (PUSH_PUBLISH_KEYS); pushctl and the PHP client sign the same way.
  const portalKey = ed25519Key('ops-portal');
  const sign = (id: string): string => signChannel(id, secret);
  const scrape = async (port: number): Promise<Map<string, PromFamily>> => parsePrometheus(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
  const pidOf = (name: string): number => Number(readFileSync(join(runDir, name === 'nginx' ? 'nginx/nginx.pid' : `pids/${name}.pid`), 'utf8'));

  before(async () => {
    runDir = mkdtempSync(join(tmpdir(), 'push-stack-'));
    // Logs outside the run directory: PUSH_LOG_DIR must be honoured, not just defaulted.
    logDir = mkdtempSync(join(tmpdir(), 'push-stack-logs-'));
    const ports = await stackPorts(runDir, 2, LISTENERS);
    const frontPort = ports.frontPort;
    env = {
      ...ports.env,
      PUSH_LISTENERS: String(LISTENERS),
      PUSH_PUBLISHERS: '2',
      // No key and no Redis from outside: start.sh generates the key and runs its own Redis.
      PUSH_SIGNATURE_KEY: '',
      REDIS_URL: '',
      PUSH_STATS_INTERVAL_S: '1',
      PUSH_SHUTDOWN_GRACE_S: '5',
      PUSH_LONGPOLL_TIMEOUT_S: '5',
      PUSH_LOG_LEVEL: 'warn',
      PUSH_LOG_DIR: logDir,
      PUSH_NOFILE: String(NOFILE),
      PUSH_NGINX_ACCESS_LOG: 'on',
      PUSH_PUBLISH_KEYS: portalKey.ringEntry,
      // The stack's own default applies (this host may publish unsigned), whatever the caller's shell says.
      PUSH_PUBLISH_TRUSTED_NETWORKS: '',
      PUSH_PUB_ALLOW: '',
      PUSH_ADMIN_TOKEN: '',
    };
    front = `http://127.0.0.1:${frontPort}`;
    const pubBase = Number(ports.env['PUSH_PUBLISHER_PORT']);
    const subBase = Number(ports.env['PUSH_LISTENER_PORT']);
    publisherPorts = [pubBase, pubBase + 1];
    listenerPorts = Array.from({ length: LISTENERS }, (_, i) => subBase + i);
  });
  after(async () => {
    const r = await script('stop', env);
    if (r.code !== 0) process.stderr.write(`stop.sh: ${r.stdout}${r.stderr}\n`);
    rmSync(runDir, { recursive: true, force: true });
    rmSync(logDir, { recursive: true, force: true });
  });

  it('npm start brings up Redis, 2 publishers, 3 listeners and nginx, generates the key once, and is idempotent', async () => {
    // Started from a shell with a low open-file limit: the scripts must raise it for every process.
    const r = await run('bash', ['-c', 'ulimit -Sn 1024 && exec npm start --silent'], env);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /push start: ready \(2 publishers, 3 listeners, redis redis:\/\/127\.0\.0\.1:\d+\)/);
    assert.ok(r.stdout.includes(`long poll:    ${front}/bitrix/sub/`), r.stdout);
    assert.ok(r.stdout.includes(`WebSocket:    ${front.replace('http', 'ws')}/bitrix/subws/`), r.stdout);
    assert.match(r.stdout, /^ {2}unsigned publish: allowed from 127\.0\.0\.1\/32,::1\/128 \(default: this host; PUSH_PUBLISH_TRUSTED_NETWORKS=none requires signatures\)$/m);
    assert.match(r.stdout, /^ {2}admin pages: {2}\/status, \/server-stat\/, \/metrics from 127\.0\.0\.1\/32,::1\/128 only \(set PUSH_ADMIN_TOKEN to read them from elsewhere with a bearer token\)$/m);
    for (const name of ['listener-1', 'listener-3', 'publisher-1', 'redis', 'nginx']) {
      assert.deepEqual(openFilesLimit(pidOf(name)), { soft: NOFILE, hard: NOFILE }, `${name}: open-file limit raised to PUSH_NOFILE`);
    }
    // Redis ahead of the app processes (only root may lower a niceness; the suite runs as root in CI).
    if (process.getuid?.() === 0) {
      assert.equal(getPriority(pidOf('redis')), -10, 'redis-server at nice -10');
      assert.equal(getPriority(pidOf('listener-1')), 0, 'apps at the default priority');
      assert.match(r.stdout, /redis-server runs at nice -10/);
    }
    // One log per process, in PUSH_LOG_DIR.
    for (const f of ['publisher-1.log', 'publisher-2.log', 'listener-1.log', 'listener-2.log', 'listener-3.log', 'redis.log', 'nginx-error.log']) {
      assert.ok(existsSync(join(logDir, f)), `${f} in PUSH_LOG_DIR`);
    }
    assert.equal(existsSync(join(runDir, 'log')), false, 'nothing logged to the default log directory');
    const conf = env['PUSH_CONFIG_FILE'] as string;
    const key = parseEnvFile(readFileSync(conf, 'utf8'))['PUSH_SIGNATURE_KEY'] ?? '';
    assert.match(key, /^[0-9a-f]{64}$/);
    assert.equal(statSync(conf).mode & 0o777, 0o600, 'key file readable by its owner only');
    secret = { key, algorithm: 'sha1' };
    for (const p of [...publisherPorts, ...listenerPorts]) assert.equal((await fetch(`http://127.0.0.1:${p}/readyz`)).status, 200);
    assert.equal((await fetch(`${front}/readyz`)).status, 200);
    // AOF on for the private Redis.
    assert.ok(existsSync(join(runDir, 'redis')), 'redis data dir in the run directory');
    await eventually(() => existsSync(join(runDir, 'redis', 'appendonlydir')), 5000, 'AOF files');

    const pidsBefore = readFileSync(join(runDir, 'pids', 'listener-1.pid'), 'utf8');
    const confBefore = readFileSync(join(runDir, 'nginx', 'nginx.conf'), 'utf8');
    const workersBefore = childPids(pidOf('nginx'));
    assert.ok(workersBefore.length >= 1);
    const again = await script('start', { ...env, PUSH_SKIP_SETUP: '1' });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already running/);
    assert.equal(readFileSync(join(runDir, 'pids', 'listener-1.pid'), 'utf8'), pidsBefore, 'running processes left alone');
    // Nothing changed, so no reload: a reload replaces every worker (and drops idle client connections).
    assert.match(again.stdout, /nginx config unchanged/);
    assert.doesNotMatch(again.stdout, /nginx reloaded/);
    assert.equal(readFileSync(join(runDir, 'nginx', 'nginx.conf'), 'utf8'), confBefore);
    assert.equal(existsSync(join(runDir, 'nginx', 'nginx.conf.new')), false);
    await sleep(300);
    assert.deepEqual(childPids(pidOf('nginx')), workersBefore, 'the same nginx workers');
    assert.equal(parseEnvFile(readFileSync(conf, 'utf8'))['PUSH_SIGNATURE_KEY'], key, 'key not regenerated');
  });

  it('status.sh reports every process; a dead listener shows, and start brings back only it', async () => {
    const s = await script('status', env);
    assert.equal(s.code, 0, s.stdout + s.stderr);
    for (const name of ['redis', 'nginx', 'publisher-1', 'publisher-2', 'listener-1', 'listener-2', 'listener-3']) {
      assert.match(s.stdout, new RegExp(`^${name}\\s+\\d+\\s+\\d+\\s+running\\s+yes$`, 'm'), `${name} in\n${s.stdout}`);
    }
    // Without its supervisor (tests/ops/supervision.test.ts covers the supervised case), a dead
    // listener stays down until npm start brings it back.
    process.kill(Number(readFileSync(join(runDir, 'supervise', 'listener-3.pid'), 'utf8')), 'SIGKILL');
    const pid = Number(readFileSync(join(runDir, 'pids', 'listener-3.pid'), 'utf8'));
    process.kill(pid, 'SIGKILL');
    await eventually(async () => (await script('status', env)).code === 1, 5000, 'status notices');
    const down = await script('status', env);
    assert.match(down.stdout, /^listener-3\s+-\s+\d+\s+stopped\s+no \(HTTP 000\)$/m);
    const fix = await script('start', { ...env, PUSH_SKIP_SETUP: '1' });
    assert.equal(fix.code, 0, fix.stderr);
    assert.match(fix.stdout, /listener-3 starting/);
    assert.doesNotMatch(fix.stdout, /listener-1 starting|publisher-1 starting/);
    assert.equal((await script('status', env)).code, 0);
  });

  it('a publish through nginx reaches a WebSocket and a long poll that landed on different listeners', async () => {
    // Deterministic, not luck: least_conn over a shared zone sends each new long-lived connection to
    // a listener with the fewest, whichever nginx worker accepts it. Each client is placed (and
    // seen in the listeners' own metrics) before the next one connects.
    const ch = channelId();
    const connections = async (): Promise<Array<{ ws: number; lp: number }>> =>
      Promise.all(listenerPorts.map(async (p) => {
        const m = await scrape(p);
        return { ws: sampleSum(m, 'push_connections', { transport: 'ws' }), lp: sampleSum(m, 'push_connections', { transport: 'lp' }) };
      }));
    assert.deepEqual(await connections(), listenerPorts.map(() => ({ ws: 0, lp: 0 })), 'no client connections yet');
    const ws = await WsClient.connect(front, [sign(ch)]);
    await eventually(async () => (await connections()).reduce((a, c) => a + c.ws, 0) === 1, 5000, 'the WebSocket on a listener');
    const poll = longPoll(front, [sign(ch)]);
    await eventually(async () => (await connections()).reduce((a, c) => a + c.lp, 0) === 1, 5000, 'the long poll parked on a listener');
    const ws2 = await WsClient.connect(front, [sign(ch)]);
    const per = await eventually(async () => {
      const c = await connections();
      return c.reduce((a, x) => a + x.ws, 0) === 2 ? c : null;
    }, 5000, 'the second WebSocket on a listener');
    assert.ok(per !== null);
    const holders = listenerPorts.map((_, i) => (per[i]?.ws ?? 0) + (per[i]?.lp ?? 0));
    assert.deepEqual(holders, listenerPorts.map(() => 1), `nginx spread the three clients over the three listeners (${JSON.stringify(per)})`);
    const body = { module_id: 'test', command: 'through_nginx', params: { n: 1 } };
    const res = await publish(front, [ch], body, { 'Message-Expiry': '60' });
    assert.equal(res.status, 200);
    const lp = await poll;
    assert.equal(lp.status, 200);
    assert.deepEqual(lp.messages[0]?.text, body);
    const got = await ws.waitFor(1);
    assert.deepEqual(got[0]?.text, body);
    assert.equal(got[0]?.mid, lp.messages[0]?.mid);
    assert.equal((await ws2.waitFor(1))[0]?.mid, lp.messages[0]?.mid);
    ws.close();
    ws2.close();
    await Promise.all([ws.closed, ws2.closed]);
  });

  it('every path through the front port reaches the right upstream (nginx access log names the process)', async () => {
    const ch = channelId();
    const [privA, pubA, pubB] = [channelId(), channelId(), channelId()];
    const mark = (name: string): string => `probe=${name}-${ch.slice(0, 8)}`;
    const expectOk = async (name: string, res: Response | Promise<Response>, status = 200): Promise<string> => {
      const r = await res;
      const text = await r.text();
      assert.equal(r.status, status, `${name}: ${text}`);
      return text;
    };
    await expectOk('/pub', fetch(`${front}/pub?CHANNEL_ID=${ch}&${mark('pub')}`, { method: 'POST', headers: { 'Message-Expiry': '60' }, body: JSON.stringify({ module_id: 't', command: 'route', params: { n: 1 } }) }));
    await expectOk('/bitrix/pub/', fetch(`${front}/bitrix/pub/?CHANNEL_ID=${ch}&${mark('bitrix-pub')}`, { method: 'POST', headers: { 'Message-Expiry': '60' }, body: JSON.stringify({ module_id: 't', command: 'route', params: { n: 2 } }) }));
    const sub = await expectOk('/sub', fetch(`${front}/sub?CHANNEL_ID=${sign(ch)}&mid=${ZERO_MID}&${mark('sub')}`));
    assert.match(sub, /"command":"route"/);
    await expectOk('/bitrix/sub/', fetch(`${front}/bitrix/sub/?CHANNEL_ID=${sign(ch)}&mid=${ZERO_MID}&${mark('bitrix-sub')}`));
    for (const [name, path] of [['ws', '/ws'], ['bitrix-subws', '/bitrix/subws/']] as const) {
      const c = await WsClient.connect(front, [sign(ch)], `&mid=${ZERO_MID}&${mark(name)}`, path);
      await c.waitFor(2);
      c.close();
      await c.closed;
    }
    const publicSig = createHmac('sha1', secret.key).update(`public:${pubB}`).digest();
    const batch = encodeRequestBatch({ requests: [{ incomingMessages: { messages: [{ receivers: [{ id: Buffer.from(pubB, 'hex'), isPrivate: false, signature: publicSig }], body: '{"module_id":"t","command":"rest"}', expiry: 60, type: 't_rest' }] } }] });
    await expectOk('/bitrix/rest/', fetch(`${front}/bitrix/rest/?CHANNEL_ID=${encodeURIComponent(signChannelPair(privA, pubA, secret))}&${mark('rest')}`, { method: 'POST', body: batch }));
    assert.match(await expectOk('/server-stat/', fetch(`${front}/server-stat/?${mark('server-stat')}`)), /^\[/);
    const target = `/channels?count=1&${mark('channels')}`;
    const minted = JSON.parse(await expectOk('/channels', signedFetch(front, 'POST', target, '', portalKey))) as { channels: Array<{ id: string }> };
    assert.equal(minted.channels.length, 1);
    assert.match(await expectOk('/status', fetch(`${front}/status?${mark('status')}`)), /<title>Push server status<\/title>/);
    await expectOk('unknown path', fetch(`${front}/nowhere?${mark('nowhere')}`), 404);

    const expected: Record<string, 'publisher' | 'listener' | 'nginx'> = {
      pub: 'publisher', 'bitrix-pub': 'publisher', sub: 'listener', 'bitrix-sub': 'listener', ws: 'listener', 'bitrix-subws': 'listener',
      rest: 'publisher', 'server-stat': 'publisher', channels: 'publisher', status: 'publisher', nowhere: 'nginx',
    };
    const upstreams = await eventually(() => {
      const log = readFileSync(join(logDir, 'nginx-access.log'), 'utf8').split('\n');
      const found: Record<string, string> = {};
      for (const name of Object.keys(expected)) {
        const line = log.find((l) => l.includes(`${mark(name)} `) || l.includes(`${mark(name)}&`));
        const m = line === undefined ? null : / upstream=(\S+) /.exec(line);
        if (m === null) return null;
        found[name] = m[1] as string;
      }
      return found;
    }, 5000, 'an access-log line per request');
    for (const [name, kind] of Object.entries(expected)) {
      const addr = upstreams?.[name] as string;
      if (kind === 'nginx') {
        assert.equal(addr, '-', `${name} is answered by nginx itself`);
        continue;
      }
      const port = Number(/^127\.0\.0\.1:(\d+)$/.exec(addr)?.[1]);
      assert.ok((kind === 'publisher' ? publisherPorts : listenerPorts).includes(port), `${name} went to a ${kind}, got ${addr}`);
    }
  });

  it('a signed publish and a channel mint through the front port (the way pushctl and the PHP client do it)', async () => {
    const minted = await signedFetch(front, 'POST', '/channels?count=2', '', portalKey);
    assert.equal(minted.status, 200, await minted.clone().text());
    const { channels } = (await minted.json()) as { channels: Array<{ id: string; signed: string }> };
    assert.equal(channels.length, 2);
    const ch = channels[0] as { id: string; signed: string };
    assert.equal(ch.signed, sign(ch.id), 'returned signed with the stack key, ready for subscribers');
    const body = JSON.stringify({ module_id: 'test', command: 'signed', params: {} });
    const target = `/bitrix/pub/?CHANNEL_ID=${ch.id}`;
    const pub = await signedFetch(front, 'POST', target, body, portalKey, { headers: { 'Message-Expiry': '60' } });
    assert.equal(pub.status, 200, await pub.text());
    const poll = await longPoll(front, [ch.signed], `&mid=${ZERO_MID}`);
    assert.equal(poll.status, 200);
    assert.deepEqual(poll.messages.map((m) => (m.text as { command: string }).command), ['signed']);
    // A request carrying a signature is always verified, even from this trusted host: a signature
    // over another body is refused and stores nothing.
    const headers = { ...signatureHeaders(portalKey, 'POST', target, body), 'Message-Expiry': '60' };
    const forged = await fetch(`${front}${target}`, { method: 'POST', headers, body: JSON.stringify({ module_id: 'test', command: 'forged', params: {} }) });
    assert.equal(forged.status, 401);
    assert.match(await forged.text(), /^4123: /);
    const after = await longPoll(front, [ch.signed], `&mid=${ZERO_MID}`);
    assert.deepEqual(after.messages.map((m) => (m.text as { command: string }).command), ['signed']);
  });

  it('protocol 5 through the front port: the portal JSON-RPC endpoint publishes to a token WebSocket', async () => {
    const shared = channelId();
    const t = Math.floor(Date.now() / 1000);
    const token = signSubscriptionToken({ iss: 'host', iat: t, exp: t + 3600, sub: '77', chan: [shared] }, secret.key);
    const ws = new WebSocket(`${front.replace(/^http/, 'ws')}/bitrix/subws/?token=${token}&jsonRpc=true&revision=19`);
    const frames: string[] = [];
    ws.on('message', (d) => frames.push(d.toString()));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    await sleep(100);
    const body = JSON.stringify([{ jsonrpc: '2.0', method: 'publish', params: { userList: [77], body: { module_id: 'test', command: 'v5', params: {} }, expiry: 60 } }]);
    const res = await fetch(`${front}/bitrix/api/?signature=${createHmac(secret.algorithm, secret.key).update(body).digest('hex')}`, { method: 'POST', body });
    assert.equal(res.status, 200, await res.clone().text());
    await eventually(() => frames.some((f) => f.includes('"incoming.message"') && f.includes('"command":"v5"')), 5000, 'delivered through nginx');
    const unsigned = await fetch(`${front}/bitrix/api/`, { method: 'POST', body });
    assert.equal(unsigned.status, 401);
    assert.match(await unsigned.text(), /^4140: /);
    ws.close();
  });

  it('/metrics of every process is valid Prometheus text with the documented families and values that move; nginx stub status answers', async () => {
    const common = ['push_redis_command_duration_seconds', 'push_redis_up', 'push_draining', 'push_messages_published_total', 'nodejs_eventloop_lag_seconds', 'process_resident_memory_bytes'];
    const forListener = ['push_connections', 'push_channels', 'push_messages_received_total', 'push_messages_delivered_total', 'push_frames_sent_total', 'push_bytes_out_total', 'push_messages_dropped_total', 'push_slow_consumer_closes_total', 'push_pubsub_lag_seconds'];
    const forPublisher = ['push_publish_requests_total', 'push_publish_duration_seconds'];
    type Totals = { published: number; stored: number; received: number; delivered: number; bytesOut: number; lagCount: number; publishOk: number; redisPublish: number };
    const totals = async (): Promise<Totals> => {
      const t: Totals = { published: 0, stored: 0, received: 0, delivered: 0, bytesOut: 0, lagCount: 0, publishOk: 0, redisPublish: 0 };
      for (const p of listenerPorts) {
        const res = await fetch(`http://127.0.0.1:${p}/metrics`);
        assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
        const m = parsePrometheus(await res.text());
        for (const name of [...common, ...forListener]) assert.ok(m.has(name), `listener ${p} exposes ${name}`);
        assert.equal(m.get('push_pubsub_lag_seconds')?.type, 'histogram');
        assert.equal(m.get('push_messages_delivered_total')?.type, 'counter');
        assert.equal(sampleSum(m, 'push_redis_up'), 1);
        assert.equal(sampleSum(m, 'push_draining'), 0);
        t.received += sampleSum(m, 'push_messages_received_total');
        t.delivered += sampleSum(m, 'push_messages_delivered_total');
        t.bytesOut += sampleSum(m, 'push_bytes_out_total');
        t.lagCount += sampleSum(m, 'push_pubsub_lag_seconds_count');
      }
      for (const p of publisherPorts) {
        const m = await scrape(p);
        for (const name of [...common, ...forPublisher]) assert.ok(m.has(name), `publisher ${p} exposes ${name}`);
        assert.equal(sampleSum(m, 'push_redis_up'), 1);
        assert.ok(sampleSum(m, 'push_redis_command_duration_seconds_count', { command: 'ping' }) >= 1, `publisher ${p} timed its Redis pings`);
        t.published += sampleSum(m, 'push_messages_published_total');
        t.stored += sampleSum(m, 'push_messages_published_total', { storage: 'stored' });
        t.publishOk += sampleSum(m, 'push_publish_requests_total', { result: 'ok' });
        t.redisPublish += sampleSum(m, 'push_redis_command_duration_seconds_count', { command: 'publish' });
      }
      return t;
    };
    const before = await totals();
    // The earlier tests published and delivered through nginx.
    assert.ok(before.stored >= 1 && before.delivered >= 2 && before.bytesOut > 0 && before.lagCount >= 1, JSON.stringify(before));
    assert.ok(before.redisPublish >= before.publishOk, 'every publish request is a timed Redis round trip');

    // Three stored messages to two subscribers: every counter moves by what happened.
    const ch = channelId();
    const subs = [await WsClient.connect(front, [sign(ch)]), await WsClient.connect(front, [sign(ch)])];
    for (let n = 0; n < 3; n++) assert.equal((await publish(front, [ch], { module_id: 'test', command: 'metrics', params: { n } }, { 'Message-Expiry': '60' })).status, 200);
    await Promise.all(subs.map((c) => c.waitFor(3)));
    subs.forEach((c) => c.close());
    const after = await eventually(async () => {
      const t = await totals();
      return t.delivered - before.delivered >= 6 ? t : null;
    }, 5000, 'delivery counters');
    assert.ok(after !== null);
    assert.equal(after.published - before.published, 3);
    assert.equal(after.stored - before.stored, 3);
    assert.equal(after.publishOk - before.publishOk, 3);
    assert.equal(after.redisPublish - before.redisPublish, 3);
    assert.equal(after.delivered - before.delivered, 6, 'three messages to two connections');
    assert.ok(after.received - before.received >= 3, 'received from pub/sub on the listeners holding the channel');
    assert.ok(after.lagCount - before.lagCount >= 3, 'pub/sub lag observed per received message');
    assert.ok(after.bytesOut - before.bytesOut > 6 * 40, 'bytes out grew by at least the frames sent');

    const stub = await (await fetch(`${front}/nginx-status`)).text();
    assert.match(stub, /^Active connections: \d+/);
  });

  it('the status page renders the live cluster in headless Chromium (screenshot kept)', async () => {
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    try {
        const page = await browser.newPage({ viewport: { width: 1100, height: 650 } });
        const ch = channelId();
        const ws = await WsClient.connect(front, [sign(ch)]);
        await page.goto(`${front}/status`);
        await page.waitForSelector('body[data-loaded="yes"]', { timeout: 10_000 });
        // Stats are reported every second; wait until the new WebSocket shows up in a refresh.
        await page.waitForFunction(`document.getElementById('ws')?.textContent === '1'`, undefined, { timeout: 10_000 });
        // The listener killed in the status test lingers in /server-stat/ until its snapshot is
        // stale (2 report intervals + 10 s); then exactly the live processes are listed.
        // (Expressions as strings: they run in the page, not in this Node process.)
      await page.waitForFunction(`document.querySelectorAll('#rows tr[data-type="listener"]').length === ${LISTENERS}`, undefined, { timeout: 20_000 });
        assert.equal(await page.locator('#rows tr[data-type="publisher"]').count(), 2);
        assert.match((await page.textContent('#redis')) ?? '', /^up, [\d.]+ ms$/);
        assert.equal(await page.textContent('#procs'), `2 pub / ${LISTENERS} sub`);
        assert.equal(await page.textContent('#error'), '');
        // Live rates: publish (to the page's own WebSocket) until a refresh shows traffic.
        let publishing = true;
        const traffic = (async () => {
          for (let n = 0; publishing; n++) {
            await publish(front, [ch], { module_id: 'test', command: 'rate', params: { n } }, { 'Message-Expiry': '0' });
            await sleep(50);
          }
        })();
        try {
          await page.waitForFunction(`Number(document.getElementById('pubrate')?.textContent) > 0 && Number(document.getElementById('delrate')?.textContent) > 0`, undefined, { timeout: 15_000 });
        } finally {
          publishing = false;
          await traffic;
        }
        assert.ok(ws.messages.length > 0, 'the page was watching real traffic');
        const dir = join(ROOT, 'test-artifacts');
        mkdirSync(dir, { recursive: true });
        await page.screenshot({ path: join(dir, 'status-page.png'), fullPage: true });
        assert.ok(statSync(join(dir, 'status-page.png')).size > 5000);
        ws.close();
    } finally {
      await browser.close();
    }
  });

  it('restart.sh under continuous publishing loses no message for clients that resume with mid', async () => {
    const ch = channelId();
    const url = (path: string) => () => `${path}?CHANNEL_ID=${encodeURIComponent(sign(ch))}`;
    const wsClients = Array.from({ length: 4 }, () => new ResumingWs(url(`${front.replace('http', 'ws')}/bitrix/subws/`)));
    await Promise.all(wsClients.map((c) => c.start()));
    const polls = Array.from({ length: 2 }, () => new ResumingPoll(url(`${front}/bitrix/sub/`)));
    for (const p of polls) p.start();
    await sleep(300);

    try {
    const accepted: number[] = [];
    const failed: string[] = [];
    let publishing = true;
    const publisher = (async () => {
      for (let seq = 1; publishing; seq++) {
        try {
          const r = await publish(front, [ch], { module_id: 'test', command: 'seq', params: { seq } }, { 'Message-Expiry': '600' });
          if (r.status === 200) accepted.push(seq);
          else failed.push(`${seq}: HTTP ${r.status} ${await r.text()}`);
        } catch (err) {
          failed.push(`${seq}: ${(err as Error).message}`);
        }
        await sleep(20);
      }
    })();

    const restart = await script('restart', { ...env, PUSH_SKIP_SETUP: '1' }, 110_000);
    assert.equal(restart.code, 0, restart.stdout + restart.stderr);
    for (const n of ['listener-1', 'listener-2', 'listener-3', 'publisher-1', 'publisher-2']) assert.match(restart.stdout, new RegExp(`${n} ready again`));
    await sleep(500);
    publishing = false;
    await publisher;
    assert.ok(accepted.length > 50, `published during the restart (${accepted.length})`);
    assert.deepEqual(failed, [], 'nginx moved every publish to a live publisher');

    const all = [...wsClients, ...polls];
    try {
      await eventually(() => all.every((c) => accepted.every((s) => c.seqs.includes(s))), 20_000, 'every client has every accepted message');
    } catch (err) {
      const missing = all.map((c) => accepted.filter((s) => !c.seqs.includes(s)).length);
      throw new Error(`${(err as Error).message}; missing per client: ${missing.join(', ')} of ${accepted.length}`);
    }
    for (const c of all) {
      assert.equal(new Set(c.seqs).size, c.seqs.length, 'no message twice');
      assert.deepEqual([...c.seqs].sort((a, b) => a - b), c.seqs, 'in order');
    }
    for (const c of wsClients) {
      assert.ok(c.reconnects >= 1, 'every WebSocket was moved at least once');
      assert.ok(c.closeCodes.includes(4111), `told to reconnect with 4111 (got ${c.closeCodes.join(',')})`);
    }
    // Long polls never see the restart: a draining listener answers its parked polls 304 with
    // their cursor (or a message), and nginx moves every new poll to a live listener, so there is
    // no error status and no failed request for the client to retry.
    for (const p of polls) {
      const seen = Object.fromEntries(p.statuses);
      assert.deepEqual(Object.keys(seen).filter((code) => code !== '200' && code !== '304'), [], `only 200 and 304 answers (got ${JSON.stringify(seen)})`);
      assert.ok((p.statuses.get(200) ?? 0) >= 10, `polls kept delivering (got ${JSON.stringify(seen)})`);
      assert.equal(p.reconnects, 0, 'no poll failed or had to back off');
    }
    process.stdout.write(`# rolling restart: ${accepted.length} messages published, ${all.length} clients, 0 lost; WS reconnects ${wsClients.map((c) => c.reconnects).join('/')}\n`);
    } finally {
      // Reconnecting clients would keep the test process alive forever.
      wsClients.forEach((c) => c.stop());
      await Promise.all(polls.map((p) => p.stop()));
    }
  });

  it('npm stop stops everything it started; status then says not running', async () => {
    const pids = ['redis', 'publisher-1', 'publisher-2', 'listener-1', 'listener-2', 'listener-3'].map((n) => Number(readFileSync(join(runDir, 'pids', `${n}.pid`), 'utf8')));
    pids.push(Number(readFileSync(join(runDir, 'nginx', 'nginx.pid'), 'utf8')));
    const r = await run('npm', ['stop', '--silent'], env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/, `pid ${pid} gone`);
    const s = await script('status', env);
    assert.equal(s.code, 3);
    assert.match(s.stdout, /not running/);
    const again = await script('stop', env);
    assert.equal(again.code, 0, 'stop twice is harmless');
  });
});
