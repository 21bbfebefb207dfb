import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import WebSocket from 'ws';
import { encodeRequestBatch, hexToBytes, signChannelPair } from '@push/protocol';
import { startFrontStack, type FrontStack } from '../helpers/front-stack.js';
import { storedState } from '../helpers/redis-snapshot.js';
import { channelId, SECRET } from '../helpers/clients.js';
import { publicSig } from '../helpers/bin-ws.js';
import { ed25519Key, nonce as freshNonce, signedFetch } from './signing.js';

/**
 * Issue 17 item 4: one rule for every publish path - a request's identity (signed nonce or
 * X-Push-Request-Id) is recorded only when its publish is carried out. A table of every publish path
 * (text, batch, protocol-4 binary, unsigned text with X-Push-Request-Id, /bitrix/rest/, WebSocket
 * client publish) times every refusal class that path has, sent through the real nginx of a real
 * stack (2 publishers, Redis): each refusal gets its status and code, Redis's stored state
 * (storedState: every key, type, value and expiry, presence aside) is the same before and after,
 * and then the same identity is sent again, corrected or with the obstacle removed, and is carried
 * out (200, stored) - or, for a conflict, gets the original outcome and changes nothing.
 */
const key = ed25519Key('table-portal');
const RUN = Math.random().toString(36).slice(2, 8);
const body = (n: number | string): string => JSON.stringify({ module_id: 'table', command: 'row', params: { n, run: RUN } });
const BIG = JSON.stringify({ module_id: 'table', command: 'big', params: { pad: 'x'.repeat(25000) } });
const now = (): number => Math.floor(Date.now() / 1000);
/** PUSH_CLIENT_BURST of the stack: a client request to more receivers than this never fits. */
const BURST = 8;

/** A protocol-4 RequestBatch with one message; `pub` receivers carry the client signature. */
function v4(receivers: string[], text: string, opts: { isPrivate?: boolean; badSig?: boolean } = {}): Uint8Array {
  const isPrivate = opts.isPrivate ?? true;
  return encodeRequestBatch({
    requests: [
      {
        incomingMessages: {
          messages: [
            {
              receivers: receivers.map((id) => (isPrivate ? { id: hexToBytes(id), isPrivate: true } : { id: hexToBytes(id), isPrivate: false, signature: opts.badSig ? Buffer.alloc(20, 1) : publicSig(id) })),
              body: text,
              expiry: 60,
              type: 'table_row',
            },
          ],
        },
      },
    ],
  });
}

interface Attempt {
  readonly send: () => Promise<Response>;
}

interface Row {
  readonly path: string;
  readonly refusal: string;
  readonly status: number;
  readonly code: number;
  /** Sets the stage (outside the snapshot); returns the refused request and what is sent after it. */
  readonly stage: (s: Stage) => Promise<{ refused: Attempt; then: Attempt & { readonly fix?: () => Promise<unknown>; readonly replayed?: boolean } }>;
}
interface Stage {
  readonly front: string;
  readonly r: Redis;
  /** A channel whose write window has passed (its creation record backdated in Redis). */
  expired(): Promise<string>;
}

const signed = (front: string, path: string, data: string | Uint8Array, n: string, o: { ts?: number; headers?: Record<string, string> } = {}) => (): Promise<Response> =>
  signedFetch(front, 'POST', path, data, key, { nonce: n, timestamp: o.ts ?? now(), headers: { 'Message-Expiry': '600', ...(o.headers ?? {}) } });
const text = (ch: string) => `/bitrix/pub/?CHANNEL_ID=${ch}`;
const BATCH = '/bitrix/pub/batch';
const BINARY = '/bitrix/pub/?binaryMode=true';
const batchOf = (ch: string, b: string): string => JSON.stringify({ messages: [{ channels: [ch], body: JSON.parse(b) as unknown, expiry: 600 }] });
const plain = (front: string, path: string, data: string | Uint8Array, requestId: string) => (): Promise<Response> =>
  fetch(`${front}${path}`, { method: 'POST', headers: { 'X-Push-Request-Id': requestId, 'Message-Expiry': '600' }, body: data });
