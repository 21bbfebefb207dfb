import type { Redis } from 'ioredis';
import { BACKEND_SENDER, Errors, PushError, decodeRecord, encodeRecordTail, fanoutBytes, publishFingerprint, type NewMessage, type SenderInfo, type StoredMessage } from '@push/protocol';
import type { Logger, RedisTarget } from '@push/runtime';
import { checkHeld, connectRedis, tearDownStalled, toTarget } from './redis-connect.js';
import { createCreationCache } from './creation-cache.js';
import { CHANNEL_TIMES_SCRIPT, CLAIM_NONCE_SCRIPT, EXPIRE_NOTICE_SCRIPT, HISTORY_SCRIPT, ID_GAP_SCRIPT, PRESENCE_TOUCH_SCRIPT, PUBLISH_SCRIPT } from './redis-scripts.js';
import { DEFAULT_CHANNEL_READ_MS, DEFAULT_CHANNEL_WRITE_MS, DEFAULT_PUBSUB_STALL_MS, LAST_SEEN_KEEP_S, channelRetentionS, isLastSeenKey, type Backend, type BackendOptions, type Broker, type BrokerHealth, type HistoryResult, type MessageHandler, type PublishedIds, type ResyncHandlers } from './types.js';
import { ConnectionProbe, probeTimings, type Verdict } from './connection-probe.js';
import { historyGap } from './history-gap.js';
import { nonceWindowS, type ChannelTimes, type ExpireNotice, type NonceClaim, type PublishIdentity } from './lifecycle-types.js';
import { NotSentError, UnansweredError, createGroupCommit } from './group-commit.js';
import { createRedisClusterBackend } from './redis-cluster-backend.js';
import { redisClientRegistry, redisStatsRegistry } from './redis-registries.js';

export interface RedisBackendOptions extends BackendOptions {
  /** REDIS_URL text or the configuration's parsed form: one Redis, a Sentinel group or a Cluster. */
  readonly url: string | RedisTarget;
  readonly keyPrefix: string;
  readonly log: Logger;
  /** Fail a command that got no answer in this time, so HTTP callers get 503 instead of hanging. */
  readonly commandTimeoutMs?: number;
  /**
   * Longest wait for a publish's outcome (PUSH_PUBLISH_TIMEOUT_MS, default 20 s). Publishes have
   * their own connection with this timeout: a publish Redis was asked to run and did not answer is
   * "unknown" (OUTCOME_UNKNOWN), never "not stored", so the wait is long enough for realistic stalls.
   */
  readonly publishTimeoutMs?: number;
  /** How far the id counter is advanced on every (re)connect before ids are assigned (see below). */
  readonly idSafetyGap?: number;
  /**
   * Most bytes one grouped publish call may send to subscribers (fanoutBytes of all its requests;
   * PUSH_MAX_FANOUT_BYTES, default 16 MiB). Grouping must not build what no single request may.
   */
  readonly maxGroupFanoutBytes?: number;
  /**
   * PUSH_PUBLISH_DURABILITY: 'local' (default) acknowledges once the master ran the publish;
   * 'replicated' also waits (WAIT) until `replicas` replicas hold it, so a master that dies
   * right after the answer loses nothing acknowledged (Redis replication is asynchronous).
   */
  readonly durability?: 'local' | 'replicated';
  /** How long 'replicated' waits for a replica before the publish is answered 504 (4170; stored on the master, resend with the same identity). */
  readonly replicaTimeoutMs?: number;
  /**
   * How many replicas must confirm under 'replicated' (default 1). With several replicas, only
   * "all of them" also covers a manual failover to a replica that had not yet got the write
   * (docs/operations.md, "Redis topologies").
   */
  readonly replicas?: number;
  /**
   * Redis Cluster only: the address to reach each node at, by the "host:port" the cluster announces
   * (a cluster behind address translation, say). Tests put a proxy in front of one master with it.
   */
  readonly natMap?: Readonly<Record<string, { readonly host: string; readonly port: number }>>;
}

/**
 * Ids assigned by Redis can be lost in a crash or failover (appendfsync everysec loses up to about
 * a second of writes; a replica lags), which would roll `id:counter` back while `id:start` stays, and
 * the next publishes would reuse ids clients already hold. Every connection that assigns ids first
 * advances the counter by this much (ID_GAP_SCRIPT), so ids stay increasing unless more than this
 * many were issued in the lost window (documented in docs/architecture.md, "Redis keys").
 */
