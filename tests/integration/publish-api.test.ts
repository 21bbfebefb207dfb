import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { Redis } from 'ioredis';
import type { RedisServer } from '../helpers/redis.js';
import { ROOT, TEST_KEY, startApp, type AppProcess } from '../helpers/apps.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { WsClient, channelId, longPoll, publish, signed } from '../helpers/clients.js';
import { snapshotChanges, takeSnapshot, type RedisSnapshot } from '../helpers/redis-snapshot.js';
import { eventually, sleep } from '../helpers/ports.js';

/** Fails with the list of differences when Redis changed since `before` (see redis-snapshot.ts). */
async function assertRedisUnchanged(rc: Redis, before: RedisSnapshot, what = 'Redis unchanged'): Promise<void> {
  assert.deepEqual(snapshotChanges(before, await takeSnapshot(rc)), [], what);
}

/**
 * A publish whose body is streamed (Transfer-Encoding: chunked, no Content-Length), so the server
 * can only find out it is too large while reading. The upload stops right after the body passed
 * `overBytes` and the request is left unfinished: a server that waited for the end of the body
 * instead of answering at the limit would time out here. (Sending on after the answer would make
 * the server's close a TCP reset that can discard its 413 before the client reads it.) Raw socket:
 * fetch cannot show a response that arrives while the upload is still open.
 */
function streamedPublish(pubUrl: string, channel: string, overBytes: number): Promise<Response> {
  const { hostname, port } = new URL(pubUrl);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => sock.destroy(), 10_000);
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      clearTimeout(timer);
      const raw = Buffer.concat(chunks).toString('latin1');
      const head = /^HTTP\/1\.1 (\d{3})[^\r]*\r\n([\s\S]*?)\r\n\r\n/.exec(raw);
      if (head === null) return reject(new Error(`no HTTP response: ${JSON.stringify(raw.slice(0, 200))}`));
      const headers = new Headers();
      for (const line of (head[2] as string).split('\r\n')) headers.append(line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim());
      const length = Number(headers.get('content-length') ?? '0');
      const bodyStart = head.index + head[0].length;
      resolve(new Response(raw.slice(bodyStart, bodyStart + length), { status: Number(head[1]), headers }));
    });
    const frame = (b: Buffer | string): string => `${Buffer.byteLength(b).toString(16)}\r\n${b.toString()}\r\n`;
    sock.write(`POST /bitrix/pub/?CHANNEL_ID=${channel} HTTP/1.1\r\nHost: ${hostname}\r\nTransfer-Encoding: chunked\r\n\r\n`);
    const start = '{"module_id":"t","command":"big","pad":"';
    sock.write(frame(start));
    let sent = start.length;
    const piece = Buffer.alloc(64 * 1024, 'x');
    const pump = (): void => {
      while (sent <= overBytes && !sock.destroyed) {
        sent += piece.length;
        if (!sock.write(frame(piece))) return void sock.once('drain', pump);
      }
    };
    pump();
  });
}

