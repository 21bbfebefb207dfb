import { BACKEND_SENDER, Errors, PushError, encodeRecordTail, decodeRecord, formatMid, ORIGIN_MID, publishFingerprint, timestampFresh, type NewMessage, type SenderInfo, type StoredMessage } from '@push/protocol';
import { DEFAULT_CHANNEL_READ_MS, DEFAULT_CHANNEL_WRITE_MS, LAST_SEEN_KEEP_S, channelRetentionS, isLastSeenKey, type Backend, type BackendOptions, type Broker, type BrokerHealth, type HistoryGap, type HistoryResult, type MessageHandler, type ProcessStats, type PublishedIds, type RegisteredClient } from './types.js';
import { nonceWindowS, type ChannelTimes, type ExpireNotice, type NonceClaim, type PublishIdentity } from './lifecycle-types.js';
import { historyGap } from './history-gap.js';

/** How often (by the backend's clock) expired entries are swept, at the next call after it is due. */
const SWEEP_INTERVAL_MS = 5000;

/** Entry counts of the in-memory structures, for tests that check nothing outlives its TTL. */
export interface MemorySizes {
  readonly records: number;
  readonly lists: number;
  readonly online: number;
  readonly created: number;
  readonly notices: number;
  readonly nonces: number;
  readonly stats: number;
}

export interface MemoryBackend extends Backend {
  readonly kind: 'memory';
  sizes(): MemorySizes;
}

/**
 * In-process backend: unit tests, and the documented single-process mode (PUSH_BACKEND=memory),
 * where one process is publisher and listener at once. Same semantics as the Redis backend
 * (the conformance suite checks both), including bounded memory: a record lives while a channel
 * list holds it and at most its TTL, lists and presence vanish with their TTL, like Redis keys.
 * Expired entries are swept every few seconds from within calls, so an idle process holds still.
 * Nothing survives a restart.
 */
