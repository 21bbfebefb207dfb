import { clientChannelKey, type NewMessage } from '@push/protocol';
import type { PublishIdentity } from './lifecycle-types.js';
import type { Presence, ProcessStats, StatsRegistry, Store } from './types.js';

/** The parts of a backend a portal's requests touch (protocol-4 requests, text publishing). */
export interface ScopedParts {
  readonly store: Store;
  readonly presence: Presence;
  readonly stats: StatsRegistry;
}

/**
 * A portal's view of the backend in shared mode: every channel key it names is put in its own
 * namespace (`<clientId>/<key>`) before it reaches Redis, so it can neither read, publish to nor
 * ask about another portal's channels, even knowing their ids; its request identities live in its
 * own namespace too. Routes and client requests get this view instead of the backend and need no
 * other change. The stats view lists the processes without their traffic counters (which add up
 * every portal's connections and messages) and never lets a portal remove an entry.
 */
/** A portal's messages with their channels in its namespace. */
export function scopeMessages(messages: readonly NewMessage[], clientId: string): NewMessage[] {
  return messages.map((m) => ({ ...m, channels: m.channels.map((c) => clientChannelKey(clientId, c)) }));
}

/** A portal's request identity in its namespace: two portals may use the same request ids. */
export function scopeIdentity(id: PublishIdentity | undefined, clientId: string): PublishIdentity | undefined {
  if (id === undefined) return undefined;
  return 'scope' in id ? { ...id, scope: clientChannelKey(clientId, id.scope) } : { ...id, keyId: clientChannelKey(clientId, id.keyId) };
}

export function scopeToClient(parts: ScopedParts, clientId: string): ScopedParts {
  const key = (k: string): string => clientChannelKey(clientId, k);
  const keys = (ks: readonly string[]): string[] => ks.map(key);
  const store: Store = {
    publish: (messages, sender, id) => parts.store.publish(scopeMessages(messages, clientId), sender, scopeIdentity(id, clientId)),
    history: async (channels, after) => {
      const h = await parts.store.history(keys(channels), after);
      if (h.gaps === undefined || h.gaps.length === 0) return h;
      const bare = new Map(channels.map((c) => [key(c), c] as const));
      return { ...h, gaps: h.gaps.map((g) => ({ ...g, channel: bare.get(g.channel) ?? g.channel })) };
    },
    ping: () => parts.store.ping(),
  };
  const presence: Presence = {
    touch: (channels) => parts.presence.touch(keys(channels)),
    online: (channels) => parts.presence.online(keys(channels)),
    lastSeen: (channels) => parts.presence.lastSeen(keys(channels)),
  };
  const stats: StatsRegistry = {
    report: () => Promise.reject(new Error('a portal does not report process stats')),
    list: async () => (await parts.stats.list()).map(withoutTraffic),
    remove: async () => {},
  };
  return { store, presence, stats };
}

/** The structural part of a process entry: what it is and its limits, none of its traffic. */
function withoutTraffic(s: ProcessStats): ProcessStats {
  const out: Record<string, unknown> = { processUniqueId: s.processUniqueId, date: s.date };
  for (const f of ['pid', 'type', 'limits', 'clusterMode']) if (s[f] !== undefined) out[f] = s[f];
  return out as unknown as ProcessStats;
}
