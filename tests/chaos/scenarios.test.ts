import { it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { ROOT } from '../helpers/apps.js';
import { CI_SCENARIOS, NOT_YET_IN_CI, SCENARIOS } from './scenarios.js';

it('the scenarios kept out of CI are real scenarios, and the rest run in CI', () => {
  const names = SCENARIOS.map((s) => s.name);
  assert.equal(new Set(names).size, names.length, 'scenario names are unique');
  assert.deepEqual(NOT_YET_IN_CI.filter((n) => !names.includes(n)), [], 'a stale name in NOT_YET_IN_CI');
  assert.deepEqual(CI_SCENARIOS.map((s) => s.name), names.filter((n) => !NOT_YET_IN_CI.includes(n)));
});

it('every scenario names a CI test file that exists (switching it on is one line)', () => {
  for (const s of SCENARIOS) assert.ok(existsSync(`${ROOT}tests/chaos/ci-${s.ciGroup}.test.ts`), `${s.name}: tests/chaos/ci-${s.ciGroup}.test.ts`);
});