export function createMemoryBackend(opts: BackendOptions, now: () => number = Date.now): MemoryBackend {
  const startSeconds = Math.floor(now() / 1000);
  let counter = 0;
  /** mid -> message, expiry, and how many channel list entries refer to it (`r:<mid>` in Redis). */
  const records = new Map<string, { msg: StoredMessage; expiresAt: number; refs: number }>();
  /**
   * channel -> mids oldest first, when the list expires (its longest-lived entry), and the newest
   * mid the cap pushed out (`g:{ch}` in Redis; null = none), which tells a resume cursor older than
   * it that it missed messages.
   */
  const lists = new Map<string, { mids: string[]; expiresAt: number; mark: string | null }>();
  const brokers = new Set<MemoryBroker>();
  const online = new Map<string, number>();
  /** User key -> last touch (ms); entries older than LAST_SEEN_KEEP_S answer null. */
  const seen = new Map<string, number>();
  const stats = new Map<string, ProcessStats>();
  const clients = new Map<string, RegisteredClient>();
  const writeMs = opts.channelWriteMs ?? DEFAULT_CHANNEL_WRITE_MS;
  const readMs = opts.channelReadMs ?? DEFAULT_CHANNEL_READ_MS;
  const keepMs = channelRetentionS(readMs) * 1000;
  /** Channel -> creation time and when that record is forgotten (same retention as in Redis). */
  const created = new Map<string, { at: number; until: number }>();
  const notices = new Map<string, string>();
  /**
   * Identity key ("n:<keyId>:<nonce>" or "q:<scope>:<id>") -> until when it is remembered, and the
   * publish carried out under it (null: a nonce spent by a request that was not a publish).
   */
  const nonces = new Map<string, { until: number; outcome: { fingerprint: string; mids: string[] } | null }>();
  let nextSweep = now() + SWEEP_INTERVAL_MS;

  /** The current time, sweeping expired entries first when a sweep is due. */
  function clock(): number {
    const t = now();
    if (t >= nextSweep) {
      nextSweep = t + SWEEP_INTERVAL_MS;
      for (const [k, r] of records) if (r.expiresAt <= t) records.delete(k);
      for (const [k, l] of lists) if (l.expiresAt <= t) lists.delete(k);
      for (const [k, until] of online) if (until <= t) online.delete(k);
      for (const [k, c] of created) {
        if (c.until > t) continue;
        created.delete(k);
        notices.delete(k);
      }
      for (const [k, n] of nonces) if (n.until <= t) nonces.delete(k);
      for (const [k, s] of stats) if (t - s.date > opts.statsStaleMs) stats.delete(k);
    }
    return t;
  }
  function release(mids: readonly string[]): void {
    for (const mid of mids) {
      const r = records.get(mid);
      if (r !== undefined && --r.refs <= 0) records.delete(mid);
    }
  }
  /** Adds a stored message to a channel list; entries beyond the cap release their records. */
  function append(ch: string, mid: string, expiresAt: number, t: number): void {
    let list = lists.get(ch);
    if (list === undefined || list.expiresAt <= t) {
      if (list !== undefined) release(list.mids);
      list = { mids: [], expiresAt, mark: null };
      lists.set(ch, list);
    }
    list.mids.push(mid);
    if (expiresAt > list.expiresAt) list.expiresAt = expiresAt;
    if (list.mids.length > opts.historyLimit) {
      const out = list.mids.splice(0, list.mids.length - opts.historyLimit);
      release(out);
      list.mark = out[out.length - 1] as string;
    }
  }
  function store(msg: StoredMessage, ttlS: number, channels: readonly string[], t: number): void {
    const expiresAt = t + ttlS * 1000;
    records.set(msg.mid, { msg, expiresAt, refs: channels.length });
    for (const ch of channels) append(ch, msg.mid, expiresAt, t);
  }

  function createdAt(ch: string, t: number): number | null {
    const c = created.get(ch);
    if (c === undefined) return null;
    if (c.until <= t) {
      created.delete(ch);
      notices.delete(ch);
      return null;
    }
    return c.at;
  }
  function recordCreation(ch: string, t: number): void {
    if (createdAt(ch, t) === null) created.set(ch, { at: t, until: t + keepMs });
  }
  /** Only plain channel ids have a lifecycle; derived keys (v4 "pub:<id>") follow their pair. */
  function hasLifecycle(ch: string): boolean {
    return !ch.includes(':');
  }
  function deliver(ch: string, msg: StoredMessage): void {
    for (const b of brokers) if (b.channels.has(ch)) b.handler(ch, msg);
  }

  class MemoryBroker implements Broker {
    handler: MessageHandler = () => {};
    readonly channels = new Set<string>();
    setHandler(h: MessageHandler): void {
      this.handler = h;
    }
    onResync(): void {
      // An in-process broker never loses its subscription, so it never calls.
    }
    async subscribe(channels: readonly string[]): Promise<void> {
      for (const c of channels) this.channels.add(c);
    }
    async unsubscribe(channels: readonly string[]): Promise<void> {
      for (const c of channels) this.channels.delete(c);
    }
    health(): BrokerHealth {
      // In-process delivery has no connection that could stall.
      return { connections: 1, down: 0, stalls: 0 };
    }
    async close(): Promise<void> {
      brokers.delete(this);
    }
  }

  function alive(mid: string, t: number): StoredMessage | null {
    const r = records.get(mid);
    if (r === undefined) return null;
    if (r.expiresAt <= t) {
      records.delete(mid);
      return null;
    }
    return r.msg;
  }

  return {
    kind: 'memory',
    store: {
      async publish(messages: readonly NewMessage[], sender: SenderInfo, identity?: PublishIdentity): Promise<PublishedIds> {
        const t = clock();
        const out: string[] = [];
        // Same order as the Redis script: the identity's earlier outcome (the same publish again,
        // a different one, or a nonce spent otherwise), a stale timestamp, an expired channel; the
        // outcome is recorded only when the publish goes ahead.
        const idKey = identity === undefined ? null : 'nonce' in identity ? `n:${identity.keyId}:${identity.nonce}` : `q:${identity.scope}:${identity.requestId}`;
        const fingerprint = identity === undefined ? '' : publishFingerprint(messages, sender);
        if (identity !== undefined && idKey !== null) {
          const prev = nonces.get(idKey);
          if (prev !== undefined && prev.until > t) {
            if (prev.outcome === null) throw new PushError(Errors.AUTH_REPLAY);
            if (prev.outcome.fingerprint !== fingerprint) throw new PushError(Errors.REQUEST_ID_CONFLICT);
            return Object.assign([...prev.outcome.mids], { replayed: true as const });
          }
          if ('nonce' in identity && !timestampFresh(identity.timestamp, Math.floor(t / 1000), identity.maxSkewS)) throw new PushError(Errors.AUTH_STALE);
        }
        const expired = new Set<string>();
        for (const m of messages) for (const ch of m.channels) {
          if (!hasLifecycle(ch)) continue;
          const c = createdAt(ch, t);
          if (c !== null && t - c >= writeMs) expired.add(ch);
        }
        if (expired.size > 0) throw new PushError(Errors.CHANNEL_EXPIRED, `Expired: ${[...expired].join(', ')}.`);
        for (const m of messages) for (const ch of m.channels) if (hasLifecycle(ch)) recordCreation(ch, t);
        // Build every record first, then deliver: the batch is all-or-nothing like the Redis script.
        const built = messages.map((m) => {
          counter += 1;
          const mid = formatMid(startSeconds, counter);
          const msg = decodeRecord(`${mid}\t${t}\t${encodeRecordTail(m.ttl, m.type, sender, m.body)}`) as StoredMessage;
          return { m, msg };
        });
        for (const { m, msg } of built) {
          if (m.ttl > 0) store(msg, m.ttl, m.channels, t);
          for (const ch of m.channels) deliver(ch, msg);
          out.push(msg.mid);
        }
        if (identity !== undefined && idKey !== null) {
          const windowS = 'nonce' in identity ? nonceWindowS(identity.maxSkewS) : identity.windowS;
          nonces.set(idKey, { until: t + windowS * 1000, outcome: { fingerprint, mids: [...out] } });
        }
        return out;
      },
      async history(channels: readonly string[], after: string | null): Promise<HistoryResult> {
        const t = clock();
        const found = new Map<string, StoredMessage>();
        const gaps: HistoryGap[] = [];
        let newestMid: string | null = null;
        for (const ch of channels) {
          const list = lists.get(ch);
          // An expired list is gone in Redis, gap mark and all.
          if (list === undefined || list.expiresAt <= t) continue;
          let expired = '';
          for (const mid of list.mids) {
            const msg = alive(mid, t);
            if (msg === null) {
              if (after !== null && mid > after && mid > expired) expired = mid;
              continue;
            }
            if (newestMid === null || mid > newestMid) newestMid = mid;
            if (after !== null && mid > after) found.set(mid, msg);
          }
          const mark = after !== null && list.mark !== null && list.mark > after ? list.mark : '';
          gaps.push(...historyGap(ch, mark, expired));
        }
        const messages = [...found.values()].sort((a, b) => (a.mid < b.mid ? -1 : 1));
        const floorMid = newestMid !== null ? null : counter > 0 ? formatMid(startSeconds, counter) : ORIGIN_MID;
        return { messages, gaps, newestMid, floorMid, channelTimes: { now: t, created: channels.map((ch) => createdAt(ch, t)) } };
      },
      async ping(): Promise<void> {},
    },
    presence: {
      async touch(channels: readonly string[]): Promise<void> {
        const t = clock();
        const until = t + opts.onlineTtlSeconds * 1000;
        for (const c of channels) {
          online.set(c, until);
          if (isLastSeenKey(c)) seen.set(c, t);
        }
      },
      async online(channels: readonly string[]): Promise<boolean[]> {
        const t = clock();
        return channels.map((c) => (online.get(c) ?? 0) > t);
      },
      async lastSeen(channels: readonly string[]): Promise<Array<number | null>> {
        const t = clock();
        return channels.map((c) => {
          const at = seen.get(c);
          return at !== undefined && t - at < LAST_SEEN_KEEP_S * 1000 ? at : null;
        });
      },
    },
    channels: {
      async create(channels: readonly string[]): Promise<ChannelTimes> {
        const t = clock();
        for (const ch of channels) recordCreation(ch, t);
        return { now: t, created: channels.map((ch) => createdAt(ch, t)) };
      },
      async times(channels: readonly string[]): Promise<ChannelTimes> {
        const t = clock();
        return { now: t, created: channels.map((ch) => createdAt(ch, t)) };
      },
      async expireNotice(channel: string, body: string): Promise<ExpireNotice> {
        const t = clock();
        const c = createdAt(channel, t);
        if (c === null) return { kind: 'none' };
        const age = t - c;
        if (age < writeMs) return { kind: 'early', inMs: writeMs - age };
        // Past the read window there is nothing to read: not even a notice whose whole-second TTL outlives it.
        if (age >= readMs) return { kind: 'none' };
        const existing = notices.get(channel);
        if (existing !== undefined) {
          const msg = alive(existing, t);
          return msg === null ? { kind: 'none' } : { kind: 'stored', message: msg };
        }
        const ttl = Math.ceil((readMs - age) / 1000);
        counter += 1;
        const mid = formatMid(startSeconds, counter);
        const msg = decodeRecord(`${mid}\t${t}\t${encodeRecordTail(ttl, 'pull_channel_expire', BACKEND_SENDER, body)}`) as StoredMessage;
        store(msg, ttl, [channel], t);
        notices.set(channel, mid);
        deliver(channel, msg);
        return { kind: 'stored', message: msg };
      },
    },
    replay: {
      async claim(keyId: string, nonce: string, timestamp: number, maxSkewS: number): Promise<NonceClaim> {
        const t = clock();
        if (!timestampFresh(timestamp, Math.floor(t / 1000), maxSkewS)) return 'stale';
        const key = `n:${keyId}:${nonce}`;
        const prev = nonces.get(key);
        if (prev !== undefined && prev.until > t) return 'replay';
        nonces.set(key, { until: t + nonceWindowS(maxSkewS) * 1000, outcome: null });
        return 'ok';
      },
    },
    stats: {
      async report(s: ProcessStats): Promise<void> {
        clock();
        stats.set(s.processUniqueId, s);
      },
      async list(): Promise<ProcessStats[]> {
        const t = clock();
        return [...stats.values()].filter((s) => t - s.date <= opts.statsStaleMs);
      },
      async remove(id: string): Promise<void> {
        stats.delete(id);
      },
    },
    clients: {
      async add(client: RegisteredClient) {
        const existing = clients.get(client.id);
        if (existing !== undefined) return { added: false, client: existing };
        clients.set(client.id, client);
        return { added: true, client };
      },
      async get(id: string) {
        return clients.get(id) ?? null;
      },
      async list() {
        return [...clients.values()].sort((a, b) => a.id.localeCompare(b.id));
      },
      async remove(id: string) {
        return clients.delete(id);
      },
    },
    createBroker(): Broker {
      const b = new MemoryBroker();
      brokers.add(b);
      return b;
    },
    connectionStalls(): Readonly<Record<string, number>> {
      return {};
    },
    async close(): Promise<void> {
      brokers.clear();
    },
    sizes(): MemorySizes {
      return { records: records.size, lists: lists.size, online: online.size, created: created.size, notices: notices.size, nonces: nonces.size, stats: stats.size };
    },
  };
}
