import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PushError } from './errors.js';
import { checkBody, fanoutBytes, parseBatchPublish, parseExpiry, parseSinglePublish, typeFromBody, type PublishLimits } from './publish-request.js';
import { parseTtlTable, DEFAULT_TTL_TABLE } from './ttl-policy.js';

const limits: PublishLimits = { maxChannels: 3, maxBatchMessages: 2, ttl: parseTtlTable(DEFAULT_TTL_TABLE), maxFanoutBytes: 1000 };
/** A JSON object body of exactly `bytes` UTF-8 bytes. */
const bodyOf = (bytes: number): string => `{"p":"${'x'.repeat(bytes - 8)}"}`;
const A = 'a'.repeat(32);
const B = 'b'.repeat(32);
const code = (n: number) => (e: unknown) => e instanceof PushError && e.spec.code === n;

describe('single publish', () => {
  it('takes type from the body and TTL from the table', () => {
    const m = parseSinglePublish({ channelParam: `${A}/${B}/${A}`, body: '{"module_id":"IM","command":"startWriting"}', expiryHeader: null, typeHeader: null }, limits);
    assert.deepEqual(m, { channels: [A, B], body: '{"module_id":"IM","command":"startWriting"}', type: 'im_startWriting', ttl: 120 });
  });
  it('Message-Type overrides the body; Message-Expiry lowers the TTL', () => {
    const m = parseSinglePublish({ channelParam: A, body: '{}', expiryHeader: '30', typeHeader: 'im_message' }, limits);
    assert.equal(m.type, 'im_message');
    assert.equal(m.ttl, 30);
  });
  it('Message-Expiry: 0 means live only', () => {
    assert.equal(parseSinglePublish({ channelParam: A, body: '{}', expiryHeader: '0', typeHeader: null }, limits).ttl, 0);
  });
  it('a fan-out at the limit passes; a channel listed twice counts once', () => {
    assert.equal(parseSinglePublish({ channelParam: `${A}/${B}`, body: bodyOf(500), expiryHeader: null, typeHeader: null }, limits).channels.length, 2);
    assert.equal(parseSinglePublish({ channelParam: `${A}/${B}/${A}`, body: bodyOf(500), expiryHeader: null, typeHeader: null }, limits).channels.length, 2);
  });
  it('raw line breaks become spaces (clients cut frames with a single-line regex)', () => {
    assert.equal(parseSinglePublish({ channelParam: A, body: '{\n"a":\r\n1}', expiryHeader: null, typeHeader: null }, limits).body, '{ "a": 1}');
  });
  // Bitrix push server 2.0 accepts and delivers any non-empty body; JSON values are kept verbatim,
  // other text becomes a JSON string so every frame stays valid JSON (checkBody).
  const anyBody: Array<[string, string, string, string]> = [
    ['a number', '1', '1', 'unknown'],
    ['a JSON string', '"A"', '"A"', 'unknown'],
    ['a JSON array', '[1,{"a":2}]', '[1,{"a":2}]', 'unknown'],
    ['JSON null', 'null', 'null', 'unknown'],
    ['text that is not JSON', 'A', '"A"', 'unknown'],
    ['broken JSON', '{oops', '"{oops"', 'unknown'],
    ['text with a line break and quotes', 'a\n"b"', '"a\\n\\"b\\""', 'unknown'],
  ];
  for (const [name, sent, stored, type] of anyBody) {
    it(`accepts ${name} as the body and stores ${stored}`, () => {
      const m = parseSinglePublish({ channelParam: A, body: sent, expiryHeader: null, typeHeader: null }, limits);
      assert.equal(m.body, stored);
      assert.equal(m.type, type);
      assert.doesNotThrow(() => JSON.parse(m.body));
    });
  }
  const bad: Array<[string, Partial<Parameters<typeof parseSinglePublish>[0]>, number]> = [
    ['empty body', { body: '' }, 4100],
    ['negative expiry', { expiryHeader: '-1' }, 4104],
    ['fractional expiry', { expiryHeader: '1.5' }, 4104],
    ['text expiry', { expiryHeader: 'soon' }, 4104],
    ['bad type', { typeHeader: 'has space' }, 4105],
    ['missing channels', { channelParam: null }, 4017],
    ['malformed channel', { channelParam: 'xyz' }, 4010],
    ['too many channels', { channelParam: ['1', '2', '3', '4'].map((d) => d.repeat(32)).join('/') }, 4018],
    ['fan-out over the limit (334 bytes x 3 channels)', { channelParam: `${A}/${B}/${'c'.repeat(32)}`, body: bodyOf(334) }, 4112],
    ['fan-out counted in bytes, not characters (2 x 167 "é" x 3 channels)', { channelParam: `${A}/${B}/${'c'.repeat(32)}`, body: `{"p":"${'é'.repeat(167)}"}` }, 4112],
  ];
  for (const [name, patch, n] of bad) {
    it(`rejects ${name} with ${n}`, () => {
      assert.throws(() => parseSinglePublish({ channelParam: A, body: '{}', expiryHeader: null, typeHeader: null, ...patch }, limits), code(n));
    });
  }
});

