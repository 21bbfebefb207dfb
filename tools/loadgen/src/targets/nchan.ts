import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SubscribeTarget } from '../channels.js';
import type { PublishTarget } from '../driver.js';
import { freePort, redisLabel, scratchDir, spawnService, startRedis, waitForPort, writeFile, type RedisInstance, type Service } from '../processes.js';
import { childPids } from './proc-children.js';
import type { Target } from './types.js';

/** Debian's libnginx-mod-nchan puts the module here. */
export const NCHAN_MODULE = '/usr/lib/nginx/modules/ngx_nchan_module.so';

/** nchan's shared memory pool, MB (its default is 128; see nchanConfig). */
const NCHAN_SHM_MB = 1024;

export function nchanAvailable(): boolean {
  return existsSync(NCHAN_MODULE) && (existsSync('/usr/sbin/nginx') || existsSync('/usr/bin/nginx'));
}

export interface NchanOptions {
  /** nginx worker processes (compared against the same number of listener processes). */
  readonly workers: number;
  readonly prefix: string;
  /** Messages kept per channel and how long (the push server's history cap and TTL). */
  readonly bufferLength: number;
  readonly messageTimeoutS: number;
}

/**
 * nchan, the nginx pub/sub module, configured as the nearest equivalent of this server: Redis
 * storage (messages survive a worker restart and are shared between workers), a per-channel
 * message buffer, WebSocket subscribers on /sub/<id>, publishers on /pub/<id>[,<id>...] (nchan's
 * split delimiter publishes one message to several channels in one request).
 */
export class NchanTarget implements Target {
  readonly name = 'nchan';
  private constructor(
    private readonly opts: NchanOptions,
    private readonly redis: RedisInstance,
    private readonly nginx: Service,
    private readonly port: number,
    private readonly dir: string,
    private readonly removeDir: () => void,
  ) {}

  static async start(opts: NchanOptions): Promise<NchanTarget> {
    if (!nchanAvailable()) throw new Error(`nchan is not installed (${NCHAN_MODULE}); install libnginx-mod-nchan or pass --no-nchan`);
    const redis = await startRedis();
    const port = await freePort();
    const { dir, remove } = scratchDir('push-bench-nchan-');
    const conf = join(dir, 'nginx.conf');
    writeFile(conf, nchanConfig({ ...opts, dir, port, redisUrl: redis.url }));
    writeFile(join(dir, 'tmp', '.keep'), '');
    const bin = existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : '/usr/bin/nginx';
    const nginx = spawnService('nginx', bin, ['-p', dir, '-c', conf, '-g', 'daemon off;']);
    try {
      await Promise.race([
        waitForPort(port, 15_000, 'nginx (nchan)'),
        nginx.exited.then((code) => {
          throw new Error(`nginx (nchan) exited with ${code}:\n${nginx.output}`);
        }),
      ]);
    } catch (err) {
      await nginx.stop();
      await redis.stop();
      remove();
      throw err;
    }
    return new NchanTarget(opts, redis, nginx, port, dir, remove);
  }

  get describe(): string {
    return `nchan (libnginx-mod-nchan): nginx with ${this.opts.workers} worker processes, storage in ${redisLabel(this.redis)}, WebSocket subscribers`;
  }

  subscribeTarget(): SubscribeTarget {
    return { kind: 'nchan', urls: [`http://127.0.0.1:${this.port}`], prefix: this.opts.prefix, signatureKey: '' };
  }

  publishTarget(): PublishTarget {
    return { kind: 'nchan', urls: [`http://127.0.0.1:${this.port}`], prefix: this.opts.prefix, auth: null };
  }

  pids(): Record<string, number[]> {
    return { nginx: [this.nginx.pid, ...childPids(this.nginx.pid)], redis: [this.redis.service.pid] };
  }

  subscriberPids(): number[] {
    return childPids(this.nginx.pid);
  }

  async stop(): Promise<void> {
    await this.nginx.stop('SIGQUIT');
    await this.redis.stop();
    // A misconfigured nchan degrades quietly (it once ran out of shared memory mid-run and dropped
    // messages), so its own complaints go to the run's output before the directory goes.
    const problems = nginxProblems(readOr(join(this.dir, 'error.log'), ''));
    if (problems.count > 0) process.stderr.write(`  note: nchan's nginx logged ${problems.count} errors:${problems.kinds.map((k) => `\n    ${k.count} x ${k.text}`).join('')}\n`);
    this.removeDir();
  }
}

/**
 * Complaints in an nginx error log (level error or worse): how many, and the most frequent kinds
 * with their counts (timestamps, process ids and channel ids stripped so that repeats group).
 */
export function nginxProblems(log: string): { count: number; kinds: Array<{ text: string; count: number }> } {
  const kinds = new Map<string, number>();
  let count = 0;
  for (const line of log.split('\n')) {
    const m = /\[(error|crit|alert|emerg)\] [0-9#]+: (.*)$/.exec(line);
    if (m === null) continue;
    count++;
    const text = `[${m[1] as string}] ${(m[2] as string).replace(/[0-9a-f]{8,}/g, '…').replace(/\d+/g, 'N')}`;
    kinds.set(text, (kinds.get(text) ?? 0) + 1);
  }
  const top = [...kinds].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([text, n]) => ({ text, count: n }));
  return { count, kinds: top };
}

function readOr(file: string, fallback: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

function nchanConfig(o: NchanOptions & { dir: string; port: number; redisUrl: string }): string {
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  return `# Rendered by the benchmark harness for one run; removed afterwards.
load_module ${NCHAN_MODULE};
${root ? 'user root;' : ''}
worker_processes ${o.workers};
# No worker_rlimit_nofile: the workers inherit the descriptor limit scripts/bench.sh gives every
# process of the run (the listeners too); asking for more than the hard limit only logs an alert.
pid ${o.dir}/nginx.pid;
error_log ${o.dir}/error.log warn;
events {
    worker_connections 131072;
    multi_accept on;
}
http {
    access_log off;
    client_body_temp_path ${o.dir}/tmp;
    proxy_temp_path ${o.dir}/tmp;
    fastcgi_temp_path ${o.dir}/tmp;
    uwsgi_temp_path ${o.dir}/tmp;
    scgi_temp_path ${o.dir}/tmp;
    client_max_body_size 1m;
    # nchan keeps channel state and inter-worker messages in one shared memory pool even with
    # Redis storage. Its 128 MB default ran out with 5,000 channels under load ("Out of shared
    # memory ... IPC keepalive alert") and messages were lost; a deployment of this size raises it.
    nchan_shared_memory_size ${NCHAN_SHM_MB}m;
    upstream bench_redis {
        nchan_redis_server ${o.redisUrl};
    }
    server {
        listen 127.0.0.1:${o.port} backlog=65535;
        location ~ ^/pub/(.+)$ {
            nchan_publisher;
            nchan_channel_id "$1";
            nchan_channel_id_split_delimiter ",";
            nchan_redis_pass bench_redis;
            nchan_message_buffer_length ${o.bufferLength};
            nchan_message_timeout ${o.messageTimeoutS}s;
        }
        location ~ ^/sub/(.+)$ {
            nchan_subscriber websocket;
            nchan_channel_id "$1";
            nchan_redis_pass bench_redis;
        }
    }
}
`;
}
