import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { decodeTextFrames, encodeRequestBatch, signChannelPair } from '@push/protocol';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startApp, TEST_KEY, type AppProcess } from '../helpers/apps.js';
import { SECRET, WsClient, channelId, publish, signed } from '../helpers/clients.js';
import { eventually, sleep } from '../helpers/ports.js';
import { parsePrometheus, sampleSum, type PromFamily } from './stack-helpers.js';

const hex = (h: string): Buffer => Buffer.from(h, 'hex');
const publicSig = (pub: string): Buffer => createHmac('sha1', TEST_KEY).update(`public:${pub}`).digest();
/** A protocol-4 RequestBatch publishing one message to a public channel. */
const v4Publish = (pub: string, body: unknown, expiry: number): Uint8Array =>
  encodeRequestBatch({
    requests: [{ incomingMessages: { messages: [{ receivers: [{ id: hex(pub), isPrivate: false, signature: publicSig(pub) }], body: JSON.stringify(body), expiry, type: 'test_metrics' }] } }],
  });

async function scrape(url: string): Promise<Map<string, PromFamily>> {
  return parsePrometheus(await (await fetch(`${url}/metrics`)).text());
}

/**
 * Metric values (not just presence) for every publishing path, protocol 4 included, and the
 * slow-consumer policy end to end: real publisher and listener processes over a real Redis.
 */
