/**
 * Liveness of one subscriber connection (a Redis connection in subscribed mode).
 *
 * A TCP path can stay open while carrying nothing (a stalled proxy or NAT entry, a half-dead
 * peer): no error, no close, and kernel keepalive notices only after minutes. Pub/sub traffic alone
 * cannot tell such a connection from a quiet one, so the probe sends a PING now and then (allowed
 * in subscribed mode; RESP2 answers it as the array ["pong", ""], which ioredis 5 resolves as the
 * command's reply) and calls the connection stalled when neither the answer nor anything else has
 * arrived in time. A PING was chosen over publishing to a private probe channel: it touches no key
 * space, needs no channel per connection (a Cluster node or Sentinel replica connection is probed
 * the same way), and it tests exactly the path that matters: Redis to this socket, in order behind
 * the messages already queued on it.
 *
 * Budget: with `stallMs` T, a PING leaves T/4 after the last data (a busy connection needs none:
 * its messages prove it alive), and the connection is stalled when that PING has gone unanswered,
 * with no other data either, for the rest of the budget less a margin (T/20, at most 100 ms) kept
 * for timer and event-loop lateness. A stall that begins at any moment is therefore reported
 * within T of its start, not just after it.
 */

/** What the probe does next, decided from plain numbers (table-tested in subscriber-probe.test.ts). */
export type ProbeStep =
  | { readonly kind: 'ping' }
  | { readonly kind: 'wait'; readonly ms: number }
  | { readonly kind: 'stalled'; readonly silentMs: number };

export interface ProbeState {
  /** When the outstanding PING was sent (null = none outstanding). */
  readonly pingSentAt: number | null;
  /** When the last data of any kind (a message, a PING answer) arrived, or the connection became ready. */
  readonly lastDataAt: number;
}

export function probeTimings(stallMs: number): { readonly intervalMs: number; readonly answerMs: number } {
  const intervalMs = Math.max(1, Math.floor(stallMs / 4));
  const marginMs = Math.min(100, Math.floor(stallMs / 20));
  return { intervalMs, answerMs: stallMs - intervalMs - marginMs };
}

/**
 * The next step at time `now`. No PING outstanding: send one once `intervalMs` has passed since the
 * last data, else wait. A PING outstanding: stalled once `answerMs` passed since it left AND since
 * the last data (messages still arriving mean the connection carries data and the answer is queued
 * behind them), else wait for whichever deadline is later.
 */
export function nextProbeStep(s: ProbeState, now: number, stallMs: number): ProbeStep {
  const { intervalMs, answerMs } = probeTimings(stallMs);
  if (s.pingSentAt === null) {
    const due = s.lastDataAt + intervalMs;
    return now >= due ? { kind: 'ping' } : { kind: 'wait', ms: due - now };
  }
  const deadline = Math.max(s.pingSentAt, s.lastDataAt) + answerMs;
  if (now >= deadline) return { kind: 'stalled', silentMs: now - s.lastDataAt };
  return { kind: 'wait', ms: deadline - now };
}

/** The part of a subscriber connection the probe needs. */
export interface ProbedConnection {
  /** Sends a PING on the connection; resolves on its answer, rejects when the connection fails. */
  ping(): Promise<unknown>;
}

export interface SubscriberProbeOptions {
  /** A connection silent this long (no data, no PING answer) is stalled (PUSH_PUBSUB_STALL_MS). */
  readonly stallMs: number;
  /** Called once per detected stall; the owner tears the connection down and reconnects it. */
  readonly onStall: (silentMs: number) => void;
  readonly now?: () => number;
}

/**
 * Probes one subscriber connection while it is ready: `start` when it becomes ready, `stop` when
 * it closes, `data` on every message it delivers. Answers from an earlier connection (a PING in
 * flight when it was replaced) are ignored by generation.
 */
export class SubscriberProbe {
  private timer: NodeJS.Timeout | null = null;
  private pingSentAt: number | null = null;
  private lastDataAt = 0;
  private generation = 0;
  private running = false;
  private readonly now: () => number;

  constructor(
    private readonly conn: ProbedConnection,
    private readonly opts: SubscriberProbeOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    this.stop();
    this.running = true;
    this.lastDataAt = this.now();
    this.schedule();
  }

  stop(): void {
    this.running = false;
    this.generation++;
    this.pingSentAt = null;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Anything arrived on the connection: it carries data. Kept to one assignment (hot path). */
  data(): void {
    this.lastDataAt = this.now();
  }

  private schedule(): void {
    if (!this.running) return;
    const step = nextProbeStep({ pingSentAt: this.pingSentAt, lastDataAt: this.lastDataAt }, this.now(), this.opts.stallMs);
    if (step.kind === 'ping') {
      this.sendPing();
      this.arm(probeTimings(this.opts.stallMs).answerMs);
    } else if (step.kind === 'wait') this.arm(step.ms);
    else {
      this.stop();
      this.opts.onStall(step.silentMs);
    }
  }

  private arm(ms: number): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.schedule();
    }, ms);
    this.timer.unref();
  }

  private sendPing(): void {
    const gen = this.generation;
    this.pingSentAt = this.now();
    this.conn.ping().then(
      () => {
        if (gen !== this.generation) return;
        this.pingSentAt = null;
        this.lastDataAt = this.now();
        this.schedule();
      },
      // A failed PING means the connection itself failed: its close starts the reconnect, and the
      // owner restarts the probe on the next ready. Until then the pending deadline still applies.
      () => {},
    );
  }
}
