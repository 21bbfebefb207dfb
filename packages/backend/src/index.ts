export * from './types.js';
export * from './lifecycle-types.js';
export { createMemoryBackend } from './memory-backend.js';
export { createRedisBackend, type RedisBackendOptions } from './redis-backend.js';
export { backendFromConfig } from './from-config.js';
export { runWithBackend } from './run.js';
export { executeV4Request, type V4Deps } from './v4-requests.js';
