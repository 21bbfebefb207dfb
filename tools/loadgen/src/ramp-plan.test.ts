import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nextRampRate, takeTurns, type RampPlan } from './ramp-plan.js';

const plan: RampPlan = { startRate: 1000, factor: 2, maxSteps: 4, maxRate: 100_000, refine: 2 };
const ok = (rate: number) => ({ rate, keptUp: true });
const no = (rate: number) => ({ rate, keptUp: false });

/** Runs the planner against a system that keeps up exactly up to `capacity`. */
function search(p: RampPlan, capacity: number): number[] {
  const done: Array<{ rate: number; keptUp: boolean }> = [];
  for (let r = nextRampRate(done, p); r !== null; r = nextRampRate(done, p)) {
    done.push({ rate: r, keptUp: r <= capacity });
    assert.ok(done.length < 30, 'the search ends');
  }
  return done.map((s) => s.rate);
}

describe('ramp planner', () => {
  const cases: Array<[string, Parameters<typeof nextRampRate>[0], Partial<RampPlan>, number | null]> = [
    ['starts at the start rate', [], {}, 1000],
    ['no step when the start is above the cap', [], { maxRate: 500 }, null],
    ['raises by the factor while steps keep up', [ok(1000), ok(2000)], {}, 4000],
    ['stops at maxSteps geometric steps', [ok(1000), ok(2000), ok(4000), ok(8000)], {}, null],
    ['stops before passing maxRate', [ok(1000), ok(2000)], { maxRate: 3000 }, null],
    ['first refinement: geometric mean of the bracket', [ok(1000), ok(2000), no(4000)], {}, 2828],
    ['second refinement narrows from below', [ok(1000), ok(2000), no(4000), ok(2828)], {}, 3363],
    ['second refinement narrows from above', [ok(1000), ok(2000), no(4000), no(2828)], {}, 2378],
    ['stops after `refine` refinements', [ok(1000), ok(2000), no(4000), ok(2828), no(3363)], {}, null],
    ['refine 0 keeps the plain ramp', [ok(1000), ok(2000), no(4000)], { refine: 0 }, null],
    ['no refinement of a bracket narrower than 5 %', [ok(1000), no(1040)], { factor: 1.04 }, null],
    ['halves when the first step fails', [no(1000)], {}, 500],
    ['keeps halving', [no(1000), no(500), no(250)], {}, 125],
    ['gives up after four halvings', [no(1000), no(500), no(250), no(125), no(62.5)], {}, null],
    ['refines above the halving that kept up', [no(1000), ok(500)], {}, 707],
    ['a failed refinement below a kept-up rate is not a bracket', [ok(1000), no(500)], {}, null],
  ];
  for (const [name, done, over, want] of cases) {
    it(name, () => assert.equal(nextRampRate(done, { ...plan, ...over }), want));
  }

  it('lands within 9 % of the capacity with factor 1.4 and two refinements', () => {
    const p: RampPlan = { startRate: 2000, factor: 1.4, maxSteps: 12, maxRate: 1e6, refine: 2 };
    for (const capacity of [2100, 2700, 3900, 5000, 6400, 7600, 20_000]) {
      const rates = search(p, capacity);
      const best = Math.max(...rates.filter((r) => r <= capacity));
      assert.ok(best >= capacity / 1.09, `capacity ${capacity}: best ${best} from ${rates.join(' ')}`);
      assert.ok(rates.length <= 12, `capacity ${capacity}: ${rates.length} steps`);
    }
  });

  it('without refinement the same ramp can report 29 % low', () => {
    const p: RampPlan = { startRate: 2000, factor: 1.4, maxSteps: 12, maxRate: 1e6, refine: 0 };
    const rates = search(p, 7600);
    assert.equal(Math.round(Math.max(...rates.filter((r) => r <= 7600))), 5488);
  });
});

describe('takeTurns (side-by-side ramps)', () => {
  /** A system with `steps` steps to run, recording each step as it runs. */
  const system = (steps: number, log: string[], name: string) => {
    let left = steps;
    return async (): Promise<boolean> => {
      if (left === 0) return false;
      left--;
      log.push(name);
      return true;
    };
  };
  const cases: Array<[string, number[], string]> = [
    ['one system runs alone', [3], 'a a a'],
    ['two equal ramps alternate, the first place swapping each round', [3, 3], 'a b b a a b'],
    ['the longer ramp goes on alone once the other is done', [2, 5], 'a b b a b b b'],
    ['a system with no steps never runs', [0, 2], 'b b'],
    ['three systems: the order reverses every other round', [2, 2, 2], 'a b c c b a'],
  ];
  for (const [name, steps, expected] of cases) {
    it(name, async () => {
      const log: string[] = [];
      const ran = await takeTurns(steps.map((n, i) => system(n, log, 'abc'[i] as string)));
      assert.equal(log.join(' '), expected);
      assert.deepEqual(ran.map((i) => 'abc'[i]), log);
    });
  }
});
