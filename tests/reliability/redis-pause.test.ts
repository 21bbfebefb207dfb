import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { startFrontStack, type FrontStack } from '../helpers/front-stack.js';
import { BATCHES, STREAM, runPause, type PauseFigures, type PauseScenario } from './pause-harness.js';

/**
 * Issue 18 items 2 and 3: Redis paused for writes under a 500 msg/s stream and under 100-message
 * batches, through nginx with 2 publishers (pause-harness.ts explains the method). Every
 * acknowledged message arrives exactly once, under the id its 200 named, and no answer is
 * contradicted by what happened. The short pauses run here; `npm run figures:redis-pause` runs
 * the whole table of docs/reliability.md (2.5, 5, 8 and 15 s).
 */
function assertExactlyOnce(f: PauseFigures): void {
  const text = JSON.stringify(f);
  assert.equal(f.failed, 0, `every request ended with a 200: ${text}`);
  assert.equal(f.acknowledged, f.messages, `every message acknowledged: ${text}`);
  assert.equal(f.lost, 0, `no acknowledged message lost: ${text}`);
  assert.equal(f.duplicated, 0, `none delivered twice: ${text}`);
  assert.equal(f.wrongId, 0, `delivered under the id the 200 named: ${text}`);
  assert.equal(f.untrue, 0, `no untrue answer: ${text}`);
  assert.equal(f.unacknowledged, 0, `nothing delivered that was not acknowledged: ${text}`);
}

async function scenario(stack: FrontStack, r: Redis, s: PauseScenario): Promise<PauseFigures> {
  const f = await runPause(stack.front, r, s);
  process.stdout.write(`# redis paused ${s.pauseMs} ms, ${s.mode}: ${JSON.stringify(f)}\n`);
  return f;
}

describe('Redis paused under load, default PUSH_PUBLISH_TIMEOUT_MS (20 s): the publisher waits and answers 200', () => {
  let stack: FrontStack;
  let r: Redis;
  before(async () => {
    stack = await startFrontStack({ publishers: 2, listeners: 1, env: { PUSH_PUBLISH_TRUSTED_NETWORKS: '127.0.0.1/32' } });
    r = stack.redis.client();
  });
  after(async () => {
    await r?.client('UNPAUSE').catch(() => undefined);
    await stack?.stop();
  });
  for (const pauseMs of [2500, 5000]) {
    for (const make of [STREAM, BATCHES]) {
      it(`${make(pauseMs).mode}, ${pauseMs / 1000} s pause: 0 lost, 0 duplicated, every answer 200 and true`, async () => {
        const f = await scenario(stack, r, make(pauseMs));
        assertExactlyOnce(f);
        assert.deepEqual(Object.keys(f.answers), ['200'], 'the stall is shorter than the publish timeout: only 200s');
        assert.ok(f.slowestAnswerMs >= pauseMs - 1000, `some answers waited for the pause (${f.slowestAnswerMs} ms)`);
      });
    }
  }
});

describe('Redis paused past a short PUSH_PUBLISH_TIMEOUT_MS (1.5 s): 504 "unknown", retried with the same identity, stored once', () => {
  let stack: FrontStack;
  let r: Redis;
  before(async () => {
    stack = await startFrontStack({ publishers: 2, listeners: 1, env: { PUSH_PUBLISH_TRUSTED_NETWORKS: '127.0.0.1/32', PUSH_PUBLISH_TIMEOUT_MS: '1500' } });
    r = stack.redis.client();
  });
  after(async () => {
    await r?.client('UNPAUSE').catch(() => undefined);
    await stack?.stop();
  });
  for (const make of [STREAM, BATCHES]) {
    it(`${make(5000).mode}, 5 s pause: answers 504 during the stall, retries end stored once`, async () => {
      const f = await scenario(stack, r, make(5000));
      assertExactlyOnce(f);
      assert.ok((f.answers['504 4134'] ?? 0) > 0, `the stall outlasted the timeout: some 504 4134 (${JSON.stringify(f.answers)})`);
      assert.ok(f.slowestAnswerMs < 5000, `answers within the bound, not the stall (${f.slowestAnswerMs} ms)`);
    });
  }
});
