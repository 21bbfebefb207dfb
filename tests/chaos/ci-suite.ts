import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChaosStack } from './chaos-stack.js';
import { resultDetails, resultTable } from './report.js';
import { runScenario, type CiGroup, type ScenarioResult } from './run-scenario.js';
import { CI_SCENARIOS } from './scenarios.js';
import { CHAOS_STACK, CI_TIMING } from './settings.js';

/**
 * The CI part of the fault suite for one group of scenarios (their `ciGroup`): those of
 * `npm run chaos` the server passes (scenarios.ts, NOT_YET_IN_CI lists the others), with shorter
 * phases, against one `npm start` stack of its own. Each asserts that no acknowledged message was
 * lost, none delivered twice or out of order, no answer said "failed" for a message that was
 * delivered, and that the fault really took.
 */
export function ciSuite(group: CiGroup): void {
  const scenarios = CI_SCENARIOS.filter((s) => s.ciGroup === group);
  describe(`fault suite, CI part: ${group}`, { skip: scenarios.length === 0 ? 'every scenario of this group is in NOT_YET_IN_CI' : false }, () => {
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

    for (const sc of scenarios) {
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
}
