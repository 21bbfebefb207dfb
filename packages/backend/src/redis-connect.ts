import { Redis, type RedisOptions } from 'ioredis';
import { parseRedisUrl, type RedisTarget } from '@push/runtime';
import type { Verdict } from './connection-probe.js';

/** Reconnect quickly at first, then back off to 2 s, with jitter so many processes do not stampede. */
export function retryStrategy(times: number): number {
  const base = Math.min(2000, 50 * 2 ** Math.min(times, 6));
  return Math.round(base / 2 + Math.random() * (base / 2));
}

/** Options every connection of the server shares, whatever the topology. */
export function redisOptions(extra: RedisOptions = {}): RedisOptions {
  return {
    retryStrategy,
    keepAlive: 10_000,
    // Fail fast while disconnected: a publish must be answered 503 now, not queued for minutes.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    lazyConnect: false,
    ...extra,
  };
}

/** A target given as REDIS_URL text (tests, tools) or already parsed by the configuration. */
export function toTarget(target: string | RedisTarget): RedisTarget {
  return typeof target === 'string' ? parseRedisUrl(target) : target;
}

/**
 * One connection to the Redis that holds the data: the one server, or the master a Sentinel group
 * names now. A Sentinel connection asks the sentinels for the master on every (re)connect and
 * checks the node's role, so after a failover it lands on the promoted replica. The failover
 * detector subscribes to `+switch-master` on the sentinels and drops the connection as soon as
 * they announce a new master: a demoted master that is still reachable (a partition, or a
 * SENTINEL FAILOVER whose CLIENT KILL did not reach it) would otherwise keep serving this
 * connection as a replica (refusing writes) or, isolated, as a master nobody else writes to.
 * A Cluster is not one connection and is refused here.
 */
export function connectRedis(target: RedisTarget, extra: RedisOptions): Redis {
  const options = redisOptions(extra);
  if (target.kind === 'sentinel') {
    return new Redis({
      ...options,
      sentinels: target.sentinels.map((s) => ({ host: s.host, port: s.port })),
      name: target.masterName,
      db: target.db,
      ...(target.password === undefined ? {} : { password: target.password }),
      role: 'master',
      failoverDetector: true,
      // Asking the sentinels again: quickly at first, then every 2 s, never giving up.
      sentinelRetryStrategy: retryStrategy,
      sentinelCommandTimeout: 1000,
      // Applies to the sentinels and the master alike. The library asks the sentinel that answered
      // last first; when that one's host is cut off (a partition) every reconnect would wait the
      // default 10 s for it before asking the next one. Measured in tests/ops/multi-host-sentinel.
      connectTimeout: 2000,
    });
  }
  if (target.kind === 'cluster') throw new Error('a Redis Cluster is not reached through one connection');
  const url = target.url;
  if (url.startsWith('unix://')) return new Redis({ ...options, path: url.slice('unix://'.length) });
  return new Redis(url, options);
}

/**
 * Is Redis holding a command of connection `id`? Asked over a new, short-lived connection (`open`,
 * to the same server), so that a write held by CLIENT PAUSE or a WAIT (the command and publish
 * connections run both) is not taken for a dead path. `stalled`: Redis answers and holds nothing of
 * it (flag b), or does not know it, or cannot be reached on a new connection either; `held`: it
 * holds a command of it, or accepts the new connection but answers nobody (Redis itself stalls,
 * not this path). Settles within `verifyMs`.
 */
export async function checkHeld(open: (extra: RedisOptions) => Redis, id: string | null, verifyMs: number): Promise<Verdict> {
  const c = open({ lazyConnect: true, enableReadyCheck: false, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: verifyMs, commandTimeout: verifyMs });
  c.on('error', () => {});
  let reached = false;
  c.once('connect', () => (reached = true));
  const ask = (async (): Promise<Verdict> => {
    await c.connect();
    if (id === null) {
      await c.ping(); // the id is not known yet: Redis answers a new connection and not that one
      return 'stalled';
    }
    const line = String(await c.call('CLIENT', 'LIST', 'ID', id));
    if (!line.includes(`id=${id} `)) return 'stalled';
    return (/\bflags=(\S*)/.exec(line)?.[1] ?? '').includes('b') ? 'held' : 'stalled';
  })();
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      ask,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('stall check timed out')), verifyMs);
      }),
    ]);
  } catch (err) {
    // A refusal (an ACL without CLIENT LIST) cannot tell held from stalled: reconnecting is the
    // safe side (what was on the connection is answered "unknown", never "not stored").
    const timedOut = /timed out/i.test((err as Error).message ?? '');
    return reached && timedOut ? 'held' : 'stalled';
  } finally {
    clearTimeout(timer);
    ask.catch(() => {});
    c.disconnect();
  }
}

/**
 * Drops a stalled connection now (not ioredis' disconnect, which half-closes and waits 2 s for a
 * peer that will not answer). Commands on it fail at once instead of waiting for their timeout:
 * they were written, so their outcome is unknown (a publish answers 504 4134, never 503).
 */
export function tearDownStalled(conn: Redis, role: string): void {
  (conn as unknown as { flushQueue(err: Error): void }).flushQueue(new Error(`the Redis ${role} connection stalled (open but silent) with this command on it`));
  conn.stream.destroy();
}
