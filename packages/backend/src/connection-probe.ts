/**
 * Liveness of one Redis connection: the command, publish and subscriber connections alike.
 *
 * A TCP path can stay open while carrying nothing (a stalled proxy or NAT entry, a half-dead
 * peer): no error, no close, and kernel keepalive notices only after minutes. Traffic alone cannot
 * tell such a connection from a quiet one, so the probe sends a PING now and then (allowed in
 * subscribed mode too; RESP2 answers it there as ["pong", ""], which ioredis 5 resolves as the
 * command's reply) and suspects the connection when neither the answer nor any other byte has
 * arrived in time. A PING was chosen over publishing to a private probe channel: it touches no key
 * space, needs no channel per connection, and it tests exactly the path that matters: Redis to this
 * socket, in order behind what is already queued on it.
 *
 * A PING can also go unanswered on a healthy path: Redis holds a command of this connection that
 * was sent before it (a write during CLIENT PAUSE WRITE, a WAIT for replicas), and replies in
 * order. So a suspect connection is checked before it is torn down (`verify`, in the owner: asks
 * Redis over a new connection whether it is holding a command of this one). Only a confirmed stall
 * is reported; a held connection is given another answer period.
 *
 * Budget, with `stallMs` T (PUSH_PUBSUB_STALL_MS, default 2000 ms): a PING leaves T/4 after the last
 * byte received (a busy connection needs none: its data proves it alive), it is suspected when that
 * PING has gone unanswered, with nothing else arriving either, for the answer period A, and the
 * check may take T/5. A = T - T/4 - T/5 - margin, the margin (T/20, at most 100 ms) kept for timer
 * and event-loop lateness. A stall beginning at any moment is reported within T of its start:
 * the last byte arrived at most at the stall's start S, so the PING leaves by S + T/4, is suspected
 * by S + T/4 + A and confirmed by S + T - margin. The times are those at which bytes were *read*:
 * a process whose event loop lags behind its socket sees its data late and its stall late by as
 * much (the lag is not the path's fault and cannot be told from it).
 */

/** What the probe does next, decided from plain numbers (table-tested in connection-probe.test.ts). */
export type ProbeStep =
  | { readonly kind: 'ping' }
  | { readonly kind: 'wait'; readonly ms: number }
  | { readonly kind: 'suspect'; readonly silentMs: number };

export interface ProbeState {
  /** When the outstanding PING was sent (null = none outstanding; one at a time). */
  readonly pingSentAt: number | null;
  /** When the last byte of any kind (a reply, a message, a PING answer) arrived, or the connection became ready. */
  readonly lastDataAt: number;
  /** When a check last found the connection held by Redis, not stalled (0 = never): a new answer period starts there. */
  readonly heldAt: number;
}

export interface ProbeTimings {
  /** Silence after which a PING is sent. */
  readonly intervalMs: number;
  /** How long the PING (and the connection) may stay silent before the connection is suspected. */
  readonly answerMs: number;
  /** The longest a check of a suspected connection may take. */
  readonly verifyMs: number;
}

export function probeTimings(stallMs: number): ProbeTimings {
  const intervalMs = Math.max(1, Math.floor(stallMs / 4));
  const verifyMs = Math.max(1, Math.floor(stallMs / 5));
  const marginMs = Math.min(100, Math.floor(stallMs / 20));
  return { intervalMs, verifyMs, answerMs: Math.max(1, stallMs - intervalMs - verifyMs - marginMs) };
}

/**
 * The next step at time `now`. No PING outstanding: send one once `intervalMs` has passed since the
 * last data, else wait. A PING outstanding: suspect the connection once `answerMs` passed since it
 * left AND since the last data (messages still arriving mean the connection carries data and the
 * answer is queued behind them) AND since a check last found it held, else wait for the latest of
 * these deadlines.
 */
export function nextProbeStep(s: ProbeState, now: number, stallMs: number): ProbeStep {
  const { intervalMs, answerMs } = probeTimings(stallMs);
  if (s.pingSentAt === null) {
    const due = s.lastDataAt + intervalMs;
    return now >= due ? { kind: 'ping' } : { kind: 'wait', ms: due - now };
  }
  const deadline = Math.max(s.pingSentAt, s.lastDataAt, s.heldAt) + answerMs;
  if (now >= deadline) return { kind: 'suspect', silentMs: now - s.lastDataAt };
  return { kind: 'wait', ms: deadline - now };
}

/** The part of a connection the probe needs. */
export interface ProbedConnection {
  /** Sends a PING on the connection; resolves on its answer, rejects when the connection fails. */
  ping(): Promise<unknown>;
}