const rid = (): string => `rid-${freshNonce()}`;
/** Bytes that are no protobuf RequestBatch (4013). */
const GARBAGE = new Uint8Array(Buffer.from('not protobuf at all \xff\xff\xff', 'latin1'));

/** The signed paths share their refusal classes; each row names what differs. */
function signedRows(path: string, build: (ch: string, b: string) => [string, string | Uint8Array], malformed: { make: (ch: string) => [string, string | Uint8Array]; code: number }): Row[] {
  return [
    {
      path,
      refusal: 'malformed body',
      status: 400,
      code: malformed.code,
      stage: async (s) => {
        const ch = channelId();
        const n = freshNonce();
        const [p, d] = malformed.make(ch);
        const [p2, d2] = build(ch, body(1));
        return { refused: { send: signed(s.front, p, d, n) }, then: { send: signed(s.front, p2, d2, n) } };
      },
    },
    {
      path,
      refusal: 'channel past its write window',
      status: 410,
      code: 4126,
      stage: async (s) => {
        const ch = await s.expired();
        const n = freshNonce();
        const [p, d] = build(ch, body(2));
        const ts = now();
        return { refused: { send: signed(s.front, p, d, n, { ts }) }, then: { fix: () => s.r.del(`push:ch:{${ch}}`), send: signed(s.front, p, d, n, { ts }) } };
      },
    },
    {
      path,
      refusal: 'stale timestamp',
      status: 401,
      code: 4124,
      stage: async (s) => {
        const ch = channelId();
        const n = freshNonce();
        const [p, d] = build(ch, body(3));
        return { refused: { send: signed(s.front, p, d, n, { ts: now() - 3600 }) }, then: { send: signed(s.front, p, d, n) } };
      },
    },
    {
      path,
      refusal: 'fan-out too large',
      status: 413,
      code: 4112,
      stage: async (s) => {
        const chs = [channelId(), channelId(), channelId()];
        const n = freshNonce();
        const [p, d] = build(chs.join('/'), BIG);
        const [p2, d2] = build(chs[0] as string, body(4));
        return { refused: { send: signed(s.front, p, d, n) }, then: { send: signed(s.front, p2, d2, n) } };
      },
    },
    {
      path,
      refusal: 'malformed X-Push-Request-Id',
      status: 400,
      code: 4132,
      stage: async (s) => {
        const ch = channelId();
        const n = freshNonce();
        const [p, d] = build(ch, body(5));
        return { refused: { send: signed(s.front, p, d, n, { headers: { 'X-Push-Request-Id': 'bad id!' } }) }, then: { send: signed(s.front, p, d, n) } };
      },
    },
    {
      path,
      refusal: 'nonce already carried out with other content',
      status: 409,
      code: 4133,
      stage: async (s) => {
        const ch = channelId();
        const n = freshNonce();
        const ts = now();
        const [p, d] = build(ch, body(6));
        const first = await signed(s.front, p, d, n, { ts })();
        assert.equal(first.status, 200, await first.text());
        const [p2, d2] = build(ch, body(7));
        return { refused: { send: signed(s.front, p2, d2, n, { ts }) }, then: { send: signed(s.front, p, d, n, { ts }), replayed: true } };
      },
    },
  ];
}

/** Channels in a text path are a query parameter; `ch` may list several with '/'. */
const textBuild = (ch: string, b: string): [string, string] => [text(ch), b];
const batchBuild = (ch: string, b: string): [string, string] => [BATCH, JSON.stringify({ messages: [{ channels: ch.split('/'), body: JSON.parse(b) as unknown, expiry: 600 }] })];
const binaryBuild = (ch: string, b: string): [string, Uint8Array] => [BINARY, v4(ch.split('/'), b)];