describe('batch publish', () => {
  it('accepts object and string bodies, per-message type and expiry', () => {
    const out = parseBatchPublish(JSON.stringify({ messages: [{ channels: [A], body: { module_id: 'online', command: 'list' } }, { channels: [A, B, A], body: '{"x": 1}', type: 'im_message', expiry: 5 }] }), limits);
    assert.deepEqual(out, [
      { channels: [A], body: '{"module_id":"online","command":"list"}', type: 'online_list', ttl: 240 },
      { channels: [A, B], body: '{"x": 1}', type: 'im_message', ttl: 5 },
    ]);
  });
  const bad: Array<[string, unknown, number]> = [
    ['not an object', [1], 4106],
    ['empty list', { messages: [] }, 4106],
    ['too many messages', { messages: [1, 2, 3].map(() => ({ channels: [A], body: {} })) }, 4016],
    ['no channels', { messages: [{ channels: [], body: {} }] }, 4106],
    ['bad channel', { messages: [{ channels: ['x'], body: {} }] }, 4106],
    ['too many channels', { messages: [{ channels: ['1', '2', '3', '4'].map((d) => d.repeat(32)), body: {} }] }, 4018],
    ['body missing', { messages: [{ channels: [A] }] }, 4106],
    ['body an empty string', { messages: [{ channels: [A], body: '' }] }, 4106],
    ['bad expiry', { messages: [{ channels: [A], body: {}, expiry: -5 }] }, 4106],
    ['bad type', { messages: [{ channels: [A], body: {}, type: 'a b' }] }, 4106],
    ['second message bad, first fine', { messages: [{ channels: [A], body: {} }, { channels: [A] }] }, 4106],
    ['fan-out over the limit across messages (2 x 2 channels x 251 bytes)', { messages: [0, 1].map(() => ({ channels: [A, B], body: bodyOf(251) })) }, 4112],
  ];
  for (const [name, doc, n] of bad) it(`rejects ${name} with ${n}`, () => assert.throws(() => parseBatchPublish(JSON.stringify(doc), limits), code(n)));
  it('accepts any body value: non-object values as JSON, a string that is not JSON as a JSON string', () => {
    const out = parseBatchPublish(JSON.stringify({ messages: [{ channels: [A], body: [1] }, { channels: [A], body: 7 }, { channels: [A], body: '{no' }, { channels: [A], body: null }] }), { ...limits, maxBatchMessages: 4 });
    assert.deepEqual(out.map((m) => m.body), ['[1]', '7', '"{no"', 'null']);
  });
  it('rejects invalid JSON and an empty body', () => {
    assert.throws(() => parseBatchPublish('{', limits), code(4102));
    assert.throws(() => parseBatchPublish('', limits), code(4100));
  });
  it('names the failing message', () => assert.throws(() => parseBatchPublish(JSON.stringify({ messages: [{ channels: [A], body: {} }, { channels: [A] }] }), limits), /messages\[1\]/));
});

describe('helpers', () => {
  it('fanoutBytes: UTF-8 body bytes times channels, summed over messages', () => {
    const table: Array<[Array<{ body: string; channels: string[] }>, number]> = [
      [[], 0],
      [[{ body: '{}', channels: [A] }], 2],
      [[{ body: '{}', channels: [A, B] }], 4],
      [[{ body: '{"a":"é"}', channels: [A, B, A] }], 30],
      [[{ body: '{}', channels: [A] }, { body: '{"b":1}', channels: [A, B] }], 16],
    ];
    for (const [messages, bytes] of table) assert.equal(fanoutBytes(messages), bytes, JSON.stringify(messages));
  });
  it('a batch exactly at the fan-out limit passes', () => {
    assert.equal(parseBatchPublish(JSON.stringify({ messages: [0, 1].map(() => ({ channels: [A, B], body: bodyOf(250) })) }), limits).length, 2);
  });
  it('parseExpiry', () => {
    assert.equal(parseExpiry(null), null);
    assert.equal(parseExpiry(''), null);
    assert.equal(parseExpiry(' 60 '), 60);
  });
  it('typeFromBody sanitises', () => {
    assert.equal(typeFromBody({ module_id: 'im', command: 'a b/c' }), 'im_a_b_c');
    assert.equal(typeFromBody({ module_id: 1 }), 'unknown');
  });
  it('checkBody accepts very deep nesting verbatim (the parser does not recurse)', () => {
    const deep = '{"a":' + '['.repeat(100000) + ']'.repeat(100000) + '}';
    const { body, parsed } = checkBody(deep);
    assert.equal(body, deep);
    assert.deepEqual(Object.keys(parsed as object), ['a']);
  });
  it('a batch with a very deeply nested object body is a 4106, not a crash; as a string it is kept', () => {
    const nested = '{"a":' + '['.repeat(100000) + ']'.repeat(100000) + '}';
    const ch = 'a'.repeat(32);
    assert.throws(
      () => parseBatchPublish(`{"messages":[{"channels":["${ch}"],"body":${nested}}]}`, limits),
      (e: unknown) => e instanceof PushError && e.spec.code === 4106 && /messages\[0\]: "body" is nested too deeply/.test(e.message),
    );
    const [m] = parseBatchPublish(JSON.stringify({ messages: [{ channels: [ch], body: nested }] }), { ...limits, maxFanoutBytes: 1 << 20 });
    assert.equal(m?.body, nested);
  });
});
