import type { Fleet } from './fleet.js';
import type { Histogram } from './histogram.js';
import { sleep } from './processes.js';

/** One sampling interval of a run: delivery rate and latency of what arrived in it. */
export interface TimelinePoint {
  /**
   * Seconds of sampling before the end of the interval: the time between steps (drains, the other
   * system's turn in a side-by-side run) is left out, so steps sit next to each other.
   */
  readonly t: number;
  /** The step the interval belongs to ("5488 msg/s", "half", ...). */
  readonly step: string;
  readonly deliveriesPerSec: number;
  /** Latency of the deliveries in the interval; 0 when nothing arrived. */
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/** A timeline ready to draw: the report keeps the points, main.ts renders them (chart.ts). */
export interface ChartData {
  /** File name suffix: `<report>-<name>.png`. */
  readonly name: string;
  readonly title: string;
  readonly points: readonly TimelinePoint[];
}

/** The point for one interval: `received` is cumulative, `latency` holds only the interval's deliveries. */
export function pointOf(t: number, step: string, receivedBefore: number, receivedNow: number, seconds: number, latency: Histogram): TimelinePoint {
  const ms = (q: number): number => Math.round(latency.quantile(q) / 10) / 100;
  return { t: Math.round(t * 100) / 100, step, deliveriesPerSec: seconds > 0 ? Math.round((receivedNow - receivedBefore) / seconds) : 0, p50Ms: ms(0.5), p99Ms: ms(0.99) };
}

/**
 * Delivery rate and latency over time, sampled from the subscriber workers while steps run, so a
 * chart shows what a step's single summary hides: a backlog building up, a coalescing window
 * opening, a restart's dip and recovery.
 */
export class Timeline {
  readonly points: TimelinePoint[] = [];
  /** Seconds sampled by the steps before the current one. */
  private sampled = 0;

  constructor(private readonly everyMs = 500) {}

  /** Samples `fleet` under the label `step` until the returned function is called (and awaited). */
  sample(fleet: Fleet, step: string): () => Promise<void> {
    let stopped = false;
    const loop = (async () => {
      let prev = await fleet.slice();
      const startedAt = performance.now();
      let prevAt = startedAt;
      while (!stopped) {
        await sleep(this.everyMs);
        const now = await fleet.slice();
        const at = performance.now();
        this.points.push(pointOf(this.sampled + (at - startedAt) / 1000, step, prev.received, now.received, (at - prevAt) / 1000, now.latency));
        prev = now;
        prevAt = at;
      }
      this.sampled += (prevAt - startedAt) / 1000;
    })();
    return async () => {
      stopped = true;
      await loop;
    };
  }
}
