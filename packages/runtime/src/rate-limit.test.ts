import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { KeyedRateLimiter } from './rate-limit.js';

/** One step of a scenario: at clock `at` ms, `key` asks for `cost`; `wait` is take()'s answer. */
type Step = readonly [at: number, key: string, cost: number, wait: number];

const cases: ReadonlyArray<{ name: string; perSecond: number; burst: number; steps: readonly Step[] }> = [
  {
    name: 'a new key starts with a full bucket and may spend all of it at once',
    perSecond: 5,
    burst: 10,
    steps: [[0, 'a', 10, 0], [0, 'a', 1, 1]],
  },
  {
    name: 'a refused request takes nothing: the smaller one after it still fits',
    perSecond: 5,
    burst: 10,
    steps: [[0, 'a', 8, 0], [0, 'a', 4, 1], [0, 'a', 2, 0], [0, 'a', 1, 1]],
  },
  {
    name: 'tokens come back at perSecond, never beyond burst',
    perSecond: 5,
    burst: 10,
    steps: [[0, 'a', 10, 0], [400, 'a', 2, 0], [400, 'a', 1, 1], [10_000, 'a', 10, 0], [10_000, 'a', 1, 1]],
  },
  {
    name: 'the wait names the whole seconds until the cost fits',
    perSecond: 2,
    burst: 10,
    steps: [[0, 'a', 10, 0], [0, 'a', 5, 3], [1000, 'a', 5, 2], [2500, 'a', 5, 0]],
  },
  {
    name: 'a cost above burst never fits, even into a full bucket',
    perSecond: 5,
    burst: 10,
    steps: [[0, 'a', 11, Infinity], [0, 'a', 10, 0]],
  },
  {
    name: 'keys do not share a bucket',
    perSecond: 1,
    burst: 3,
    steps: [[0, 'a', 3, 0], [0, 'a', 1, 1], [0, 'b', 3, 0], [0, 'c', 1, 0], [0, 'b', 1, 1]],
  },
  {
    name: 'fractional refills add up',
    perSecond: 3,
    burst: 3,
    steps: [[0, 'a', 3, 0], [100, 'a', 1, 1], [200, 'a', 1, 1], [340, 'a', 1, 0], [340, 'a', 1, 1]],
  },
];

describe('KeyedRateLimiter', () => {
  for (const c of cases) {
    it(c.name, () => {
      let now = 0;
      const lim = new KeyedRateLimiter(c.perSecond, c.burst, () => now);
      for (const [at, key, cost, wait] of c.steps) {
        now = at;
        assert.equal(lim.take(key, cost), wait, `t=${at} ${key} cost ${cost}`);
      }
    });
  }

  it('drops refilled buckets a minute after the last sweep, and only those', () => {
    let now = 0;
    const lim = new KeyedRateLimiter(1, 100, () => now);
    lim.take('idle', 50);
    now = 30_000;
    lim.take('busy', 100);
    assert.equal(lim.size, 2);
    // At 60 s 'idle' has refilled (50 + 60 > 100) while 'busy' has 30 of 100: only 'idle' goes.
    now = 60_000;
    assert.equal(lim.take('other', 1), 0);
    assert.equal(lim.size, 2);
    now = 60_000;
    assert.equal(lim.take('busy', 31), 1, 'busy kept its partial bucket through the sweep');
  });

  it('refuses nonsense settings', () => {
    for (const [rate, burst] of [[0, 10], [-1, 10], [5, 0], [Number.NaN, 10]] as const) assert.throws(() => new KeyedRateLimiter(rate, burst), RangeError);
  });
});
