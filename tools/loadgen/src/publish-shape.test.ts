import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bytesToHex, V4Types } from '@push/protocol';
import { lanesFor, messagesPerRequest, parsePublishAuth, parseShape, publishingLabel, shapeRequest, type PublishAuth, type PublishKind, type PublishShape } from './publish-shape.js';

const A = '0123456789abcdef0000000000000001';
const B = '0123456789abcdef0000000000000002';
const BODY = '{"module_id":"bench","command":"m","params":{}}';
/** The RequestBatch as plain data, receiver ids in hex (the server's own decoder reads it the same way). */
function decodeRequestBatch(bytes: Uint8Array): unknown {
  const obj = V4Types.RequestBatch.toObject(V4Types.RequestBatch.decode(bytes), { arrays: true }) as {
    requests: Array<{ incomingMessages: { messages: Array<{ receivers: Array<{ id: Uint8Array; isPrivate: boolean }>; body: string; expiry: number }> } }>;
  };
  return {
    requests: obj.requests.map((r) => ({ incomingMessages: { messages: r.incomingMessages.messages.map((m) => ({ receivers: m.receivers.map((x) => ({ id: bytesToHex(x.id), isPrivate: x.isPrivate })), body: m.body, expiry: m.expiry })) } })),
  };
}

const one = [{ channels: [A, B], body: BODY }];
const two = [...one, { channels: [B], body: BODY }];

describe('publish request shapes', () => {
  const cases: Array<{ name: string; kind: PublishKind; shape: PublishShape; messages: typeof two; path: string; headers: Record<string, string>; body?: string; count: number }> = [
    { name: 'text: one message on the portal path, Message-Expiry', kind: 'push', shape: 'text', messages: one, path: `/bitrix/pub/?CHANNEL_ID=${A}/${B}`, headers: { 'Message-Expiry': '3600' }, body: BODY, count: 1 },
    { name: 'batch: this server\'s JSON batch', kind: 'push', shape: 'batch', messages: two, path: '/pub/batch', headers: {}, body: JSON.stringify({ messages: [{ channels: [A, B], body: BODY, expiry: 3600 }, { channels: [B], body: BODY, expiry: 3600 }] }), count: 2 },
    { name: 'batch of one stays a batch request', kind: 'push', shape: 'batch', messages: one, path: '/pub/batch', headers: {}, body: JSON.stringify({ messages: [{ channels: [A, B], body: BODY, expiry: 3600 }] }), count: 1 },
    { name: 'nchan: its split delimiter, whatever the shape', kind: 'nchan', shape: 'text', messages: one, path: `/pub/${A},${B}`, headers: {}, body: BODY, count: 1 },
    { name: 'Bitrix 1.0: the text publish on its path', kind: 'bitrix', shape: 'text', messages: one, path: `/bitrix/pub/?CHANNEL_ID=${A}/${B}`, headers: { 'Message-Expiry': '3600' }, body: BODY, count: 1 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = shapeRequest(c.kind, c.shape, c.messages, 3600);
      assert.equal(r.method, 'POST');
      assert.equal(r.path, c.path);
      assert.deepEqual(r.headers, c.headers);
      if (c.body !== undefined) assert.equal(r.body.toString('utf8'), c.body);
      assert.equal(r.messages, c.count);
    });
  }

  it('binary: a protocol-4 RequestBatch of one IncomingMessage, as the PHP module sends it', () => {
    const r = shapeRequest('push', 'binary', one, 600);
    assert.equal(r.path, '/bitrix/pub/?binaryMode=true');
    assert.equal(r.messages, 1);
    const decoded = decodeRequestBatch(r.body);
    assert.deepEqual(decoded, { requests: [{ incomingMessages: { messages: [{ receivers: [{ id: A, isPrivate: true }, { id: B, isPrivate: true }], body: BODY, expiry: 600 }] } }] });
  });

  const refused: Array<{ name: string; kind: PublishKind; shape: PublishShape; messages: typeof two; error: RegExp }> = [
    { name: 'text with two messages', kind: 'push', shape: 'text', messages: two, error: /text shape carries one message per request \(got 2\)/ },
    { name: 'binary with two messages', kind: 'push', shape: 'binary', messages: two, error: /binary shape carries one message/ },
    { name: 'nchan with two messages', kind: 'nchan', shape: 'batch', messages: two, error: /nchan shape carries one message/ },
    { name: 'Bitrix 1.0 with two messages', kind: 'bitrix', shape: 'text', messages: two, error: /bitrix shape carries one message/ },
    { name: 'no message at all', kind: 'push', shape: 'batch', messages: [], error: /at least one message/ },
  ];
  for (const c of refused) it(`refuses ${c.name}`, () => assert.throws(() => shapeRequest(c.kind, c.shape, c.messages, 60), c.error));
});