const ROWS: Row[] = [
  // Any non-empty body is a message since push server 2.0 parity (text that is not JSON is delivered
  // as a JSON string); an empty one is still refused.
  ...signedRows('text', textBuild, { make: (ch) => [text(ch), ''], code: 4100 }),
  ...signedRows('batch', batchBuild, { make: () => [BATCH, '{"messages":[{"channels":[]}]}'], code: 4106 }),
  // The case of issue 17 was a binary publish whose message body is not JSON; such bodies are now
  // delivered (push server 2.0 parity), so the malformed binary request is one that is not protobuf.
  ...signedRows('binary', binaryBuild, { make: () => [BINARY, GARBAGE], code: 4013 }),
  {
    path: 'unsigned text + X-Push-Request-Id',
    refusal: 'empty body',
    status: 400,
    code: 4100,
    stage: async (s) => {
      const ch = channelId();
      const id = rid();
      return { refused: { send: plain(s.front, text(ch), '', id) }, then: { send: plain(s.front, text(ch), body(8), id) } };
    },
  },
  {
    path: 'unsigned text + X-Push-Request-Id',
    refusal: 'channel past its write window',
    status: 410,
    code: 4126,
    stage: async (s) => {
      const ch = await s.expired();
      const id = rid();
      return { refused: { send: plain(s.front, text(ch), body(9), id) }, then: { fix: () => s.r.del(`push:ch:{${ch}}`), send: plain(s.front, text(ch), body(9), id) } };
    },
  },
  {
    path: 'unsigned batch + X-Push-Request-Id',
    refusal: 'id already carried out with other content',
    status: 409,
    code: 4133,
    stage: async (s) => {
      const ch = channelId();
      const id = rid();
      const first = await plain(s.front, BATCH, batchOf(ch, body(10)), id)();
      assert.equal(first.status, 200, await first.text());
      return { refused: { send: plain(s.front, BATCH, batchOf(ch, body(11)), id) }, then: { send: plain(s.front, BATCH, batchOf(ch, body(10)), id), replayed: true } };
    },
  },
  ...restRows(),
];

/** `/bitrix/rest/`: a client (priv:pub pair) publishing to another client's public id. */
function restRows(): Row[] {
  const restAs = (front: string, pair: string, data: Uint8Array, id: string) => () =>
    fetch(`${front}/bitrix/rest/?CHANNEL_ID=${encodeURIComponent(pair)}`, { method: 'POST', headers: { 'X-Push-Request-Id': id }, body: data });
  const target = (): string => channelId();
  return [
    {
      path: '/bitrix/rest/',
      refusal: 'request not protobuf',
      status: 400,
      code: 4013,
      stage: async (s) => {
        const pair = signChannelPair(channelId(), channelId(), SECRET);
        const t = target();
        const id = rid();
        return { refused: { send: restAs(s.front, pair, GARBAGE, id) }, then: { send: restAs(s.front, pair, v4([t], body(12), { isPrivate: false }), id) } };
      },
    },
    {
      path: '/bitrix/rest/',
      refusal: 'receiver signature wrong',
      status: 400,
      code: 4021,
      stage: async (s) => {
        const pair = signChannelPair(channelId(), channelId(), SECRET);
        const t = target();
        const id = rid();
        return { refused: { send: restAs(s.front, pair, v4([t], body(13), { isPrivate: false, badSig: true }), id) }, then: { send: restAs(s.front, pair, v4([t], body(13), { isPrivate: false }), id) } };
      },
    },
    {
      path: '/bitrix/rest/',
      refusal: 'private receiver',
      status: 400,
      code: 4020,
      stage: async (s) => {
        const pair = signChannelPair(channelId(), channelId(), SECRET);
        const t = target();
        const id = rid();
        return { refused: { send: restAs(s.front, pair, v4([t], body(14)), id) }, then: { send: restAs(s.front, pair, v4([t], body(14), { isPrivate: false }), id) } };
      },
    },
    {
      path: '/bitrix/rest/',
      refusal: 'past the client rate (PUSH_CLIENT_BURST)',
      status: 429,
      code: 4113,
      stage: async (s) => {
        const pair = signChannelPair(channelId(), channelId(), SECRET);
        const many = Array.from({ length: BURST + 1 }, () => target());
        const id = rid();
        return { refused: { send: restAs(s.front, pair, v4(many, body(19), { isPrivate: false }), id) }, then: { send: restAs(s.front, pair, v4([many[0] as string], body(19), { isPrivate: false }), id) } };
      },
    },
    {
      path: '/bitrix/rest/',
      refusal: 'malformed X-Push-Request-Id',
      status: 400,
      code: 4132,
      stage: async (s) => {
        const pair = signChannelPair(channelId(), channelId(), SECRET);
        const t = target();
        return { refused: { send: restAs(s.front, pair, v4([t], body(15), { isPrivate: false }), 'short') }, then: { send: restAs(s.front, pair, v4([t], body(15), { isPrivate: false }), rid()) } };
      },
    },
    {
      path: '/bitrix/rest/',
      refusal: 'id already carried out with other content',
      status: 409,
      code: 4133,
      stage: async (s) => {
        const pair = signChannelPair(channelId(), channelId(), SECRET);
        const t = target();
        const id = rid();
        const first = await restAs(s.front, pair, v4([t], body(16), { isPrivate: false }), id)();
        assert.equal(first.status, 200, await first.text());
        return { refused: { send: restAs(s.front, pair, v4([t], body(17), { isPrivate: false }), id) }, then: { send: restAs(s.front, pair, v4([t], body(16), { isPrivate: false }), id), replayed: true } };
      },
    },
  ];
}

