import { backendFromConfig } from '@push/backend';
import { runMain, waitFor } from '@push/runtime';
import { startPublisher } from './server.js';

/** Publisher process: accepts portal messages over HTTP, stores them in Redis and announces them to listeners. */
runMain('publisher', 9010, async (uws, config, log) => {
  const backend = backendFromConfig(config, log);
  await waitFor('redis', 30_000, log, () => backend.store.ping());
  const service = await startPublisher(uws, config, backend, log);
  return {
    port: service.port,
    processUniqueId: service.processUniqueId,
    async stop() {
      await service.stop();
      await backend.close();
    },
  };
});
