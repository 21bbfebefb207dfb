import { pino } from 'pino';
import { createRedisBackend } from '../src/index.js';
import { startRedisCluster } from '../../../tests/helpers/redis-cluster.js';
import { CONFORMANCE_OPTIONS, backendConformance } from './conformance.js';

const log = pino({ level: 'silent' });

// The same contract as one Redis, through REDIS_URL=redis+cluster://... on a real 3-master /
// 3-replica Cluster started here.
backendConformance('redis cluster', async () => {
  const cluster = await startRedisCluster();
  const backend = createRedisBackend({ ...CONFORMANCE_OPTIONS, url: cluster.url, keyPrefix: 't:', log });
  return { backend, cleanup: () => cluster.stop() };
});