describe('--shape and messages per request', () => {
  const cases: Array<{ value: string; want: PublishShape | RegExp }> = [
    { value: 'text', want: 'text' },
    { value: 'binary', want: 'binary' },
    { value: 'batch', want: 'batch' },
    { value: 'json', want: /--shape must be one of text, binary, batch \(got "json"\)/ },
    { value: '', want: /--shape must be one of/ },
  ];
  for (const c of cases) {
    it(`--shape ${JSON.stringify(c.value)}`, () => {
      if (typeof c.want === 'string') assert.equal(parseShape(c.value), c.want);
      else assert.throws(() => parseShape(c.value), c.want);
    });
  }
  const per: Array<{ shape: PublishShape; batch: number; want: number | RegExp }> = [
    { shape: 'text', batch: 200, want: 1 },
    { shape: 'binary', batch: 200, want: 1 },
    { shape: 'batch', batch: 200, want: 200 },
    { shape: 'batch', batch: 0, want: /--batch must be a whole number of at least 1/ },
    { shape: 'batch', batch: 2.5, want: /--batch must be a whole number/ },
  ];
  for (const c of per) {
    it(`${c.shape} with --batch ${c.batch}`, () => {
      if (typeof c.want === 'number') assert.equal(messagesPerRequest(c.shape, c.batch), c.want);
      else assert.throws(() => messagesPerRequest(c.shape, c.batch), c.want);
    });
  }
});

describe('lanes, signing and the publishing label', () => {
  const lanes: Array<{ value: string; shape: PublishShape; max: number; want: number | RegExp }> = [
    { value: 'auto', shape: 'text', max: 500, want: 32 },
    { value: 'auto', shape: 'binary', max: 500, want: 32 },
    { value: 'auto', shape: 'batch', max: 500, want: 1 },
    { value: 'auto', shape: 'text', max: 10, want: 10 },
    { value: '8', shape: 'text', max: 500, want: 8 },
    { value: '0', shape: 'text', max: 500, want: /--lanes must be auto or a whole number of at least 1 \(got "0"\)/ },
    { value: 'many', shape: 'text', max: 500, want: /--lanes must be auto/ },
  ];
  for (const c of lanes) {
    it(`--lanes ${c.value} for ${c.shape} (at most ${c.max})`, () => {
      if (typeof c.want === 'number') assert.equal(lanesFor(c.value, c.shape, c.max), c.want);
      else assert.throws(() => lanesFor(c.value, c.shape, c.max), c.want);
    });
  }
  const auth: Array<{ value: string; want: PublishAuth | RegExp }> = [
    { value: 'trusted', want: 'trusted' },
    { value: 'ed25519', want: 'ed25519' },
    { value: 'hmac', want: 'hmac-sha256' },
    { value: 'hmac-sha256', want: 'hmac-sha256' },
    { value: 'none', want: /--publish-auth must be trusted, ed25519 or hmac \(got "none"\)/ },
  ];
  for (const c of auth) {
    it(`--publish-auth ${c.value}`, () => {
      if (typeof c.want === 'string') assert.equal(parsePublishAuth(c.value), c.want);
      else assert.throws(() => parsePublishAuth(c.value), c.want);
    });
  }
  const labels: Array<{ shape: PublishShape; auth: PublishAuth; has: RegExp[] }> = [
    { shape: 'text', auth: 'trusted', has: [/one message per request, text POST \/bitrix\/pub\/\?CHANNEL_ID=/, /unsigned from a trusted address/] },
    { shape: 'binary', auth: 'ed25519', has: [/protocol-4 POST \/bitrix\/pub\/\?binaryMode=true/, /signed with ed25519 \(nchan's are unsigned/] },
    { shape: 'batch', auth: 'trusted', has: [/BATCH SHAPE: up to 200 messages per POST \/pub\/batch/] },
  ];
  for (const c of labels) {
    it(`says how it published: ${c.shape}, ${c.auth}`, () => {
      const label = publishingLabel(c.shape, c.auth, 200);
      for (const re of c.has) assert.match(label, re);
    });
  }
});
