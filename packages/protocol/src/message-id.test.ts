import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatMid, isMid, midAfter, midCounter, parseMid } from './message-id.js';

describe('message ids', () => {
  it('formats 10-digit start + 16-digit counter', () => {
    assert.equal(formatMid(1700000000, 12), '17000000000000000000000012');
    assert.equal(formatMid(1700000000, 12).length, 26);
  });
  it('string order equals publish order across counter widths', () => {
    assert.ok(formatMid(1700000000, 9) < formatMid(1700000000, 10));
    assert.ok(formatMid(1700000000, 99999) < formatMid(1700000000, 100000));
  });
  it('counter part is the frame id', () => assert.equal(midCounter('17000000000000000000000012'), 12));
  const cases: Array<[unknown, boolean]> = [
    ['17000000000000000000000012', true],
    ['1700000000000000000000001', false],
    ['170000000000000000000000123', false],
    ['1700000000000000000000001a', false],
    ['', false],
    [12, false],
  ];
  for (const [v, want] of cases) it(`isMid(${JSON.stringify(v)}) = ${want}`, () => assert.equal(isMid(v), want));
  it('parseMid treats anything but 26 digits as absent', () => {
    assert.equal(parseMid('abc'), null);
    assert.equal(parseMid(undefined), null);
    assert.equal(parseMid('17000000000000000000000012'), '17000000000000000000000012');
  });
  it('midAfter', () => {
    assert.equal(midAfter('2', null), true);
    assert.equal(midAfter('2', '1'), true);
    assert.equal(midAfter('1', '1'), false);
  });
  it('rejects out-of-range parts', () => {
    assert.throws(() => formatMid(-1, 1));
    assert.throws(() => formatMid(1, -1));
    assert.throws(() => formatMid(1e11, 1));
  });
});
