import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeRequestBatch, signChannelPair } from '@push/protocol';
import { BinWs, hex, incoming, publicSig } from '../helpers/bin-ws.js';
import { startApp, type AppProcess } from '../helpers/apps.js';
import { channelId, SECRET } from '../helpers/clients.js';
import { eventually, sleep } from '../helpers/ports.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { storedState } from '../helpers/redis-snapshot.js';

/**
 * PUSH_CLIENT_RATE / PUSH_CLIENT_BURST against real listener and publisher processes and a real
 * Redis: a client publishing past its allowance is refused whole with 4113 (a WebSocket closed, a
 * `/bitrix/rest/` request answered 429 with Retry-After), nothing of the refused request is stored
 * or delivered, other senders are not affected, and the allowance comes back with time.
 * Rate 5 receivers/s with a burst of 8: two requests to 4 receivers fit, a third does not.
 */

const RATE = 5;
const BURST = 8;


/** Marks the body of request n of this run, so Redis can be searched for it. */
const RUN = Math.random().toString(36).slice(2, 10);
const marker = (n: number): string => `rated-${RUN}-${n}`;

/** A client request with one message to `target` and `extra` further public receivers (cost 1 + extra). */
function request(target: string, extra: number, n: number): Uint8Array {
  const receivers = [target, ...Array.from({ length: extra }, () => channelId())].map((id) => ({ id: hex(id), isPrivate: false, signature: publicSig(id) }));
  return encodeRequestBatch({ requests: [incoming(receivers, { module_id: 'test', command: 'rated', params: { n, marker: marker(n) } })] });
}

const numbers = (b: BinWs): number[] => b.messages.map((m) => (JSON.parse(m.body) as { params: { n: number } }).params.n);

const metric = async (url: string): Promise<number> => {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^push_client_requests_limited_total(?:\{[^}]*\})? (\d+)$/m.exec(text);
  assert.ok(m, 'push_client_requests_limited_total is exported');
  return Number(m[1]);
};

