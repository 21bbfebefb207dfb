import { encodeResponseBatch, hexToBytes, publicChannelKey, v4ToNewMessages, type SenderInfo, type TtlPolicy, type V4Request } from '@push/protocol';
import type { Presence, StatsRegistry, Store } from './types.js';

export interface V4Deps {
  readonly store: Store;
  readonly presence: Presence;
  readonly stats: StatsRegistry;
  readonly ttl: TtlPolicy;
}

/**
 * Carries out a validated protocol-4 request (see parseV4Request) against the backend. Resolves
 * with the ResponseBatch bytes to send back, or null when the answer is an empty 200 (publishing).
 * Rejects when the backend fails; nothing is half-published (the store publishes atomically).
 * `sender` is BACKEND for the portal and CLIENT with the sender's public id for clients.
 */
export async function executeV4Request(req: V4Request, sender: SenderInfo, deps: V4Deps): Promise<Uint8Array | null> {
  switch (req.kind) {
    case 'incomingMessages':
      await deps.store.publish(v4ToNewMessages(req.messages, deps.ttl), sender);
      return null;
    case 'channelStats': {
      // Listeners mark both halves of a `priv:pub` subscription online, so either kind of id answers.
      const flags = await deps.presence.online(req.channels.map((c) => (c.isPrivate ? c.id : publicChannelKey(c.id))));
      const channels = req.channels.map((c, i) => ({ id: hexToBytes(c.id), isPrivate: c.isPrivate, isOnline: flags[i] === true }));
      return encodeResponseBatch({ responses: [{ channelStats: { channels } }] });
    }
    case 'serverStats':
      return encodeResponseBatch({ responses: [{ serverStats: { json: JSON.stringify(await deps.stats.list()) } }] });
  }
}
