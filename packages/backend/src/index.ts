export * from './types.js';
export * from './lifecycle-types.js';
export { createMemoryBackend, type MemoryBackend, type MemorySizes } from './memory-backend.js';
export { ID_SAFETY_GAP, createRedisBackend, type RedisBackendOptions } from './redis-backend.js';
export { backendFromConfig } from './from-config.js';
export { runWithBackend } from './run.js';
export { executeV4Request, type V4Deps } from './v4-requests.js';
export { instrumentStore } from './instrumented-store.js';
export { usersLastSeen } from './last-seen.js';
