import { backendFromConfig } from '@push/backend';
import { runMain, waitFor } from '@push/runtime';
import { startListener } from './server.js';

/** Listener process: subscribes to Redis for the channels its sockets need and streams to them. */
runMain('listener', 8010, async (uws, config, log) => {
  const backend = backendFromConfig(config, log);
  await waitFor('redis', 30_000, log, () => backend.store.ping());
  const service = await startListener(uws, config, backend, log);
  return {
    port: service.port,
    processUniqueId: service.processUniqueId,
    async stop() {
      await service.stop();
      await backend.close();
    },
  };
});