describe('publish API (/pub, /bitrix/pub/)', () => {
  let stack: Stack;
  let redis: RedisServer;
  let pub: AppProcess;
  let sub: AppProcess;
  let rc: Redis;
  before(async () => {
    stack = await startStack({ env: { PUSH_LONGPOLL_TIMEOUT_S: '2', PUSH_HISTORY_LIMIT: '3', PUSH_ONLINE_TTL_S: '10', PUSH_STATS_INTERVAL_S: '1' } });
    ({ redis, pub, sub } = stack);
    rc = redis.client();
  });
  after(() => stack?.stop());

  it('checklist 1: JSON body with Message-Expiry -> 200, empty body, stored with that TTL', async () => {
    const ch = channelId();
    const res = await publish(pub.url, [ch], { module_id: 'im', command: 'message', params: {} }, { 'Message-Expiry': '60' });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), '');
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    const [mid] = await rc.lrange(`push:h:{${ch}}`, 0, -1);
    const ttl = await rc.ttl(`push:m:${mid}`);
    assert.ok(ttl > 55 && ttl <= 60, `ttl ${ttl}`);
  });

  it('checklist 2: CHANNEL_ID a/b/c (raw and %2F) -> each subscriber gets exactly one copy', async () => {
    const ids = [channelId(), channelId(), channelId()];
    const clients = await Promise.all(ids.map((id) => WsClient.connect(sub.url, [signed(id)])));
    const both = await WsClient.connect(sub.url, [signed(ids[0] as string), signed(ids[1] as string)]);
    await publish(pub.url, ids, { module_id: 't', command: 'raw' });
    const encoded = await fetch(`${pub.url}/bitrix/pub/?CHANNEL_ID=${ids.join('%2F')}`, { method: 'POST', body: '{"module_id":"t","command":"enc"}' });
    assert.equal(encoded.status, 200);
    for (const c of clients) {
      const got = await c.waitFor(2);
      await sleep(100);
      assert.deepEqual(got.map((m) => (m.text as { command: string }).command), ['raw', 'enc']);
    }
    await both.waitFor(2);
    await sleep(100);
    assert.equal(both.messages.length, 2, 'a connection on two of the channels gets each publish once');
    for (const c of [...clients, both]) c.close();
  });

  it('checklist 31: prefix routes; /pub works too; unknown path -> 404 with CORS', async () => {
    const ch = channelId();
    for (const path of ['/bitrix/pub/anything', '/pub', '/pub/', '/bitrix/pub']) {
      const r = await publish(pub.url, [ch], { module_id: 't', command: 'x' }, {}, path);
      assert.equal(r.status, 200, path);
    }
    assert.equal(await rc.llen(`push:h:{${ch}}`), 3, 'capped at PUSH_HISTORY_LIMIT=3 of the 4 publishes');
    const nf = await fetch(`${pub.url}/nope`);
    assert.equal(nf.status, 404);
    assert.equal(nf.headers.get('access-control-allow-origin'), '*');
    assert.match(await nf.text(), /^4107: /);
  });

  describe('bad input: clear error, nothing stored, nothing delivered', () => {
    const big = JSON.stringify({ module_id: 't', command: 'big', params: { pad: 'x'.repeat(1024 * 1024) } });
    const ch = channelId();
    const batch = (messages: unknown[] | string) => fetch(`${pub.url}/bitrix/pub/batch`, { method: 'POST', body: typeof messages === 'string' ? messages : JSON.stringify({ messages }) });
    const deep = '{"a":' + '['.repeat(100000) + ']'.repeat(100000) + '}';
    const fanoutBody = (bytes: number) => JSON.stringify({ module_id: 't', command: 'wide', params: { pad: 'x'.repeat(bytes) } });
    const cases: Array<{ name: string; status: number; code: number; send: () => Promise<Response> }> = [
      { name: 'empty body', status: 400, code: 4100, send: () => publish(pub.url, [ch], '') },
      { name: 'malformed channel id', status: 400, code: 4010, send: () => publish(pub.url, [ch, 'nothex'], { a: 1 }) },
      { name: 'missing CHANNEL_ID', status: 400, code: 4017, send: () => fetch(`${pub.url}/bitrix/pub/`, { method: 'POST', body: '{}' }) },
      { name: 'more than 100 channels', status: 400, code: 4018, send: () => publish(pub.url, Array.from({ length: 101 }, () => channelId()), { a: 1 }) },
      { name: 'bad Message-Expiry', status: 400, code: 4104, send: () => publish(pub.url, [ch], { a: 1 }, { 'Message-Expiry': 'tomorrow' }) },
      { name: 'bad Message-Type', status: 400, code: 4105, send: () => publish(pub.url, [ch], { a: 1 }, { 'Message-Type': 'no spaces allowed' }) },
      { name: 'body over 1 MiB', status: 413, code: 4101, send: () => publish(pub.url, [ch], big) },
      { name: 'streamed (chunked) body over 1 MiB', status: 413, code: 4101, send: () => streamedPublish(pub.url, ch, 1024 * 1024) },
      // 170,000 body bytes x 100 channels = 17 MB at once to subscribers, over the 16 MiB default.
      { name: 'fan-out over PUSH_MAX_FANOUT_BYTES (170 KB to 100 channels)', status: 413, code: 4112, send: () => publish(pub.url, [ch, ...Array.from({ length: 99 }, () => channelId())], fanoutBody(170_000)) },
      { name: 'batch: fan-out over PUSH_MAX_FANOUT_BYTES across its messages', status: 413, code: 4112, send: () => batch([0, 1].map(() => ({ channels: [ch, ...Array.from({ length: 99 }, () => channelId())], body: fanoutBody(90_000) }))) },
      { name: 'unknown path', status: 404, code: 4107, send: () => fetch(`${pub.url}/nope?CHANNEL_ID=${ch}`, { method: 'POST', body: '{"module_id":"t"}' }) },
      { name: 'batch: malformed JSON', status: 400, code: 4102, send: () => batch(`{"messages":[{"channels":["${ch}"],"body":{}}`) },
      { name: 'batch: empty', status: 400, code: 4106, send: () => batch([]) },
      { name: 'batch: more than PUSH_MAX_BATCH_MESSAGES (1000)', status: 400, code: 4016, send: () => batch(Array.from({ length: 1001 }, () => ({ channels: [ch], body: { a: 1 } }))) },
      { name: 'batch: a message with more than 100 channels', status: 400, code: 4018, send: () => batch([{ channels: [ch], body: {} }, { channels: Array.from({ length: 101 }, () => channelId()), body: {} }]) },
      { name: 'batch: an object body nested too deeply to store', status: 400, code: 4106, send: () => batch(`{"messages":[{"channels":["${ch}"],"body":{}},{"channels":["${ch}"],"body":${deep}}]}`) },
      { name: 'invalid batch', status: 400, code: 4106, send: () => fetch(`${pub.url}/pub/batch`, { method: 'POST', body: JSON.stringify({ messages: [{ channels: [ch], body: {} }, { channels: ['bad'], body: {} }] }) }) },
      { name: 'wrong method', status: 405, code: 4108, send: () => fetch(`${pub.url}/bitrix/pub/?CHANNEL_ID=${ch}`, { method: 'PUT', body: '{}' }) },
    ];
    for (const c of cases) {
      it(`${c.name} -> ${c.status} "${c.code}: ..."`, async () => {
        const ws = await WsClient.connect(sub.url, [signed(ch)]);
        // The subscriber's presence marker is written just after it connects: let it land first.
        await eventually(async () => (await rc.exists(`push:o:{${ch}}`)) === 1, 3000, 'presence written');
        const before = await takeSnapshot(rc);
        const res = await c.send();
        assert.equal(res.status, c.status);
        const text = await res.text();
        assert.match(text, new RegExp(`^${c.code}: \\S`), text.slice(0, 200));
        assert.equal(res.headers.get('access-control-allow-origin'), '*');
        await sleep(100);
        await assertRedisUnchanged(rc, before);
        assert.equal(ws.messages.length, 0, 'nothing delivered');
        ws.close();
        // The server is still fine afterwards.
        assert.equal((await publish(pub.url, [channelId()], { ok: true })).status, 200);
      });
    }
  });

  it('a declared Content-Length over the limit: 413 at once, the upload is skipped, and the same connection serves the next publish', async () => {
    // Closing a socket with unread upload makes the kernel send a reset, which can destroy the 413
    // before the client reads it; the server answers and skips the declared body instead.
    const ch = channelId();
    const { hostname, port } = new URL(pub.url);
    const sock = connect(Number(port), hostname);
    let raw = '';
    sock.on('data', (d: Buffer) => (raw += d.toString('latin1')));
    const over = 3 * 1024 * 1024;
    sock.write(`POST /bitrix/pub/?CHANNEL_ID=${ch} HTTP/1.1\r\nHost: ${hostname}\r\nContent-Length: ${over}\r\n\r\n`);
    sock.write(Buffer.alloc(over, 'x'));
    const body = '{"module_id":"t","command":"after"}';
    sock.write(`POST /bitrix/pub/?CHANNEL_ID=${ch} HTTP/1.1\r\nHost: ${hostname}\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    await eventually(() => (raw.match(/HTTP\/1\.1 \d{3}/g) ?? []).length === 2, 10_000, 'two responses on one connection');
    sock.destroy();
    assert.deepEqual(raw.match(/HTTP\/1\.1 \d{3}/g), ['HTTP/1.1 413', 'HTTP/1.1 200']);
    assert.match(raw, /\r\n\r\n4101: \S/);
    assert.equal(await rc.llen(`push:h:{${ch}}`), 1, 'only the second publish is stored');
    const [mid] = await rc.lrange(`push:h:{${ch}}`, 0, -1);
    assert.match((await rc.get(`push:m:${mid}`)) ?? '', /"after"/, 'the stored message is the second one');
  });

  it('batch: many messages with their own channels, types and expiries in one request', async () => {
    const [a, b] = [channelId(), channelId()];
    const wa = await WsClient.connect(sub.url, [signed(a)]);
    const wb = await WsClient.connect(sub.url, [signed(b)]);
    const res = await fetch(`${pub.url}/bitrix/pub/batch`, {
      method: 'POST',
      body: JSON.stringify({
        messages: [
          { channels: [a], body: { module_id: 'im', command: 'one' } },
          { channels: [a, b], body: '{"module_id":"im","command":"two"}', expiry: 30 },
          { channels: [b], body: { module_id: 'im', command: 'startWriting' }, expiry: 0 },
        ],
      }),
    });
    assert.equal(res.status, 200);
    await wa.waitFor(2);
    await wb.waitFor(2);
    assert.deepEqual(wa.messages.map((m) => (m.text as { command: string }).command), ['one', 'two']);
    assert.deepEqual(wb.messages.map((m) => (m.text as { command: string }).command), ['two', 'startWriting']);
    assert.equal(await rc.llen(`push:h:{${b}}`), 1, 'expiry 0 delivered live, not stored');
    wa.close();
    wb.close();
  });

  it('per-type TTL: typing is kept at most 2 minutes even when a day is asked for', async () => {
    const ch = channelId();
    await publish(pub.url, [ch], { module_id: 'im', command: 'startWriting' }, { 'Message-Expiry': '86400' });
    await publish(pub.url, [ch], { x: 1 }, { 'Message-Type': 'online_list' });
    const mids = await rc.lrange(`push:h:{${ch}}`, 0, -1);
    const t1 = await rc.ttl(`push:m:${mids[0]}`);
    const t2 = await rc.ttl(`push:m:${mids[1]}`);
    assert.ok(t1 > 100 && t1 <= 120, `typing ttl ${t1}`);
    assert.ok(t2 > 200 && t2 <= 240, `online ttl ${t2}`);
  });

  it('checklist 16: expiry 0 is live only - delivered to connected clients, never replayed', async () => {
    const ch = channelId();
    const ws = await WsClient.connect(sub.url, [signed(ch)]);
    await publish(pub.url, [ch], { module_id: 't', command: 'stored' });
    await publish(pub.url, [ch], { module_id: 't', command: 'live' }, { 'Message-Expiry': '0' });
    await ws.waitFor(2);
    const lp = await longPoll(sub.url, [signed(ch)], `&mid=${'0'.repeat(26)}`);
    assert.deepEqual(lp.messages.map((m) => (m.text as { command: string }).command), ['stored']);
    ws.close();
  });

  it('checklist 18: GET /bitrix/pub/?CHANNEL_ID=a/b lists only online channels', async () => {
    const [a, b] = [channelId(), channelId()];
    const ws = await WsClient.connect(sub.url, [signed(a)]);
    const r = await eventually(async () => {
      const res = await fetch(`${pub.url}/bitrix/pub/?CHANNEL_ID=${a}/${b}`);
      const j = (await res.json()) as { infos: unknown[] };
      return j.infos.length === 1 ? j : null;
    });
    assert.deepEqual(r, { infos: [{ channel: a, subscribers: 1 }] });
    ws.close();
    const bad = await fetch(`${pub.url}/bitrix/pub/?CHANNEL_ID=zzz`);
    assert.equal(bad.status, 400);
    const none = await fetch(`${pub.url}/bitrix/pub/`);
    assert.equal(none.status, 400);
    assert.match(await none.text(), /^4017: /);
  });

  it('checklist 21: GET /server-stat/ lists every live process', async () => {
    const list = await eventually(async () => {
      const res = await fetch(`${pub.url}/server-stat/`);
      assert.equal(res.status, 200);
      const j = (await res.json()) as Array<Record<string, unknown>>;
      return j.length >= 2 ? j : null;
    }) as Array<Record<string, unknown>>;
    for (const p of list) for (const k of ['pid', 'date', 'processUniqueId', 'websockets', 'pollings', 'channels']) assert.ok(k in p, `${k} in ${JSON.stringify(p)}`);
    assert.deepEqual(list.map((p) => p['pid']).sort(), [pub.proc.pid, sub.proc.pid].sort());
  });
});

describe('Redis outages: 503, nothing half-written', () => {
  let stack: Stack;
  let redis: RedisServer;
  let pub: AppProcess;
  let rc: Redis;
  before(async () => {
    // AOF on: what Redis held before the outage is there after it, so the comparison is real.
    stack = await startStack({ appendonly: true, env: { PUSH_STATS_INTERVAL_S: '1' } });
    ({ redis, pub } = stack);
    rc = redis.client();
  });
  after(() => stack?.stop());

  /** Redis content except the id counter, which every reconnect advances by design (ID_SAFETY_GAP). */
  const withoutCounter = (snap: RedisSnapshot): RedisSnapshot => ({ takenAt: snap.takenAt, keys: new Map([...snap.keys].filter(([k]) => k !== 'push:id:counter')) });
  const counter = async (): Promise<number> => Number(await rc.get('push:id:counter'));

  it('Redis unreachable -> 503 with Retry-After for publish, batch, online status and /server-stat/; nothing written; recovers', async () => {
    const [a, b] = [channelId(), channelId()];
    for (const c of [a, b]) assert.equal((await publish(pub.url, [c], { module_id: 't', command: 'before' })).status, 200);
    const before = await takeSnapshot(rc);
    const counterBefore = await counter();
    assert.ok(before.keys.has(`push:h:{${a}}`), 'there is state to lose');
    await redis.kill();
    const refused = [
      await publish(pub.url, [a, b, channelId()], { module_id: 't', command: 'down' }),
      await fetch(`${pub.url}/bitrix/pub/batch`, { method: 'POST', body: JSON.stringify({ messages: [{ channels: [a], body: { n: 1 } }, { channels: [channelId()], body: { n: 2 } }] }) }),
      await fetch(`${pub.url}/bitrix/pub/?CHANNEL_ID=${a}/${b}`),
      await fetch(`${pub.url}/server-stat/`),
    ];
    for (const res of refused) {
      assert.equal(res.status, 503, res.url);
      assert.equal(res.headers.get('retry-after'), '1', res.url);
      assert.match(await res.text(), /^4109: Message store \(Redis\) unavailable; the request was not carried out/, res.url);
    }
    assert.equal((await fetch(`${pub.url}/readyz`)).status, 503);
    await redis.restart();
    await eventually(async () => (await fetch(`${pub.url}/readyz`)).status === 200, 10_000, 'ready again');
    assert.deepEqual(snapshotChanges(withoutCounter(before), withoutCounter(await takeSnapshot(rc))), [], 'Redis as before the outage');
    const grown = (await counter()) - counterBefore;
    assert.ok(grown > 0 && grown % 1_000_000 === 0, `the counter only took reconnect gaps, no refused publish used an id (+${grown})`);
    assert.equal((await publish(pub.url, [a], { module_id: 't', command: 'up' })).status, 200);
  });

  // Issue 18 item 2 replaced the old required behaviour here (503 4109 "may not have been stored"
  // after 3 s while the script was still queued in Redis): a publish never answers "not stored"
  // for what Redis may still carry out.
  it('paused Redis (2 s, within PUSH_PUBLISH_TIMEOUT_MS): the publisher waits and answers 200 once Redis has stored it, once', async () => {
    const [a, b] = [channelId(), channelId()];
    await rc.client('PAUSE', 2000, 'WRITE');
    const t0 = Date.now();
    const res = await publish(pub.url, [a, b], { module_id: 't', command: 'paused' });
    const took = Date.now() - t0;
    assert.equal(res.status, 200, await res.text());
    assert.ok(took >= 1500, `answered after ${took} ms: only once Redis ran the script`);
    const [la, lb] = [await rc.lrange(`push:h:{${a}}`, 0, -1), await rc.lrange(`push:h:{${b}}`, 0, -1)];
    assert.equal(la.length, 1, 'stored once');
    assert.deepEqual(la, lb, 'on every channel');
  });

  it('paused Redis past PUSH_PUBLISH_TIMEOUT_MS: 504 4134 (outcome unknown), then stored completely once; a retry with the same X-Push-Request-Id returns the same id and stores nothing', async () => {
    const slow = await startApp('publisher', { ...stack.env, PUSH_PUBLISH_TIMEOUT_MS: '1000' });
    try {
      const [a, b] = [channelId(), channelId()];
      const id = `unknown-${channelId()}`;
      await rc.client('PAUSE', 3000, 'WRITE');
      let first: Response;
      try {
        const t0 = Date.now();
        first = await publish(slow.url, [a, b], { module_id: 't', command: 'paused' }, { 'X-Push-Request-Id': id });
        const took = Date.now() - t0;
        assert.equal(first.status, 504);
        assert.match(await first.text(), /^4134: Publish outcome unknown/);
        assert.ok(took >= 900 && took < 2500, `answered after ${took} ms`);
      } finally {
        // Redis runs the held script once it is unpaused: the "unknown" was honest.
        await eventually(async () => (await rc.llen(`push:h:{${a}}`)) === 1, 6000, 'the held publish ran');
      }
      const [la, lb] = [await rc.lrange(`push:h:{${a}}`, 0, -1), await rc.lrange(`push:h:{${b}}`, 0, -1)];
      assert.deepEqual(la, lb, 'all or nothing');
      const retry = await publish(slow.url, [a, b], { module_id: 't', command: 'paused' }, { 'X-Push-Request-Id': id });
      assert.equal(retry.status, 200, await retry.text());
      assert.equal(retry.headers.get('x-push-message-ids'), la[0], 'the original outcome');
      assert.equal(await rc.llen(`push:h:{${a}}`), 1, 'the retry stored nothing');
    } finally {
      await slow.stop();
    }
  });
});

describe('process hygiene', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ env: { PUSH_SIGNATURE_ALGO: 'sha256', PUSH_LOG_LEVEL: 'debug' } });
  });
  after(() => stack?.stop());

  it('logs which uWS binding runs; never logs keys or payloads', async () => {
    const ch = channelId();
    const secret = { key: TEST_KEY, algorithm: 'sha256' as const };
    const ws = await WsClient.connect(stack.sub.url, [signed(ch, secret)]);
    await publish(stack.pub.url, [ch], { module_id: 't', command: 'canary', params: { marker: 'PAYLOAD-CANARY-42' } });
    await ws.waitFor(1);
    await publish(stack.pub.url, [ch], '{"broken": ');
    ws.close();
    await sleep(200);
    for (const p of [stack.pub, stack.sub]) {
      const out = p.output();
      assert.match(out, /"detail":"uws_\w+\.node from uWebSockets\.js 20\.57\.0 [^"]*".*"msg":"uWebSockets\.js loaded"/);
      assert.ok(!out.includes(TEST_KEY), `${p.name} log holds the key`);
      assert.ok(!out.includes('PAYLOAD-CANARY-42'), `${p.name} log holds a payload`);
    }
  });

  it('checklist 7: PUSH_SIGNATURE_ALGO switches the channel signature (sha256 here; sha1 is refused)', async () => {
    const ch = channelId();
    const ok = await WsClient.connect(stack.sub.url, [signed(ch, { key: TEST_KEY, algorithm: 'sha256' })]);
    const sha1 = new WsClient(`${stack.sub.url.replace('http', 'ws')}/bitrix/subws/?CHANNEL_ID=${signed(ch)}`);
    await sha1.closed;
    assert.equal(sha1.closeCode, 4010);
    ok.close();
  });

  it('refuses to run when the native uWS binding does not load (status 1, clear message)', async () => {
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(process.execPath, [`${ROOT}apps/listener/dist/main.js`], {
      env: { PATH: process.env['PATH'] ?? '', ...stack.env, PUSH_SIGNATURE_KEY: TEST_KEY, PUSH_PORT: '65001', PUSH_TEST_UWS_ABI: '1' },
      encoding: 'utf8',
      timeout: 15_000,
    });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /uWebSockets\.js native binding uws_\w+_1\.node did not load/);
    // Each place the binding is looked for, with its reason.
    assert.match(r.stderr, /uWebSockets\.js 20\.57\.0 \(@btc-vision\/uwebsockets\.js\): Cannot find module .*uws_\w+_1\.node/);
    assert.match(r.stderr, /uWebSockets\.js 20\.57\.0 \(@btc-vision\/uwebsockets\.js, copy for glibc before 2\.38\): Cannot find module .*uws-compat\/uws_\w+_1\.node/);
    assert.ok(!r.stdout.includes('listener ready'));
  });

  it('a configuration problem stops the process with status 2 and names every bad variable', async () => {
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(process.execPath, [`${ROOT}apps/listener/dist/main.js`], { env: { PATH: process.env['PATH'] ?? '', PUSH_PORT: 'x', PUSH_SIGNATURE_ALGO: 'crc' }, encoding: 'utf8' });
    assert.equal(r.status, 2);
    for (const v of ['PUSH_PORT', 'PUSH_SIGNATURE_KEY', 'PUSH_SIGNATURE_ALGO']) assert.match(r.stderr, new RegExp(v));
  });
});
