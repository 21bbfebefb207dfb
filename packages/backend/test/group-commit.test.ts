import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NotSentError, UnansweredError, createGroupCommit } from '../src/group-commit.js';

/** A sender whose calls stay open until the test answers them, so grouping is deterministic. */
function manualSender() {
  const calls: Array<{ items: readonly number[]; answer: (r: readonly string[]) => void; fail: (e: Error) => void }> = [];
  const send = (items: readonly number[]) =>
    new Promise<readonly string[]>((resolve, reject) => {
      calls.push({ items, answer: resolve, fail: reject });
    });
  return { calls, send };
}

const tick = () => new Promise((r) => setImmediate(r));
const echo = (items: readonly number[]) => items.map((i) => `r${i}`);

describe('group commit', () => {
  it('sends at once while a slot is free; requests that arrive meanwhile leave together, in order', async () => {
    const { calls, send } = manualSender();
    const g = createGroupCommit(send, { maxInFlight: 1, maxItems: 100, maxWeight: 100, weight: () => 1 });
    const first = g.submit(1);
    assert.deepEqual(calls.map((c) => c.items), [[1]], 'nothing waits when no call is out');
    const rest = [g.submit(2), g.submit(3), g.submit(4)];
    assert.equal(calls.length, 1);
    assert.equal(g.queued, 3);
    calls[0]!.answer(echo(calls[0]!.items));
    assert.equal(await first, 'r1');
    await tick();
    assert.deepEqual(calls.map((c) => c.items), [[1], [2, 3, 4]]);
    calls[1]!.answer(echo(calls[1]!.items));
    assert.deepEqual(await Promise.all(rest), ['r2', 'r3', 'r4']);
    assert.equal(g.queued, 0);
  });

  it('keeps up to maxInFlight calls out', async () => {
    const { calls, send } = manualSender();
    const g = createGroupCommit(send, { maxInFlight: 2, maxItems: 100, maxWeight: 100, weight: () => 1 });
    const all = [1, 2, 3, 4].map((i) => g.submit(i));
    assert.deepEqual(calls.map((c) => c.items), [[1], [2]]);
    calls[1]!.answer(echo(calls[1]!.items));
    await tick();
    assert.deepEqual(calls.map((c) => c.items), [[1], [2], [3, 4]], 'a freed slot takes the whole queue');
    calls[0]!.answer(echo(calls[0]!.items));
    calls[2]!.answer(echo(calls[2]!.items));
    assert.deepEqual(await Promise.all(all), ['r1', 'r2', 'r3', 'r4']);
  });

  it('closes a group at maxWeight; a request heavier than that still goes, alone', async () => {
    const { calls, send } = manualSender();
    const g = createGroupCommit(send, { maxInFlight: 1, maxItems: 100, maxWeight: 10, weight: (n: number) => n });
    const all = [1, 4, 5, 2, 30, 3].map((i) => g.submit(i));
    const answerNext = async (k: number) => {
      await tick();
      calls[k]!.answer(echo(calls[k]!.items));
    };
    for (let k = 0; k < 5; k++) await answerNext(k);
    assert.deepEqual(calls.map((c) => c.items), [[1], [4, 5], [2], [30], [3]]);
    assert.deepEqual(await Promise.all(all), ['r1', 'r4', 'r5', 'r2', 'r30', 'r3']);
  });

  it('closes a group at maxItems', async () => {
    const { calls, send } = manualSender();
    const g = createGroupCommit(send, { maxInFlight: 1, maxItems: 2, maxWeight: 100, weight: () => 1 });
    const all = [1, 2, 3, 4, 5, 6].map((i) => g.submit(i));
    for (let k = 0; k < 4; k++) {
      await tick();
      calls[k]!.answer(echo(calls[k]!.items));
    }
    assert.deepEqual(calls.map((c) => c.items), [[1], [2, 3], [4, 5], [6]]);
    assert.deepEqual(await Promise.all(all), ['r1', 'r2', 'r3', 'r4', 'r5', 'r6']);
  });

  it('a failed call rejects every request of its group, and later groups still go out', async () => {
    const { calls, send } = manualSender();
    const g = createGroupCommit(send, { maxInFlight: 1, maxItems: 100, maxWeight: 100, weight: () => 1 });
    const first = g.submit(1);
    const grouped = [g.submit(2), g.submit(3)];
    calls[0]!.fail(new Error('connection lost'));
    await assert.rejects(first, /connection lost/);
    await tick();
    calls[1]!.fail(new Error('timeout'));
    for (const p of grouped) await assert.rejects(p, /timeout/);
    const later = g.submit(4);
    await tick();
    calls[2]!.answer(echo(calls[2]!.items));
    assert.equal(await later, 'r4');
  });

  it('a sender that throws synchronously, or answers the wrong count, fails its group only', async () => {
    let mode: 'throw' | 'short' | 'ok' = 'throw';
    const g = createGroupCommit(
      (items: readonly number[]) => {
        if (mode === 'throw') throw new Error('encode failed');
        return Promise.resolve(mode === 'short' ? echo(items).slice(1) : echo(items));
      },
      { maxInFlight: 1, maxItems: 100, maxWeight: 100, weight: () => 1 },
    );
    await assert.rejects(g.submit(1), /encode failed/);
    mode = 'short';
    await assert.rejects(g.submit(2), /0 outcomes for 1 requests/);
    mode = 'ok';
    assert.equal(await g.submit(3), 'r3');
  });

  it('refuses settings that could never send', () => {
    const send = () => Promise.resolve([]);
    assert.throws(() => createGroupCommit(send, { maxInFlight: 0, maxItems: 10, maxWeight: 10, weight: () => 1 }), RangeError);
    assert.throws(() => createGroupCommit(send, { maxInFlight: 1, maxItems: 0, maxWeight: 10, weight: () => 1 }), RangeError);
    assert.throws(() => createGroupCommit(send, { maxInFlight: 1, maxItems: 10, maxWeight: 0, weight: () => 1 }), RangeError);
  });

  it('past its deadline a request on the wire is "unanswered", a queued one "not sent" and never sent; late outcomes are dropped', async () => {
    const { calls, send } = manualSender();
    const g = createGroupCommit(send, { maxInFlight: 1, maxItems: 100, maxWeight: 100, weight: () => 1, timeoutMs: 50 });
    const onWire = g.submit(1);
    const queued = g.submit(2);
    await tick();
    assert.equal(calls.length, 1, 'only the first is sent; the second waits for the slot');
    await assert.rejects(onWire, UnansweredError);
    await assert.rejects(queued, NotSentError);
    assert.equal(g.queued, 0, 'the expired request left the queue');
    // The late answer of the first call is ignored; the freed slot sends only what is still waiting.
    calls[0]!.answer(['late']);
    const fresh = g.submit(3);
    await tick();
    assert.deepEqual(calls.map((c) => c.items), [[1], [3]], 'request 2 was never sent');
    calls[1]!.answer(['r3']);
    assert.equal(await fresh, 'r3');
  });
});
