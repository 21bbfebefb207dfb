import { BACKEND_SENDER, Errors, PushError, encodeRecordTail, decodeRecord, formatMid, timestampFresh, type NewMessage, type SenderInfo, type StoredMessage } from '@push/protocol';
import { DEFAULT_CHANNEL_READ_MS, DEFAULT_CHANNEL_WRITE_MS, channelRetentionS, type Backend, type BackendOptions, type Broker, type HistoryResult, type MessageHandler, type ProcessStats } from './types.js';
import type { ChannelTimes, ExpireNotice, NonceClaim } from './lifecycle-types.js';

/**
 * In-process backend: unit tests, and the documented single-process mode (PUSH_BACKEND=memory),
 * where one process is publisher and listener at once. Same semantics as the Redis backend
 * (the conformance suite checks both); nothing survives a restart.
 */
export function createMemoryBackend(opts: BackendOptions, now: () => number = Date.now): Backend {
  const startSeconds = Math.floor(now() / 1000);
  let counter = 0;
  const records = new Map<string, { msg: StoredMessage; expiresAt: number }>();
  const lists = new Map<string, string[]>();
  const brokers = new Set<MemoryBroker>();
  const online = new Map<string, number>();
  const stats = new Map<string, ProcessStats>();
  const writeMs = opts.channelWriteMs ?? DEFAULT_CHANNEL_WRITE_MS;
  const readMs = opts.channelReadMs ?? DEFAULT_CHANNEL_READ_MS;
  const keepMs = channelRetentionS(readMs) * 1000;
  /** Channel -> creation time and when that record is forgotten (same retention as in Redis). */
  const created = new Map<string, { at: number; until: number }>();
  const notices = new Map<string, string>();
  const nonces = new Map<string, number>();

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
      // An in-process broker never loses its subscription.
    }
    async subscribe(channels: readonly string[]): Promise<void> {
      for (const c of channels) this.channels.add(c);
    }
    async unsubscribe(channels: readonly string[]): Promise<void> {
      for (const c of channels) this.channels.delete(c);
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
      async publish(messages: readonly NewMessage[], sender: SenderInfo): Promise<string[]> {
        const t = now();
        const out: string[] = [];
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
          if (m.ttl > 0) {
            records.set(msg.mid, { msg, expiresAt: t + m.ttl * 1000 });
            for (const ch of m.channels) {
              const list = lists.get(ch) ?? [];
              list.push(msg.mid);
              if (list.length > opts.historyLimit) list.splice(0, list.length - opts.historyLimit);
              lists.set(ch, list);
            }
          }
          for (const ch of m.channels) deliver(ch, msg);
          out.push(msg.mid);
        }
        return out;
      },
      async history(channels: readonly string[], after: string | null): Promise<HistoryResult> {
        const t = now();
        const found = new Map<string, StoredMessage>();
        let newestMid: string | null = null;
        for (const ch of channels) {
          for (const mid of lists.get(ch) ?? []) {
            const msg = alive(mid, t);
            if (msg === null) continue;
            if (newestMid === null || mid > newestMid) newestMid = mid;
            if (after !== null && mid > after) found.set(mid, msg);
          }
        }
        const messages = [...found.values()].sort((a, b) => (a.mid < b.mid ? -1 : 1));
        return { messages, newestMid, channelTimes: { now: t, created: channels.map((ch) => createdAt(ch, t)) } };
      },
      async ping(): Promise<void> {},
    },
    presence: {
      async touch(channels: readonly string[]): Promise<void> {
        const until = now() + opts.onlineTtlSeconds * 1000;
        for (const c of channels) online.set(c, until);
      },
      async online(channels: readonly string[]): Promise<boolean[]> {
        const t = now();
        return channels.map((c) => (online.get(c) ?? 0) > t);
      },
    },
    channels: {
      async create(channels: readonly string[]): Promise<ChannelTimes> {
        const t = now();
        for (const ch of channels) recordCreation(ch, t);
        return { now: t, created: channels.map((ch) => createdAt(ch, t)) };
      },
      async times(channels: readonly string[]): Promise<ChannelTimes> {
        const t = now();
        return { now: t, created: channels.map((ch) => createdAt(ch, t)) };
      },
      async expireNotice(channel: string, body: string): Promise<ExpireNotice> {
        const t = now();
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
        records.set(mid, { msg, expiresAt: t + ttl * 1000 });
        const list = lists.get(channel) ?? [];
        list.push(mid);
        if (list.length > opts.historyLimit) list.splice(0, list.length - opts.historyLimit);
        lists.set(channel, list);
        notices.set(channel, mid);
        deliver(channel, msg);
        return { kind: 'stored', message: msg };
      },
    },
    replay: {
      async claim(keyId: string, nonce: string, timestamp: number, maxSkewS: number): Promise<NonceClaim> {
        const t = now();
        if (!timestampFresh(timestamp, Math.floor(t / 1000), maxSkewS)) return 'stale';
        const key = `${keyId}:${nonce}`;
        const until = nonces.get(key);
        if (until !== undefined && until > t) return 'replay';
        nonces.set(key, t + (2 * maxSkewS + 1) * 1000);
        // Forget expired nonces now and then so the map stays the size of one window.
        if (nonces.size > 10_000) for (const [k, u] of nonces) if (u <= t) nonces.delete(k);
        return 'ok';
      },
    },
    stats: {
      async report(s: ProcessStats): Promise<void> {
        stats.set(s.processUniqueId, s);
      },
      async list(): Promise<ProcessStats[]> {
        const t = now();
        return [...stats.values()].filter((s) => t - s.date <= opts.statsStaleMs);
      },
      async remove(id: string): Promise<void> {
        stats.delete(id);
      },
    },
    createBroker(): Broker {
      const b = new MemoryBroker();
      brokers.add(b);
      return b;
    },
    async close(): Promise<void> {
      brokers.clear();
    },
  };
}
