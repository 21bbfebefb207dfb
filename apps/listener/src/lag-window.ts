/**
 * Quantiles of the store-to-listener delay (push_pubsub_lag_seconds) over the last stats interval,
 * for the status page: the histogram is cumulative since start, so each report takes the
 * difference of its bucket counts from the previous report's and interpolates within the bucket
 * the rank falls in, the way Prometheus' histogram_quantile does.
 */
export interface LagWindowResult {
  /** Observations in the window. */
  readonly count: number;
  /** Milliseconds; null when nothing was observed in the window. */
  readonly p50: number | null;
  readonly p99: number | null;
}

/**
 * The q-quantile of the observations between two readings of cumulative bucket counts (same
 * upper bounds `le`, ascending, the last one +Inf). A counter reset (a count going down) reads as
 * a window starting from zero. Returns null for an empty window; the highest finite bound when
 * the rank falls in the +Inf bucket.
 */
export function windowQuantile(le: readonly number[], prev: readonly number[] | null, cur: readonly number[], q: number): number | null {
  const reset = prev === null || prev.length !== cur.length || cur.some((c, i) => c < (prev[i] ?? 0));
  const d = cur.map((c, i) => c - (reset ? 0 : (prev[i] ?? 0)));
  const total = d[d.length - 1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  const i = d.findIndex((c) => c >= rank);
  const upper = le[i] ?? Infinity;
  const lower = i > 0 ? (le[i - 1] ?? 0) : 0;
  if (upper === Infinity) return lower;
  const below = i > 0 ? (d[i - 1] ?? 0) : 0;
  const inBucket = (d[i] ?? 0) - below;
  return inBucket <= 0 ? upper : lower + ((upper - lower) * (rank - below)) / inBucket;
}

/** Remembers the previous reading; each call answers for the window since the last one. */
export class LagWindow {
  private prev: number[] | null = null;
  sample(le: readonly number[], cumulative: readonly number[]): LagWindowResult {
    const prev = this.prev;
    this.prev = [...cumulative];
    const reset = prev === null || prev.length !== cumulative.length || cumulative.some((c, i) => c < (prev[i] ?? 0));
    const count = (cumulative[cumulative.length - 1] ?? 0) - (reset ? 0 : (prev[prev.length - 1] ?? 0));
    const ms = (s: number | null): number | null => (s === null ? null : Math.round(s * 1000 * 100) / 100);
    return { count, p50: ms(windowQuantile(le, prev, cumulative, 0.5)), p99: ms(windowQuantile(le, prev, cumulative, 0.99)) };
  }
}
