import { backendFromConfig } from '@push/backend';
import { runMain } from '@push/runtime';
import { startListener } from '@push/listener/server';
import { startPublisher } from '@push/publisher/server';

/**
 * Single-process mode for development and demos: one process runs a listener (PUSH_PORT) and a
 * publisher (PUSH_STANDALONE_PUBLISHER_PORT) over the in-memory backend. No Redis is needed, and
 * nothing survives a restart; production runs the separate processes over Redis.
 */
runMain('standalone', 8010, async (uws, config, log) => {
  const backend = backendFromConfig(config, log, 'memory');
  const listener = await startListener(uws, config, backend, log.child({ service: 'listener' }));
  const publisher = await startPublisher(uws, Object.freeze({ ...config, port: config.standalonePublisherPort }), backend, log.child({ service: 'publisher' }));
  log.info({ listenerPort: listener.port, publisherPort: publisher.port }, 'single-process mode: memory backend, nothing is persisted');
  return {
    port: listener.port,
    processUniqueId: listener.processUniqueId,
    async stop() {
      await listener.stop();
      await publisher.stop();
      await backend.close();
    },
  };
});
