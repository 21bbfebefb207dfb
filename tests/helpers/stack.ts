import { startApp, type AppProcess } from './apps.js';
import { startRedis, type RedisServer } from './redis.js';

export interface Stack {
  readonly redis: RedisServer;
  /** Environment every process of the stack was started with (REDIS_URL included). */
  readonly env: Record<string, string>;
  pub: AppProcess;
  listeners: AppProcess[];
  /** The first listener. */
  readonly sub: AppProcess;
  stop(): Promise<void>;
}

/** A real Redis plus one publisher and `listeners` listener processes, all on free ports. */
export async function startStack(opts: { listeners?: number; env?: Record<string, string>; appendonly?: boolean } = {}): Promise<Stack> {
  const redis = await startRedis(opts.appendonly === undefined ? {} : { appendonly: opts.appendonly });
  const env = { REDIS_URL: redis.url, ...opts.env };
  const [pub, ...listeners] = await Promise.all([startApp('publisher', env), ...Array.from({ length: opts.listeners ?? 1 }, () => startApp('listener', env))]);
  const stack: Stack = {
    redis,
    env,
    pub: pub as AppProcess,
    listeners,
    get sub() {
      return stack.listeners[0] as AppProcess;
    },
    async stop() {
      await Promise.all([stack.pub.stop(), ...stack.listeners.map((l) => l.stop())]);
      await redis.stop();
    },
  };
  return stack;
}
