import { performance, type EventLoopUtilization } from 'node:perf_hooks';

/**
 * Event-loop utilisation (0-1, over the last sampling interval) below which an Ed25519 check runs
 * inline. Measured on the reference machine (docs/benchmarks.md, ingest): at a few hundred
 * requests a second the loop is mostly idle and an inline check saves the two thread wake-ups of
 * a trip to the pool (about a quarter of the publisher's CPU there); a saturated publisher runs
 * near 1 and needs the pool's second core.
 */
export const INLINE_BELOW_UTILIZATION = 0.5;

/** Pure: run a check inline when the loop had time to spare over the last interval. */
export function verifyInline(utilization: number, below = INLINE_BELOW_UTILIZATION): boolean {
  return utilization < below;
}

/**
 * Samples the event loop's utilisation every `everyMs` and answers `PublishVerifier`'s question
 * (`inline`). Until the first sample it answers false: a publisher that starts under load uses
 * the pool from its first request.
 */
export class VerifyPlacement {
  private last: EventLoopUtilization = performance.eventLoopUtilization();
  private utilization = 1;
  private readonly timer: NodeJS.Timeout;

  constructor(everyMs = 100) {
    this.timer = setInterval(() => {
      const now = performance.eventLoopUtilization();
      this.utilization = performance.eventLoopUtilization(now, this.last).utilization;
      this.last = now;
    }, everyMs);
    // A sampler must not keep a finished process alive.
    this.timer.unref();
  }

  readonly inline = (): boolean => verifyInline(this.utilization);

  close(): void {
    clearInterval(this.timer);
  }
}
