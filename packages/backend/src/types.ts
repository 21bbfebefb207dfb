import { bareChannelKey, type NewMessage, type SenderInfo, type StoredMessage } from '@push/protocol';
import type { ChannelRegistry, ChannelTimes, PublishIdentity, ReplayGuard } from './lifecycle-types.js';

/**
 * A resume cursor older than what a channel still keeps: messages of `channel` with mids after the
 * cursor and up to `upTo` (inclusive) are gone for good. `cause` says why the newest of them went:
 * `limit` = pushed out of the capped list (PUSH_HISTORY_LIMIT), `expired` = its record's TTL ended.
 */
export interface HistoryGap {
  readonly channel: string;
  readonly upTo: string;
  readonly cause: 'limit' | 'expired';
}

export interface HistoryResult {
  /** Messages newer than the cursor on any of the channels, oldest first, each once. */
  readonly messages: StoredMessage[];
  /** Channels on which messages after the cursor are gone (empty or absent without a cursor). */
  readonly gaps?: readonly HistoryGap[];
  /** Newest mid still stored on any of the channels (for the long-poll 304 cursor); null if none. */
  readonly newestMid: string | null;
  /**
   * The newest id the store had issued on any channel when the read ran (ORIGIN_MID if none yet;
   * null when `newestMid` is set: only needed without it). Every later publish gets a larger id, so it is a
   * safe resume cursor for a client that has nothing on its channels yet: the long-poll 304 hands
   * it out instead of an empty Last-Message-Id, with which the next poll would miss whatever was
   * published between the two polls.
   */
  readonly floorMid?: string | null;
  /** Lifecycle: server time and the channels' creation times, read in the same step. */
  readonly channelTimes?: ChannelTimes;
}

/**
 * The message log. `publish` assigns ids, stores each message under its TTL and announces it to
 * subscribers as one atomic step, so every subscriber sees messages in id order and a publish is
 * either fully done or not done at all. It resolves only once the backend accepted everything.
 */
/** The ids of a publish's messages, in order; `replayed` when they are an earlier request's outcome. */
export type PublishedIds = string[] & {
  readonly replayed?: true;
  /**
   * Redis Cluster: a message sent to channels on several shards is stored part by part with one id
   * per part; the array holds its smallest (first part's) id and `parts[i]` maps each channel of
   * message i to the id it was stored under. Absent when every message was stored in one step.
   */
  readonly parts?: ReadonlyArray<Readonly<Record<string, string>>>;
};

export interface Store {
  /**
   * Throws PushError CHANNEL_EXPIRED, storing nothing, if any target channel is past its write
   * window. With `identity` (exactly-once publishing, docs/reliability.md):
   *  - an identity already carried out within its window with the same content (publishFingerprint)
   *    resolves with that publish's ids, marked `replayed`, and stores and announces nothing;
   *  - one carried out with other content throws REQUEST_ID_CONFLICT; a nonce spent by a request
   *    that was not a publish throws AUTH_REPLAY; a stale signed timestamp throws AUTH_STALE;
   *  - otherwise the outcome is recorded under the identity in the same atomic step as the store,
   *    and only when the publish is carried out (a refused one leaves the identity unused).
   * Throws PushError OUTCOME_UNKNOWN when the backend was asked but did not answer in time.
   */
  publish(messages: readonly NewMessage[], sender: SenderInfo, identity?: PublishIdentity): Promise<PublishedIds>;
  /**
   * Replay for a resuming client: messages after `after` (exclusive), or just the cursor when null;
   * with a cursor, also the channels where messages after it are gone (`gaps`).
   */
  history(channels: readonly string[], after: string | null): Promise<HistoryResult>;
  /** Resolves when the backend answers; used by readiness checks. */
  ping(): Promise<void>;
}

export type MessageHandler = (channel: string, msg: StoredMessage) => void;

/**
 * A lost subscription comes back channel by channel (SUBSCRIBE in batches), and a message for an
 * already restored channel can arrive before the last batch is confirmed, even in the same read
 * as the confirmation. So the user hears twice: `lost` before anything is resubscribed (hold live
 * messages from here on), `restored` once every channel is (refill from history, then release).
 * `lost` may come again before `restored` when resubscribing fails and starts over.
 */
export interface ResyncHandlers {
  lost(): void;
  restored(): void;
}

/**
 * The receiving side of fan-out: one per listener process, subscribed to exactly the channels
 * its sockets need. `subscribe` resolves once messages published afterwards are guaranteed to
 * arrive, which is what makes "subscribe, then read history" gap-free.
 */
/**
 * Whether the broker's subscriptions carry data, for readiness and metrics. A broker may hold
 * several subscriber connections (one per Redis Cluster node, say); each is counted.
 */
