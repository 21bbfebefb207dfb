import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { PushError } from '../errors.js';
import { parseTtlTable } from '../ttl-policy.js';
import { encodeRequestBatch } from './codec.js';
import { parseV4Request, publicChannelKey, requestCost, v4ToNewMessages, type V4Request, type V4Trust } from './request.js';

const KEY = 'u9kqCo7qhKIQ8RML9xUGNmcZLVWmS8OsR2UN9jsZuaCY3aqPKGENRWmA36f9r47FHnqXlKuMvgsl0hnft7qCAN8iXHw94nHS4D6dxA07BX1lUjwuMJ0t73Z9wJY25Mpu';
const SECRET = { key: KEY, algorithm: 'sha1' as const };
const TRUSTED: V4Trust = { trusted: true };
const CLIENT: V4Trust = { trusted: false, secret: SECRET };
const LIMITS = { maxMessages: 100, maxChannels: 100, maxFanoutBytes: 100_000 };
const PRIV = 'f0e5d42369441879d7e176c96cbbff2d';
const PUB = 'c18beb389c3e49131dbb2dde597df615';
const id = (hex: string): Buffer => Buffer.from(hex, 'hex');
/** The reference vector: HMAC-SHA1("public:c18b...") = 95e752af... */
const PUB_SIG = Buffer.from('95e752af8a6f9cacd5de990f22636d46058f521e', 'hex');
const BODY = '{"module_id":"im","command":"message","params":{}}';

