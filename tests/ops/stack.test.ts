import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { parseEnvFile } from '@push/runtime';
import { signChannel, type ChannelSecret } from '@push/protocol';
import { ROOT } from '../helpers/apps.js';
import { WsClient, channelId, longPoll, publish } from '../helpers/clients.js';
import { eventually, sleep } from '../helpers/ports.js';
import { ResumingPoll, ResumingWs, freePortRange, parsePrometheus, run, sampleSum, script } from './stack-helpers.js';

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
  const sign = (id: string): string => signChannel(id, secret);

  before(async () => {
    runDir = mkdtempSync(join(tmpdir(), 'push-stack-'));
    const frontPort = await freePortRange(1);
    const pubBase = await freePortRange(2);
    const subBase = await freePortRange(LISTENERS);
    const redisPort = await freePortRange(1);
    env = {
      PUSH_RUN_DIR: runDir,
      PUSH_CONFIG_FILE: join(runDir, 'conf', 'config.env'),
      PUSH_FRONT_PORT: String(frontPort),
      PUSH_PUBLISHER_PORT: String(pubBase),
      PUSH_LISTENER_PORT: String(subBase),
      PUSH_REDIS_PORT: String(redisPort),
      PUSH_LISTENERS: String(LISTENERS),
      PUSH_PUBLISHERS: '2',
      // No key and no Redis from outside: start.sh generates the key and runs its own Redis.
      PUSH_SIGNATURE_KEY: '',
      REDIS_URL: '',
      PUSH_STATS_INTERVAL_S: '1',
      PUSH_SHUTDOWN_GRACE_S: '5',
      PUSH_LONGPOLL_TIMEOUT_S: '5',
      PUSH_LOG_LEVEL: 'warn',
    };
    front = `http://127.0.0.1:${frontPort}`;
    publisherPorts = [pubBase, pubBase + 1];
    listenerPorts = Array.from({ length: LISTENERS }, (_, i) => subBase + i);
  });
  after(async () => {
    const r = await script('stop', env);
    if (r.code !== 0) process.stderr.write(`stop.sh: ${r.stdout}${r.stderr}\n`);
    rmSync(runDir, { recursive: true, force: true });
  });

  it('npm start brings up Redis, 2 publishers, 3 listeners and nginx, generates the key once, and is idempotent', async () => {
    const r = await run('npm', ['start', '--silent'], env);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /push start: ready \(2 publishers, 3 listeners, redis redis:\/\/127\.0\.0\.1:\d+\)/);
    assert.ok(r.stdout.includes(`long poll:    ${front}/bitrix/sub/`), r.stdout);
    assert.ok(r.stdout.includes(`WebSocket:    ${front.replace('http', 'ws')}/bitrix/subws/`), r.stdout);
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
    const again = await script('start', { ...env, PUSH_SKIP_SETUP: '1' });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already running/);
    assert.equal(readFileSync(join(runDir, 'pids', 'listener-1.pid'), 'utf8'), pidsBefore, 'running processes left alone');
    assert.equal(parseEnvFile(readFileSync(conf, 'utf8'))['PUSH_SIGNATURE_KEY'], key, 'key not regenerated');
  });

  it('status.sh reports every process; a dead listener shows, and start brings back only it', async () => {
    const s = await script('status', env);
    assert.equal(s.code, 0, s.stdout + s.stderr);
    for (const name of ['redis', 'nginx', 'publisher-1', 'publisher-2', 'listener-1', 'listener-2', 'listener-3']) {
      assert.match(s.stdout, new RegExp(`^${name}\\s+\\d+\\s+\\d+\\s+running\\s+yes$`, 'm'), `${name} in\n${s.stdout}`);
    }
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
    const ch = channelId();
    const ws = await WsClient.connect(front, [sign(ch)]);
    const poll = longPoll(front, [sign(ch)]);
    // Which listener holds which client, from each listener's own metrics.
    const found = await eventually(async () => {
      const per = await Promise.all(listenerPorts.map(async (p) => parsePrometheus(await (await fetch(`http://127.0.0.1:${p}/metrics`)).text())));
      const wsAt = listenerPorts.filter((_, i) => sampleSum(per[i]!, 'push_connections', { transport: 'ws' }) === 1);
      const lpAt = listenerPorts.filter((_, i) => sampleSum(per[i]!, 'push_connections', { transport: 'lp' }) === 1);
      return wsAt.length === 1 && lpAt.length === 1 ? { ws: wsAt[0], lp: lpAt[0] } : null;
    }, 5000, 'one WebSocket and one parked poll');
    const holders = found as { ws: number; lp: number };
    assert.notEqual(holders.ws, holders.lp, 'nginx spread the two clients over two listeners');
    const body = { module_id: 'test', command: 'through_nginx', params: { n: 1 } };
    const res = await publish(front, [ch], body, { 'Message-Expiry': '60' });
    assert.equal(res.status, 200);
    const lp = await poll;
    assert.equal(lp.status, 200);
    assert.deepEqual(lp.messages[0]?.text, body);
    const got = await ws.waitFor(1);
    assert.deepEqual(got[0]?.text, body);
    assert.equal(got[0]?.mid, lp.messages[0]?.mid);
    ws.close();
  });

  it('/metrics of every process is valid Prometheus text with the documented families; nginx stub status answers', async () => {
    const common = ['push_redis_command_duration_seconds', 'push_redis_up', 'push_draining', 'nodejs_eventloop_lag_seconds', 'process_resident_memory_bytes'];
    const forListener = ['push_connections', 'push_channels', 'push_messages_received_total', 'push_messages_delivered_total', 'push_frames_sent_total', 'push_bytes_out_total', 'push_messages_dropped_total', 'push_slow_consumer_closes_total', 'push_pubsub_lag_seconds'];
    const forPublisher = ['push_publish_requests_total', 'push_messages_published_total', 'push_publish_duration_seconds'];
    let delivered = 0;
    for (const p of listenerPorts) {
      const res = await fetch(`http://127.0.0.1:${p}/metrics`);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      const m = parsePrometheus(await res.text());
      for (const name of [...common, ...forListener]) assert.ok(m.has(name), `listener ${p} exposes ${name}`);
      assert.equal(m.get('push_pubsub_lag_seconds')?.type, 'histogram');
      assert.equal(m.get('push_messages_delivered_total')?.type, 'counter');
      delivered += sampleSum(m, 'push_messages_delivered_total');
    }
    assert.ok(delivered >= 2, 'the previous test delivered two messages');
    let accepted = 0;
    for (const p of publisherPorts) {
      const m = parsePrometheus(await (await fetch(`http://127.0.0.1:${p}/metrics`)).text());
      for (const name of [...common, ...forPublisher]) assert.ok(m.has(name), `publisher ${p} exposes ${name}`);
      assert.equal(sampleSum(m, 'push_redis_up'), 1);
      accepted += sampleSum(m, 'push_messages_published_total', { storage: 'stored' });
    }
    assert.ok(accepted >= 1);
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
        const ws = await WsClient.connect(front, [sign(channelId())]);
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
