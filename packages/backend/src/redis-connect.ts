import { Redis, type RedisOptions } from 'ioredis';
import { parseRedisUrl, type RedisTarget } from '@push/runtime';

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
