import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PushError } from './errors.js';
import { parseRequestId, publishFingerprint } from './publish-identity.js';
import { BACKEND_SENDER } from './record.js';
import { SenderType } from './v4/codec.js';

describe('X-Push-Request-Id', () => {
  const ok: Array<[string, string | null]> = [
    ['', null],
    ['abcdefgh', 'abcdefgh'],
    ['3f2c1e0a-9b8d-4c7e-a6f5-1d2e3f4a5b6c', '3f2c1e0a-9b8d-4c7e-a6f5-1d2e3f4a5b6c'],
    ['portal:event.1234_x', 'portal:event.1234_x'],
    ['x'.repeat(64), 'x'.repeat(64)],
  ];
  for (const [raw, want] of ok) it(`accepts ${JSON.stringify(raw.slice(0, 20))}`, () => assert.equal(parseRequestId(raw), want));
  const bad = ['short', 'x'.repeat(65), 'has space1', 'slash/inid', 'ümlaut123', 'tab\there1', 'semi;colon1'];
  for (const raw of bad) {
    it(`refuses ${JSON.stringify(raw.slice(0, 20))} with 4132`, () => {
      assert.throws(() => parseRequestId(raw), (e: unknown) => e instanceof PushError && e.spec.code === 4132 && e.spec.status === 400);
    });
  }
});

describe('publish fingerprint', () => {
  const m = { channels: ['a'.repeat(32)], body: '{"x":1}', type: 't', ttl: 60 };
  const fp = publishFingerprint([m], BACKEND_SENDER);
  it('is stable and 32 hex digits', () => {
    assert.match(fp, /^[0-9a-f]{32}$/);
    assert.equal(publishFingerprint([{ ...m }], BACKEND_SENDER), fp);
  });
  const variants: Array<[string, Parameters<typeof publishFingerprint>]> = [
    ['another body', [[{ ...m, body: '{"x":2}' }], BACKEND_SENDER]],
    ['another channel', [[{ ...m, channels: ['b'.repeat(32)] }], BACKEND_SENDER]],
    ['one more channel', [[{ ...m, channels: ['a'.repeat(32), 'b'.repeat(32)] }], BACKEND_SENDER]],
    ['another TTL', [[{ ...m, ttl: 61 }], BACKEND_SENDER]],
    ['another type', [[{ ...m, type: 'u' }], BACKEND_SENDER]],
    ['another sender', [[m], { type: SenderType.CLIENT, id: 'c'.repeat(32) }]],
    ['the message twice', [[m, m], BACKEND_SENDER]],
    ['channels moved between messages', [[{ ...m, channels: [] }, { ...m, channels: ['a'.repeat(32)] }], BACKEND_SENDER]],
  ];
  for (const [name, args] of variants) it(`differs for ${name}`, () => assert.notEqual(publishFingerprint(...args), fp));
});