const incoming = (messages: unknown[]): Uint8Array => encodeRequestBatch({ requests: [{ incomingMessages: { messages } }] });
const msg = (receivers: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> => ({ receivers, body: BODY, expiry: 60, type: 'im_message', ...extra });

describe('v4 request validation: table', () => {
  const rejections: Array<{ name: string; bytes: Uint8Array; trust: V4Trust; code: number; wire?: string }> = [
    { name: 'empty body', bytes: new Uint8Array(0), trust: TRUSTED, code: 4013, wire: '4013: Wrong Request Data.' },
    { name: 'garbage bytes', bytes: Buffer.from('not protobuf at all \xff\xff\xff'), trust: TRUSTED, code: 4013 },
    { name: 'batch without requests', bytes: encodeRequestBatch({ requests: [] }), trust: TRUSTED, code: 4013 },
    { name: 'request without command', bytes: encodeRequestBatch({ requests: [{}] }), trust: TRUSTED, code: 4013 },
    { name: '101 messages', bytes: incoming(Array.from({ length: 101 }, () => msg([{ id: id(PRIV), isPrivate: true }]))), trust: TRUSTED, code: 4016, wire: '4016: Request exceeded the maximum number of messages.' },
    { name: 'a message with 0 receivers', bytes: incoming([msg([])]), trust: TRUSTED, code: 4017, wire: '4017: No channels found.' },
    { name: '101 receivers', bytes: incoming([msg(Array.from({ length: 101 }, () => ({ id: id(PRIV), isPrivate: true })))]), trust: TRUSTED, code: 4018, wire: '4018: Request exceeded the maximum number of channels.' },
    { name: '15-byte receiver id', bytes: incoming([msg([{ id: Buffer.alloc(15, 1), isPrivate: true }])]), trust: TRUSTED, code: 4019, wire: '4019: Request has an invalid channel id.' },
    { name: 'registration command', bytes: encodeRequestBatch({ requests: [{ registration: { host: 'x' } }] }), trust: TRUSTED, code: 4015, wire: '4015: Wrong Request Command.' },
    { name: 'client: serverStats', bytes: encodeRequestBatch({ requests: [{ serverStats: {} }] }), trust: CLIENT, code: 4014, wire: '4014: Request command is not allowed.' },
    { name: 'client: private receiver', bytes: incoming([msg([{ id: id(PUB), isPrivate: true, signature: PUB_SIG }])]), trust: CLIENT, code: 4020, wire: '4020: Private channel is not allowed.' },
    { name: 'client: bad signature', bytes: incoming([msg([{ id: id(PUB), isPrivate: false, signature: Buffer.alloc(20, 7) }])]), trust: CLIENT, code: 4021, wire: '4021: Channel has an invalid signature.' },
    { name: 'client: missing signature', bytes: incoming([msg([{ id: id(PUB), isPrivate: false }])]), trust: CLIENT, code: 4021 },
    {
      name: 'client: signature over the id without "public:"',
      bytes: incoming([msg([{ id: id(PUB), isPrivate: false, signature: createHmac('sha1', KEY).update(PUB).digest() }])]),
      trust: CLIENT,
      code: 4021,
    },
    {
      // 1,100 body bytes x 100 receivers = 110,000 bytes to subscribers, over the 100,000 limit.
      name: 'a fan-out over maxFanoutBytes',
      bytes: incoming([msg(Array.from({ length: 100 }, () => ({ id: id(PRIV), isPrivate: true })), { body: JSON.stringify({ pad: 'x'.repeat(1090) }) })]),
      trust: TRUSTED,
      code: 4112,
    },
    { name: 'client: channelStats of a private channel', bytes: encodeRequestBatch({ requests: [{ channelStats: { channels: [{ id: id(PRIV), isPrivate: true }] } }] }), trust: CLIENT, code: 4020 },
  ];
  for (const r of rejections) {
    it(`rejects ${r.name} with ${r.code}`, () => {
      assert.throws(
        () => parseV4Request(r.bytes, r.trust, LIMITS),
        (err: unknown) => err instanceof PushError && err.spec.code === r.code && (r.wire === undefined || err.wire === r.wire),
      );
    });
  }

  it('accepts the portal publish to private ids, keeping body, expiry and type', () => {
    const req = parseV4Request(incoming([msg([{ id: id(PRIV), isPrivate: true }, { id: id(PUB), isPrivate: true }])]), TRUSTED, LIMITS);
    assert.equal(req.kind, 'incomingMessages');
    if (req.kind !== 'incomingMessages') return;
    assert.deepEqual(req.messages, [{ receivers: [{ id: PRIV, isPrivate: true }, { id: PUB, isPrivate: true }], body: BODY, expiry: 60, type: 'im_message' }]);
  });

  it('accepts a fan-out at the limit: 1,000 body bytes x 100 receivers', () => {
    const body = JSON.stringify({ pad: 'x'.repeat(990) });
    assert.equal(Buffer.byteLength(body), 1000);
    const req = parseV4Request(incoming([msg(Array.from({ length: 100 }, () => ({ id: id(PRIV), isPrivate: true })), { body })]), TRUSTED, LIMITS);
    assert.equal(req.kind, 'incomingMessages');
  });

  it('accepts a client publish to a signed public id (reference vector)', () => {
    const req = parseV4Request(incoming([msg([{ id: id(PUB), isPrivate: false, signature: PUB_SIG }], { expiry: 0 })]), CLIENT, LIMITS);
    assert.equal(req.kind, 'incomingMessages');
    if (req.kind === 'incomingMessages') assert.deepEqual(req.messages[0]?.receivers, [{ id: PUB, isPrivate: false }]);
  });

  it('accepts channelStats and serverStats from the portal', () => {
    const cs = parseV4Request(encodeRequestBatch({ requests: [{ channelStats: { channels: [{ id: id(PRIV), isPrivate: true }, { id: id(PUB), isPrivate: true }] } }] }), TRUSTED, LIMITS);
    assert.deepEqual(cs, { kind: 'channelStats', channels: [{ id: PRIV, isPrivate: true }, { id: PUB, isPrivate: true }] });
    assert.deepEqual(parseV4Request(encodeRequestBatch({ requests: [{ serverStats: {} }] }), TRUSTED, LIMITS), { kind: 'serverStats' });
  });

  it('accepts an empty incomingMessages list as a request with no messages (a no-op, as in Bitrix), from the portal and from a client', () => {
    for (const trust of [TRUSTED, CLIENT]) {
      assert.deepEqual(parseV4Request(incoming([]), trust, LIMITS), { kind: 'incomingMessages', messages: [] });
      // An incomingMessages command without its `messages` field decodes the same way.
      assert.deepEqual(parseV4Request(encodeRequestBatch({ requests: [{ incomingMessages: {} }] }), trust, LIMITS), { kind: 'incomingMessages', messages: [] });
    }
    assert.deepEqual(v4ToNewMessages([], parseTtlTable('*=60')), []);
  });

  it('reads only requests[0] like Bitrix', () => {
    const bytes = encodeRequestBatch({ requests: [{ serverStats: {} }, { registration: {} }] });
    assert.equal(parseV4Request(bytes, TRUSTED, LIMITS).kind, 'serverStats');
  });
});

describe('v4 incoming -> store messages', () => {
  const ttl = parseTtlTable('*writing*=120,*=86400');
  it('maps private ids as they are and public ids to their key; expiry 0 stays live-only; type kept or derived', () => {
    const out = v4ToNewMessages(
      [
        { receivers: [{ id: PRIV, isPrivate: true }, { id: PRIV, isPrivate: true }], body: BODY, expiry: 999999, type: 'im_message' },
        { receivers: [{ id: PUB, isPrivate: false }], body: '{"module_id":"IM","command":"writing"}', expiry: 0, type: '' },
        { receivers: [{ id: PUB, isPrivate: false }], body: '{"module_id":"im","command":"writing"}', expiry: 3600, type: 'bad type!' },
      ],
      ttl,
    );
    assert.deepEqual(out[0], { channels: [PRIV], body: BODY, type: 'im_message', ttl: 86400 });
    assert.deepEqual(out[1], { channels: [publicChannelKey(PUB)], body: '{"module_id":"IM","command":"writing"}', type: 'im_writing', ttl: 0 });
    assert.equal(out[2]?.type, 'im_writing');
    assert.equal(out[2]?.ttl, 120);
  });
  it('accepts a body that is not a JSON object as Bitrix 2.0 does; text that is not JSON becomes a JSON string', () => {
    const out = v4ToNewMessages(['hello', '42', '"A"'].map((body) => ({ receivers: [{ id: PRIV, isPrivate: true }], body, expiry: 1, type: '' })), ttl);
    assert.deepEqual(out.map((m) => m.body), ['"hello"', '42', '"A"']);
  });
  it('refuses an empty body with 4100', () => {
    assert.throws(() => v4ToNewMessages([{ receivers: [{ id: PRIV, isPrivate: true }], body: '', expiry: 1, type: '' }], ttl), (e: unknown) => e instanceof PushError && e.spec.code === 4100);
  });
});

describe('v4 request cost (client rate limits)', () => {
  const ch = (n: number): Array<{ id: string; isPrivate: boolean }> => Array.from({ length: n }, () => ({ id: PUB, isPrivate: false }));
  const cases: Array<[string, V4Request, number]> = [
    ['no messages', { kind: 'incomingMessages', messages: [] }, 0],
    ['one message, one receiver', { kind: 'incomingMessages', messages: [{ receivers: ch(1), body: BODY, expiry: 0, type: '' }] }, 1],
    ['receivers add up over messages', { kind: 'incomingMessages', messages: [{ receivers: ch(3), body: BODY, expiry: 0, type: '' }, { receivers: ch(4), body: BODY, expiry: 0, type: '' }] }, 7],
    ['channel stats: one per channel', { kind: 'channelStats', channels: ch(5) }, 5],
    ['server stats', { kind: 'serverStats' }, 1],
  ];
  for (const [name, req, cost] of cases) it(name, () => assert.equal(requestCost(req), cost));
  it('counts what parseV4Request returns for a client publish', () => {
    const req = parseV4Request(incoming([msg([{ id: id(PUB), isPrivate: false, signature: PUB_SIG }, { id: id(PUB), isPrivate: false, signature: PUB_SIG }])]), CLIENT, LIMITS);
    assert.equal(requestCost(req), 2);
  });
});
