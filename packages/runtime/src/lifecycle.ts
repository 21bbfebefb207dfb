import type { Logger } from './logger.js';

/** Runs `tick` now and every `intervalMs`, never overlapping, logging (not throwing) failures. */
export function every(intervalMs: number, log: Logger, what: string, tick: () => Promise<void>): { stop(): void } {
  let running = false;
  const run = (): void => {
    if (running) return;
    running = true;
    tick()
      .catch((err: Error) => log.warn({ err: { message: err.message } }, `${what} failed`))
      .finally(() => (running = false));
  };
  run();
  const t = setInterval(run, intervalMs);
  t.unref();
  return { stop: () => clearInterval(t) };
}

/**
 * Calls `shutdown` once on SIGTERM/SIGINT and exits when it resolves, or after `graceMs` at the
 * latest so a stuck drain can never keep an old process alive through a rolling restart.
 */
export function onShutdownSignal(log: Logger, graceMs: number, shutdown: (signal: string) => Promise<void>): void {
  let started = false;
  const handler = (signal: string): void => {
    if (started) return;
    started = true;
    log.info({ signal }, 'shutting down');
    const hard = setTimeout(() => {
      log.warn({ graceMs }, 'grace period over, exiting');
      process.exit(0);
    }, graceMs);
    hard.unref();
    shutdown(signal).then(
      () => process.exit(0),
      (err: Error) => {
        log.error({ err: { message: err.message } }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}

/** Retries `attempt` until it succeeds or `timeoutMs` passes; used to wait for Redis at start. */
export async function waitFor(what: string, timeoutMs: number, log: Logger, attempt: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; ; i++) {
    try {
      await attempt();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${what}: ${(err as Error).message}`);
      if (i % 10 === 0) log.warn({ err: { message: (err as Error).message } }, `waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
