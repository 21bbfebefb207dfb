/**
 * The verdict of one fault run, from what was published and what each client received. Pure: no
 * I/O, no clock, so it is table-tested (delivery-check.test.ts) and the same code judges CI and
 * `npm run chaos`.
 *
 * Every message carries its channel and a per-channel sequence number (1, 2, 3, ... in publish
 * order; each channel is published by one sequential lane, so publish order is storage order).
 */

/** One message the stream tried to publish (all attempts of one request count as one message). */
export interface Published {
  readonly ch: string;
  readonly seq: number;
  /** When the first attempt was sent (ms since epoch). */
  readonly sentAt: number;
  /** When the server acknowledged it (200); null when no attempt was acknowledged. */
  readonly ackAt: number | null;
  /**
   * Not acknowledged, and the last answer did not say "not stored" either: it said the outcome is
   * unknown (502, 504) or none came. Delivering such a message is not a wrong answer.
   */
  readonly outcomeUnknown?: boolean;
}

export interface Delivery {
  readonly ch: string;
  readonly seq: number;
  /** When the client got it. */
  readonly at: number;
}

export interface ClientLog {
  readonly name: string;
  readonly channels: readonly string[];
  readonly deliveries: readonly Delivery[];
}

export interface ClientVerdict {
  readonly name: string;
  readonly received: number;
  /** Acknowledged messages on its channels it never got. */
  readonly lost: number;
  /** Deliveries of a message it already had. */
  readonly duplicated: number;
  /** First deliveries of a message after a later one of the same channel. */
  readonly reordered: number;
  /** Up to five lost messages, `channel#seq`, for diagnosis. */
  readonly lostSample: readonly string[];
  /** Fault -> first delivery of a message sent after the fault; null if none came. */
  readonly detectMs: number | null;
  /** Fault -> the last delivery that came later than `lateMs` after its send; null if messages are missing. */
  readonly recoverMs: number | null;
  /** Send -> first delivery, this client's 99th percentile (was it held up by another's fault?). */
  readonly latencyP99Ms: number;
}

export interface Verdict {
  readonly acked: number;
  readonly unacked: number;
  /** Of the unacknowledged: those whose last answer said the outcome is unknown. */
  readonly unknownOutcome: number;
  /** Messages whose last answer said "not stored" (503, 4xx) but that clients received: the answer was wrong. */
  readonly unackedDelivered: number;
  /** Deliveries missing / doubled, summed over clients. */
  readonly lost: number;
  readonly duplicated: number;
  /** Distinct messages missing at some client / delivered twice to some client. */
  readonly lostMessages: number;
  readonly duplicatedMessages: number;
  readonly reordered: number;
  /** Deliveries of a channel/seq that was never published (a corrupted or foreign message). */
  readonly unexpected: number;
  /** Worst client: fault -> first delivery of a message sent after the fault (null: some client got none). */
  readonly detectMs: number | null;
  /** Worst client: fault -> all caught up (null: some client is missing messages). */
  readonly recoverMs: number | null;
  /** Send -> first delivery, over every first delivery of the run. */
  readonly latencyP50Ms: number;
  readonly latencyP99Ms: number;
  readonly clients: readonly ClientVerdict[];
}

const key = (ch: string, seq: number): string => `${ch}#${seq}`;

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/**
 * `faultAt`: when the fault was injected. `lateMs`: a delivery more than this after its send counts
 * as "behind"; a client is caught up after its last such delivery (and not before its first
 * delivery of a message sent after the fault).
 */
export function checkDeliveries(published: readonly Published[], clients: readonly ClientLog[], faultAt: number, lateMs: number): Verdict {
  const byKey = new Map<string, Published>();
  for (const p of published) byKey.set(key(p.ch, p.seq), p);
  const deliveredAnywhere = new Set<string>();
  const lostKeys = new Set<string>();
  const doubledKeys = new Set<string>();
  const latencies: number[] = [];
  let unexpected = 0;
  const verdicts = clients.map((c): ClientVerdict => {
    const first = new Map<string, number>();
    const highest = new Map<string, number>();
    let duplicated = 0;
    let reordered = 0;
    let detect: number | null = null;
    let lastLate = -Infinity;
    const own: number[] = [];
    for (const d of c.deliveries) {
      const k = key(d.ch, d.seq);
      const p = byKey.get(k);
      if (p === undefined) {
        unexpected++;
        continue;
      }
      if (first.has(k)) {
        duplicated++;
        doubledKeys.add(k);
        continue;
      }
      first.set(k, d.at);
      deliveredAnywhere.add(k);
      const top = highest.get(d.ch) ?? 0;
      if (d.seq < top) reordered++;
      else highest.set(d.ch, d.seq);
      latencies.push(d.at - p.sentAt);
      own.push(d.at - p.sentAt);
      if (d.at >= faultAt) {
        if (p.sentAt >= faultAt && (detect === null || d.at - faultAt < detect)) detect = d.at - faultAt;
        if (d.at - p.sentAt > lateMs) lastLate = Math.max(lastLate, d.at - faultAt);
      }
    }
    const subscribed = new Set(c.channels);
    const missing = published.filter((p) => p.ackAt !== null && subscribed.has(p.ch) && !first.has(key(p.ch, p.seq)));
    for (const p of missing) lostKeys.add(key(p.ch, p.seq));
    const recover = missing.length > 0 || detect === null ? null : Math.max(detect, lastLate);
    return {
      name: c.name,
      received: first.size,
      lost: missing.length,
      duplicated,
      reordered,
      lostSample: missing.slice(0, 5).map((p) => key(p.ch, p.seq)),
      detectMs: detect,
      recoverMs: recover,
      latencyP99Ms: percentile(own.sort((a, b) => a - b), 99),
    };
  });
  const anyFault = published.some((p) => p.ackAt !== null && p.sentAt >= faultAt);
  const worst = (pick: (v: ClientVerdict) => number | null): number | null => {
    let w = 0;
    for (const v of verdicts) {
      const x = pick(v);
      if (x === null) return anyFault ? null : 0;
      w = Math.max(w, x);
    }
    return w;
  };
  latencies.sort((a, b) => a - b);
  const unacked = published.filter((p) => p.ackAt === null);
  return {
    acked: published.length - unacked.length,
    unacked: unacked.length,
    unknownOutcome: unacked.filter((p) => p.outcomeUnknown === true).length,
    unackedDelivered: unacked.filter((p) => p.outcomeUnknown !== true && deliveredAnywhere.has(key(p.ch, p.seq))).length,
    lost: verdicts.reduce((a, v) => a + v.lost, 0),
    duplicated: verdicts.reduce((a, v) => a + v.duplicated, 0),
    lostMessages: lostKeys.size,
    duplicatedMessages: doubledKeys.size,
    reordered: verdicts.reduce((a, v) => a + v.reordered, 0),
    unexpected,
    detectMs: worst((v) => v.detectMs),
    recoverMs: worst((v) => v.recoverMs),
    latencyP50Ms: percentile(latencies, 50),
    latencyP99Ms: percentile(latencies, 99),
    clients: verdicts,
  };
}
