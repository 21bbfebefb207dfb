import { encodeRecordTail, decodeRecord, formatMid, type NewMessage, type SenderInfo, type StoredMessage } from '@push/protocol';
import type { Backend, BackendOptions, Broker, HistoryResult, MessageHandler, ProcessStats } from './types.js';

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
          for (const ch of m.channels) for (const b of brokers) if (b.channels.has(ch)) b.handler(ch, msg);
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
        return { messages, newestMid };
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
