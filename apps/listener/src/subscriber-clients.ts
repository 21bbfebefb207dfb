import { Errors, PushError, bareChannelKey, channelKeyClient, isClientId, signChannel, type ChannelSecret } from '@push/protocol';
import type { ClientDirectory } from '@push/backend';

/** Whose a subscription is: the key its channels are signed with and, in shared mode, its client. */
export interface SubscriberScope {
  /** Null in personal mode. */
  readonly clientId: string | null;
  readonly secret: ChannelSecret;
  /** Gives back the connection slot taken by `admit` (call once, when the connection ends). */
  release(): void;
  /** Shared mode: how to end the connection if its portal is removed (or gets a new key). */
  onRevoke(end: () => void): void;
}

/** How often a listener checks that the portals it serves are still registered with the same key. */
export const REVOKE_CHECK_MS = 2000;

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
  /** Per portal: the key its connections were admitted with, and how to end each of them. */
  private readonly live = new Map<string, { key: string; enders: Set<() => void> }>();
  private readonly timer: NodeJS.Timeout | null;

  constructor(
    private readonly secret: ChannelSecret,
    /** Null in personal mode. */
    private readonly directory: ClientDirectory | null,
    private readonly maxConnections: number,
    checkMs = REVOKE_CHECK_MS,
  ) {
    this.timer = directory === null ? null : setInterval(() => void this.revokeRemoved(), checkMs);
    this.timer?.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
  }

  /**
   * Ends the connections of portals that were removed, or removed and registered again (a new key:
   * their channel signatures no longer hold). They are closed with 4036, as a new connection of a
   * removed portal is refused; one that registered again reconnects under its new key.
   */
  private async revokeRemoved(): Promise<void> {
    const directory = this.directory as ClientDirectory;
    for (const [id, entry] of [...this.live]) {
      let client;
      try {
        client = await directory.resolve(id);
      } catch {
        return; // Registry unreachable: decide nothing now.
      }
      if (client !== null && client.key === entry.key) continue;
      this.live.delete(id);
      for (const end of [...entry.enders]) end();
    }
  }

  get shared(): boolean {
    return this.directory !== null;
  }

  /** Personal mode answers at once; shared mode asks the registry (rejects 4036, 4180, or a store error). */
  admit(query: ReadonlyMap<string, string>): SubscriberScope | Promise<SubscriberScope> {
    if (this.directory === null) return { clientId: null, secret: this.secret, release: () => {}, onRevoke: () => {} };
    const id = query.get('clientId') ?? '';
    if (!isClientId(id)) return Promise.reject(new PushError(Errors.WRONG_CLIENT_ID));
    return this.directory.resolve(id).then((client) => {
      if (client === null) throw new PushError(Errors.WRONG_CLIENT_ID);
      const n = this.counts.get(id) ?? 0;
      if (this.maxConnections > 0 && n >= this.maxConnections) throw new PushError(Errors.CLIENT_CONNECTION_LIMIT);
      this.counts.set(id, n + 1);
      let released = false;
      const mine: Array<() => void> = [];
      return {
        clientId: id,
        secret: { key: client.key, algorithm: this.secret.algorithm },
        release: () => {
          if (released) return;
          released = true;
          const left = (this.counts.get(id) ?? 1) - 1;
          if (left <= 0) this.counts.delete(id);
          else this.counts.set(id, left);
          const entry = this.live.get(id);
          if (entry !== undefined) {
            for (const end of mine) entry.enders.delete(end);
            if (entry.enders.size === 0) this.live.delete(id);
          }
        },
        onRevoke: (end: () => void) => {
          if (released) return;
          let entry = this.live.get(id);
          if (entry === undefined || entry.key !== client.key) {
            entry = { key: client.key, enders: new Set() };
            this.live.set(id, entry);
          }
          entry.enders.add(end);
          mine.push(end);
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
