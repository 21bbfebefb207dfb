import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { channelSlot, watermarkOf } from '../src/redis-cluster-backend.js';

// The Cluster id form is S(10) 0 U(6) L(5) Q(4) (docs/architecture.md, "Redis Cluster"). A node's
// watermark from a TIME answer must cover exactly the ids issued at or before that microsecond,
// whatever their slot and sequence, when compared as strings the way cursors are.
describe('Redis Cluster ids and watermarks', () => {
  const id = (s: string, us: string, slot: number, q: number): string => `${s}0${us}${String(slot).padStart(5, '0')}${String(q).padStart(4, '0')}`;
  const w = watermarkOf('1700000000', '42');
  const cases: Array<[string, string, boolean]> = [
    ['same microsecond, highest slot and sequence', id('1700000000', '000042', 16383, 9999), true],
    ['same microsecond, slot 0', id('1700000000', '000042', 0, 0), true],
    ['one microsecond earlier', id('1700000000', '000041', 16383, 9999), true],
    ['one microsecond later', id('1700000000', '000043', 0, 0), false],
    ['next second', id('1700000001', '000000', 0, 0), false],
    ['an id of the one-Redis form from the same second', '1700000000' + '0000000000001234', true],
  ];
  for (const [name, mid, covered] of cases) {
    it(`${name}: ${covered ? 'at or below' : 'above'} the watermark`, () => assert.equal(mid <= w, covered));
  }
  it('is 26 digits; a TIME answer without padding is padded', () => {
    assert.equal(w, '17000000000000042999999999');
    assert.equal(w.length, 26);
  });
  it('the numeric id of the largest Cluster id stays below 2^53', () => {
    assert.ok(Number(id('9999999999', '999999', 16383, 9999).slice(10)) < 2 ** 53);
  });
  it('a channel slot is the CRC16 slot of its hash tag (the value Redis gives for "{channel}")', () => {
    // Known values: CLUSTER KEYSLOT foo = 12182, CLUSTER KEYSLOT {user1000}.following = 3443.
    assert.equal(channelSlot('foo'), 12182);
    assert.equal(channelSlot('user1000'), 3443);
  });
});
