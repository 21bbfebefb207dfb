/**
 * The last minutes of cluster figures for the status page's charts, kept by each publisher in a
 * fixed ring (one point a second). Every publisher samples the same Redis snapshots, so whichever
 * one nginx sends a page's request to answers with nearly the same series.
 */
export interface HistoryPoint {
  /** Milliseconds since the epoch. */
  readonly t: number;
  readonly publishRate: number;
  readonly deliveryRate: number;
  readonly websockets: number;
  readonly pollings: number;
  /** End-to-end (store to listener) latency, ms; null when no message went through. */
  readonly latencyP50: number | null;
  readonly latencyP99: number | null;
}

export class StatusHistory {
  private readonly points: HistoryPoint[] = [];
  constructor(readonly capacity: number) {}

  push(p: HistoryPoint): void {
    // Never out of order: a clock step back drops the point rather than bending the chart.
    const last = this.points[this.points.length - 1];
    if (last !== undefined && p.t <= last.t) return;
    this.points.push(p);
    if (this.points.length > this.capacity) this.points.splice(0, this.points.length - this.capacity);
  }

  /** Points newer than `t` (all with t = 0), oldest first. */
  since(t: number): HistoryPoint[] {
    let i = this.points.length;
    while (i > 0 && (this.points[i - 1] as HistoryPoint).t > t) i--;
    return this.points.slice(i);
  }
}