export const ID_SAFETY_GAP = 1_000_000;

/**
 * Publish calls on the wire at once (group commit, group-commit.ts). Requests arriving while both
 * are out leave together in the next call: one script run in Redis, one write and one read, instead
 * of one each per request.
 */
const PUBLISH_IN_FLIGHT = 2;
/** Channel creation times a publisher remembers (creation-cache.ts): about 100 bytes each. */
const CREATION_CACHE_MAX = 200_000;
/** Forget a creation time this long before its key expires in Redis (clock skew allowance). */
const CREATION_CACHE_MARGIN_MS = 3600_000;
/** Caps the requests in one call, so one call (and the Redis pause it causes) stays short. */
const MAX_GROUP_REQUESTS = 256;
const DEFAULT_GROUP_FANOUT_BYTES = 16 * 1024 * 1024;

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(what)), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e: unknown) => (clearTimeout(t), reject(e)),
    );
  });
}

/** One request's outcome in PUBLISH_SCRIPT's reply: its mids, its identity's earlier outcome, or why nothing was written. */
type PublishOutcome = ['ok', ...string[]] | ['dup', string, string] | ['err', string];

/** One request's part of the publish script's arguments, and what it sends to subscribers. */
interface PublishCall {
  readonly args: Array<string | number>;
  readonly fanout: number;
}

/** The connections of a process, by the name each gives itself (CLIENT SETNAME); logs and metrics use it. */
type ConnectionRole = 'push-cmd' | 'push-pub' | 'push-sub';

type ScriptRedis = Redis & {
  pushPublish(numKeys: number, ...args: Array<string | number>): Promise<PublishOutcome[]>;
  pushHistory(numKeys: number, ...args: Array<string | number>): Promise<string[]>;
  pushChannelTimes(numKeys: number, ...args: string[]): Promise<string[]>;
  pushPresenceTouch(numKeys: number, ...args: Array<string | number>): Promise<number>;
  pushExpireNotice(numKeys: number, ...args: Array<string | number>): Promise<string[]>;
  pushClaimNonce(numKeys: number, ...args: Array<string | number>): Promise<NonceClaim>;
  pushIdGap(numKeys: number, ...args: Array<string | number>): Promise<number>;
};

export const EXPIRED_REPLY = 'PUSH_CHANNEL_EXPIRED ';
const STALE_REPLY = 'PUSH_AUTH_STALE';
const REPLAY_REPLY = 'PUSH_AUTH_REPLAY';
export const CONFLICT_REPLY = 'PUSH_ID_CONFLICT';

/** The mids of one earlier publish: consecutive counters after `first`'s 10-digit start. */
function consecutiveMids(first: string, count: number): string[] {
  const start = first.slice(0, 10);
  const c0 = BigInt(first.slice(10));
  return Array.from({ length: count }, (_, i) => `${start}${(c0 + BigInt(i)).toString().padStart(16, '0')}`);
}

/**
 * ioredis refuses a command it cannot write (disconnected, offline queue off) with this message:
 * such a publish never reached Redis, so it was certainly not carried out.
 */
const NOT_WRITTEN = /Stream isn't writeable/;
/** Error replies Redis gives before it runs a script at all (a script failing midway may have written; the last five are Cluster redirections and refusals). */
const REFUSED_BEFORE_RUNNING = /^(OOM|BUSY|READONLY|LOADING|MASTERDOWN|NOREPLICAS|MISCONF|NOSCRIPT|NOPERM|MOVED|ASK|TRYAGAIN|CLUSTERDOWN|CROSSSLOT)\b/;

/**
 * Whether a failed publish call may still be carried out by Redis: yes, unless it provably never
 * got there (not written, never sent from the queue) or Redis refused to run it. Unknown when in
 * doubt: a timeout, a connection lost with the command on the wire, a script error midway.
 */
