import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { encodeRequestBatch, hexToBytes, isChannelId, signChannel } from '@push/protocol';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { redisSnapshot } from '../helpers/redis-snapshot.js';
import { startApp, type AppProcess } from '../helpers/apps.js';
import { SECRET, WsClient, channelId, signed } from '../helpers/clients.js';
import { sleep } from '../helpers/ports.js';
import { ed25519Key, hmacKey, nonce, signatureHeaders, signedFetch, type Body, type TestKey } from './signing.js';

const BODY = '{"module_id":"test","command":"signed","params":{"n":1}}';

/** A protocol-4 RequestBatch publishing one message to `receivers` (16-byte ids as hex). */
const v4Publish = (receivers: string[]): Uint8Array =>
  encodeRequestBatch({
    requests: [{ incomingMessages: { messages: [{ receivers: receivers.map((id) => ({ id: hexToBytes(id), isPrivate: true })), body: BODY, expiry: 60, type: 'test' }] } }],
  });

/**
 * Signed publishing against a real publisher and Redis. Every refusal is checked for its status,
 * its "<code>: " body, and that Redis is afterwards exactly what it was before (every key, its type
 * and its content, through the shared snapshot helper): no message, no history, no id used, no
 * channel creation and no nonce claimed.
 */
describe('publish authentication', () => {
  let redis: RedisServer;
  let r: Redis;
  let pub: AppProcess;
  let lis: AppProcess;
  const ed = ed25519Key('portal-ed');
  const mac = hmacKey('portal-hmac');
  const other = ed25519Key('not-configured');
  // Small limits, so "too many" bodies stay small.
  const MAX_CHANNELS = 3;

  before(async () => {
    redis = await startRedis();
    r = redis.client();
    // No trusted networks at all ('none'): the server default, stated explicitly against the test-helper default.
    const env = {
      REDIS_URL: redis.url,
      PUSH_PUBLISH_KEYS: `${ed.ringEntry},${mac.ringEntry}`,
      PUSH_PUBLISH_TRUSTED_NETWORKS: 'none',
      PUSH_MAX_CHANNELS: String(MAX_CHANNELS),
      PUSH_MAX_BATCH_MESSAGES: '2',
      PUSH_MAX_REQUEST_MESSAGES: '2',
    };
    [pub, lis] = await Promise.all([startApp('publisher', env), startApp('listener', env)]);
    // Something in every kind of key first (message, history, creation, id counter, nonce), so
    // "unchanged" compares against a populated store, not an empty one.
    const seed = await signedFetch(pub.url, 'POST', target(channelId()), BODY, ed, { headers: { 'Message-Expiry': '3600' } });
    assert.equal(seed.status, 200, await seed.text());
    assert.ok((await r.keys('push:n:*')).length === 1 && (await r.keys('push:m:*')).length === 1);
  });
  after(async () => {
    await Promise.all([pub?.stop(), lis?.stop()]);
    await redis?.stop();
  });

  function target(ch: string): string {
    return `/bitrix/pub/?CHANNEL_ID=${ch}`;
  }

  /** Sends, checks status and "<code>: " body, and that Redis is byte-for-byte what it was before. */
  async function refusedUnchanged(send: () => Promise<Response>, status: number, code: number): Promise<string> {
    const before = await redisSnapshot(r);
    const res = await send();
    const text = await res.text();
    assert.equal(res.status, status, text);
    assert.ok(text.startsWith(`${code}: `), text);
    assert.equal(await redisSnapshot(r), before, 'Redis unchanged by the refused request');
    return text;
  }

  it('unsigned publish from an address outside the trusted networks -> 401 4120, Redis unchanged', async () => {
    const ch = channelId();
    const text = await refusedUnchanged(() => fetch(`${pub.url}${target(ch)}`, { method: 'POST', body: BODY }), 401, 4120);
    assert.ok(text.includes('127.0.0.1'), 'the refusal names the address it judged');
  });

  it('a protocol-4 binary publish (binaryMode=true) needs the signature too', async () => {
    const ch = channelId();
    await refusedUnchanged(() => fetch(`${pub.url}/bitrix/pub/?binaryMode=true`, { method: 'POST', body: v4Publish([ch]) }), 401, 4120);
    await refusedUnchanged(() => signedFetch(pub.url, 'POST', '/bitrix/pub/?binaryMode=true', 'x', ed, { sentBody: 'y' }), 401, 4123);
  });

  const now = (): number => Math.floor(Date.now() / 1000);
  const badCases: Array<[string, (ch: string) => Promise<Response>, number, number]> = [
    ['a missing signature header', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, ed, { drop: 'x-push-signature' }), 401, 4121],
    ['a missing nonce header', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, mac, { drop: 'x-push-nonce' }), 401, 4121],
    ['a malformed nonce', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, ed, { nonce: 'short' }), 401, 4121],
    ['a malformed timestamp', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, ed, { headers: { 'x-push-timestamp': '17e8' } }), 401, 4121],
    ['a malformed key id', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, ed, { headers: { 'x-push-key-id': 'portal ed' } }), 401, 4121],
    ['a non-hex signature (128 characters)', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, ed, { signature: 'zz'.repeat(64) }), 401, 4121],
    ['an upper-case hex signature', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, ed, { signature: 'AB'.repeat(64) }), 401, 4121],
    ['a hex signature of the wrong length (100 characters)', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, ed, { signature: 'ab'.repeat(50) }), 401, 4121],
    ['a hex signature of odd length (129 characters)', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, mac, { signature: `${'ab'.repeat(64)}a` }), 401, 4121],
    ['an unknown key id', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, other), 401, 4122],
    ['an unknown key id with a malformed body (the key is judged first)', (ch) => signedFetch(pub.url, 'POST', target(ch), '{not json', other), 401, 4122],
    ['a tampered body (Ed25519)', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, ed, { sentBody: BODY.replace('1', '2') }), 401, 4123],
    ['a tampered body (HMAC)', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, mac, { sentBody: BODY.replace('1', '2') }), 401, 4123],
    ['an HMAC-length signature for an Ed25519 key', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, ed, { signature: 'ab'.repeat(32) }), 401, 4123],
    ['an all-zero Ed25519 signature', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, ed, { signature: '00'.repeat(64) }), 401, 4123],
    ['a signature made for another channel', (ch) => fetchWithForeignSignature(ch), 401, 4123],
    ['a stale timestamp (-400 s)', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, ed, { timestamp: now() - 400 }), 401, 4124],
    ['a timestamp from the future (+400 s)', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, mac, { timestamp: now() + 400 }), 401, 4124],
  ];

  /** Signs a request for one channel and sends it for another. */
  async function fetchWithForeignSignature(ch: string): Promise<Response> {
    const headers = signatureHeaders(ed, 'POST', target(channelId()), BODY);
    return fetch(`${pub.url}${target(ch)}`, { method: 'POST', headers, body: BODY });
  }

  for (const [name, send, status, code] of badCases) {
    it(`${name} -> ${status} ${code}, Redis unchanged`, async () => {
      await refusedUnchanged(() => send(channelId()), status, code);
    });
  }

  // Correctly signed requests whose content is wrong: the signature is fine, so only validating the
  // whole request before the nonce claim keeps Redis untouched (the nonce would otherwise be stored).
  const tooMany = Array.from({ length: MAX_CHANNELS + 1 }, () => channelId());
  const batchOf = (messages: unknown): string => JSON.stringify({ messages });
  const okItem = (ch: string): unknown => ({ channels: [ch], body: { module_id: 'x', command: 'y', params: {} } });
  const malformed: Array<[string, (ch: string) => [path: string, body: Body], number, number]> = [
    ['batch: a message without a body', (ch) => ['/bitrix/pub/batch', batchOf([okItem(ch), { channels: [ch] }])], 400, 4106],
    ['batch: a message whose body is an empty string', (ch) => ['/bitrix/pub/batch', batchOf([okItem(ch), { channels: [ch], body: '' }])], 400, 4106],
    ['single: empty body', (ch) => [target(ch), ''], 400, 4100],
    ['single: no channel', () => ['/bitrix/pub/', BODY], 400, 4017],
    ['single: a malformed channel id', (ch) => [target(`${ch}/NOT-A-CHANNEL`), BODY], 400, 4010],
    ['single: too many channels', () => [target(tooMany.join('/')), BODY], 400, 4018],
    ['batch: not JSON', () => ['/bitrix/pub/batch', '{"messages":[' ], 400, 4102],
    ['batch: empty message list', () => ['/bitrix/pub/batch', batchOf([])], 400, 4106],
    ['batch: second message has a bad channel', (ch) => ['/bitrix/pub/batch', batchOf([okItem(ch), okItem('xyz')])], 400, 4106],
    ['batch: too many channels in one message', () => ['/bitrix/pub/batch', batchOf([{ ...(okItem(channelId()) as object), channels: tooMany }])], 400, 4018],
    ['batch: too many messages', (ch) => ['/bitrix/pub/batch', batchOf([okItem(ch), okItem(ch), okItem(ch)])], 400, 4016],
    ['binary: empty body', () => ['/bitrix/pub/?binaryMode=true', new Uint8Array(0)], 400, 4013],
    ['binary: not protobuf', () => ['/bitrix/pub/?binaryMode=true', Buffer.from('definitely not protobuf \xff\xff\xff', 'latin1')], 400, 4013],
    ['binary: a receiver id of the wrong length', (ch) => ['/bitrix/pub/?binaryMode=true', v4Publish([ch, 'abcd'])], 400, 4019],
    ['binary: too many receivers', () => ['/bitrix/pub/?binaryMode=true', v4Publish(tooMany)], 400, 4018],
    ['mint: count out of range', () => ['/channels?count=101', ''], 400, 4127],
  ];

  for (const [name, make, status, code] of malformed) {
    it(`signed but malformed (${name}) -> ${status} ${code}, Redis unchanged, nonce still unused`, async () => {
      const n = nonce();
      const [path, body] = make(channelId());
      await refusedUnchanged(() => signedFetch(pub.url, 'POST', path, body, ed, { nonce: n, headers: { 'Message-Expiry': '60' } }), status, code);
      assert.equal(await r.exists(`push:n:${ed.keyId}:${n}`), 0, 'the nonce was not claimed');
    });
  }

  it('signed online-status query with a malformed channel list -> 400, Redis unchanged', async () => {
    await refusedUnchanged(() => signedFetch(pub.url, 'GET', target(`${channelId()}/bad`), '', mac), 400, 4010);
  });

  it('a nonce refused with a malformed body stays usable; once used, resending it returns the original outcome and changes nothing; other content under it is 409 4133', async () => {
    const ch = channelId();
    const n = nonce();
    const ts = now();
    await refusedUnchanged(() => signedFetch(pub.url, 'POST', target(ch), '', ed, { nonce: n, timestamp: ts }), 400, 4100);
    const ok = await signedFetch(pub.url, 'POST', target(ch), BODY, ed, { nonce: n, timestamp: ts });
    assert.equal(ok.status, 200, await ok.text());
    const mids = ok.headers.get('x-push-message-ids');
    assert.match(mids ?? '', /^[0-9]{26}$/);
    assert.equal(await r.exists(`push:n:${ed.keyId}:${n}`), 1, 'claimed by the accepted request');
    // Issue 18: the same request again (a retry) gets the original outcome: 200 and the same id.
    const before = await redisSnapshot(r);
    const again = await signedFetch(pub.url, 'POST', target(ch), BODY, ed, { nonce: n, timestamp: ts });
    assert.equal(again.status, 200, await again.text());
    assert.equal(again.headers.get('x-push-message-ids'), mids);
    assert.equal(await redisSnapshot(r), before, 'Redis unchanged by the retry');
    // A different, correctly signed request that reuses the nonce (a portal bug) is refused, changing nothing.
    await refusedUnchanged(() => signedFetch(pub.url, 'POST', target(ch), BODY.replace('1', '7'), ed, { nonce: n, timestamp: ts }), 409, 4133);
    assert.equal(await r.llen(`push:h:{${ch}}`), 1);
  });

  it('a nonce spent by a request that is not a publish (online status) is refused for a publish with 403 4125', async () => {
    const ch = channelId();
    const n = nonce();
    const ts = now();
    const status = await signedFetch(pub.url, 'GET', target(ch), '', ed, { nonce: n, timestamp: ts });
    assert.equal(status.status, 200, await status.text());
    await refusedUnchanged(() => signedFetch(pub.url, 'POST', target(ch), BODY, ed, { nonce: n, timestamp: ts }), 403, 4125);
  });

  it('a signed publish (Ed25519) is stored and delivered once; resending it returns the original outcome (200, same id) and stores and announces nothing', async () => {
    const ch = channelId();
    const ws = await WsClient.connect(lis.url, [signed(ch)]);
    const n = nonce();
    const ts = Math.floor(Date.now() / 1000);
    const first = await signedFetch(pub.url, 'POST', target(ch), BODY, ed, { nonce: n, timestamp: ts });
    assert.equal(first.status, 200, await first.text());
    const msgs = await ws.waitFor(1);
    assert.deepEqual(msgs[0]?.text, JSON.parse(BODY));
    const storedCounter = await r.get('push:id:counter');
    // KEYS answers in hash-table order, which may change between two calls while Redis rehashes.
    const stored = (await r.keys('push:m:*')).sort();
    const snapshot = await redisSnapshot(r);
    const again = await signedFetch(pub.url, 'POST', target(ch), BODY, ed, { nonce: n, timestamp: ts });
    assert.equal(again.status, 200, await again.text());
    assert.equal(again.headers.get('x-push-message-ids'), first.headers.get('x-push-message-ids'));
    assert.equal(again.headers.get('x-push-message-ids'), msgs[0]?.mid);
    assert.deepEqual((await r.keys('push:m:*')).sort(), stored, 'the replay stored nothing');
    assert.equal(await r.get('push:id:counter'), storedCounter);
    assert.equal(await r.llen(`push:h:{${ch}}`), 1);
    assert.equal(await redisSnapshot(r), snapshot, 'Redis unchanged by the replay');
    await sleep(100);
    assert.equal(ws.messages.length, 1, 'announced once');
    ws.close();
  });

  it('a signed HMAC publish is accepted', async () => {
    const ch = channelId();
    const res = await signedFetch(pub.url, 'POST', target(ch), BODY, mac, { headers: { 'Message-Expiry': '60' } });
    assert.equal(res.status, 200, await res.text());
    assert.equal(await r.llen(`push:h:{${ch}}`), 1);
  });

  it('a batch is signed once for the whole request and stores every message', async () => {
    const [a, b] = [channelId(), channelId()];
    const batch = JSON.stringify({ messages: [{ channels: [a], body: { module_id: 'x', command: 'one', params: {} } }, { channels: [a, b], body: { module_id: 'x', command: 'two', params: {} } }] });
    const res = await signedFetch(pub.url, 'POST', '/pub/batch', batch, ed);
    assert.equal(res.status, 200, await res.text());
    assert.equal(await r.llen(`push:h:{${a}}`), 2);
    assert.equal(await r.llen(`push:h:{${b}}`), 1);
    const tampered = await refusedUnchanged(() => signedFetch(pub.url, 'POST', '/pub/batch', batch, ed, { sentBody: batch.replace('one', 'uno') }), 401, 4123);
    assert.ok(tampered.length > 0);
    assert.equal(await r.llen(`push:h:{${a}}`), 2, 'the tampered batch stored nothing');
  });

  it('online status needs a signature too (GET, empty body)', async () => {
    const ch = channelId();
    await refusedUnchanged(() => fetch(`${pub.url}${target(ch)}`), 401, 4120);
    const ws = await WsClient.connect(lis.url, [signed(ch)]);
    await sleep(150);
    const res = await signedFetch(pub.url, 'GET', target(`${ch}/${channelId()}`), '', ed);
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(await res.text()), { infos: [{ channel: ch, subscribers: 1 }] });
    ws.close();
  });

  it('mint API: signed POST /channels returns signed fresh ids and records their creation', async () => {
    const res = await signedFetch(pub.url, 'POST', '/channels?count=3', '', ed);
    assert.equal(res.status, 200);
    const out = (await res.json()) as { serverTime: number; channels: Array<{ id: string; signed: string; created: number; writableUntil: number; readableUntil: number }> };
    assert.equal(out.channels.length, 3);
    assert.equal(new Set(out.channels.map((c) => c.id)).size, 3);
    for (const c of out.channels) {
      assert.ok(isChannelId(c.id));
      assert.equal(c.signed, signChannel(c.id, SECRET));
      assert.equal(c.created, out.serverTime);
      assert.equal(c.writableUntil - c.created, 43_200_000);
      assert.equal(c.readableUntil - c.created, 86_400_000);
      assert.equal(await r.get(`push:ch:{${c.id}}`), String(c.created));
    }
    await refusedUnchanged(() => signedFetch(pub.url, 'POST', '/channels?count=101', '', ed), 400, 4127);
    await refusedUnchanged(() => fetch(`${pub.url}/channels?count=1`, { method: 'POST' }), 401, 4120);
    await refusedUnchanged(() => signedFetch(pub.url, 'POST', '/channels?count=1', '', other), 401, 4122);
  });
});

