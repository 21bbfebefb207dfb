/**
 * A latency histogram in integer microseconds with about 1.6 % resolution (64 sub-buckets per
 * power of two), fixed size and mergeable, so every worker records every delivery without
 * allocating and the coordinator adds the workers' arrays. Values below 128 µs are exact.
 */
const SUB = 64;
const EXACT = 2 * SUB;
/** Covers up to 2^31 µs (about 36 minutes); larger values land in the last bucket. */
export const BUCKETS = EXACT + 25 * SUB;

export function bucketOf(us: number): number {
  const v = us <= 0 ? 0 : us >= 0x7fffffff ? 0x7fffffff : Math.floor(us);
  if (v < EXACT) return v;
  const e = 31 - Math.clz32(v) - 6; // v >> e lands in [64, 128)
  return Math.min(BUCKETS - 1, EXACT + (e - 1) * SUB + ((v >>> e) - SUB));
}

/** The middle of a bucket's value range, in microseconds. */
export function bucketValue(index: number): number {
  if (index < EXACT) return index;
  const k = index - EXACT;
  const e = Math.floor(k / SUB) + 1;
  const low = ((k % SUB) + SUB) * 2 ** e;
  return low + 2 ** e / 2;
}

export class Histogram {
  readonly counts = new Float64Array(BUCKETS);
  count = 0;
  max = 0;

  record(us: number): void {
    const b = bucketOf(us);
    this.counts[b] = (this.counts[b] as number) + 1;
    this.count++;
    if (us > this.max) this.max = us;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.max = 0;
  }

  /** Sparse form for IPC: [index, count] pairs of the non-empty buckets. */
  toJSON(): { buckets: Array<[number, number]>; count: number; max: number } {
    const buckets: Array<[number, number]> = [];
    this.counts.forEach((c, i) => c > 0 && buckets.push([i, c]));
    return { buckets, count: this.count, max: this.max };
  }

  add(other: { buckets: ReadonlyArray<readonly [number, number]>; count: number; max: number }): void {
    for (const [i, c] of other.buckets) this.counts[i] = (this.counts[i] ?? 0) + c;
    this.count += other.count;
    if (other.max > this.max) this.max = other.max;
  }

  /** The value (µs) at quantile q in [0, 1]; 0 when empty. q = 1 gives the exact maximum. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    if (q >= 1) return this.max;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i] as number;
      if (seen >= rank) return Math.min(bucketValue(i), this.max);
    }
    return this.max;
  }

  /** p50/p90/p99/p99.9/max in milliseconds, rounded to 0.01 ms. */
  summaryMs(): { count: number; p50: number; p90: number; p99: number; p999: number; max: number } {
    const ms = (us: number): number => Math.round(us / 10) / 100;
    return { count: this.count, p50: ms(this.quantile(0.5)), p90: ms(this.quantile(0.9)), p99: ms(this.quantile(0.99)), p999: ms(this.quantile(0.999)), max: ms(this.max) };
  }
}