describe('client publishing rate limit', () => {
  let redis: RedisServer;
  let pub: AppProcess;
  let listener: AppProcess;
  let unlimited: AppProcess;

  before(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, PUSH_CLIENT_RATE: String(RATE), PUSH_CLIENT_BURST: String(BURST), PUSH_UNSUBSCRIBE_DELAY_MS: '200' };
    [pub, listener, unlimited] = await Promise.all([startApp('publisher', env), startApp('listener', env), startApp('listener', { ...env, PUSH_CLIENT_RATE: '0' })]);
  });
  after(async () => {
    await Promise.all([pub?.stop(), listener?.stop(), unlimited?.stop()]);
    await redis?.stop();
  });

  it('WebSocket: past the burst the socket is closed with 4113 and the request is neither stored nor delivered; other senders go on; the allowance refills', async () => {
    const [privB, pubB, privA, pubA, privC, pubC] = [channelId(), channelId(), channelId(), channelId(), channelId(), channelId()];
    const b = await BinWs.open(listener.url, [signChannelPair(privB, pubB, SECRET)]);
    const a = await BinWs.open(listener.url, [signChannelPair(privA, pubA, SECRET)]);
    const c = await BinWs.open(listener.url, [signChannelPair(privC, pubC, SECRET)]);
    await sleep(100);
    const limitedBefore = await metric(listener.url);
    // Back to back: 4 + 4 receivers fit the burst of 8, the next 4 do not.
    a.ws.send(request(pubB, 3, 1));
    a.ws.send(request(pubB, 3, 2));
    a.ws.send(request(pubB, 3, 3));
    await eventually(() => a.closeCode !== null, 5000, 'the sender closed');
    assert.equal(a.closeCode, 4113);
    assert.equal(a.closeReason, '4113: Client publishes to more receivers per second than PUSH_CLIENT_RATE allows; wait and send again.');
    // Another sender has its own allowance.
    c.ws.send(request(pubB, 0, 4));
    await eventually(() => b.messages.length === 3, 5000, "A's first two and C's message delivered");
    await sleep(200);
    assert.deepEqual(numbers(b), [1, 2, 4], 'the refused request never arrived');
    const now = await storedState(redis.client());
    for (const n of [1, 2, 4]) assert.ok(now.includes(marker(n)), `request ${n} is stored`);
    assert.ok(!now.includes(marker(3)), 'nothing of the refused request is in Redis');
    assert.equal(await metric(listener.url), limitedBefore + 1);
    // A second later A's bucket holds 5 again: reconnected, it may publish to 4.
    await sleep(1000);
    const again = await BinWs.open(listener.url, [signChannelPair(privA, pubA, SECRET)]);
    again.ws.send(request(pubB, 3, 5));
    await eventually(() => b.messages.length === 4, 5000, "A's request after the refill delivered");
    assert.equal(again.closeCode, null);
    for (const s of [b, c, again]) s.ws.close();
  });

  it('WebSocket: one request to more receivers than the burst is refused even from a fresh sender', async () => {
    const [privB, pubB, privA, pubA] = [channelId(), channelId(), channelId(), channelId()];
    const b = await BinWs.open(listener.url, [signChannelPair(privB, pubB, SECRET)]);
    const a = await BinWs.open(listener.url, [signChannelPair(privA, pubA, SECRET)]);
    await sleep(100);
    const before = await storedState(redis.client());
    a.ws.send(request(pubB, BURST, 1));
    await eventually(() => a.closeCode !== null, 5000, 'the sender closed');
    assert.equal(a.closeCode, 4113);
    await sleep(200);
    assert.equal(b.messages.length, 0);
    assert.equal(await storedState(redis.client()), before, 'Redis unchanged by the refused request');
    b.ws.close();
  });

  it('PUSH_CLIENT_RATE=0 turns the limit off', async () => {
    const [privB, pubB, privA, pubA] = [channelId(), channelId(), channelId(), channelId()];
    const b = await BinWs.open(unlimited.url, [signChannelPair(privB, pubB, SECRET)]);
    const a = await BinWs.open(unlimited.url, [signChannelPair(privA, pubA, SECRET)]);
    await sleep(100);
    for (let n = 1; n <= 4; n++) a.ws.send(request(pubB, BURST, n));
    await eventually(() => b.messages.length === 4, 5000, 'all four requests (36 receivers) delivered');
    assert.equal(a.closeCode, null);
    for (const s of [a, b]) s.ws.close();
  });

  it('/bitrix/rest/: past the burst 429 "4113: ..." with Retry-After, nothing stored; a request over the burst has no Retry-After; the allowance refills', async () => {
    const [privB, pubB, privA, pubA] = [channelId(), channelId(), channelId(), channelId()];
    const b = await BinWs.open(listener.url, [signChannelPair(privB, pubB, SECRET)]);
    await sleep(100);
    const url = `${pub.url}/bitrix/rest/?CHANNEL_ID=${encodeURIComponent(signChannelPair(privA, pubA, SECRET))}`;
    const post = (body: Uint8Array): Promise<Response> => fetch(url, { method: 'POST', body });
    const limitedBefore = await metric(pub.url);
    assert.equal((await post(request(pubB, 3, 1))).status, 200);
    assert.equal((await post(request(pubB, 3, 2))).status, 200);
    // Answered 200 only once stored: this is the state the refused requests must leave alone.
    const before = await storedState(redis.client());
    const refused = await post(request(pubB, 3, 3));
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.equal(refused.headers.get('access-control-allow-origin'), '*');
    assert.equal(await refused.text(), '4113: Client publishes to more receivers per second than PUSH_CLIENT_RATE allows; wait and send again. Retry in 1 s.');
    const tooBig = await post(request(pubB, BURST, 4));
    assert.equal(tooBig.status, 429);
    assert.equal(tooBig.headers.get('retry-after'), null, 'waiting would not help');
    assert.match(await tooBig.text(), /^4113: .* This request alone reaches 9 receivers, more than the burst of 8: split it\.$/);
    assert.equal(await storedState(redis.client()), before, 'Redis unchanged by the refused requests');
    assert.equal(await metric(pub.url), limitedBefore + 2);
    await sleep(1000);
    assert.equal((await post(request(pubB, 3, 5))).status, 200, 'allowed again after the refill');
    await eventually(() => b.messages.length === 3, 5000, 'delivered after the refill');
    assert.deepEqual(numbers(b), [1, 2, 5]);
    b.ws.close();
  });
});
