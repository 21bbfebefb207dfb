import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SubscriberProbe, nextProbeStep, probeTimings, type ProbeState, type ProbeStep } from '../src/subscriber-probe.js';

const T = 2000; // stall budget: PING 500 ms after the last data, answer within 1400 ms (100 ms margin)

describe('nextProbeStep', () => {
  const cases: Array<[string, ProbeState, number, ProbeStep]> = [
    ['quiet, not yet due: wait for the ping time', { pingSentAt: null, lastDataAt: 1000 }, 1200, { kind: 'wait', ms: 300 }],
    ['quiet for a quarter of the budget: ping', { pingSentAt: null, lastDataAt: 1000 }, 1500, { kind: 'ping' }],
    ['long quiet (timer late): ping, not stalled, since no ping was outstanding', { pingSentAt: null, lastDataAt: 1000 }, 9000, { kind: 'ping' }],
    ['ping outstanding, within its answer time', { pingSentAt: 1500, lastDataAt: 1000 }, 2000, { kind: 'wait', ms: 900 }],
    ['ping unanswered for the rest of the budget: stalled', { pingSentAt: 1500, lastDataAt: 1000 }, 2900, { kind: 'stalled', silentMs: 1900 }],
    ['ping unanswered but messages still arriving: not stalled, deadline moves', { pingSentAt: 1500, lastDataAt: 2900 }, 3000, { kind: 'wait', ms: 1300 }],
    ['messages stopped after the ping left: stalled a full answer time after the last one', { pingSentAt: 1500, lastDataAt: 2900 }, 4300, { kind: 'stalled', silentMs: 1400 }],
  ];
  for (const [what, state, now, expected] of cases) it(what, () => assert.deepEqual(nextProbeStep(state, now, T), expected));

  it('a stall that begins at any moment is detected within the budget, with a margin for late timers', () => {
    const { intervalMs, answerMs } = probeTimings(T);
    assert.equal(intervalMs + answerMs, T - 100);
    assert.deepEqual(probeTimings(200), { intervalMs: 50, answerMs: 140 });
    // Worst case: the last answer arrives just as the stall begins; the next PING leaves a quarter
    // later and is declared lost the rest of the budget after that.
    for (const stallAt of [0, 1, 250, 499, 500]) {
      const lastDataAt = stallAt;
      const sent = lastDataAt + intervalMs;
      assert.equal(nextProbeStep({ pingSentAt: sent, lastDataAt }, stallAt + T - 100, T).kind, 'stalled', `stall at ${stallAt}`);
      assert.equal(nextProbeStep({ pingSentAt: sent, lastDataAt }, stallAt + T - 101, T).kind, 'wait', `not before: stall at ${stallAt}`);
    }
  });
});

describe('SubscriberProbe', () => {
  it('declares a connection whose PING is never answered stalled within the budget, once', async () => {
    const stalls: number[] = [];
    let pings = 0;
    const started = Date.now();
    const probe = new SubscriberProbe({ ping: () => (pings++, new Promise(() => {})) }, { stallMs: 200, onStall: () => stalls.push(Date.now() - started) });
    probe.start();
    await new Promise((r) => setTimeout(r, 500));
    probe.stop();
    assert.equal(stalls.length, 1, 'one stall, then the probe stops until restarted');
    assert.equal(pings, 1);
    // The verdict comes after the budget less its margin for late timers (T/20 = 10 ms here).
    assert.ok((stalls[0] as number) >= 190, `not before the budget less its margin (${stalls[0]} ms)`);
  });

  it('keeps a connection that answers its PINGs alive, and ignores answers from before a restart', async () => {
    const stalls: number[] = [];
    let pings = 0;
    let late: (() => void) | null = null;
    const probe = new SubscriberProbe(
      {
        ping: () => {
          pings++;
          // The very first PING is answered only after a restart: that answer must not count.
          if (pings === 1) return new Promise<void>((resolve) => (late = resolve));
          return Promise.resolve('pong');
        },
      },
      { stallMs: 200, onStall: (silent) => stalls.push(silent) },
    );
    probe.start();
    await new Promise((r) => setTimeout(r, 80));
    probe.start(); // reconnected: a new generation
    (late as unknown as () => void)();
    await new Promise((r) => setTimeout(r, 600));
    probe.stop();
    assert.deepEqual(stalls, []);
    assert.ok(pings >= 5, `PINGs keep going every quarter budget (${pings})`);
  });

  it('data on the connection postpones the verdict while the PING answer is queued behind it', async () => {
    const stalls: number[] = [];
    const probe = new SubscriberProbe({ ping: () => new Promise(() => {}) }, { stallMs: 200, onStall: (silent) => stalls.push(silent) });
    probe.start();
    const feed = setInterval(() => probe.data(), 20);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(stalls, [], 'messages arriving: not stalled');
    clearInterval(feed);
    await new Promise((r) => setTimeout(r, 300));
    probe.stop();
    assert.equal(stalls.length, 1, 'silent once the messages stopped');
  });
});
