import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LagWindow, windowQuantile } from './lag-window.js';

const LE = [0.001, 0.01, 0.1, Infinity];

describe('windowQuantile', () => {
  const cases: Array<[string, number[] | null, number[], number, number | null]> = [
    ['empty window', [1, 2, 3, 3], [1, 2, 3, 3], 0.5, null],
    ['first reading counts from zero', null, [0, 10, 10, 10], 0.5, 0.0055],
    ['interpolated within the bucket of the rank', [0, 0, 0, 0], [0, 0, 100, 100], 0.99, 0.01 + 0.09 * 0.99],
    ['only the difference since the previous reading', [0, 100, 100, 100], [0, 100, 200, 200], 0.5, 0.01 + 0.09 * 0.5],
    ['rank in +Inf reads the highest finite bound', [0, 0, 0, 0], [0, 0, 0, 5], 0.99, 0.1],
    ['a counter reset (process restart) counts from zero', [5, 50, 50, 50], [0, 0, 4, 4], 0.5, 0.01 + 0.09 * 0.5],
    ['lowest bucket from 0', [0, 0, 0, 0], [10, 10, 10, 10], 0.5, 0.0005],
  ];
  for (const [name, prev, cur, q, want] of cases) {
    it(name, () => {
      const got = windowQuantile(LE, prev, cur, q);
      if (want === null) assert.equal(got, null);
      else assert.ok(got !== null && Math.abs(got - want) < 1e-12, `${got} != ${want}`);
    });
  }
});

describe('LagWindow', () => {
  it('answers for each window in milliseconds and counts its observations', () => {
    const w = new LagWindow();
    assert.deepEqual(w.sample(LE, [0, 0, 0, 0]), { count: 0, p50: null, p99: null });
    assert.deepEqual(w.sample(LE, [0, 0, 100, 100]), { count: 100, p50: 55, p99: 99.1 });
    assert.deepEqual(w.sample(LE, [0, 0, 100, 100]), { count: 0, p50: null, p99: null });
  });
});
