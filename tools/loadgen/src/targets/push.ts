import { randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import type { SubscribeTarget } from '../channels.js';
import type { PublishTarget } from '../driver.js';
import { freePort, redisLabel, startApp, startRedis, type RedisInstance, type Service } from '../processes.js';
import type { Target } from './types.js';

export interface PushOptions {
  readonly listeners: number;
  readonly publishers: number;
  readonly prefix: string;
  /**
   * How the driver publishes: signed with an Ed25519 or HMAC key (unsigned publishing off, no
   * trusted networks), or 'trusted': unsigned from the loopback address, which the publishers list
   * in PUSH_PUBLISH_TRUSTED_NETWORKS, as an unmodified portal on the same host publishes (and as
   * nchan and the Bitrix push server are always driven: neither checks a signature).
   */
  readonly auth: 'ed25519' | 'hmac-sha256' | 'trusted';
  /** Extra environment for every server process (e.g. PUSH_HISTORY_LIMIT). */
  readonly env?: Record<string, string>;
  /** Starts the Redis the server uses (default: one private redis-server); a Cluster reports CPU per shard. */
  readonly redis?: () => Promise<RedisInstance>;
  /** Write a V8 CPU profile of every server process into this directory (node --cpu-prof), for flame graphs. */
  readonly profileDir?: string;
}

/**
 * This project's stack as production runs it, minus nginx: a private Redis, publisher and listener
 * processes from the built apps, clients connecting to the listeners directly (nginx would add the
 * same proxy cost to both systems, and nchan is nginx itself).
 */
export class PushTarget implements Target {
  readonly name = 'push';
  private listenerPorts: number[] = [];
  private listeners: Service[] = [];
  private publishers: Service[] = [];
  private publisherPorts: number[] = [];
  private constructor(
    private readonly opts: PushOptions,
    private readonly redis: RedisInstance,
    private readonly env: Record<string, string>,
    private readonly auth: PublishTarget['auth'],
  ) {}

  static async start(opts: PushOptions): Promise<PushTarget> {
    const redis = await (opts.redis ?? startRedis)();
    const signatureKey = randomBytes(32).toString('hex');
    let ring: string;
    let auth: PublishTarget['auth'];
    if (opts.auth === 'ed25519') {
      const kp = nacl.sign.keyPair();
      ring = `bench:ed25519:${Buffer.from(kp.publicKey).toString('base64')}`;
      auth = { keyId: 'bench', algorithm: 'ed25519', secret: Buffer.from(kp.secretKey).toString('base64') };
    } else if (opts.auth === 'trusted') {
      // A key stays configured (the publishers refuse to start with neither), but the driver does not sign.
      ring = `bench:hmac-sha256:${randomBytes(32).toString('base64url')}`;
      auth = null;
    } else {
      const secret = randomBytes(32).toString('base64url');
      ring = `bench:hmac-sha256:${secret}`;
      auth = { keyId: 'bench', algorithm: 'hmac-sha256', secret };
    }
    const env = {
      REDIS_URL: redis.url,
      PUSH_SIGNATURE_KEY: signatureKey,
      PUSH_PUBLISH_KEYS: ring,
      PUSH_PUBLISH_TRUSTED_NETWORKS: opts.auth === 'trusted' ? '127.0.0.1/32' : '',
      PUSH_LOG_LEVEL: 'warn',
      ...opts.env,
    };
    const t = new PushTarget(opts, redis, env, auth);
    try {
      t.listenerPorts = await Promise.all(Array.from({ length: opts.listeners }, () => freePort()));
      t.publisherPorts = await Promise.all(Array.from({ length: opts.publishers }, () => freePort()));
      t.listeners = await Promise.all(t.listenerPorts.map((p) => startApp('listener', p, env, t.nodeArgs)));
      t.publishers = await Promise.all(t.publisherPorts.map((p) => startApp('publisher', p, env, t.nodeArgs)));
    } catch (err) {
      await t.stop();
      throw err;
    }
    return t;
  }

  get describe(): string {
    const publishing = this.opts.auth === 'trusted' ? 'unsigned publishes from a trusted address' : `publishes signed with ${this.opts.auth}`;
    return `push server: ${this.opts.listeners} listener and ${this.opts.publishers} publisher processes, ${redisLabel(this.redis)}, clients straight to the listeners, ${publishing}`;
  }

  private get nodeArgs(): string[] {
    return this.opts.profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', this.opts.profileDir];
  }

  get redisUrl(): string {
    return this.redis.url;
  }

  get signatureKey(): string {
    return this.env['PUSH_SIGNATURE_KEY'] as string;
  }

  subscribeTarget(): SubscribeTarget {
    return { kind: 'push', urls: this.listenerPorts.map((p) => `http://127.0.0.1:${p}`), prefix: this.opts.prefix, signatureKey: this.signatureKey };
  }

  publishTarget(): PublishTarget {
    return { kind: 'push', urls: this.publisherPorts.map((p) => `http://127.0.0.1:${p}`), prefix: this.opts.prefix, auth: this.auth };
  }

  pids(): Record<string, number[]> {
    return { listeners: this.listeners.map((s) => s.pid), publishers: this.publishers.map((s) => s.pid), ...redisGroups(this.redis) };
  }

  subscriberPids(): number[] {
    return this.listeners.map((s) => s.pid);
  }

  /**
   * The storm: SIGTERM to every listener at once (each drains: readiness 503, clients told to come
   * back, parked polls answered with their cursor), and each is started again on its port as soon
   * as it has exited. Resolves when all are ready again.
   */
  async restartListeners(): Promise<{ downMs: number[] }> {
    const started = performance.now();
    const downMs: number[] = [];
    this.listeners = await Promise.all(
      this.listeners.map(async (old, i) => {
        await old.stop('SIGTERM');
        const fresh = await startApp('listener', this.listenerPorts[i] as number, this.env, this.nodeArgs);
        downMs.push(Math.round(performance.now() - started));
        return fresh;
      }),
    );
    return { downMs };
  }

  async stop(): Promise<void> {
    await Promise.all([...this.listeners, ...this.publishers].map((s) => s.stop('SIGTERM')));
    await this.redis.stop();
  }
}

/** One group `redis`, or one group per Cluster master (`redis-1`, `redis-2`, ...), so CPU per delivery counts each once. */
export function redisGroups(redis: RedisInstance): Record<string, number[]> {
  if (redis.shards === undefined) return { redis: [redis.service.pid] };
  return Object.fromEntries(redis.shards.map((pid, i) => [`redis-${i + 1}`, [pid]]));
}