describe('trusted networks and the trusted proxy header', () => {
  let redis: RedisServer;
  const apps: AppProcess[] = [];
  const ed: TestKey = ed25519Key('k');
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await Promise.all(apps.map((a) => a.stop()));
    await redis?.stop();
  });
  const start = async (env: Record<string, string>): Promise<AppProcess> => {
    const a = await startApp('publisher', { REDIS_URL: redis.url, PUSH_PUBLISH_KEYS: ed.ringEntry, ...env });
    apps.push(a);
    return a;
  };
  const post = (app: AppProcess, ch: string, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${app.url}/pub/?CHANNEL_ID=${ch}`, { method: 'POST', headers, body: BODY });

  it('unsigned publishing from a trusted network works; a bad signature from it is still refused', async () => {
    const app = await start({ PUSH_PUBLISH_TRUSTED_NETWORKS: '127.0.0.0/8' });
    const ch = channelId();
    assert.equal((await post(app, ch)).status, 200);
    const res = await signedFetch(app.url, 'POST', `/pub/?CHANNEL_ID=${ch}`, BODY, ed, { sentBody: BODY.replace('1', '3') });
    assert.equal(res.status, 401);
    assert.equal(await redis.client().llen(`push:h:{${ch}}`), 1);
  });

  it('the client address header is believed only from a trusted proxy', async () => {
    const behindProxy = await start({ PUSH_PUBLISH_TRUSTED_NETWORKS: '10.0.0.0/8', PUSH_TRUSTED_PROXIES: '127.0.0.1', PUSH_REAL_IP_HEADER: 'X-Forwarded-For' });
    const direct = await start({ PUSH_PUBLISH_TRUSTED_NETWORKS: '10.0.0.0/8', PUSH_REAL_IP_HEADER: 'X-Forwarded-For' });
    assert.equal((await post(behindProxy, channelId(), { 'X-Forwarded-For': '10.1.2.3' })).status, 200);
    // The proxy appends the real peer last; a client-written entry to its left proves nothing.
    assert.equal((await post(behindProxy, channelId(), { 'X-Forwarded-For': '10.1.2.3, 192.0.2.7' })).status, 401);
    assert.equal((await post(behindProxy, channelId())).status, 401, 'the proxy itself is not a trusted publisher');
    const before = await redisSnapshot(redis.client());
    const res = await post(direct, channelId(), { 'X-Forwarded-For': '10.1.2.3' });
    assert.equal(res.status, 401);
    const text = await res.text();
    assert.ok(text.startsWith('4120: '), text);
    assert.ok(text.includes('127.0.0.1'), 'the refusal names the address it judged');
    assert.equal(await redisSnapshot(redis.client()), before, 'the unsigned request from an untrusted address changed nothing');
  });

  it('the publisher refuses to start with a malformed key ring or network list', async () => {
    await assert.rejects(() => start({ PUSH_PUBLISH_KEYS: 'k:ed25519:short' }), /PUSH_PUBLISH_KEYS/);
    await assert.rejects(() => start({ PUSH_PUBLISH_TRUSTED_NETWORKS: '300.1.1.1' }), /PUSH_PUBLISH_TRUSTED_NETWORKS/);
  });
});
