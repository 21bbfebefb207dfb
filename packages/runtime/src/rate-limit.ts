import { Errors, PushError, requestCost, type V4Request } from '@push/protocol';
import type { Config } from './config.js';
import { mirroredCounter, type Registry } from './metrics.js';

/**
 * Token buckets by key, for untrusted clients that publish (docs/security.md, "Client publishing").
 * A bucket holds up to `burst` tokens and refills at `perSecond`; a request costs what it makes the
 * server do (one token per receiver of each message). A request that does not fit is refused whole
 * and takes nothing, so a refused client keeps the tokens it had: refusing changes no state but the
 * clock. Buckets live in this process only; a key publishing through several processes gets each
 * process's allowance.
 */

/** Milliseconds on a monotonic clock; injectable so tests drive time. */
export type Clock = () => number;

interface Bucket {
  tokens: number;
  /** Clock reading the tokens were last brought up to date at. */
  at: number;
}

/** A full bucket carries no information: buckets idle this long are dropped by the next take(). */
const SWEEP_EVERY_MS = 60_000;

export class KeyedRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private lastSweep: number;
  /** Requests refused so far (push_client_requests_limited_total). */
  refused = 0;

  constructor(
    readonly perSecond: number,
    readonly burst: number,
    private readonly now: Clock = () => performance.now(),
  ) {
    if (!(perSecond > 0) || !(burst >= 1)) throw new RangeError(`rate limiter: perSecond > 0 and burst >= 1 required, got ${perSecond}, ${burst}`);
    this.lastSweep = now();
  }

  /**
   * Takes `cost` tokens from `key`'s bucket. Returns 0 when admitted, otherwise the whole seconds
   * to wait until the bucket will hold `cost` (never, for a cost above `burst`: then Infinity).
   */
  take(key: string, cost: number): number {
    const t = this.now();
    if (t - this.lastSweep >= SWEEP_EVERY_MS) this.sweep(t);
    const b = this.buckets.get(key);
    const tokens = b === undefined ? this.burst : Math.min(this.burst, b.tokens + ((t - b.at) * this.perSecond) / 1000);
    if (cost > this.burst) {
      this.refused++;
      return Infinity;
    }
    if (cost > tokens) {
      this.refused++;
      if (b !== undefined) {
        b.tokens = tokens;
        b.at = t;
      }
      return Math.max(1, Math.ceil((cost - tokens) / this.perSecond));
    }
    if (b === undefined) this.buckets.set(key, { tokens: tokens - cost, at: t });
    else {
      b.tokens = tokens - cost;
      b.at = t;
    }
    return 0;
  }

  /** Keys with a bucket that is not yet full again (what the sweep keeps). */
  get size(): number {
    return this.buckets.size;
  }

  /** Drops the buckets that have refilled completely: they behave exactly like absent ones. */
  private sweep(t: number): void {
    this.lastSweep = t;
    for (const [key, b] of this.buckets) if (b.tokens + ((t - b.at) * this.perSecond) / 1000 >= this.burst) this.buckets.delete(key);
  }
}

/**
 * The client-publishing limiter of one process (PUSH_CLIENT_RATE, PUSH_CLIENT_BURST), its refusals
 * counted on `registry`; null when the limit is off.
 */
export function clientLimiter(config: Pick<Config, 'clientRate' | 'clientBurst'>, registry: Registry): KeyedRateLimiter | null {
  if (config.clientRate === 0) return null;
  const limiter = new KeyedRateLimiter(config.clientRate, config.clientBurst);
  mirroredCounter(registry, 'push_client_requests_limited_total', 'Client publish requests refused with 4113 because their sender exceeded PUSH_CLIENT_RATE.', () => limiter.refused);
  return limiter;
}

/**
 * Charges a client's validated protocol-4 request to its sender's public id before anything is
 * stored. Throws 4113, with the seconds to wait, when it does not fit; a refused request costs nothing.
 */
export function chargeClientRequest(limiter: KeyedRateLimiter | null, senderPublicId: string, req: V4Request): void {
  if (limiter === null) return;
  const cost = requestCost(req);
  const wait = limiter.take(senderPublicId, cost);
  if (wait === 0) return;
  if (!Number.isFinite(wait)) throw new PushError(Errors.CLIENT_RATE_LIMITED, `This request alone reaches ${cost} receivers, more than the burst of ${limiter.burst}: split it.`);
  throw new PushError(Errors.CLIENT_RATE_LIMITED, `Retry in ${wait} s.`, wait);
}
