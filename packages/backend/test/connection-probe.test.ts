import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionProbe, nextProbeStep, probeTimings, type ProbeState, type ProbeStep, type Verdict } from '../src/connection-probe.js';

const T = 2000; // stall budget: PING 500 ms after the last data, suspected 1000 ms later, 400 ms to check, 100 ms margin

describe('nextProbeStep', () => {
  const q = (pingSentAt: number | null, lastDataAt: number, heldAt = 0): ProbeState => ({ pingSentAt, lastDataAt, heldAt });
  const cases: Array<[string, ProbeState, number, ProbeStep]> = [
    ['quiet, not yet due: wait for the ping time', q(null, 1000), 1200, { kind: 'wait', ms: 300 }],
    ['quiet for a quarter of the budget: ping', q(null, 1000), 1500, { kind: 'ping' }],
    ['long quiet (timer late): ping, not suspect, since no ping was outstanding', q(null, 1000), 9000, { kind: 'ping' }],
    ['ping outstanding, within its answer time', q(1500, 1000), 2000, { kind: 'wait', ms: 500 }],
    ['ping unanswered for the answer time: suspect', q(1500, 1000), 2500, { kind: 'suspect', silentMs: 1500 }],
    ['ping unanswered but data still arriving: not suspect, deadline moves', q(1500, 2400), 2500, { kind: 'wait', ms: 900 }],
    ['data stopped after the ping left: suspect an answer time after the last byte', q(1500, 2400), 3400, { kind: 'suspect', silentMs: 1000 }],
    ['found held by Redis: a new answer period from the check', q(1500, 1000, 2600), 3000, { kind: 'wait', ms: 600 }],
    ['held, then silent for another answer period: suspect again', q(1500, 1000, 2600), 3600, { kind: 'suspect', silentMs: 2600 }],
  ];
  for (const [what, state, now, expected] of cases) it(what, () => assert.deepEqual(nextProbeStep(state, now, T), expected));

  it('the budget splits into ping interval, answer time, check time and a margin for late timers', () => {
    assert.deepEqual(probeTimings(2000), { intervalMs: 500, verifyMs: 400, answerMs: 1000 });
    assert.deepEqual(probeTimings(200), { intervalMs: 50, verifyMs: 40, answerMs: 100 });
    for (const t of [200, 1000, 2000, 5000, 60_000]) {
      const { intervalMs, answerMs, verifyMs } = probeTimings(t);
      assert.ok(intervalMs + answerMs + verifyMs <= t - Math.min(100, Math.floor(t / 20)), `budget ${t}`);
    }
  });
});

/**
 * A deterministic clock and timer queue: the probe runs against simulated time, a path that stops
 * carrying anything at `stallAt`, data arriving every `dataEveryMs` before that, PINGs answered
 * after `rttMs` while the path is up, and a check that takes `verifyDelayMs`.
 */
class Sim {
  now = 0;
  private seq = 0;
  private readonly events: Array<{ at: number; seq: number; fn: () => void; dead: boolean }> = [];
  at(at: number, fn: () => void): { dead: boolean } {
    const e = { at, seq: this.seq++, fn, dead: false };
    this.events.push(e);
    return e;
  }
  async run(until: number): Promise<void> {
    for (;;) {
      await flush();
      let next: (typeof this.events)[number] | undefined;
      for (const e of this.events) if (!e.dead && e.at <= until && (next === undefined || e.at < next.at || (e.at === next.at && e.seq < next.seq))) next = e;
      if (next === undefined) break;
      next.dead = true;
      this.now = Math.max(this.now, next.at);
      next.fn();
    }
    this.now = until;
  }
}
const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

interface Path {
  readonly stallAt: number;
  readonly dataEveryMs: number | null;
  readonly rttMs: number;
  readonly verifyDelayMs: number;
  /** Timers fire this late (an event loop behind its schedule). */
  readonly timerLateMs?: number;
  /** Redis holds this connection's commands (CLIENT PAUSE WRITE) from..to: PINGs wait, the check says held. */
  readonly heldFrom?: number;
  readonly heldUntil?: number;
}

