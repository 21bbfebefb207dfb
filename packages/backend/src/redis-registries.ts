import type { Cluster, Redis } from 'ioredis';
import type { ClientRegistry, ProcessStats, RegisteredClient, StatsRegistry } from './types.js';

/**
 * The two registries that live in one Redis hash each, shared by the single-Redis and the Cluster
 * backends (a hash is one key, so on a Cluster it lives in one slot like any other key).
 */
type HashCommands = Pick<Redis | Cluster, 'hset' | 'hsetnx' | 'hget' | 'hgetall' | 'hdel'>;

/** Process id -> JSON snapshot; entries older than `staleMs` are dropped when read. */
export function redisStatsRegistry(redis: HashCommands, prefix: string, connected: () => Promise<void>, staleMs: number): StatsRegistry {
  const key = `${prefix}stats`;
  return {
    async report(s: ProcessStats): Promise<void> {
      await connected();
      await redis.hset(key, s.processUniqueId, JSON.stringify(s));
    },
    async list(): Promise<ProcessStats[]> {
      await connected();
      const all = await redis.hgetall(key);
      const now = Date.now();
      const live: ProcessStats[] = [];
      const stale: string[] = [];
      for (const [id, json] of Object.entries(all)) {
        try {
          const s = JSON.parse(json) as ProcessStats;
          if (now - s.date <= staleMs) live.push(s);
          else stale.push(id);
        } catch {
          stale.push(id);
        }
      }
      if (stale.length > 0) await redis.hdel(key, ...stale);
      return live;
    },
    async remove(id: string): Promise<void> {
      await connected();
      await redis.hdel(key, id);
    },
  };
}

/** Shared mode's portals: client id -> JSON. HSETNX keeps an existing entry (and its key) untouched. */
export function redisClientRegistry(redis: HashCommands, prefix: string, connected: () => Promise<void>): ClientRegistry {
  const key = `${prefix}clients`;
  return {
    async add(client: RegisteredClient) {
      await connected();
      const added = (await redis.hsetnx(key, client.id, JSON.stringify(client))) === 1;
      if (added) return { added, client };
      const existing = decodeClient(await redis.hget(key, client.id));
      if (existing === null) throw new Error(`client registry entry ${client.id} is unreadable`);
      return { added, client: existing };
    },
    async get(id: string) {
      await connected();
      return decodeClient(await redis.hget(key, id));
    },
    async list() {
      await connected();
      const all = await redis.hgetall(key);
      const out: RegisteredClient[] = [];
      for (const json of Object.values(all)) {
        const c = decodeClient(json);
        if (c !== null) out.push(c);
      }
      return out.sort((a, b) => a.id.localeCompare(b.id));
    },
    async remove(id: string) {
      await connected();
      return (await redis.hdel(key, id)) === 1;
    },
  };
}

function decodeClient(json: string | null): RegisteredClient | null {
  if (json === null) return null;
  try {
    const o = JSON.parse(json) as Partial<RegisteredClient>;
    if (typeof o.id !== 'string' || typeof o.key !== 'string') return null;
    return { id: o.id, key: o.key, created: typeof o.created === 'number' ? o.created : 0, note: typeof o.note === 'string' ? o.note : '' };
  } catch {
    return null;
  }
}
