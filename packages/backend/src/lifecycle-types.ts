import type { StoredMessage } from '@push/protocol';

/** Creation times of some channels, and the server time they were read at (one clock: Redis TIME). */
export interface ChannelTimes {
  /** Server time, unix ms. */
  readonly now: number;
  /** Per requested channel, in order: unix ms of first creation, or null if never recorded. */
  readonly created: ReadonlyArray<number | null>;
}

/** Outcome of asking for a channel's `channel_expire` notice. */
export type ExpireNotice =
  /** The notice (stored once per channel, with a real mid, and announced to subscribers when stored). */
  | { readonly kind: 'stored'; readonly message: StoredMessage }
  /** Still writable: ask again in `inMs` milliseconds (server clock). */
  | { readonly kind: 'early'; readonly inMs: number }
  /** Never created (nothing to expire) or past its read window (nothing to read). */
  | { readonly kind: 'none' };

/**
 * The channel lifecycle (docs/security.md): a channel is created when it is minted or first
 * published to; it is writable for `channelWriteMs` and readable for `channelReadMs` from then.
 * The publish itself refuses expired channels atomically (Store.publish throws CHANNEL_EXPIRED).
 */
export interface ChannelRegistry {
  /** Records the current server time as creation time of every channel not yet known. */
  create(channels: readonly string[]): Promise<ChannelTimes>;
  /** Reads creation times without recording anything. */
  times(channels: readonly string[]): Promise<ChannelTimes>;
  /**
   * Returns the channel's `channel_expire` notice once it is past its write window, storing and
   * announcing it (with `body`) only the first time: any number of listeners may ask, exactly one
   * notice exists per channel.
   */
  expireNotice(channel: string, body: string): Promise<ExpireNotice>;
}

export type NonceClaim = 'ok' | 'stale' | 'replay';

/**
 * A signed request's identity (key id and nonce), carried into `Store.publish` so that the replay
 * check, the store and the record of the outcome happen in one atomic step: the publish is refused
 * (stale 4124; nonce spent by a request that was not a publish 4125) before anything is written, a
 * publish refused for another reason (a channel past its write window) leaves the nonce unused, and
 * a publish already carried out under this nonce returns its original outcome.
 */
export interface NonceClaimRequest {
  readonly keyId: string;
  readonly nonce: string;
  /** Unix seconds the sender claims. */
  readonly timestamp: number;
  readonly maxSkewS: number;
}

/**
 * An unsigned request's identity (`X-Push-Request-Id`), within a scope: the portal's publishes
 * share one, each client sender (`/bitrix/rest/`) has its own, so no client can take another's id.
 */
export interface RequestIdClaim {
  readonly scope: string;
  readonly requestId: string;
  /** How long the outcome is remembered (the replay window), seconds. */
  readonly windowS: number;
}

/** Who a publish request is, for exactly-once publishing (docs/reliability.md, "Publish identity"). */
export type PublishIdentity = NonceClaimRequest | RequestIdClaim;

/** The replay window of a signed request: as long as its timestamp stays acceptable. */
export function nonceWindowS(maxSkewS: number): number {
  return 2 * maxSkewS + 1;
}

/**
 * Replay protection for signed requests: one atomic step checks the request timestamp against the
 * server clock and remembers the nonce for as long as such a timestamp stays acceptable.
 */
export interface ReplayGuard {
  claim(keyId: string, nonce: string, timestamp: number, maxSkewS: number): Promise<NonceClaim>;
}
