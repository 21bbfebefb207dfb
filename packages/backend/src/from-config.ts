import type { Config, Logger } from '@push/runtime';
import { createMemoryBackend } from './memory-backend.js';
import { createRedisBackend } from './redis-backend.js';
import type { Backend } from './types.js';

/** The backend the configuration asks for: Redis normally, memory for single-process mode and unit tests. */
export function backendFromConfig(config: Config, log: Logger, kind: 'redis' | 'memory' = 'redis'): Backend {
  const common = {
    historyLimit: config.historyLimit,
    onlineTtlSeconds: config.onlineTtlS,
    // One missed report plus slack (Bitrix reports every 30 s and treats 40 s as stale; the
    // default here is 1 s so the status page is current).
    statsStaleMs: config.statsIntervalS * 1000 * 2 + 10_000,
    channelWriteMs: config.channelWriteS * 1000,
    channelReadMs: config.channelReadS * 1000,
  };
  if (kind === 'memory') return createMemoryBackend(common);
  return createRedisBackend({ ...common, pubsubStallMs: config.pubsubStallMs, url: config.redis, durability: config.publishDurability, replicaTimeoutMs: config.publishReplicaTimeoutMs, replicas: config.publishReplicas, keyPrefix: config.keyPrefix, maxGroupFanoutBytes: config.maxFanoutBytes, publishTimeoutMs: config.publishTimeoutMs, log: log.child({ component: 'redis' }) });
}
