import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { encodeRequestBatch, signChannelPair } from '@push/protocol';
import { hex, incoming, publicSig } from '../helpers/bin-ws.js';
import { startApp, type AppProcess } from '../helpers/apps.js';
import { channelId, publish, SECRET, signed, WsClient } from '../helpers/clients.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { storedState } from '../helpers/redis-snapshot.js';

/**
 * PUSH_ALLOWED_ORIGINS against real listener and publisher processes and a real Redis, with the
 * Origin header set explicitly (tests/compat/browser.test.ts does the same from Chromium pages): a
 * WebSocket handshake, long poll or /bitrix/rest/ request from an origin not on the list gets 403
 * 4114 before the upgrade and changes nothing; listed origins, a wildcard's subdomains and requests
 * without Origin go through; with the variable unset every origin does.
 */

const ALLOWED = 'https://portal.example.com,http://127.0.0.2:8080,https://*.bitrix24.example';

interface Handshake {
  readonly opened: boolean;
  readonly status: number | null;
  readonly body: string;
}

/** Tries a WebSocket handshake with this Origin ('' = none); resolves with what happened. */
function handshake(base: string, channel: string, origin: string): Promise<Handshake> {
  return new Promise((resolve) => {
    const url = `${base.replace(/^http/, 'ws')}/bitrix/subws/?CHANNEL_ID=${encodeURIComponent(channel)}`;
    const ws = new WebSocket(url, origin === '' ? {} : { origin });
    ws.once('open', () => {
      ws.close();
      resolve({ opened: true, status: 101, body: '' });
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ opened: false, status: res.statusCode ?? null, body }));
    });
    ws.once('error', () => resolve({ opened: false, status: null, body: '' }));
  });
}

describe('PUSH_ALLOWED_ORIGINS', () => {
  let redis: RedisServer;
  let pub: AppProcess;
  let listener: AppProcess;
  let openListener: AppProcess;

  before(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, PUSH_UNSUBSCRIBE_DELAY_MS: '200' };
    [pub, listener, openListener] = await Promise.all([
      startApp('publisher', { ...env, PUSH_ALLOWED_ORIGINS: ALLOWED }),
      startApp('listener', { ...env, PUSH_ALLOWED_ORIGINS: ALLOWED }),
      startApp('listener', env),
    ]);
  });
  after(async () => {
    await Promise.all([pub?.stop(), listener?.stop(), openListener?.stop()]);
    await redis?.stop();
  });

  it('WebSocket: listed origins, wildcard subdomains and no Origin connect; any other origin gets 403 4114 and no socket', async () => {
    const ch = channelId();
    const table: Array<[string, boolean]> = [
      ['https://portal.example.com', true],
      ['http://127.0.0.2:8080', true],
      ['https://team.bitrix24.example', true],
      ['', true],
      ['https://evil.example', false],
      ['http://portal.example.com', false],
      ['http://127.0.0.3:8080', false],
      ['https://bitrix24.example', false],
      ['null', false],
    ];
    for (const [origin, allowed] of table) {
      const h = await handshake(listener.url, signed(ch), origin);
      assert.equal(h.opened, allowed, `${JSON.stringify(origin)}: ${JSON.stringify(h)}`);
      if (!allowed) {
        assert.equal(h.status, 403, `${origin}: status`);
        assert.match(h.body, /^4114: Origin not allowed: .*PUSH_ALLOWED_ORIGINS.* \(Origin: ".*"\)$/, `${origin}: reason`);
      }
    }
    // A listener without the variable takes every origin.
    assert.equal((await handshake(openListener.url, signed(ch), 'https://evil.example')).opened, true);
  });

  it('a refused handshake subscribed nothing: the channel has no subscriber until an allowed socket connects', async () => {
    const ch = channelId();
    const online = async (): Promise<unknown> => ((await (await fetch(`${pub.url}/bitrix/pub/?CHANNEL_ID=${ch}`)).json()) as { infos: unknown[] }).infos;
    const refused = await handshake(listener.url, signed(ch), 'https://evil.example');
    assert.equal(refused.status, 403);
    assert.deepEqual(await online(), [], 'no presence from the refused handshake');
    const ok = await WsClient.connect(listener.url, [signed(ch)]);
    assert.deepEqual(await online(), [{ channel: ch, subscribers: 1 }], 'the allowed socket is online (the check above could see one)');
    assert.equal((await publish(pub.url, [ch], { module_id: 'test', command: 'after' })).status, 200);
    const got = await ok.waitFor(1);
    assert.equal((got[0]?.text as { command: string }).command, 'after');
    ok.close();
  });

  it('long poll: a foreign Origin gets 403 4114 with CORS headers; a listed one is served', async () => {
    const ch = channelId();
    assert.equal((await publish(pub.url, [ch], { module_id: 'test', command: 'stored' })).status, 200);
    const url = `${listener.url}/bitrix/sub/?CHANNEL_ID=${encodeURIComponent(signed(ch))}&mid=${'0'.repeat(26)}`;
    const refused = await fetch(url, { headers: { Origin: 'https://evil.example' } });
    assert.equal(refused.status, 403);
    assert.equal(refused.headers.get('access-control-allow-origin'), '*', 'the page can read why');
    assert.match(await refused.text(), /^4114: /);
    const served = await fetch(url, { headers: { Origin: 'https://portal.example.com' } });
    assert.equal(served.status, 200);
    assert.match(await served.text(), /"command":"stored"/);
  });

  it('/bitrix/rest/: a foreign Origin gets 403 4114 and nothing is stored; a listed one publishes', async () => {
    const [privA, pubA, pubB] = [channelId(), channelId(), channelId()];
    const body = encodeRequestBatch({ requests: [incoming([{ id: hex(pubB), isPrivate: false, signature: publicSig(pubB) }], { module_id: 'test', command: 'rest-origin', params: {} })] });
    const url = `${pub.url}/bitrix/rest/?CHANNEL_ID=${encodeURIComponent(signChannelPair(privA, pubA, SECRET))}`;
    const store = redis.client();
    const before = await storedState(store);
    const refused = await fetch(url, { method: 'POST', headers: { Origin: 'https://evil.example' }, body });
    assert.equal(refused.status, 403);
    assert.match(await refused.text(), /^4114: /);
    assert.equal(await storedState(store), before, 'the refused request changed nothing in Redis');
    const ok = await fetch(url, { method: 'POST', headers: { Origin: 'https://team.bitrix24.example' }, body });
    assert.equal(ok.status, 200, await ok.text());
    assert.notEqual(await storedState(store), before, 'the allowed request stored its message');
  });
});