describe('metrics and the slow-consumer policy', () => {
  let redis: RedisServer;
  let pub: AppProcess;
  let listener: AppProcess;

  before(async () => {
    redis = await startRedis();
    const env = {
      REDIS_URL: redis.url,
      PUSH_UNSUBSCRIBE_DELAY_MS: '100',
      // Small enough that a client which stops reading is found out after a few large messages.
      PUSH_WS_MAX_BACKPRESSURE_BYTES: '65536',
      // The slow consumer's backlog must still be in history when it resumes.
      PUSH_HISTORY_LIMIT: '1000',
    };
    [pub, listener] = await Promise.all([startApp('publisher', env), startApp('listener', env)]);
  });
  after(async () => {
    await Promise.all([pub?.stop(), listener?.stop()]);
    await redis?.stop();
  });

  it('every publish path counts: text, live, protocol-4 binary, /bitrix/rest/ on publishers; WebSocket client publishes on listeners', async () => {
    const before = await scrape(pub.url);
    assert.equal(sampleSum(before, 'push_messages_published_total'), 0, 'a fresh publisher has published nothing');
    const [privA, pubA, privB, pubB] = [channelId(), channelId(), channelId(), channelId()];
    const receiver = await WsClient.connect(listener.url, [signChannelPair(privB, pubB, SECRET)]);

    // Portal, text: one stored, one live (expiry 0).
    assert.equal((await publish(pub.url, [privB], { module_id: 't', command: 'text' }, { 'Message-Expiry': '60' })).status, 200);
    assert.equal((await publish(pub.url, [privB], { module_id: 't', command: 'live' }, { 'Message-Expiry': '0' })).status, 200);
    // Portal, protocol 4 (binaryMode=true), stored.
    const bin = await fetch(`${pub.url}/bitrix/pub/?binaryMode=true`, { method: 'POST', body: v4Publish(pubB, { module_id: 't', command: 'binary' }, 60) });
    assert.equal(bin.status, 200, await bin.text());
    // Client publishing over HTTP (/bitrix/rest/), stored.
    const rest = await fetch(`${pub.url}/bitrix/rest/?CHANNEL_ID=${encodeURIComponent(signChannelPair(privA, pubA, SECRET))}`, { method: 'POST', body: v4Publish(pubB, { module_id: 't', command: 'rest' }, 60) });
    assert.equal(rest.status, 200, await rest.text());
    // Client publishing over a listener's WebSocket, live.
    const sender = new WebSocket(`${listener.url.replace('http', 'ws')}/bitrix/subws/?CHANNEL_ID=${encodeURIComponent(signChannelPair(privA, pubA, SECRET))}&binaryMode=true`);
    await new Promise((resolve, reject) => sender.once('open', resolve).once('error', reject));
    sender.send(v4Publish(pubB, { module_id: 't', command: 'ws' }, 0));
    const got = await receiver.waitFor(5);
    assert.deepEqual(got.map((m) => (m.text as { command: string }).command).sort(), ['binary', 'live', 'rest', 'text', 'ws']);
    sender.close();
    receiver.close();

    const p = await scrape(pub.url);
    assert.equal(sampleSum(p, 'push_messages_published_total', { storage: 'stored' }), 3, 'text, binary and rest messages stored');
    assert.equal(sampleSum(p, 'push_messages_published_total', { storage: 'live' }), 1);
    assert.equal(sampleSum(p, 'push_publish_requests_total', { result: 'ok' }), 4);
    assert.equal(sampleSum(p, 'push_publish_duration_seconds_count'), 4);
    assert.equal(sampleSum(p, 'push_redis_command_duration_seconds_count', { command: 'publish' }), 4, 'every publish is a timed Redis round trip');
    const l = await scrape(listener.url);
    assert.equal(sampleSum(l, 'push_messages_published_total', { storage: 'live' }), 1, 'the WebSocket client publish is counted on the listener');
    assert.equal(sampleSum(l, 'push_messages_published_total', { storage: 'stored' }), 0);
    assert.equal(sampleSum(l, 'push_redis_command_duration_seconds_count', { command: 'publish' }), 1, 'and timed as a Redis round trip');
    assert.ok(sampleSum(l, 'push_messages_delivered_total') >= 5);
    assert.ok(sampleSum(l, 'push_pubsub_lag_seconds_count') >= 5);
    // A handful of messages to a handful of sockets: flushes take microseconds, no coalescing window.
    assert.ok(l.has('push_coalesce_window_seconds'));
    assert.ok(sampleSum(l, 'push_coalesce_window_seconds') < 0.05, 'an unloaded listener flushes at once');

    // A refused request counts as rejected and publishes nothing.
    const bad = await fetch(`${pub.url}/bitrix/rest/?CHANNEL_ID=${signed(privA)}`, { method: 'POST', body: v4Publish(pubB, { module_id: 't', command: 'x' }, 60) });
    assert.equal(bad.status, 400);
    const p2 = await scrape(pub.url);
    assert.equal(sampleSum(p2, 'push_publish_requests_total', { result: 'rejected' }), 1);
    assert.equal(sampleSum(p2, 'push_messages_published_total'), 4);
  });

  it('a WebSocket client that stops reading is closed with 4110, counted, and resumes by mid without losing anything', async () => {
    const ch = channelId();
    const seqs: number[] = [];
    let lastMid = '';
    const onFrames = (data: WebSocket.RawData): void => {
      for (const m of decodeTextFrames(data.toString())) {
        lastMid = m.mid;
        seqs.push((m.text as { params: { seq: number } }).params.seq);
      }
    };
    const slow = new WebSocket(`${listener.url.replace('http', 'ws')}/bitrix/subws/?CHANNEL_ID=${encodeURIComponent(signed(ch))}`);
    slow.on('message', onFrames);
    const closed = new Promise<{ code: number; reason: string }>((resolve) => slow.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    await new Promise((resolve, reject) => slow.once('open', resolve).once('error', reject));
    // The client stops reading: its receive window fills, then the kernel send buffer, then uWS's.
    const socket = (slow as unknown as { _socket: Socket })._socket;
    socket.pause();

    const pad = 'x'.repeat(256 * 1024);
    let seq = 0;
    const closesBefore = sampleSum(await scrape(listener.url), 'push_slow_consumer_closes_total');
    assert.equal(closesBefore, 0);
    for (;;) {
      seq++;
      const r = await publish(pub.url, [ch], { module_id: 't', command: 'bulk', params: { seq, pad } }, { 'Message-Expiry': '600' });
      assert.equal(r.status, 200);
      if (sampleSum(await scrape(listener.url), 'push_slow_consumer_closes_total') === 1) break;
      assert.ok(seq < 400, 'the slow consumer is closed after a bounded amount of buffering');
    }
    // Published after the close: only a resume can deliver these.
    for (let i = 0; i < 3; i++) {
      seq++;
      assert.equal((await publish(pub.url, [ch], { module_id: 't', command: 'bulk', params: { seq, pad } }, { 'Message-Expiry': '600' })).status, 200);
    }
    const last = seq;

    socket.resume();
    const end = await closed;
    assert.equal(end.code, 4110);
    assert.match(end.reason, /^4110: /);
    assert.ok(seqs.length < last, `the slow client missed messages before the close (${seqs.length} of ${last})`);
    assert.deepEqual(seqs, Array.from({ length: seqs.length }, (_, i) => i + 1), 'what arrived before the close arrived in order');
    const m = await scrape(listener.url);
    assert.equal(sampleSum(m, 'push_slow_consumer_closes_total'), 1);

    // Resume from the last message it got: the rest comes from history, nothing lost, nothing twice.
    const resumed = await WsClient.connect(listener.url, [signed(ch)], `&mid=${lastMid}`);
    try {
      await eventually(() => seqs.length + resumed.messages.length >= last, 15_000, `${last} messages in total`);
      await sleep(100);
      const all = [...seqs, ...resumed.messages.map((x) => (x.text as { params: { seq: number } }).params.seq)];
      assert.deepEqual(all, Array.from({ length: last }, (_, i) => i + 1));
    } finally {
      resumed.close();
    }
    assert.equal(sampleSum(await scrape(listener.url), 'push_slow_consumer_closes_total'), 1, 'the resumed client is not a slow consumer');
  });
});
