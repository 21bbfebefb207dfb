import { runMain, waitFor, type Config, type Logger, type Service, type Uws } from '@push/runtime';
import { backendFromConfig } from './from-config.js';
import type { Backend } from './types.js';

/**
 * Process entry for a service that needs the backend: creates it from the configuration, waits
 * for Redis (up to 30 s, so a box that boots Redis and the servers together starts cleanly), starts
 * the service, and on SIGTERM stops the service before closing the backend.
 */
export function runWithBackend(name: string, defaultPort: number, start: (uws: Uws, config: Config, backend: Backend, log: Logger) => Promise<Service>): void {
  runMain(name, defaultPort, async (uws, config, log) => {
    const backend = backendFromConfig(config, log);
    await waitFor('redis', 30_000, log, () => backend.store.ping());
    const service = await start(uws, config, backend, log);
    return {
      port: service.port,
      processUniqueId: service.processUniqueId,
      async stop() {
        await service.stop();
        await backend.close();
      },
    };
  });
}