/** Runs the probe over `path` until `until`; returns when stalls were reported and how many PINGs left. */
async function simulate(path: Path, until: number): Promise<{ stalls: number[]; pings: number; checks: number }> {
  const sim = new Sim();
  const stalls: number[] = [];
  let pings = 0;
  let checks = 0;
  const held = (t: number): boolean => path.heldFrom !== undefined && t >= path.heldFrom && t < (path.heldUntil ?? Infinity);
  const probe = new ConnectionProbe(
    {
      ping: () =>
        new Promise((resolve) => {
          pings++;
          // Answered once any hold is over, one round trip later, if the path still carries it then.
          const answerAt = Math.max(sim.now, held(sim.now) ? (path.heldUntil ?? Infinity) : sim.now) + path.rttMs;
          if (answerAt < path.stallAt) sim.at(answerAt, () => (probe.data(), resolve('PONG')));
        }),
    },
    {
      stallMs: T,
      now: () => sim.now,
      setTimer: (fn, ms) => sim.at(sim.now + ms + (path.timerLateMs ?? 0), fn),
      clearTimer: (e) => void ((e as { dead: boolean }).dead = true),
      verify: () =>
        new Promise<Verdict>((resolve) => {
          checks++;
          const at = sim.now;
          sim.at(at + path.verifyDelayMs, () => resolve(held(at) ? 'held' : 'stalled'));
        }),
      onStall: () => stalls.push(sim.now),
    },
  );
  probe.start();
  if (path.dataEveryMs !== null) for (let t = path.dataEveryMs; t < Math.min(path.stallAt, until); t += path.dataEveryMs) sim.at(t, () => probe.data());
  await sim.run(until);
  probe.stop();
  return { stalls, pings, checks };
}