describe('a refused publish changes nothing, on every path, through nginx (issue 17 item 4)', () => {
  let stack: FrontStack;
  let r: Redis;
  let stage: Stage;

  before(async () => {
    stack = await startFrontStack({
      publishers: 2,
      listeners: 1,
      env: { PUSH_PUBLISH_KEYS: key.ringEntry, PUSH_PUBLISH_TRUSTED_NETWORKS: '127.0.0.1/32', PUSH_MAX_FANOUT_BYTES: '65536', PUSH_CLIENT_RATE: '5', PUSH_CLIENT_BURST: String(BURST) },
    });
    r = stack.redis.client();
    stage = {
      front: stack.front,
      r,
      async expired() {
        const ch = channelId();
        const [sec] = await r.time();
        // Created 13 h ago: past the default 12 h write window, inside the 24 h read window.
        await r.set(`push:ch:{${ch}}`, String((Number(sec) - 13 * 3600) * 1000), 'EX', 2 * 86400);
        return ch;
      },
    };
  });
  after(async () => {
    await stack?.stop();
  });

  for (const row of ROWS) {
    it(`${row.path}: ${row.refusal} -> ${row.status} ${row.code}, Redis unchanged; then the same identity ${row.status === 409 ? 'gets the original outcome' : 'is carried out'}`, async () => {
      const { refused, then } = await row.stage(stage);
      const before = await storedState(r);
      const res = await refused.send();
      const answer = await res.text();
      assert.equal(res.status, row.status, answer);
      assert.ok(answer.startsWith(`${row.code}: `), answer);
      assert.equal(await storedState(r), before, 'Redis unchanged by the refused request');
      await then.fix?.();
      const fixed = await storedState(r);
      const ok = await then.send();
      assert.equal(ok.status, 200, await ok.text());
      if (then.replayed === true) assert.equal(await storedState(r), fixed, 'the original outcome again: nothing new stored');
      else assert.notEqual(await storedState(r), fixed, 'the resent request was carried out');
    });
  }

  it('WebSocket client publish: a binary frame that is not protobuf closes with 4013 and changes nothing; a valid frame then publishes', async () => {
    const [priv, pubId, targetPub] = [channelId(), channelId(), channelId()];
    const url = `${stack.front.replace(/^http/, 'ws')}/bitrix/subws/?CHANNEL_ID=${encodeURIComponent(signChannelPair(priv, pubId, SECRET))}&binaryMode=true`;
    const open = async (): Promise<WebSocket> => {
      const ws = new WebSocket(url);
      await new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      return ws;
    };
    const ws = await open();
    const before = await storedState(r);
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.send(GARBAGE);
    assert.equal(await closed, 4013);
    assert.equal(await storedState(r), before, 'Redis unchanged by the refused frame');
    const again = await open();
    again.send(v4([targetPub], body(18), { isPrivate: false }));
    const deadline = Date.now() + 5000;
    while ((await storedState(r)) === before && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    assert.notEqual(await storedState(r), before, 'the valid frame was carried out');
    again.close();
  });
});
