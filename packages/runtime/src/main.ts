import { ConfigError, loadConfig, type Config } from './config.js';
import { onShutdownSignal } from './lifecycle.js';
import { createRootLogger, type Logger } from './logger.js';
import { loadUws, uwsMaxHeaderBytes, type Uws } from './uws.js';

export interface Service {
  readonly port: number;
  readonly processUniqueId: string;
  stop(): Promise<void>;
}

/**
 * Common process entry: configuration (exit 2 with every problem listed), logging, the native
 * uWS check, start-up, and SIGTERM handling with a bounded grace period.
 */
export function runMain(name: string, defaultPort: number, start: (uws: Uws, config: Config, log: Logger) => Promise<Service>): void {
  let config: Config;
  try {
    config = loadConfig(process.env, { port: defaultPort });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`push ${name}: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createRootLogger(config.logLevel, name);
  (async () => {
    const loaded = loadUws(config.testUwsAbi, { maxHeaderBytes: uwsMaxHeaderBytes(config.maxChannels) });
    // `skipped` says why a preferred distribution did not load (e.g. the published binding on
    // glibc 2.36, where the copy for older systems loads).
    log.info({ detail: loaded.detail, skipped: loaded.skipped }, 'uWebSockets.js loaded');
    const service = await start(loaded.uws, config, log);
    log.info({ host: config.host, port: service.port, processUniqueId: service.processUniqueId }, `${name} ready`);
    onShutdownSignal(log, config.shutdownGraceMs, () => service.stop());
  })().catch((err: Error) => {
    process.stderr.write(`push ${name}: ${err.message}\n`);
    process.exit(1);
  });
}