describe('ConnectionProbe timing (simulated clock)', () => {
  const { verifyMs } = probeTimings(T);
  // Every phase of the ping cycle at which the stall can begin, idle and busy connections, a slow
  // or instant check: reported once, after the stall began and within the budget of its start.
  const paths: Array<[string, Omit<Path, 'stallAt'>]> = [
    ['idle connection, PINGs answered in 1 ms, instant check', { dataEveryMs: null, rttMs: 1, verifyDelayMs: 0 }],
    ['idle connection, check takes its whole allowance', { dataEveryMs: null, rttMs: 1, verifyDelayMs: verifyMs }],
    ['idle connection, slow round trips (300 ms)', { dataEveryMs: null, rttMs: 300, verifyDelayMs: verifyMs }],
    ['busy connection (a message every 4 ms)', { dataEveryMs: 4, rttMs: 1, verifyDelayMs: verifyMs }],
    ['trickle (a message every 450 ms, just under the ping interval)', { dataEveryMs: 450, rttMs: 1, verifyDelayMs: verifyMs }],
    ['trickle (a message every 700 ms, a PING often outstanding)', { dataEveryMs: 700, rttMs: 250, verifyDelayMs: verifyMs }],
  ];
  for (const [what, p] of paths) {
    it(`${what}: within ${T} ms of the stall, wherever in the cycle it begins`, async () => {
      for (let stallAt = 5000; stallAt < 6000; stallAt += 37) {
        const { stalls } = await simulate({ ...p, stallAt }, stallAt + 10_000);
        assert.equal(stalls.length, 1, `stall at ${stallAt}: reported once (${stalls.join(',')})`);
        const after = (stalls[0] as number) - stallAt;
        assert.ok(after > 0 && after <= T, `stall at ${stallAt}: reported ${after} ms after it began`);
      }
    });
  }

  it('never reports a healthy connection, idle or busy, over a minute', async () => {
    for (const dataEveryMs of [null, 4, 450, 700, 1500]) {
      const { stalls } = await simulate({ stallAt: Infinity, dataEveryMs, rttMs: 200, verifyDelayMs: verifyMs }, 60_000);
      assert.deepEqual(stalls, [], `data every ${dataEveryMs} ms`);
    }
  });

  it('a PING held behind a paused write (checked: held) is no stall, for a pause of any length', async () => {
    for (const pause of [1500, 5000, 20_000]) {
      const r = await simulate({ stallAt: Infinity, dataEveryMs: null, rttMs: 1, verifyDelayMs: 5, heldFrom: 3000, heldUntil: 3000 + pause }, 3000 + pause + 10_000);
      assert.deepEqual(r.stalls, [], `pause ${pause} ms`);
      assert.ok(r.checks >= Math.floor(pause / 1000) - 1, `checked while held (${r.checks} checks in ${pause} ms)`);
    }
  });

  it('a stall that begins while the connection is held is reported once the hold ends', async () => {
    const { stalls } = await simulate({ stallAt: 4000, dataEveryMs: null, rttMs: 1, verifyDelayMs: 5, heldFrom: 3000, heldUntil: 8000 }, 20_000);
    assert.equal(stalls.length, 1);
    assert.ok((stalls[0] as number) > 8000 && (stalls[0] as number) <= 8000 + T, `reported at ${stalls[0]}`);
  });

  it('late timers delay the report by their lateness, no more (the margin absorbs up to 100 ms)', async () => {
    for (const timerLateMs of [50, 100, 500]) {
      let worst = 0;
      for (let stallAt = 5000; stallAt < 6000; stallAt += 53) {
        const { stalls } = await simulate({ stallAt, dataEveryMs: 4, rttMs: 1, verifyDelayMs: verifyMs, timerLateMs }, stallAt + 10_000);
        assert.equal(stalls.length, 1);
        worst = Math.max(worst, (stalls[0] as number) - stallAt);
      }
      // Two timers (the ping time, the answer time) can each be late.
      assert.ok(worst <= T - 100 + 2 * timerLateMs, `timers ${timerLateMs} ms late: worst ${worst} ms`);
      if (timerLateMs <= 50) assert.ok(worst <= T, `within the budget when timers are at most 50 ms late (${worst} ms)`);
    }
  });

  it('an answer read during the check cancels the verdict', async () => {
    // The check takes long; the PING answer (the event loop was behind) arrives meanwhile.
    const sim = new Sim();
    const stalls: number[] = [];
    let answer: (v: unknown) => void = () => {};
    const probe = new ConnectionProbe(
      { ping: () => new Promise((resolve) => (answer = resolve)) },
      {
        stallMs: T,
        now: () => sim.now,
        setTimer: (fn, ms) => sim.at(sim.now + ms, fn),
        clearTimer: (e) => void ((e as { dead: boolean }).dead = true),
        verify: () => new Promise<Verdict>((resolve) => sim.at(sim.now + 300, () => resolve('stalled'))),
        onStall: () => stalls.push(sim.now),
      },
    );
    probe.start();
    await sim.run(1600); // the PING left at 500, suspected at 1500, the check runs until 1800
    answer('PONG');
    await sim.run(1700);
    await sim.run(2500);
    assert.deepEqual(stalls, []);
    probe.stop();
  });
});

describe('ConnectionProbe (real timers)', () => {
  it('declares a connection whose PING is never answered stalled within the budget, once', async () => {
    const stalls: number[] = [];
    let pings = 0;
    const started = Date.now();
    const probe = new ConnectionProbe({ ping: () => (pings++, new Promise(() => {})) }, { stallMs: 200, onStall: () => stalls.push(Date.now() - started) });
    probe.start();
    await new Promise((r) => setTimeout(r, 500));
    probe.stop();
    assert.equal(stalls.length, 1, 'one stall, then the probe stops until restarted');
    assert.equal(pings, 1);
    // Without a check the verdict comes after the ping interval and the answer time (50 + 100 ms).
    assert.ok((stalls[0] as number) >= 150, `not before the interval and answer time (${stalls[0]} ms)`);
  });

  it('keeps a connection that answers its PINGs alive, and ignores answers from before a restart', async () => {
    const stalls: number[] = [];
    let pings = 0;
    let late: (() => void) | null = null;
    const probe = new ConnectionProbe(
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
    const probe = new ConnectionProbe({ ping: () => new Promise(() => {}) }, { stallMs: 200, onStall: (silent) => stalls.push(silent) });
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
