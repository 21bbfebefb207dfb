import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * One root logger per process, JSON to stdout. Components take `root.child({ component })` at
 * start-up. Never pass a client payload or a key as the merging object.
 */
export function createRootLogger(level: string, app: string): Logger {
  return pino({ level, base: { app, pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}