export interface BrokerHealth {
  /** Subscriber connections the broker owns. */
  readonly connections: number;
  /**
   * Connections not carrying their subscriptions now: not connected yet, closed, found stalled, or
   * reconnected but not every channel resubscribed yet. Readiness is 503 while this is above 0.
   */
  readonly down: number;
  /** Stalls detected since start: connections open but silent past PUSH_PUBSUB_STALL_MS. */
  readonly stalls: number;
}

export interface Broker {
  setHandler(handler: MessageHandler): void;
  /** How a broker that lost its subscription tells its user (a broker that cannot lose it never calls). */
  onResync(handlers: ResyncHandlers): void;
  subscribe(channels: readonly string[]): Promise<void>;
  unsubscribe(channels: readonly string[]): Promise<void>;
  health(): BrokerHealth;
  close(): Promise<void>;
}

/** Channel presence shared by all processes; an entry lives `ttlSeconds` unless refreshed. */
export interface Presence {
  touch(channels: readonly string[]): Promise<void>;
  online(channels: readonly string[]): Promise<boolean[]>;
  /**
   * Unix ms of the last touch of each user key (`user:<id>`, protocol 5), remembered for
   * LAST_SEEN_KEEP_S after it; null when never touched or forgotten. Other keys are not tracked
   * (a second write per touch for every channel would double the presence traffic), so they
   * always answer null.
   */
  lastSeen(channels: readonly string[]): Promise<Array<number | null>>;
}

/** How long a user's last-seen time is kept after its last connection (30 days). */
export const LAST_SEEN_KEEP_S = 30 * 24 * 3600;
/** Keys whose last-seen time is kept (see Presence.lastSeen). */
export const isLastSeenKey = (channel: string): boolean => bareChannelKey(channel).startsWith('user:');

export interface ProcessStats {
  readonly processUniqueId: string;
  /** Unix ms of the snapshot; the registry drops entries older than a few report intervals. */
  readonly date: number;
  readonly [key: string]: unknown;
}

export interface StatsRegistry {
  report(stats: ProcessStats): Promise<void>;
  list(): Promise<ProcessStats[]>;
  remove(processUniqueId: string): Promise<void>;
}

/**
 * A portal registered in shared mode (docs/shared-mode.md). `key` signs its channels and requests;
 * it is a secret: never logged, shown only by `pushctl client add` and the registration answer.
 */
export interface RegisteredClient {
  /** 32 characters a-z 0-9: the portal's public licence code, sent as `clientId=`. */
  readonly id: string;
  readonly key: string;
  /** Unix ms of the registration. */
  readonly created: number;
  /** A note for the operator (the portal's host, say); never used for decisions. */
  readonly note: string;
}

/**
 * The registry of shared-mode portals, shared by all processes. `add` keeps an existing entry (and
 * its key) and says so, so registering twice never changes a portal's key behind its back.
 */
export interface ClientRegistry {
  add(client: RegisteredClient): Promise<{ readonly added: boolean; readonly client: RegisteredClient }>;
  get(id: string): Promise<RegisteredClient | null>;
  list(): Promise<RegisteredClient[]>;
  /** True when the client existed. */
  remove(id: string): Promise<boolean>;
}

export interface Backend {
  readonly kind: 'memory' | 'redis';
  readonly store: Store;
  readonly presence: Presence;
  readonly stats: StatsRegistry;
  readonly channels: ChannelRegistry;
  readonly replay: ReplayGuard;
  readonly clients: ClientRegistry;
  /** A new broker (listeners create one each; it owns its subscription connection). */
  createBroker(): Broker;
  /** Silent stalls found and torn down since start, by Redis connection name (none in memory). */
  connectionStalls(): Readonly<Record<string, number>>;
  close(): Promise<void>;
}

export interface BackendOptions {
  /** Per-channel history cap; older entries are trimmed on publish. */
  readonly historyLimit: number;
  readonly onlineTtlSeconds: number;
  /** Stats snapshots older than this are not listed. */
  readonly statsStaleMs: number;
  /** Channel write window from first creation (default 12 h). */
  readonly channelWriteMs?: number;
  /** Channel read window from first creation (default 24 h). */
  readonly channelReadMs?: number;
  /**
   * A subscriber connection that carries nothing, not even the answer to a PING, for this long is
   * declared stalled and reconnected (PUSH_PUBSUB_STALL_MS, default 2000; see connection-probe.ts).
   */
  readonly pubsubStallMs?: number;
}

export const DEFAULT_PUBSUB_STALL_MS = 2000;

export const DEFAULT_CHANNEL_WRITE_MS = 12 * 3600_000;
export const DEFAULT_CHANNEL_READ_MS = 24 * 3600_000;

/**
 * How long a channel's creation record is kept: twice its read window. After that the id is
 * unknown again; ids are 128-bit random, so only a portal that keeps using a two-day-old id
 * (which Bitrix portals never do: they rotate after 12 h) would see it treated as new.
 */
export function channelRetentionS(readMs: number): number {
  return Math.ceil((2 * readMs) / 1000);
}
