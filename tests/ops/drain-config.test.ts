import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '@push/runtime';
import { TEST_KEY } from '../helpers/apps.js';

describe('PUSH_DRAIN_SPREAD_S', () => {
  const load = (v?: string) => loadConfig({ PUSH_SIGNATURE_KEY: TEST_KEY, ...(v === undefined ? {} : { PUSH_DRAIN_SPREAD_S: v }) }, { port: 8010 });
  it('defaults to 3 s; 0 (all goodbyes at once) and 600 are allowed', () => {
    assert.equal(load().drainSpreadMs, 3000);
    assert.equal(load('0').drainSpreadMs, 0);
    assert.equal(load('600').drainSpreadMs, 600_000);
  });
  for (const bad of ['-1', '1.5', 'soon', '601']) {
    it(`rejects ${JSON.stringify(bad)} naming the variable`, () => {
      assert.throws(() => load(bad), (err: unknown) => err instanceof ConfigError && err.problems.some((p) => p.startsWith('PUSH_DRAIN_SPREAD_S: expected a whole number from 0 to 600')));
    });
  }
});
