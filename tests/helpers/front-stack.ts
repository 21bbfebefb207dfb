import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_KEY } from './apps.js';
import { startRedis, type RedisServer } from './redis.js';
import { script, stackPorts } from '../ops/stack-helpers.js';

/**
 * The operator's stack (scripts/start.sh: nginx in front, `publishers` publishers, `listeners`
 * listeners) over a test Redis the harness owns, so a test can pause, inspect and snapshot it.
 * Temporary run directory and free ports; the channel key is the test key (helpers/clients SECRET).
 */
export interface FrontStack {
  readonly front: string;
  readonly redis: RedisServer;
  readonly env: Record<string, string>;
  readonly publisherPorts: number[];
  readonly listenerPorts: number[];
  stop(): Promise<void>;
}

export async function startFrontStack(opts: { publishers?: number; listeners?: number; env?: Record<string, string> } = {}): Promise<FrontStack> {
  const publishers = opts.publishers ?? 2;
  const listeners = opts.listeners ?? 1;
  const redis = await startRedis();
  const runDir = mkdtempSync(join(tmpdir(), 'push-front-'));
  const ports = await stackPorts(runDir, publishers, listeners);
  const env: Record<string, string> = {
    ...ports.env,
    PUSH_LISTENERS: String(listeners),
    PUSH_PUBLISHERS: String(publishers),
    PUSH_SIGNATURE_KEY: TEST_KEY,
    REDIS_URL: redis.url,
    PUSH_LOG_LEVEL: 'warn',
    PUSH_LOG_DIR: join(runDir, 'logs'),
    PUSH_PUBLISH_TRUSTED_NETWORKS: '',
    PUSH_PUB_ALLOW: '',
    PUSH_SKIP_SETUP: '1',
    ...opts.env,
  };
  const started = await script('start', env, 120_000);
  if (started.code !== 0) {
    await script('stop', env).catch(() => undefined);
    await redis.stop();
    rmSync(runDir, { recursive: true, force: true });
    throw new Error(`start.sh failed: ${started.stdout}\n${started.stderr}`);
  }
  const pubBase = Number(ports.env['PUSH_PUBLISHER_PORT']);
  const subBase = Number(ports.env['PUSH_LISTENER_PORT']);
  return {
    front: `http://127.0.0.1:${ports.frontPort}`,
    redis,
    env,
    publisherPorts: Array.from({ length: publishers }, (_, i) => pubBase + i),
    listenerPorts: Array.from({ length: listeners }, (_, i) => subBase + i),
    async stop() {
      const r = await script('stop', env);
      if (r.code !== 0) process.stderr.write(`stop.sh: ${r.stdout}${r.stderr}\n`);
      await redis.stop();
      rmSync(runDir, { recursive: true, force: true });
    },
  };
}
