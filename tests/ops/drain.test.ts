import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { encodeRequestBatch, signChannelPair } from '@push/protocol';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startApp, TEST_KEY, type AppProcess } from '../helpers/apps.js';
import { SECRET, WsClient, channelId, longPoll, publish, signed } from '../helpers/clients.js';
import { eventually, sleep } from '../helpers/ports.js';
import { parsePrometheus, sampleSum } from './stack-helpers.js';

const EXPIRES = 'Thu, 01 Jan 1973 11:11:01 GMT';
const ZERO_MID = '0'.repeat(26);

/** A raw keep-alive HTTP connection, to talk to a process whose listen socket is already closed. */
async function rawConnection(port: number): Promise<{ sock: Socket; request(text: string | Uint8Array): Promise<string> }> {
  const sock = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  let buf = '';
  sock.on('data', (d: Buffer) => (buf += d.toString()));
  return {
    sock,
    async request(text: string | Uint8Array) {
      buf = '';
      sock.write(text);
      await eventually(() => /\r\n\r\n/.test(buf) && (/content-length: 0\r\n/i.test(buf) || /\r\n\r\n.+/s.test(buf)), 3000, 'raw response');
      await sleep(50);
      return buf;
    },
  };
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

describe('graceful drain on SIGTERM', () => {
  let redis: RedisServer;
  let pub: AppProcess;
  const env = (): Record<string, string> => ({ REDIS_URL: redis.url, PUSH_LONGPOLL_TIMEOUT_S: '30', PUSH_SHUTDOWN_GRACE_S: '6', PUSH_UNSUBSCRIBE_DELAY_MS: '100' });

  before(async () => {
    redis = await startRedis();
    pub = await startApp('publisher', env());
  });
  after(async () => {
    await pub?.stop();
    await redis?.stop();
  });

  it('listener: readiness 503 and no new connections at once, goodbyes spread over the window, polls get their cursor, exit within the grace period, nothing lost', async () => {
    const listener = await startApp('listener', env());
    const ch = channelId();
    assert.equal((await publish(pub.url, [ch], { module_id: 't', command: 'c', params: { seq: 1 } }, { 'Message-Expiry': '600' })).status, 200);
    const first = await longPoll(listener.url, [signed(ch)], `&mid=${ZERO_MID}`);
    const cursor = first.messages[0]?.mid as string;
    assert.match(cursor, /^\d{26}$/);
    // A channel that gets nothing during the drain: its parked polls can only end with the 304 goodbye.
    const quiet = channelId();
    assert.equal((await publish(pub.url, [quiet], { module_id: 't', command: 'c', params: { seq: 100 } }, { 'Message-Expiry': '600' })).status, 200);
    const quietCursor = (await longPoll(listener.url, [signed(quiet)], `&mid=${ZERO_MID}`)).messages[0]?.mid as string;
    assert.match(quietCursor, /^\d{26}$/);
    assert.notEqual(quietCursor, cursor);

    const sockets = await Promise.all(Array.from({ length: 6 }, () => WsClient.connect(listener.url, [signed(ch)], `&mid=${cursor}`)));
    const closedAt: number[] = [];
    for (const s of sockets) void s.closed.then(() => closedAt.push(Date.now()));
    const polls = Array.from({ length: 3 }, () => longPoll(listener.url, [signed(ch)], `&mid=${cursor}`));
    const quietPolls = Array.from({ length: 2 }, () => longPoll(listener.url, [signed(quiet)], `&mid=${quietCursor}`));
    const raw = await rawConnection(listener.port);
    await eventually(async () => {
      const m = parsePrometheus(await (await fetch(`${listener.url}/metrics`)).text());
      return sampleSum(m, 'push_connections', { transport: 'ws' }) === 6 && sampleSum(m, 'push_connections', { transport: 'lp' }) === 5;
    }, 5000, '6 WebSockets and 5 parked polls');

    const t0 = Date.now();
    const exited = listener.stop('SIGTERM');
    await sleep(150);
    const ready = await raw.request('GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.match(ready, /^HTTP\/1\.1 503 /);
    assert.match(ready, /4111: Server is restarting; reconnect with mid to resume\./);
    assert.equal(await refused(listener.port), true, 'listen socket closed: new connections refused');
    // A WebSocket handshake arriving on a kept-alive connection is refused with 503 (nginx retries it elsewhere).
    const upgrade = await raw.request(`GET /bitrix/subws/?CHANNEL_ID=${signed(ch)} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
    assert.match(upgrade, /^HTTP\/1\.1 503 /);
    raw.sock.destroy();

    // Still-connected clients keep receiving during the drain.
    assert.equal((await publish(pub.url, [ch], { module_id: 't', command: 'c', params: { seq: 2 } }, { 'Message-Expiry': '600' })).status, 200);

    // The quiet polls: always the goodbye, a 304 carrying their own cursor and the magic Expires
    // that makes the official client take Last-Message-Id as its new mid.
    for (const p of await Promise.all(quietPolls)) {
      assert.equal(p.status, 304);
      assert.equal(p.body, '');
      assert.equal(p.headers.get('last-message-id'), quietCursor);
      assert.equal(p.headers.get('expires'), EXPIRES);
    }
    const answered = await Promise.all(polls);
    for (const p of answered) {
      if (p.status === 304) {
        assert.equal(p.headers.get('last-message-id'), cursor);
        assert.equal(p.headers.get('expires'), EXPIRES);
      } else {
        // The poll's goodbye came after the publish: it got the message instead, equally fine.
        assert.equal(p.status, 200);
        assert.equal((p.messages[0]?.text as { params: { seq: number } }).params.seq, 2);
      }
    }
    await Promise.all(sockets.map((s) => s.closed));
    for (const s of sockets) {
      assert.equal(s.closeCode, 4111);
      assert.equal(s.closeReason, '4111: Server is restarting; reconnect with mid to resume.');
    }
    const spread = Math.max(...closedAt) - Math.min(...closedAt);
    assert.ok(spread >= 200, `goodbyes spread over the window (got ${spread} ms)`);
    assert.ok(Math.max(...closedAt) - t0 <= 3500, 'all goodbyes within the spread window, 30 % of the 6 s grace (+ slack)');
    assert.equal(await exited, 0);
    assert.ok(Date.now() - t0 < 6000, `exited within the 6 s grace period (took ${Date.now() - t0} ms)`);

    // Every client resumes elsewhere by mid and gets what was published during the drain.
    const next = await startApp('listener', env());
    try {
      const resumed = await WsClient.connect(next.url, [signed(ch)], `&mid=${cursor}`);
      const got = await resumed.waitFor(1);
      assert.deepEqual(got.map((m) => (m.text as { params: { seq: number } }).params.seq), [2]);
      resumed.close();
    } finally {
      await next.stop();
    }
  });

  it('publisher: stops accepting, finishes the publish in flight, exits', async () => {
    const p2 = await startApp('publisher', env());
    const listener = await startApp('listener', env());
    try {
      const ch = channelId();
      const body = JSON.stringify({ module_id: 't', command: 'inflight', params: { seq: 7 } });
      const raw = await rawConnection(p2.port);
      // Headers and half of the body now, the rest after SIGTERM.
      raw.sock.write(`POST /bitrix/pub/?CHANNEL_ID=${ch} HTTP/1.1\r\nHost: x\r\nMessage-Expiry: 600\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`);
      await sleep(100);
      const exited = p2.stop('SIGTERM');
      await sleep(200);
      assert.equal(await refused(p2.port), true, 'no new connections once draining');
      const res = await raw.request(body.slice(10));
      assert.match(res, /^HTTP\/1\.1 200 /, 'the in-flight publish is finished and acknowledged');
      raw.sock.destroy();
      assert.equal(await exited, 0);
      const poll = await longPoll(listener.url, [signed(ch)], `&mid=${ZERO_MID}`);
      assert.equal(poll.status, 200);
      assert.deepEqual(poll.messages.map((m) => (m.text as { params: { seq: number } }).params.seq), [7], 'the acknowledged message was stored');
    } finally {
      await p2.stop();
      await listener.stop();
    }
  });

  it('publisher: a client publish (/bitrix/rest/) and a mint (POST /channels) still arriving when SIGTERM comes are finished before the exit', async () => {
    const p2 = await startApp('publisher', env());
    const listener = await startApp('listener', env());
    try {
      const [privA, pubA, privB, pubB] = [channelId(), channelId(), channelId(), channelId()];
      const publicSig = createHmac('sha1', TEST_KEY).update(`public:${pubB}`).digest();
      const batch = Buffer.from(
        encodeRequestBatch({
          requests: [{ incomingMessages: { messages: [{ receivers: [{ id: Buffer.from(pubB, 'hex'), isPrivate: false, signature: publicSig }], body: JSON.stringify({ module_id: 'im', command: 'rest_inflight' }), expiry: 600, type: 'im_rest' }] } }],
        }),
      );
      const rest = await rawConnection(p2.port);
      const mint = await rawConnection(p2.port);
      const mintBody = '{}';
      // Headers and part of each body now, the rest after SIGTERM.
      rest.sock.write(Buffer.concat([Buffer.from(`POST /bitrix/rest/?CHANNEL_ID=${encodeURIComponent(signChannelPair(privA, pubA, SECRET))} HTTP/1.1\r\nHost: x\r\nContent-Length: ${batch.length}\r\n\r\n`), batch.subarray(0, 8)]));
      mint.sock.write(`POST /channels?count=2 HTTP/1.1\r\nHost: x\r\nContent-Length: ${mintBody.length}\r\n\r\n${mintBody.slice(0, 1)}`);
      await sleep(100);
      const t0 = Date.now();
      const exited = p2.stop('SIGTERM');
      await sleep(300);
      assert.equal(await refused(p2.port), true, 'no new connections once draining');
      assert.equal(p2.proc.exitCode, null, 'still running while requests are in flight');
      assert.match(await rest.request(batch.subarray(8)), /^HTTP\/1\.1 200 /, 'the in-flight client publish is finished and acknowledged');
      const minted = await mint.request(mintBody.slice(1));
      assert.match(minted, /^HTTP\/1\.1 200 /, 'the in-flight mint is finished');
      const ids = (JSON.parse(minted.slice(minted.indexOf('\r\n\r\n') + 4)) as { channels: Array<{ id: string }> }).channels.map((c) => c.id);
      assert.equal(ids.length, 2);
      rest.sock.destroy();
      mint.sock.destroy();
      assert.equal(await exited, 0);
      assert.ok(Date.now() - t0 < 6000, 'exited within the grace period');
      // The acknowledged client message was stored on B's public channel (resumable by mid).
      const poll = await longPoll(listener.url, [signChannelPair(privB, pubB, SECRET)], `&mid=${ZERO_MID}`);
      assert.equal(poll.status, 200);
      assert.deepEqual(poll.messages.map((m) => (m.text as { command: string }).command), ['rest_inflight']);
    } finally {
      await p2.stop();
      await listener.stop();
    }
  });
});
