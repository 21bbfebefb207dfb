import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeTextFrames, encodeTextFrame } from './text-frame.js';

describe('text frames', () => {
  const body = '{"module_id":"im","command":"message","params":{"text":"a \\"quoted\\" #!NGINXNME! b"}}';
  const msg = { mid: '17000000000000000000000042', createdMs: 1700000000123, body };
  it('has the Bitrix shape with the body spliced verbatim', () => {
    const f = encodeTextFrame(msg);
    assert.equal(
      f,
      `#!NGINXNMS!#{"id":42,"mid":"17000000000000000000000042","channel":"-","tag":"123","time":"Tue, 14 Nov 2023 22:13:20 GMT","text":${body}}#!NGINXNME!#`,
    );
  });
  it('round-trips through the client-side extraction, several per frame', () => {
    const two = encodeTextFrame(msg) + encodeTextFrame({ ...msg, mid: '17000000000000000000000043' });
    const out = decodeTextFrames(two);
    assert.equal(out.length, 2);
    assert.equal(out[0]?.id, 42);
    assert.equal(out[1]?.mid, '17000000000000000000000043');
    assert.deepEqual(out[0]?.text, JSON.parse(body));
  });
});