export function outcomeUnknown(err: unknown): boolean {
  if (err instanceof NotSentError) return false;
  if (err instanceof UnansweredError) return true;
  if ((err as { name?: string }).name === 'ReplyError' && REFUSED_BEFORE_RUNNING.test((err as Error).message)) return false;
  return !NOT_WRITTEN.test((err as Error).message ?? '');
}
/** Not a script reply: set here for a request the master stored but no replica confirmed in time. */
export const NOT_REPLICATED = 'PUSH_NOT_REPLICATED';

export function toTimes(out: string[]): ChannelTimes {
  return { now: Number(out[0]), created: out.slice(1).map((c) => (c === '' ? null : Number(c))) };
}

export function createRedisBackend(opts: RedisBackendOptions): Backend {
  const p = opts.keyPrefix;
  const log = opts.log;
  const commandTimeout = opts.commandTimeoutMs ?? 3000;
  // A command in flight when the connection drops is not sent again after reconnect: the caller has
  // already been told 503 (or will be, at the timeout), so a resent publish would store a message
  // its publisher believes failed.
  const target = toTarget(opts.url);
  // A Cluster is served by its own module (redis-cluster-backend.ts): per-slot scripts and sharded
  // pub/sub. Everything below is one Redis (or the master a Sentinel group names).
  if (target.kind === 'cluster') return createRedisClusterBackend({ ...opts, url: target });
  const redis = connectRedis(target, { commandTimeout, connectionName: 'push-cmd', autoResendUnfulfilledCommands: false }) as ScriptRedis;
  redis.on('error', (err: Error) => log.warn({ err: { message: err.message } }, 'redis command connection error'));
  // Everything that assigns ids (publishes, channel_expire notices) goes over its own connection,
  // whose timeout is the publish wait: a publish stuck behind a Redis stall must not make pings,
  // history reads or presence wait that long, nor they the publish. Never resent after a reconnect.
  const publishTimeout = opts.publishTimeoutMs ?? 20_000;
  const pubConn = connectRedis(target, { commandTimeout: publishTimeout, connectionName: 'push-pub', autoResendUnfulfilledCommands: false }) as ScriptRedis;
  pubConn.on('error', (err: Error) => log.warn({ err: { message: err.message } }, 'redis publish connection error'));
  // Every connection is probed for silent stalls (connection-probe.ts); a stalled one is torn
  // down at once and reconnects, so nothing waits on a path that carries nothing.
  const stallMs = opts.pubsubStallMs ?? DEFAULT_PUBSUB_STALL_MS;
  const stallCounts: Record<ConnectionRole, number> = { 'push-cmd': 0, 'push-pub': 0, 'push-sub': 0 };
  const probes = new Set<ConnectionProbe>();
  /** Set by close() (of the backend, or of a broker for its connection): a connection that ends then stays ended. */
  let closed = false;
  const retired = new WeakSet<Redis>();
  const verifyMs = probeTimings(stallMs).verifyMs;
  const check = (id: string | null): Promise<Verdict> => checkHeld((extra) => connectRedis(target, extra), id, verifyMs);
  /**
   * Probes `conn` whenever it is ready. `verified`: a suspected connection is checked first (the
   * command and publish connections, where Redis may hold a command); a subscriber connection runs
   * no command Redis could hold, so its suspicion is its stall. On a stall: one log line naming the
   * connection (and its `context`: a subscriber's channel count), the count, and `tearDown`.
   */
  const watch = (conn: Redis, role: ConnectionRole, verified: boolean, tearDown: () => void, context: () => Record<string, unknown> = () => ({})): ConnectionProbe => {
    let clientId: string | null = null;
    const probe = new ConnectionProbe(
      { ping: () => conn.ping() },
      {
        stallMs,
        ...(verified ? { verify: () => check(clientId) } : {}),
        onStall: (silentMs) => {
          stallCounts[role]++;
          log.warn({ connection: role, silentMs, ...context() }, role === 'push-sub' ? 'subscriber connection stalled (open but silent); reconnecting' : 'redis connection stalled (open but silent); reconnecting');
          tearDown();
        },
      },
    );
    probes.add(probe);
    // ioredis gives a connection up ('end') when a reconnect it is in the middle of is interrupted:
    // with Sentinel, the failover detector's disconnect on +switch-master makes the connector's
    // pending connect fail ("Connection is closed."), which a torn-down connection, reconnecting
    // towards a master cut off the network, is likely to be in. Nothing else would bring it back.
    conn.on('end', () => {
      if (closed || retired.has(conn)) return;
      log.warn({ connection: role }, 'redis connection given up by the client library; connecting again');
      setTimeout(() => {
        if (!closed && !retired.has(conn) && conn.status === 'end') conn.connect().catch(() => {});
      }, 500).unref();
    });
    conn.on('ready', () => {
      clientId = null;
      // Any byte read counts as life: replies, messages, PING answers.
      conn.stream.on('data', () => probe.data());
      // Sent before anything else on a fresh connection (a subscriber is not subscribed yet).
      if (verified) conn.client('ID').then((id) => (clientId = String(id)), () => {});
      probe.start();
    });
    conn.on('close', () => probe.stop());
    return probe;
  };
  const tearDown = (conn: Redis, role: ConnectionRole): void => tearDownStalled(conn, role);
  watch(redis, 'push-cmd', true, () => tearDown(redis, 'push-cmd'));
  watch(pubConn, 'push-pub', true, () => tearDown(pubConn, 'push-pub'));
  pubConn.defineCommand('pushPublish', { lua: PUBLISH_SCRIPT });
  pubConn.defineCommand('pushExpireNotice', { lua: EXPIRE_NOTICE_SCRIPT });
  pubConn.defineCommand('pushIdGap', { lua: ID_GAP_SCRIPT });
  // The offline queue is off (fail fast during outages), so commands issued before the very first
  // connect completes would fail too: those, and only those, wait for it.
  const readiness = (conn: Redis): (() => Promise<void>) => {
    let everReady = false;
    const firstReady = new Promise<void>((resolve) => conn.once('ready', () => ((everReady = true), resolve())));
    return async () => {
      if (!everReady) await withTimeout(firstReady, commandTimeout, 'redis not connected yet');
    };
  };
  const connected = readiness(redis);
  const pubConnected = readiness(pubConn);
  // The id safety gap (ID_SAFETY_GAP): taken once per connection of the publish connection, before
  // the first id is assigned on it. `epoch` counts connections; the gap is valid only for its epoch.
  const counterKey = `${p}id:counter`;
  const gapSize = opts.idSafetyGap ?? ID_SAFETY_GAP;
  let epoch = 0;
  let gapEpoch = -1;
  let gapping: Promise<void> | null = null;
  const takeGap = (): Promise<void> => {
    if (gapEpoch === epoch) return Promise.resolve();
    if (gapping === null) {
      const e = epoch;
      gapping = pubConn
        .pushIdGap(2, `${p}id:start`, counterKey, gapSize)
        .then(() => {
          if (e === epoch) gapEpoch = e;
        })
        .finally(() => (gapping = null));
    }
    return gapping;
  };
  const onPubClose = new Set<(err: Error) => void>();
  pubConn.on('close', () => {
    epoch++;
    for (const fail of [...onPubClose]) fail(new Error('publish connection closed before the answer arrived'));
    onPubClose.clear();
  });
  pubConn.on('ready', () => void takeGap().catch((err: Error) => log.warn({ err: { message: err.message } }, 'id safety gap not taken yet; retried before the next publish')));
  /** Resolves once ids may be assigned on the current connection; fails fast while disconnected. */
  const idsReady = async (): Promise<void> => {
    await pubConnected();
    // Closing or reconnecting (a torn-down connection's close arrives a tick later): nothing can be sent on it.
    if (pubConn.status !== 'ready' || pubConn.stream.destroyed) throw new Error(`the Redis publish connection (push-pub) is not connected (${pubConn.status})`);
    if (gapEpoch !== epoch) await takeGap();
  };
  redis.defineCommand('pushHistory', { lua: HISTORY_SCRIPT });
  redis.defineCommand('pushChannelTimes', { lua: CHANNEL_TIMES_SCRIPT });
  redis.defineCommand('pushPresenceTouch', { lua: PRESENCE_TOUCH_SCRIPT });
  redis.defineCommand('pushClaimNonce', { lua: CLAIM_NONCE_SCRIPT });
  const writeMs = opts.channelWriteMs ?? DEFAULT_CHANNEL_WRITE_MS;
  const readMs = opts.channelReadMs ?? DEFAULT_CHANNEL_READ_MS;
  const keepS = channelRetentionS(readMs);
  const createdKey = (ch: string): string => `${p}ch:{${ch}}`;
  const creations = createCreationCache({ max: CREATION_CACHE_MAX, retentionMs: keepS * 1000, marginMs: CREATION_CACHE_MARGIN_MS });
  /**
   * Appends the publish script's "known creation times" to one request's arguments: each plain
   * channel (derived keys such as "pub:<id>" have no lifecycle) whose creation time this process
   * remembers, once.
   */
  const knownCreations = (messages: readonly NewMessage[], args: Array<string | number>): void => {
    const at = args.length;
    args.push(0);
    const now = Date.now();
    let seen: Set<string> | null = null;
    for (const m of messages)
      for (const ch of m.channels) {
        if (ch.includes(':')) continue;
        const created = creations.get(ch, now);
        if (created === undefined) continue;
        if (messages.length > 1 || m.channels.length > 1) {
          seen ??= new Set();
          if (seen.has(ch)) continue;
          seen.add(ch);
        }
        args.push(ch, created);
      }
    args[at] = (args.length - at - 1) / 2;
  };
  const startKey = `${p}id:start`;
  const replicaTimeout = opts.replicaTimeoutMs ?? 1000;
  const wanted = opts.replicas ?? 1;
  const publishes = createGroupCommit<PublishCall, PublishOutcome>(
    (requests) => {
      const argv: Array<string | number> = [p, opts.historyLimit, writeMs, keepS, requests.length];
      for (const r of requests) for (const a of r.args) argv.push(a);
      // A call on the wire when the connection closes is never answered (ioredis drops it without
      // resending, autoResendUnfulfilledCommands is off): settle it at once as lost, outcome unknown.
      return new Promise<PublishOutcome[]>((resolve, reject) => {
        onPubClose.add(reject);
        const run = pubConn.pushPublish(2, startKey, counterKey, ...argv);
        // With replicated durability, WAIT leaves on the same connection right behind the script
        // (one round trip), so it covers the script's writes. It blocks the publish connection
        // until a replica confirms or the timeout passes (docs/operations.md).
        const done =
          opts.durability !== 'replicated'
            ? run
            : Promise.all([run, pubConn.wait(wanted, replicaTimeout)]).then(([out, replicas]) =>
                replicas >= wanted ? out : out.map((o): PublishOutcome => (o[0] === 'ok' ? ['err', NOT_REPLICATED] : o)),
              );
        done.then(resolve, reject).finally(() => onPubClose.delete(reject));
      });
    },
    { maxInFlight: PUBLISH_IN_FLIGHT, maxItems: MAX_GROUP_REQUESTS, maxWeight: opts.maxGroupFanoutBytes ?? DEFAULT_GROUP_FANOUT_BYTES, weight: (r) => r.fanout, timeoutMs: publishTimeout },
  );
  const brokers = new Set<RedisBroker>();

  class RedisBroker implements Broker {
    private handler: MessageHandler = () => {};
    private resync: ResyncHandlers[] = [];
    private readonly active = new Set<string>();
    private readonly sub: Redis;
    private connectedOnce = false;
    private readonly firstReady: Promise<void>;
    private readonly topicPrefix = `${p}c:{`;
    /** Carries its subscriptions: ready and, after a reconnect, every channel resubscribed. */
    private up = false;
    /** When the subscription went down (for the recovery log line); null while up. */
    private downSince: number | null = Date.now();
    constructor() {
      // Our own resubscription on reconnect (instead of ioredis' autoResubscribe) lets us know when
      // it has completed, and only then ask the listener to refill from history.
      this.sub = connectRedis(target, { autoResubscribe: false, connectionName: 'push-sub', commandTimeout });
      this.sub.on('error', (err: Error) => log.warn({ err: { message: err.message } }, 'redis subscriber connection error'));
      // Silent stalls (open but carrying nothing) are found by the probe; errors and closes by
      // ioredis. Registered first: its 'ready' handler runs before the resubscription below.
      this.probe = watch(this.sub, 'push-sub', false, () => this.stalled(), () => ({ channels: this.active.size }));
      let markReady: () => void = () => {};
      this.firstReady = new Promise((resolve) => (markReady = resolve));
      this.sub.on('close', () => this.markDown());
      this.sub.on('ready', () => {
        if (!this.connectedOnce) {
          this.connectedOnce = true;
          this.markUp();
          markReady();
          return;
        }
        // Before the first SUBSCRIBE leaves: its reply and the first messages can arrive in one read.
        for (const h of this.resync) h.lost();
        void this.resubscribeAll();
      });
      this.sub.on('messageBuffer', (topic: Buffer, payload: Buffer) => this.onMessage(topic, payload));
    }
    private markDown(): void {
      this.up = false;
      this.downSince ??= Date.now();
    }
    private markUp(): void {
      this.up = true;
      this.downSince = null;
    }
    private readonly probe: ConnectionProbe;
    private stalls = 0;
    /**
     * The connection is open but has carried nothing for the stall budget: drop it and reconnect.
     * ioredis then reconnects, and the usual path (lost, resubscribe, restored, refill from
     * history) brings every channel back with nothing lost. One log line per stall, not per channel.
     */
    private stalled(): void {
      this.stalls++;
      this.markDown();
      // Not flushed: a SUBSCRIBE on it is sent again after the reconnect (autoResendUnfulfilledCommands).
      this.sub.stream.destroy();
    }
    private lastMid = '';
    private lastMsg: StoredMessage | null = null;
    private onMessage(topic: Buffer, payload: Buffer): void {
      const t = topic.toString('latin1');
      if (!t.startsWith(this.topicPrefix)) return;
      const channel = t.slice(this.topicPrefix.length, -1);
      // A message published to several channels arrives once per channel, back to back, as the
      // same record (the publish script is atomic): decode it once. The record starts with its mid.
      const mid = payload.toString('latin1', 0, 26);
      let msg = mid === this.lastMid ? this.lastMsg : null;
      if (msg === null) {
        msg = decodeRecord(payload.toString('utf8'));
        if (msg === null) {
          log.warn({ topic: t }, 'dropped malformed pub/sub record');
          return;
        }
        this.lastMid = mid;
        this.lastMsg = msg;
      }
      this.handler(channel, msg);
    }
    private async resubscribeAll(): Promise<void> {
      const all = [...this.active];
      try {
        for (let i = 0; i < all.length; i += 512) await this.sub.subscribe(...all.slice(i, i + 512).map((c) => this.topic(c)));
        const downMs = this.downSince === null ? 0 : Date.now() - this.downSince;
        this.markUp();
        log.info({ connection: 'push-sub', channels: all.length, downMs }, 'resubscribed after reconnect; refilling from history');
        for (const h of this.resync) h.restored();
      } catch (err) {
        log.warn({ err: { message: (err as Error).message } }, 'resubscribe failed; will retry on next reconnect');
        this.sub.disconnect(true);
      }
    }
    private topic(channel: string): string {
      return `${this.topicPrefix}${channel}}`;
    }
    setHandler(h: MessageHandler): void {
      this.handler = h;
    }
    onResync(h: ResyncHandlers): void {
      this.resync.push(h);
    }
    /**
     * Subscribe requests made in the same event-loop turn (a reconnect storm opens thousands of
     * sockets at once) are merged into SUBSCRIBE commands of up to 512 channels each.
     */
    subscribe(channels: readonly string[]): Promise<void> {
      if (channels.length === 0) return Promise.resolve();
      return new Promise((resolve, reject) => {
        this.queued.push({ channels, resolve, reject });
        if (this.queued.length === 1) setImmediate(() => void this.flushSubscribes());
      });
    }
    private queued: Array<{ channels: readonly string[]; resolve: () => void; reject: (err: unknown) => void }> = [];
    private async flushSubscribes(): Promise<void> {
      const batch = this.queued;
      this.queued = [];
      const all = [...new Set(batch.flatMap((b) => b.channels))];
      for (const c of all) this.active.add(c);
      try {
        // Only the very first connect is waited for; later outages fail fast (offline queue is off).
        if (!this.connectedOnce) await withTimeout(this.firstReady, commandTimeout, 'redis subscriber not ready');
        for (let i = 0; i < all.length; i += 512) await this.sub.subscribe(...all.slice(i, i + 512).map((c) => this.topic(c)));
        for (const b of batch) b.resolve();
      } catch (err) {
        for (const c of all) this.active.delete(c);
        for (const b of batch) b.reject(err);
      }
    }
    async unsubscribe(channels: readonly string[]): Promise<void> {
      if (channels.length === 0) return;
      for (const c of channels) this.active.delete(c);
      if (this.sub.status !== 'ready') return; // the next reconnect only resubscribes what is active
      for (let i = 0; i < channels.length; i += 512) await this.sub.unsubscribe(...channels.slice(i, i + 512).map((c) => this.topic(c)));
    }
    health(): BrokerHealth {
      return { connections: 1, down: this.up ? 0 : 1, stalls: this.stalls };
    }
    async close(): Promise<void> {
      brokers.delete(this);
      this.probe.stop();
      probes.delete(this.probe);
      retired.add(this.sub);
      this.sub.disconnect(false);
    }
  }

  return {
    kind: 'redis',
    store: {
      async publish(messages: readonly NewMessage[], sender: SenderInfo, identity?: PublishIdentity): Promise<PublishedIds> {
        await idsReady();
        const args: Array<string | number> =
          identity === undefined
            ? ['', '', '', '', '', messages.length]
            : 'nonce' in identity
              ? [`${p}n:${identity.keyId}:${identity.nonce}`, publishFingerprint(messages, sender), nonceWindowS(identity.maxSkewS), identity.timestamp, identity.maxSkewS, messages.length]
              : [`${p}q:${identity.scope}:${identity.requestId}`, publishFingerprint(messages, sender), identity.windowS, '', '', messages.length];
        knownCreations(messages, args);
        for (const m of messages) args.push(m.ttl, encodeRecordTail(m.ttl, m.type, sender, m.body), m.channels.length, ...m.channels);
        let out: PublishOutcome;
        try {
          out = await publishes.submit({ args, fanout: fanoutBytes(messages) });
        } catch (err) {
          // "Not stored" only when the script provably did not run; otherwise the caller must say
          // the outcome is unknown (a retry with the same identity is then safe).
          if (outcomeUnknown(err)) throw new PushError(Errors.OUTCOME_UNKNOWN, `${(err as Error).message}.`);
          throw err;
        }
        if (out[0] === 'ok') {
          const mids = out.slice(1, 1 + messages.length);
          for (let i = 1 + messages.length; i + 1 < out.length; i += 2) creations.set(out[i] as string, Number(out[i + 1]));
          return mids;
        }
        if (out[0] === 'dup') return Object.assign(consecutiveMids(out[1], Number(out[2])), { replayed: true as const });
        const reason = out[1];
        if (reason === STALE_REPLY) throw new PushError(Errors.AUTH_STALE);
        if (reason === REPLAY_REPLY) throw new PushError(Errors.AUTH_REPLAY);
        if (reason === CONFLICT_REPLY) throw new PushError(Errors.REQUEST_ID_CONFLICT);
        if (reason === NOT_REPLICATED) throw new PushError(Errors.NOT_REPLICATED);
        if (reason.startsWith(EXPIRED_REPLY)) throw new PushError(Errors.CHANNEL_EXPIRED, `Expired: ${reason.slice(EXPIRED_REPLY.length).trim().split(' ').join(', ')}.`);
        throw new Error(`publish script: unexpected reply ${reason}`);
      },
      async history(channels: readonly string[], after: string | null): Promise<HistoryResult> {
        await connected();
        const keys = channels.map((c) => `${p}h:{${c}}`);
        const out = await redis.pushHistory(keys.length, ...keys, p, after ?? '', opts.historyLimit);
        const n = channels.length;
        const messages: StoredMessage[] = [];
        const first = 3 + 3 * n;
        for (let i = first; i < out.length; i++) {
          const msg = decodeRecord(out[i] as string);
          if (msg !== null) messages.push(msg);
        }
        const gaps = channels.flatMap((channel, k) => historyGap(channel, out[2 + n + k] ?? '', out[2 + 2 * n + k] ?? ''));
        const newest = out[0] ?? '';
        const floor = out[2 + 3 * n] ?? '';
        return { messages, gaps, newestMid: newest === '' ? null : newest, floorMid: floor === '' ? null : floor, channelTimes: toTimes(out.slice(1, 2 + n)) };
      },
      async ping(): Promise<void> {
        // Ready means a publish can be carried out too: the publish connection reconnects on its
        // own schedule, and ids may be assigned on it only once it has taken its id safety gap.
        // Bounded by the stall budget, so a silent connection makes /readyz answer 503 naming it
        // within that time rather than hang until its probe has replaced it.
        const within = (p: Promise<unknown>, what: string): Promise<unknown> => withTimeout(p, stallMs, `the ${what} did not answer within ${stallMs} ms`);
        await Promise.all([within(connected().then(() => redis.ping()), 'Redis command connection (push-cmd)'), within(idsReady(), 'Redis publish connection (push-pub)')]);
      },
    },
    presence: {
      async touch(channels: readonly string[]): Promise<void> {
        if (channels.length === 0) return;
        await connected();
        const seen = channels.filter(isLastSeenKey).map((c) => `${p}ls:{${c}}`);
        await redis.pushPresenceTouch(channels.length + seen.length, ...channels.map((c) => `${p}o:{${c}}`), ...seen, opts.onlineTtlSeconds, channels.length, LAST_SEEN_KEEP_S);
      },
      async lastSeen(channels: readonly string[]): Promise<Array<number | null>> {
        const keys = channels.filter(isLastSeenKey);
        if (keys.length === 0) return channels.map(() => null);
        await connected();
        const values = await redis.mget(...keys.map((c) => `${p}ls:{${c}}`));
        const byKey = new Map(keys.map((c, i) => [c, values[i] ?? null]));
        return channels.map((c) => {
          const v = byKey.get(c) ?? null;
          return v === null ? null : Number(v);
        });
      },
      async online(channels: readonly string[]): Promise<boolean[]> {
        if (channels.length === 0) return [];
        await connected();
        const pipe = redis.pipeline();
        for (const c of channels) pipe.exists(`${p}o:{${c}}`);
        const res = (await pipe.exec()) ?? [];
        return res.map(([err, n]) => {
          if (err) throw err;
          return n === 1;
        });
      },
    },
    channels: {
      async create(channels: readonly string[]): Promise<ChannelTimes> {
        await connected();
        return toTimes(await redis.pushChannelTimes(channels.length, ...channels.map(createdKey), '1', String(keepS)));
      },
      async times(channels: readonly string[]): Promise<ChannelTimes> {
        await connected();
        return toTimes(await redis.pushChannelTimes(channels.length, ...channels.map(createdKey), '0', String(keepS)));
      },
      async expireNotice(channel: string, body: string): Promise<ExpireNotice> {
        await idsReady();
        // The record tail without its leading expiry field: the script computes that TTL itself.
        const tail = encodeRecordTail(0, 'pull_channel_expire', BACKEND_SENDER, body).slice(2);
        const keys = [`${p}id:start`, counterKey, createdKey(channel), `${p}x:{${channel}}`, `${p}h:{${channel}}`];
        const out = await pubConn.pushExpireNotice(keys.length, ...keys, p, channel, writeMs, readMs, keepS, opts.historyLimit, tail);
        if (out[0] === 'early') return { kind: 'early', inMs: Number(out[1]) };
        if (out[0] === 'stored') {
          const message = decodeRecord(out[1] as string);
          if (message !== null) return { kind: 'stored', message };
        }
        return { kind: 'none' };
      },
    },
    replay: {
      async claim(keyId: string, nonce: string, timestamp: number, maxSkewS: number): Promise<NonceClaim> {
        await connected();
        return redis.pushClaimNonce(1, `${p}n:${keyId}:${nonce}`, timestamp, maxSkewS);
      },
    },
    stats: redisStatsRegistry(redis, p, connected, opts.statsStaleMs),
    clients: redisClientRegistry(redis, p, connected),
    createBroker(): Broker {
      const b = new RedisBroker();
      brokers.add(b);
      return b;
    },
    connectionStalls(): Readonly<Record<string, number>> {
      return { ...stallCounts };
    },
    async close(): Promise<void> {
      closed = true;
      for (const b of [...brokers]) await b.close();
      for (const probe of probes) probe.stop();
      redis.disconnect(false);
      pubConn.disconnect(false);
    },
  };
}