/**
 * The answer of a check of a suspected connection: `stalled` (the path carries nothing: tear it
 * down) or `held` (Redis is holding a command of this connection, or Redis itself does not answer
 * anyone: not this path's fault; keep waiting).
 */
export type Verdict = 'stalled' | 'held';

export interface ConnectionProbeOptions {
  /** A connection silent this long (no data, no PING answer) is stalled (PUSH_PUBSUB_STALL_MS). */
  readonly stallMs: number;
  /** Called once per confirmed stall; the owner tears the connection down and reconnects it. */
  readonly onStall: (silentMs: number) => void;
  /**
   * Checks a suspected connection; should settle within `probeTimings(stallMs).verifyMs`. Without
   * it (or when it fails) a suspicion is a stall.
   */
  readonly verify?: () => Promise<Verdict>;
  readonly now?: () => number;
  readonly setTimer?: (fn: () => void, ms: number) => unknown;
  readonly clearTimer?: (t: unknown) => void;
}

/**
 * Probes one connection while it is ready: `start` when it becomes ready, `stop` when it closes,
 * `data` whenever bytes arrive on it. Answers (and checks) from an earlier connection (a PING in
 * flight when it was replaced) are ignored by generation.
 */
export class ConnectionProbe {
  private timer: unknown = null;
  private pingSentAt: number | null = null;
  private lastDataAt = 0;
  private heldAt = 0;
  private verifying = false;
  private generation = 0;
  private running = false;
  private readonly now: () => number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (t: unknown) => void;

  constructor(
    private readonly conn: ProbedConnection,
    private readonly opts: ConnectionProbeOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.setTimer =
      opts.setTimer ??
      ((fn, ms) => {
        const t = setTimeout(fn, ms);
        t.unref();
        return t;
      });
    this.clearTimer = opts.clearTimer ?? ((t) => clearTimeout(t as NodeJS.Timeout));
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
    this.heldAt = 0;
    this.verifying = false;
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = null;
  }

  /** Bytes arrived on the connection: it carries data. Kept to one assignment (hot path). */
  data(): void {
    this.lastDataAt = this.now();
  }

  private schedule(): void {
    if (!this.running || this.verifying) return;
    const step = nextProbeStep({ pingSentAt: this.pingSentAt, lastDataAt: this.lastDataAt, heldAt: this.heldAt }, this.now(), this.opts.stallMs);
    if (step.kind === 'ping') {
      this.sendPing();
      this.arm(probeTimings(this.opts.stallMs).answerMs);
    } else if (step.kind === 'wait') this.arm(step.ms);
    else this.suspect();
  }

  private arm(ms: number): void {
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = this.setTimer(() => {
      this.timer = null;
      this.schedule();
    }, ms);
  }

  private stalled(): void {
    const silentMs = this.now() - this.lastDataAt;
    this.stop();
    this.opts.onStall(silentMs);
  }

  /**
   * Suspected: checked before it is torn down. Whatever arrives during the check counts: the
   * verdict applies only if the connection is still silent when it comes (an event loop that was
   * late reads the answer it was waiting for while the check runs).
   */
  private suspect(): void {
    if (this.opts.verify === undefined) {
      this.stalled();
      return;
    }
    const gen = this.generation;
    const suspectedAt = this.now();
    const dataBefore = this.lastDataAt;
    this.verifying = true;
    const settle = (verdict: Verdict): void => {
      if (gen !== this.generation || !this.verifying) return;
      this.verifying = false;
      if (this.lastDataAt !== dataBefore || this.pingSentAt === null) this.schedule();
      else if (verdict === 'stalled') this.stalled();
      else {
        this.heldAt = Math.max(suspectedAt, this.now());
        this.schedule();
      }
    };
    this.opts.verify().then(settle, () => settle('stalled'));
  }

  private sendPing(): void {
    const gen = this.generation;
    this.pingSentAt = this.now();
    this.conn.ping().then(
      () => {
        if (gen !== this.generation) return;
        this.pingSentAt = null;
        this.heldAt = 0;
        this.lastDataAt = this.now();
        this.schedule();
      },
      // A failed PING: the connection failed (its close starts the reconnect, and the owner
      // restarts the probe on the next ready), or the PING timed out (a command timeout shorter
      // than the budget): its late answer would never be seen, so the next one takes its place.
      () => {
        if (gen !== this.generation || this.pingSentAt === null) return;
        this.pingSentAt = null;
        if (!this.verifying) this.schedule();
      },
    );
  }
}
