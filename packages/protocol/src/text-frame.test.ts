import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeTextFrames, encodeTextFrame, escapeFrameMarkers } from './text-frame.js';

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

describe('escapeFrameMarkers', () => {
  const S = '#!NGINXNMS!#';
  const E = '#!NGINXNME!#';
  // [name, JSON text in, JSON text out]; every output must parse to the input's value.
  const table: Array<[string, string, string]> = [
    ['no marker: same string', '{"a":"b # c !NGINXNM"}', '{"a":"b # c !NGINXNM"}'],
    ['end marker in a string', `{"t":"x${E}y"}`, '{"t":"x\\u0023!NGINXNME!#y"}'],
    ['start marker in a string', `{"t":"${S}"}`, '{"t":"\\u0023!NGINXNMS!#"}'],
    ['marker in a key', `{"${E}":1}`, '{"\\u0023!NGINXNME!#":1}'],
    ['overlapping markers share a #', `{"t":"${E}!NGINXNME!#"}`, '{"t":"\\u0023!NGINXNME!\\u0023!NGINXNME!#"}'],
    ['after an escaped backslash', `{"t":"\\\\${E}"}`, '{"t":"\\\\\\u0023!NGINXNME!#"}'],
    ['a whole frame nested in a string', `{"t":"${S}{\\"a\\":1}${E}"}`, '{"t":"\\u0023!NGINXNMS!#{\\"a\\":1}\\u0023!NGINXNME!#"}'],
    ['near misses stay', '{"t":"#!NGINXNMX!# #!NGINXNME! !NGINXNME!#"}', '{"t":"#!NGINXNMX!# #!NGINXNME! !NGINXNME!#"}'],
  ];
  for (const [name, input, expected] of table) {
    it(name, () => {
      const out = escapeFrameMarkers(input);
      assert.equal(out, expected);
      assert.deepEqual(JSON.parse(out), JSON.parse(input));
      assert.ok(!out.includes(S) && !out.includes(E), out);
    });
  }

  it('returns the very same string when there is nothing to escape', () => {
    const body = '{"module_id":"im","command":"message","params":{"n":1}}';
    assert.equal(escapeFrameMarkers(body), body);
  });

  it('random strings built from marker pieces never keep a marker and always parse back', () => {
    const pieces = ['#', '!', 'NGINXNM', 'S', 'E', '!#', S, E, '\\\\', 'x', '"'];
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let i = 0; i < 2000; i++) {
      let s = '';
      for (let k = rand(12); k > 0; k--) s += pieces[rand(pieces.length)];
      const input = JSON.stringify({ t: s, [s]: [s] });
      const out = escapeFrameMarkers(input);
      assert.ok(!out.includes(S) && !out.includes(E), out);
      assert.deepEqual(JSON.parse(out), JSON.parse(input));
    }
  });

  it('a frame whose body holds both markers decodes whole, equal to the published value', () => {
    const body = JSON.stringify({ module_id: 'im', command: 'message', params: { text: `a${E}b${S}c` } });
    const frames = encodeTextFrame({ mid: '17000000000000000000000042', createdMs: 1700000000123, body }) + encodeTextFrame({ mid: '17000000000000000000000043', createdMs: 1700000000124, body: '{"n":2}' });
    const out = decodeTextFrames(frames);
    assert.equal(out.length, 2);
    assert.deepEqual(out[0]?.text, JSON.parse(body));
    assert.deepEqual(out[1]?.text, { n: 2 });
  });
});
