import type { Redis } from 'ioredis';

/**
 * Everything in Redis except the per-process stats hash (rewritten on a timer): keys, types and
 * contents. Two equal snapshots mean a request changed nothing.
 */
export async function redisSnapshot(c: Redis): Promise<string> {
  const keys = (await c.keys('*')).filter((k) => !k.endsWith('stats')).sort();
  const parts: string[] = [];
  for (const k of keys) {
    const type = await c.type(k);
    let value: unknown;
    if (type === 'string') value = await c.get(k);
    else if (type === 'list') value = await c.lrange(k, 0, -1);
    else if (type === 'hash') value = await c.hgetall(k);
    else if (type === 'zset') value = await c.zrange(k, 0, -1);
    else if (type === 'set') value = (await c.smembers(k)).sort();
    parts.push(`${k} ${type} ${JSON.stringify(value)}`);
  }
  return parts.join('\n');
}
