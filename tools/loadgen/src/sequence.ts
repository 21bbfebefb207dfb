/**
 * Per-connection delivery check. Each message carries a per-channel sequence number (1, 2, 3, ...
 * in publish order); a connection must see each exactly once, in order. A jump records the skipped
 * numbers as missing; a number at or below the newest seen is either a late arrival of a missing
 * one (reordered) or a duplicate. Memory stays proportional to the gaps, not the traffic.
 */
export class SequenceTracker {
  /** Highest sequence number seen. */
  last = 0;
  received = 0;
  duplicates = 0;
  reordered = 0;
  private missing: Set<number> | null = null;

  observe(seq: number): void {
    this.received++;
    if (seq === this.last + 1) {
      this.last = seq;
      return;
    }
    if (seq > this.last) {
      this.missing ??= new Set();
      for (let s = this.last + 1; s < seq; s++) this.missing.add(s);
      this.last = seq;
      return;
    }
    if (this.missing !== null && this.missing.delete(seq)) this.reordered++;
    else this.duplicates++;
  }

  /** Messages published to the channel (its final sequence number) that never arrived. */
  lost(expected: number): number {
    return (this.missing?.size ?? 0) + Math.max(0, expected - this.last);
  }

  /** A few of the missing sequence numbers, for diagnosing a loss. */
  missingSample(limit = 5): number[] {
    return this.missing === null ? [] : [...this.missing].slice(0, limit);
  }

  /** Distinct messages received (what counts as delivered). */
  get unique(): number {
    return this.received - this.duplicates;
  }
}
