import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeTextFrames, encodeRequestBatch, signChannelPair } from '@push/protocol';
import { BinWs, hex, publicSig, type OutMsg } from '../helpers/bin-ws.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startApp, type AppProcess } from '../helpers/apps.js';
import { channelId, publish, signed, SECRET } from '../helpers/clients.js';
import { eventually, sleep } from '../helpers/ports.js';

/**
 * Parity with Bitrix push server 2.0 where a new user would notice a difference: bodies that are
 * not JSON objects, the `/server-stat/` fields monitoring reads, and error texts byte for byte.
 * Real publisher and listener processes over a real Redis.
 */

/** One incomingMessages request carrying `body` as it is (not JSON-encoded again). */
const rawIncoming = (receivers: unknown[], body: string, expiry = 60): Record<string, unknown> => ({
  incomingMessages: { messages: [{ receivers, body, expiry, type: 'test_raw' }] },
});

describe('parity with push server 2.0', () => {
  let redis: RedisServer;
  let pub: AppProcess;
  let sub: AppProcess;

  before(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, PUSH_STATS_INTERVAL_S: '1' };
    [pub, sub] = await Promise.all([startApp('publisher', env), startApp('listener', env)]);
  });
  after(async () => {
    await Promise.all([pub?.stop(), sub?.stop()]);
    await redis?.stop();
  });

  // [what is sent, the JSON value every client gets]. Text that is not JSON arrives as a JSON string.
  const bodies: Array<[string, unknown]> = [
    ['1', 1],
    ['"A"', 'A'],
    ['A', 'A'],
    ['[1,{"a":2}]', [1, { a: 2 }]],
    ['null', null],
    ['{"broken":', '{"broken":'],
  ];

  it('bodies that are not JSON objects are accepted on every publish path and delivered; every text frame stays valid JSON', async () => {
    const [priv, pubId, privS, pubS] = [channelId(), channelId(), channelId(), channelId()];
    const text = await BinWs.open(sub.url, [signChannelPair(priv, pubId, SECRET)], '');
    const bin = await BinWs.open(sub.url, [signChannelPair(priv, pubId, SECRET)]);
    const sender = await BinWs.open(sub.url, [signChannelPair(privS, pubS, SECRET)]);
    await sleep(100);
    const expected: unknown[] = [];
    const restUrl = `${pub.url}/bitrix/rest/?CHANNEL_ID=${encodeURIComponent(signChannelPair(privS, pubS, SECRET))}`;
    const toPublic = [{ id: hex(pubId), isPrivate: false, signature: publicSig(pubId) }];
    for (const [sent, value] of bodies) {
      // HTTP routes answer a status; a WebSocket frame has no answer (null): its proof is the
      // delivery below and the socket staying open.
      const routes: Array<[string, () => Promise<number | null>]> = [
        ['text publish', async () => (await publish(pub.url, [priv], sent, { 'Message-Expiry': '60' })).status],
        ['batch', async () => (await fetch(`${pub.url}/bitrix/pub/batch`, { method: 'POST', body: JSON.stringify({ messages: [{ channels: [priv], body: sent }] }) })).status],
        ['binary publish', async () => (await fetch(`${pub.url}/bitrix/pub/?binaryMode=true`, { method: 'POST', body: encodeRequestBatch({ requests: [rawIncoming([{ id: hex(priv), isPrivate: true }], sent)] }) })).status],
        ['/bitrix/rest/', async () => (await fetch(restUrl, { method: 'POST', body: encodeRequestBatch({ requests: [rawIncoming(toPublic, sent)] }) })).status],
        [
          'WebSocket binary frame',
          async () => {
            sender.ws.send(encodeRequestBatch({ requests: [rawIncoming(toPublic, sent)] }));
            return null;
          },
        ],
      ];
      for (const [route, send] of routes) {
        const status = await send();
        if (status !== null) assert.equal(status, 200, `${route} ${sent}`);
        expected.push(value);
        await eventually(() => bin.messages.length === expected.length, 5000, `${route} ${sent} delivered`);
      }
    }
    await eventually(() => decodeTextFrames(text.textFrames.join('')).length === expected.length, 5000, 'text frames');
    // Every frame is cut and parsed the way the official client does it (decodeTextFrames throws otherwise).
    assert.deepEqual(decodeTextFrames(text.textFrames.join('')).map((f) => f.text), expected);
    assert.deepEqual(bin.messages.map((m: OutMsg) => JSON.parse(m.body)), expected);
    assert.equal(sender.closeCode, null, 'the publishing client was not disconnected');
    for (const c of [text, bin, sender]) c.ws.close();
  });

  it('an empty body is still refused with 4100', async () => {
    const res = await publish(pub.url, [channelId()], '');
    assert.equal(res.status, 400);
    assert.equal(await res.text(), '4100: Empty post requests are not allowed.');
  });

  it('/server-stat/ entries carry limits and clusterMode for publishers and listeners', async () => {
    const list = await eventually(async () => {
      const j = (await (await fetch(`${pub.url}/server-stat/`)).json()) as Array<Record<string, unknown>>;
      return j.length >= 2 ? j : null;
    }, 5000, 'both processes reported');
    for (const entry of list ?? []) {
      assert.deepEqual(entry['limits'], { maxPayload: 1048576, maxConnPerChannel: 100, maxMessagesPerRequest: 100, maxChannelsPerRequest: 100 }, String(entry['type']));
      assert.equal(entry['clusterMode'], true);
    }
  });

  it('error texts are push server 2.0 texts byte for byte (4012, 4017, 4018)', async () => {
    const [priv, pubId] = [channelId(), channelId()];
    const cases: Array<[string, () => Promise<Response>, number, string]> = [
      ['unsigned priv:pub on /bitrix/rest/', () => fetch(`${pub.url}/bitrix/rest/?CHANNEL_ID=${priv}:${pubId}`, { method: 'POST', body: encodeRequestBatch({ requests: [{ channelStats: { channels: [{ id: hex(pubId), isPrivate: false }] } }] }) }), 400, '4012: Public Channel Id is Required.'],
      ['publish without CHANNEL_ID', () => fetch(`${pub.url}/bitrix/pub/`, { method: 'POST', body: '{}' }), 400, '4017: No channels found.'],
      ['online query without CHANNEL_ID', () => fetch(`${pub.url}/bitrix/pub/`), 400, '4017: No channels found.'],
      ['publish to 101 channels', () => publish(pub.url, Array.from({ length: 101 }, () => channelId()), '{}'), 400, '4018: Request exceeded the maximum number of channels.'],
      ['online query for 101 channels', () => fetch(`${pub.url}/bitrix/pub/?CHANNEL_ID=${Array.from({ length: 101 }, () => channelId()).join('/')}`), 400, '4018: Request exceeded the maximum number of channels.'],
    ];
    for (const [name, send, status, body] of cases) {
      const res = await send();
      assert.equal(res.status, status, name);
      assert.equal(await res.text(), body, name);
    }
    // A signed list is still required for subscribing: the 4012 relaxation is /bitrix/rest/ only.
    const lp = await fetch(`${sub.url}/bitrix/sub/?CHANNEL_ID=${signed(priv)}x`);
    assert.equal(lp.status, 400);
  });
});
