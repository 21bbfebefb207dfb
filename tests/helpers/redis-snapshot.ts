import type { Redis } from 'ioredis';

/**
 * What a "Redis unchanged" assertion compares: every key with its type, full contents and expiry.
 * The expiry is the absolute time (PEXPIRETIME, unix ms; "persistent" when there is none), so it
 * does not drift while a test runs, and a request that only re-set a TTL is still caught.
 *
 * Left out, because they change without any request, and only what is named here:
 *  - the per-process stats hash (`stats`): every process rewrites it each PUSH_STATS_INTERVAL_S;
 *  - the expiry time (not the existence or value) of presence keys (`o:{<channel>}`): listeners
 *    refresh it while a subscriber is connected, whatever else happens.
 * Keys that expire between two snapshots are not a change either (see snapshotChanges).
 */
export interface RedisSnapshot {
  /** Redis time (unix ms) when the snapshot began. */
  readonly takenAt: number;
  readonly keys: ReadonlyMap<string, { readonly line: string; readonly expiresAt: number | null }>;
}

const isStats = (key: string): boolean => key.endsWith('stats');
const isPresence = (key: string): boolean => /(^|:)o:\{[^}]*\}$/.test(key);

export async function takeSnapshot(c: Redis): Promise<RedisSnapshot> {
  const [sec, micro] = await c.time();
  const takenAt = Number(sec) * 1000 + Math.floor(Number(micro) / 1000);
  const keys = new Map<string, { line: string; expiresAt: number | null }>();
  for (const k of (await c.keys('*')).filter((key) => !isStats(key)).sort()) {
    const type = await c.type(k);
    let value: unknown;
    if (type === 'string') value = await c.get(k);
    else if (type === 'list') value = await c.lrange(k, 0, -1);
    else if (type === 'hash') value = Object.fromEntries(Object.entries(await c.hgetall(k)).sort(([a], [b]) => (a < b ? -1 : 1)));
    else if (type === 'zset') value = await c.zrange(k, 0, -1, 'WITHSCORES');
    else if (type === 'set') value = (await c.smembers(k)).sort();
    else if (type === 'none') continue; // expired between KEYS and now
    const at = Number(await c.call('PEXPIRETIME', k));
    const expiresAt = at > 0 ? at : null;
    const expiry = isPresence(k) ? 'refreshed' : expiresAt === null ? 'persistent' : `expires@${expiresAt}`;
    keys.set(k, { line: `${k} ${type} ${expiry} ${JSON.stringify(value)}`, expiresAt });
  }
  return { takenAt, keys };
}

/**
 * Differences between two snapshots, one line each ("+" added, "-" removed, "~" changed); empty
 * means nothing changed. A key of `before` that is gone because its expiry time had passed when
 * `after` was taken is not a change.
 */
export function snapshotChanges(before: RedisSnapshot, after: RedisSnapshot): string[] {
  const out: string[] = [];
  for (const [k, b] of before.keys) {
    const a = after.keys.get(k);
    if (a === undefined) {
      if (b.expiresAt === null || b.expiresAt > after.takenAt) out.push(`- ${b.line}`);
    } else if (a.line !== b.line) out.push(`~ ${b.line}\n  now ${a.line}`);
  }
  for (const [k, a] of after.keys) if (!before.keys.has(k)) out.push(`+ ${a.line}`);
  return out;
}

/** The snapshot as text, one key per line: two equal texts mean a request changed nothing. */
export async function redisSnapshot(c: Redis): Promise<string> {
  return [...(await takeSnapshot(c)).keys.values()].map((k) => k.line).join('\n');
}

/** The snapshot text without presence markers, which come and go with connections, not publishes. */
export async function storedState(c: Redis): Promise<string> {
  return (await redisSnapshot(c))
    .split('\n')
    .filter((line) => !line.includes(':o:{'))
    .join('\n');
}
