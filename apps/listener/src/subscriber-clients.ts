import { Errors, PushError, bareChannelKey, channelKeyClient, isClientId, signChannel, type ChannelSecret } from '@push/protocol';
import type { ClientDirectory } from '@push/backend';

/** Whose a subscription is: the key its channels are signed with and, in shared mode, its client. */
export interface SubscriberScope {
  /** Null in personal mode. */
  readonly clientId: string | null;
  readonly secret: ChannelSecret;
  /** Gives back the connection slot taken by `admit` (call once, when the connection ends). */
  release(): void;
}

/**
 * The listener's side of the installation mode. Personal mode: every subscriber is the one
 * portal's, signed with PUSH_SIGNATURE_KEY, admitted synchronously. Shared mode: the subscriber
 * names its portal with `clientId=` (the official client adds it when its config says
 * `server.mode = "shared"`); the portal must be registered, its channels are checked with its own
 * key and live in its namespace, and it may hold at most PUSH_CLIENT_MAX_CONNECTIONS connections on
 * this listener.
 */
export class SubscriberClients {
  private readonly counts = new Map<string, number>();

  constructor(
    private readonly secret: ChannelSecret,
    /** Null in personal mode. */
    private readonly directory: ClientDirectory | null,
    private readonly maxConnections: number,
  ) {}

  get shared(): boolean {
    return this.directory !== null;
  }

  /** Personal mode answers at once; shared mode asks the registry (rejects 4036, 4180, or a store error). */
  admit(query: ReadonlyMap<string, string>): SubscriberScope | Promise<SubscriberScope> {
    if (this.directory === null) return { clientId: null, secret: this.secret, release: () => {} };
    const id = query.get('clientId') ?? '';
    if (!isClientId(id)) return Promise.reject(new PushError(Errors.WRONG_CLIENT_ID));
    return this.directory.resolve(id).then((client) => {
      if (client === null) throw new PushError(Errors.WRONG_CLIENT_ID);
      const n = this.counts.get(id) ?? 0;
      if (this.maxConnections > 0 && n >= this.maxConnections) throw new PushError(Errors.CLIENT_CONNECTION_LIMIT);
      this.counts.set(id, n + 1);
      let released = false;
      return {
        clientId: id,
        secret: { key: client.key, algorithm: this.secret.algorithm },
        release: () => {
          if (released) return;
          released = true;
          const left = (this.counts.get(id) ?? 1) - 1;
          if (left <= 0) this.counts.delete(id);
          else this.counts.set(id, left);
        },
      };
    });
  }

  /** Connections a portal holds on this listener (shared mode). */
  connections(clientId: string): number {
    return this.counts.get(clientId) ?? 0;
  }

  /**
   * The signed id a `channel_expire` notice names: the portal's own id, signed with its own key in
   * shared mode (what its clients were given).
   */
  signedId(channel: string): string {
    const clientId = channelKeyClient(channel);
    if (clientId === null || this.directory === null) return signChannel(channel, this.secret);
    const client = this.directory.lastKnown(clientId);
    return signChannel(bareChannelKey(channel), { key: client?.key ?? this.secret.key, algorithm: this.secret.algorithm });
  }
}
