import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { INLINE_BELOW_UTILIZATION, VerifyPlacement, verifyInline } from './verify-placement.js';

describe('where an Ed25519 check runs', () => {
  const cases: Array<[number, number | undefined, boolean]> = [
    [0, undefined, true],
    [0.2, undefined, true],
    [INLINE_BELOW_UTILIZATION - 0.01, undefined, true],
    [INLINE_BELOW_UTILIZATION, undefined, false],
    [0.95, undefined, false],
    [1, undefined, false],
    [0.3, 0.25, false],
    [0.2, 0.25, true],
  ];
  for (const [utilization, below, inline] of cases) {
    it(`event loop ${utilization * 100} % busy${below === undefined ? '' : ` (limit ${below})`}: ${inline ? 'inline' : 'thread pool'}`, () => {
      assert.equal(verifyInline(utilization, below), inline);
    });
  }

  it('the sampler starts on the thread pool, moves inline on an idle loop and back to the pool on a busy one', async () => {
    const placement = new VerifyPlacement(40);
    try {
      assert.equal(placement.inline(), false, 'before the first sample');
      await sleep(130);
      assert.equal(placement.inline(), true, 'after idle intervals');
      // Keep the loop busy for several whole intervals: the timer fires late, after the block.
      const until = performance.now() + 150;
      while (performance.now() < until);
      await sleep(5);
      assert.equal(placement.inline(), false, 'after a busy interval');
    } finally {
      placement.close();
    }
  });
});
