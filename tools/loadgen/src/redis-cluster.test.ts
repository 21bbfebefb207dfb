import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { slotRanges } from './redis-cluster.js';

describe('Cluster slot ranges', () => {
  const cases: Array<{ masters: number; want: Array<[number, number]> | RegExp }> = [
    { masters: 1, want: [[0, 16383]] },
    { masters: 2, want: [[0, 8191], [8192, 16383]] },
    { masters: 3, want: [[0, 5460], [5461, 10921], [10922, 16383]] },
    { masters: 0, want: /a Cluster needs 1 to 16384 masters \(got 0\)/ },
    { masters: 1.5, want: /a Cluster needs 1 to 16384 masters/ },
  ];
  for (const c of cases) {
    it(`${c.masters} masters`, () => {
      if (c.want instanceof RegExp) assert.throws(() => slotRanges(c.masters), c.want);
      else assert.deepEqual(slotRanges(c.masters), c.want);
    });
  }
  it('covers every slot exactly once for 1 to 16 masters', () => {
    for (let m = 1; m <= 16; m++) {
      const r = slotRanges(m);
      assert.equal(r[0]?.[0], 0);
      assert.equal(r[r.length - 1]?.[1], 16383);
      for (let i = 1; i < r.length; i++) assert.equal((r[i] as [number, number])[0], (r[i - 1] as [number, number])[1] + 1);
    }
  });
});
