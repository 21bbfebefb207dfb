import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChaosStack } from './chaos-stack.js';
import { resultDetails, resultTable } from './report.js';
import { runScenario, type ScenarioResult } from './run-scenario.js';
import { CI_SCENARIOS, NOT_YET_IN_CI, SCENARIOS } from './scenarios.js';
import { CHAOS_STACK, CI_TIMING } from './settings.js';

/**
 * The fault suite's CI part: the scenarios of `npm run chaos` the server passes (scenarios.ts,
 * NOT_YET_IN_CI lists the others), with shorter phases, against one `npm start` stack. Each
 * asserts that no acknowledged message was lost, none delivered twice or out of order, and no
 * answer said "failed" for a message that was delivered.
 */
// Several scenarios of up to ~30 s each share one stack: the suite as a whole needs more than the
// per-test default.
describe('fault suite (npm run chaos, CI part)', { timeout: 600_000 }, () => {
  let stack: ChaosStack;
  const results: ScenarioResult[] = [];
  const log = (line: string): void => void process.stderr.write(`chaos: ${line}\n`);

  before(async () => {
    stack = await ChaosStack.start(CHAOS_STACK);
  });
  after(async () => {
    if (results.length > 0) process.stdout.write(`\n${resultTable(results)}\n${resultDetails(results)}\n`);
    await stack?.stop();
  });

  it('the list of scenarios kept out of CI names real scenarios', () => {
    const names = SCENARIOS.map((s) => s.name);
    assert.deepEqual(NOT_YET_IN_CI.filter((n) => !names.includes(n)), [], 'a stale name in NOT_YET_IN_CI');
    assert.equal(CI_SCENARIOS.length, SCENARIOS.length - NOT_YET_IN_CI.length);
  });

  for (const sc of CI_SCENARIOS) {
    it(`${sc.name}: ${sc.title}`, async () => {
      const r = await runScenario(stack, sc, CI_TIMING, log);
      results.push(r);
      await stack.ensureUp();
      assert.ok(r.verdict.acked > 500, `the stream ran (${r.verdict.acked} acknowledged)`);
      assert.deepEqual(r.failures, [], resultDetails([r]));
      assert.equal(r.verdict.lost + r.verdict.duplicated + r.verdict.reordered, 0);
    });
  }
});
