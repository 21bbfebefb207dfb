import { countPublished, timed, type CommonMetrics } from '@push/runtime';
import type { Store } from './types.js';

/**
 * The same store, with every Redis round trip timed (`push_redis_command_duration_seconds`) and
 * every accepted message counted (`push_messages_published_total`). Publishers and listeners (for
 * protocol-4 clients publishing over their WebSocket) both wrap their store with it: counting here
 * rather than in the routes means no publish path can be left out.
 */
export function instrumentStore(store: Store, m: CommonMetrics): Store {
  return {
    publish: async (messages, sender, identity) => {
      const mids = await timed(m.redisDuration, 'publish', () => store.publish(messages, sender, identity));
      // A retry answered with its earlier outcome published nothing new.
      if (mids.replayed !== true) countPublished(m, messages);
      return mids;
    },
    history: (channels, after) => timed(m.redisDuration, 'history', () => store.history(channels, after)),
    ping: () => store.ping(),
  };
}
