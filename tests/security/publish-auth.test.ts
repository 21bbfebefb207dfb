import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { isChannelId, signChannel } from '@push/protocol';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startApp, type AppProcess } from '../helpers/apps.js';
import { SECRET, WsClient, channelId, signed } from '../helpers/clients.js';
import { sleep } from '../helpers/ports.js';
import { ed25519Key, hmacKey, nonce, signatureHeaders, signedFetch, type TestKey } from './signing.js';

const BODY = '{"module_id":"test","command":"signed","params":{"n":1}}';

/**
 * Signed publishing against a real publisher and Redis. Every refusal is checked for its status,
 * its "<code>: " body, and that Redis holds nothing afterwards (no message, no history, no id used,
 * no channel creation).
 */
describe('publish authentication', () => {
  let redis: RedisServer;
  let r: Redis;
  let pub: AppProcess;
  let lis: AppProcess;
  const ed = ed25519Key('portal-ed');
  const mac = hmacKey('portal-hmac');
  const other = ed25519Key('not-configured');

  before(async () => {
    redis = await startRedis();
    r = redis.client();
    // No trusted networks at all: the server default, stated explicitly against the test-helper default.
    const env = { REDIS_URL: redis.url, PUSH_PUBLISH_KEYS: `${ed.ringEntry},${mac.ringEntry}`, PUSH_PUBLISH_TRUSTED_NETWORKS: '' };
    [pub, lis] = await Promise.all([startApp('publisher', env), startApp('listener', env)]);
  });
  after(async () => {
    await Promise.all([pub?.stop(), lis?.stop()]);
    await redis?.stop();
  });

  const target = (ch: string): string => `/bitrix/pub/?CHANNEL_ID=${ch}`;

  async function assertNothingStored(ch: string): Promise<void> {
    assert.deepEqual(await r.keys('push:m:*'), [], 'no message record');
    assert.equal(await r.exists(`push:h:{${ch}}`), 0, 'no history');
    assert.equal(await r.exists(`push:ch:{${ch}}`), 0, 'no channel creation');
    assert.equal(await r.get('push:id:counter'), storedCounter, 'no message id used');
  }
  let storedCounter: string | null = null;

  async function refused(res: Response, status: number, code: number, ch: string): Promise<void> {
    const text = await res.text();
    assert.equal(res.status, status, text);
    assert.ok(text.startsWith(`${code}: `), text);
    await assertNothingStored(ch);
  }

  it('unsigned publish from an address outside the trusted networks -> 401 4120, nothing stored', async () => {
    const ch = channelId();
    const res = await fetch(`${pub.url}${target(ch)}`, { method: 'POST', body: BODY });
    await refused(res, 401, 4120, ch);
  });

  it('a protocol-4 binary publish (binaryMode=true) needs the signature too', async () => {
    const ch = channelId();
    storedCounter = await r.get('push:id:counter');
    const res = await fetch(`${pub.url}/bitrix/pub/?binaryMode=true`, { method: 'POST', body: Buffer.from([0x0a, 0x00]) });
    await refused(res, 401, 4120, ch);
    const signedBad = await signedFetch(pub.url, 'POST', '/bitrix/pub/?binaryMode=true', 'x', ed, { sentBody: 'y' });
    await refused(signedBad, 401, 4123, ch);
  });

  const badCases: Array<[string, (ch: string) => Promise<Response>, number, number]> = [
    ['a missing signature header', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, ed, { drop: 'x-push-signature' }), 401, 4121],
    ['a malformed nonce', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, ed, { nonce: 'short' }), 401, 4121],
    ['an unknown key id', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, other), 401, 4122],
    ['a tampered body (Ed25519)', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, ed, { sentBody: BODY.replace('1', '2') }), 401, 4123],
    ['a tampered body (HMAC)', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, mac, { sentBody: BODY.replace('1', '2') }), 401, 4123],
    ['a signature made for another channel', (ch) => fetchWithForeignSignature(ch), 401, 4123],
    ['a stale timestamp (-400 s)', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, ed, { timestamp: Math.floor(Date.now() / 1000) - 400 }), 401, 4124],
    ['a timestamp from the future (+400 s)', (ch) => signedFetch(pub.url, 'POST', target(ch), BODY, mac, { timestamp: Math.floor(Date.now() / 1000) + 400 }), 401, 4124],
  ];

  /** Signs a request for one channel and sends it for another. */
  async function fetchWithForeignSignature(ch: string): Promise<Response> {
    const headers = signatureHeaders(ed, 'POST', target(channelId()), BODY);
    return fetch(`${pub.url}${target(ch)}`, { method: 'POST', headers, body: BODY });
  }

  for (const [name, send, status, code] of badCases) {
    it(`${name} -> ${status} ${code}, nothing stored`, async () => {
      // Earlier refusals must not have stored anything either; note the counter after any success.
      storedCounter = await r.get('push:id:counter');
      const ch = channelId();
      await refused(await send(ch), status, code, ch);
    });
  }

  it('a signed publish (Ed25519) is stored and delivered; its replay is refused with 403 4125', async () => {
    const ch = channelId();
    const ws = await WsClient.connect(lis.url, [signed(ch)]);
    const n = nonce();
    const ts = Math.floor(Date.now() / 1000);
    const first = await signedFetch(pub.url, 'POST', target(ch), BODY, ed, { nonce: n, timestamp: ts });
    assert.equal(first.status, 200, await first.text());
    const msgs = await ws.waitFor(1);
    assert.deepEqual(msgs[0]?.text, JSON.parse(BODY));
    storedCounter = await r.get('push:id:counter');
    const stored = await r.keys('push:m:*');
    const again = await signedFetch(pub.url, 'POST', target(ch), BODY, ed, { nonce: n, timestamp: ts });
    const text = await again.text();
    assert.equal(again.status, 403);
    assert.ok(text.startsWith('4125: '), text);
    assert.deepEqual(await r.keys('push:m:*'), stored, 'the replay stored nothing');
    assert.equal(await r.get('push:id:counter'), storedCounter);
    assert.equal(await r.llen(`push:h:{${ch}}`), 1);
    await sleep(100);
    assert.equal(ws.messages.length, 1);
    ws.close();
    await r.flushall();
    storedCounter = null;
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
    const tampered = await signedFetch(pub.url, 'POST', '/pub/batch', batch, ed, { sentBody: batch.replace('one', 'uno') });
    assert.equal(tampered.status, 401);
    assert.equal(await r.llen(`push:h:{${a}}`), 2, 'the tampered batch stored nothing');
  });

  it('online status needs a signature too (GET, empty body)', async () => {
    const ch = channelId();
    const unsigned = await fetch(`${pub.url}${target(ch)}`);
    assert.equal(unsigned.status, 401);
    assert.ok((await unsigned.text()).startsWith('4120: '));
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
    const bad = await signedFetch(pub.url, 'POST', '/channels?count=101', '', ed);
    assert.equal(bad.status, 400);
    assert.ok((await bad.text()).startsWith('4127: '));
    const unsigned = await fetch(`${pub.url}/channels?count=1`, { method: 'POST' });
    assert.equal(unsigned.status, 401);
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
    const res = await post(direct, channelId(), { 'X-Forwarded-For': '10.1.2.3' });
    assert.equal(res.status, 401);
    assert.ok((await res.text()).includes('127.0.0.1'), 'the refusal names the address it judged');
  });

  it('the publisher refuses to start with a malformed key ring or network list', async () => {
    await assert.rejects(() => start({ PUSH_PUBLISH_KEYS: 'k:ed25519:short' }), /PUSH_PUBLISH_KEYS/);
    await assert.rejects(() => start({ PUSH_PUBLISH_TRUSTED_NETWORKS: '300.1.1.1' }), /PUSH_PUBLISH_TRUSTED_NETWORKS/);
  });
});
