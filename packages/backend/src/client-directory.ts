import type { ClientRegistry, RegisteredClient } from './types.js';

/**
 * The shared-mode client lookup of one process: every request and subscription names its client,
 * so answers (found or not) are kept for `ttlMs` instead of asking Redis each time. A removed
 * portal is refused by every process within that time, a new one admitted at once (a miss is
 * only kept for a short while: the portal registers and then starts publishing at once).
 */
export class ClientDirectory {
  private readonly cache = new Map<string, { readonly client: RegisteredClient | null; readonly until: number }>();
  private readonly inflight = new Map<string, Promise<RegisteredClient | null>>();
  /** Every client this process has resolved, kept past the cache time (see `lastKnown`). */
  private readonly known = new Map<string, RegisteredClient>();

  constructor(
    private readonly registry: ClientRegistry,
    private readonly ttlMs = 2000,
    private readonly missTtlMs = 250,
  ) {}

  /** The registered client, or null; rejects when the registry cannot be read (Redis down). */
  resolve(id: string): Promise<RegisteredClient | null> {
    const now = Date.now();
    const hit = this.cache.get(id);
    if (hit !== undefined && hit.until > now) return Promise.resolve(hit.client);
    const pending = this.inflight.get(id);
    if (pending !== undefined) return pending;
    const p = this.registry.get(id).then(
      (client) => {
        this.inflight.delete(id);
        if (this.cache.size > 100_000) this.cache.clear();
        this.cache.set(id, { client, until: Date.now() + (client === null ? this.missTtlMs : this.ttlMs) });
        if (client === null) this.known.delete(id);
        else this.known.set(id, client);
        return client;
      },
      (err: unknown) => {
        this.inflight.delete(id);
        throw err;
      },
    );
    this.inflight.set(id, p);
    return p;
  }

  /** Forget a client at once in this process (after removing or adding it here). */
  forget(id: string): void {
    this.cache.delete(id);
  }

  /**
   * The client as last resolved in this process, however long ago, without asking Redis: for work
   * that cannot wait for Redis on behalf of a connection that was admitted (signing a channel id in
   * a `channel_expire` notice). Null once a lookup found it gone.
   */
  lastKnown(id: string): RegisteredClient | null {
    return this.known.get(id) ?? null;
  }

  /** The last known answer without asking Redis (undefined: unknown or too old). */
  peek(id: string): RegisteredClient | null | undefined {
    const hit = this.cache.get(id);
    return hit !== undefined && hit.until > Date.now() ? hit.client : undefined;
  }
}
