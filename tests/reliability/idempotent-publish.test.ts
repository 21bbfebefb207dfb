import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { encodeRequestBatch, hexToBytes, signChannelPair } from '@push/protocol';
import { startFrontStack, type FrontStack } from '../helpers/front-stack.js';
import { storedState } from '../helpers/redis-snapshot.js';
import { WsClient, channelId, SECRET, signed } from '../helpers/clients.js';
import { BinWs, publicSig } from '../helpers/bin-ws.js';
import { sleep } from '../helpers/ports.js';
import { ed25519Key, nonce, signedFetch } from '../security/signing.js';

/**
 * Issue 18 item 1, through the real nginx of a stack with 2 publishers and a real Redis: every
 * publish path (text, batch, protocol-4 binary, /bitrix/rest/; signed and with X-Push-Request-Id)
 * sent twice with one identity - one after the other, and both at once (they may reach different
 * publishers, or one script call) - is stored and delivered once, and both answers are 200 with the
 * same X-Push-Message-Ids; the second stores nothing (Redis unchanged).
 */
const key = ed25519Key('idem-portal');
const body = (n: string): string => JSON.stringify({ module_id: 'idem', command: 'c', params: { n } });
const v4 = (receivers: string[], text: string, isPrivate = true): Uint8Array =>
  encodeRequestBatch({
    requests: [{ incomingMessages: { messages: [{ receivers: receivers.map((id) => (isPrivate ? { id: hexToBytes(id), isPrivate: true } : { id: hexToBytes(id), isPrivate: false, signature: publicSig(id) })), body: text, expiry: 600, type: 'idem_c' }] } }],
  });
const rid = (): string => `idem-${nonce()}`;

interface PathCase {
  readonly name: string;
  /** Builds one request (same identity on every call) for channel `ch`, and how many messages it stores. */
  readonly make: (front: string, ch: string) => { send: () => Promise<Response>; messages: number };
  /** Receivers listen as protocol-4 clients (client publishes go to public ids). */
  readonly publicTarget?: boolean;
}

const CASES: PathCase[] = [
  {
    name: 'text, X-Push-Request-Id',
    make: (front, ch) => {
      const id = rid();
      return { messages: 1, send: () => fetch(`${front}/bitrix/pub/?CHANNEL_ID=${ch}`, { method: 'POST', headers: { 'X-Push-Request-Id': id, 'Message-Expiry': '600' }, body: body('text') }) };
    },
  },
  {
    name: 'text, signed',
    make: (front, ch) => {
      const n = nonce();
      const ts = Math.floor(Date.now() / 1000);
      return { messages: 1, send: () => signedFetch(front, 'POST', `/bitrix/pub/?CHANNEL_ID=${ch}`, body('signed'), key, { nonce: n, timestamp: ts, headers: { 'Message-Expiry': '600' } }) };
    },
  },
  {
    name: 'batch, X-Push-Request-Id',
    make: (front, ch) => {
      const id = rid();
      const doc = JSON.stringify({ messages: [1, 2, 3].map((i) => ({ channels: [ch], body: JSON.parse(body(`b${i}`)) as unknown, expiry: 600 })) });
      return { messages: 3, send: () => fetch(`${front}/bitrix/pub/batch`, { method: 'POST', headers: { 'X-Push-Request-Id': id }, body: doc }) };
    },
  },
  {
    name: 'protocol-4 binary, signed',
    make: (front, ch) => {
      const n = nonce();
      const ts = Math.floor(Date.now() / 1000);
      const bytes = v4([ch], body('bin'));
      return { messages: 1, send: () => signedFetch(front, 'POST', '/bitrix/pub/?binaryMode=true', bytes, key, { nonce: n, timestamp: ts }) };
    },
  },
  {
    name: 'protocol-4 binary, X-Push-Request-Id',
    make: (front, ch) => {
      const id = rid();
      const bytes = v4([ch], body('bin-id'));
      return { messages: 1, send: () => fetch(`${front}/bitrix/pub/?binaryMode=true`, { method: 'POST', headers: { 'X-Push-Request-Id': id }, body: bytes }) };
    },
  },
  {
    name: '/bitrix/rest/, X-Push-Request-Id',
    publicTarget: true,
    make: (front, ch) => {
      const id = rid();
      const sender = signChannelPair(channelId(), channelId(), SECRET);
      const bytes = v4([ch], body('rest'), false);
      return { messages: 1, send: () => fetch(`${front}/bitrix/rest/?CHANNEL_ID=${encodeURIComponent(sender)}`, { method: 'POST', headers: { 'X-Push-Request-Id': id }, body: bytes }) };
    },
  },
];

describe('idempotent publish through nginx (issue 18 item 1)', () => {
  let stack: FrontStack;
  let r: Redis;
  before(async () => {
    stack = await startFrontStack({ publishers: 2, listeners: 1, env: { PUSH_PUBLISH_KEYS: key.ringEntry, PUSH_PUBLISH_TRUSTED_NETWORKS: '127.0.0.1/32', PUSH_CLIENT_RATE: '0' } });
    r = stack.redis.client();
  });
  after(async () => {
    await stack?.stop();
  });

  /** A subscriber on `ch` (a private id, or the owner of public id `ch`) and what it received, as mids. */
  async function subscriber(c: PathCase, ch: string): Promise<{ mids: () => string[]; close: () => void }> {
    if (c.publicTarget === true) {
      const ws = await BinWs.open(stack.front, [signChannelPair(channelId(), ch, SECRET)]);
      return { mids: () => ws.messages.map((m) => Buffer.from(m.id).toString('hex')), close: () => ws.ws.close() };
    }
    const ws = await WsClient.connect(stack.front, [signed(ch)]);
    return { mids: () => ws.messages.map((m) => m.mid), close: () => ws.close() };
  }

  for (const c of CASES) {
    it(`${c.name}: sent again, the original outcome; stored and delivered once`, async () => {
      const ch = channelId();
      const sub = await subscriber(c, ch);
      const req = c.make(stack.front, ch);
      const first = await req.send();
      assert.equal(first.status, 200, await first.text());
      const ids = first.headers.get('x-push-message-ids') ?? '';
      assert.equal(ids.split(',').length, req.messages, `one id per message: ${ids}`);
      const before = await storedState(r);
      const again = await req.send();
      assert.equal(again.status, 200, await again.text());
      assert.equal(again.headers.get('x-push-message-ids'), ids, 'the same ids');
      assert.equal(await storedState(r), before, 'nothing stored by the second');
      await sleep(300);
      assert.equal(sub.mids().length, req.messages, 'delivered once');
      if (c.publicTarget !== true) assert.deepEqual(sub.mids(), ids.split(','));
      sub.close();
    });

    it(`${c.name}: the same request twice at once (both publishers, or one script call) is stored once; both answers name the same ids`, async () => {
      const ch = channelId();
      const sub = await subscriber(c, ch);
      const req = c.make(stack.front, ch);
      const answers = await Promise.all([req.send(), req.send(), req.send()]);
      for (const a of answers) assert.equal(a.status, 200, await a.text());
      const ids = answers.map((a) => a.headers.get('x-push-message-ids'));
      assert.equal(new Set(ids).size, 1, `one outcome: ${JSON.stringify(ids)}`);
      await sleep(300);
      assert.equal(sub.mids().length, req.messages, 'delivered once');
      sub.close();
    });
  }
});
