import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { SubscribeTarget } from '../channels.js';
import type { PublishTarget } from '../driver.js';
import { freePort, redisLabel, scratchDir, spawnService, startRedis, waitForPort, writeFile, type RedisInstance, type Service } from '../processes.js';
import type { Target } from './types.js';

/**
 * The Bitrix push server 1.0 (the Node.js server portals ran before 2.0) as a peer, from a copy
 * the operator already has (`--bitrix-dir`): the harness never downloads, installs or builds it.
 * It is started in its cluster mode as its multi-process init script lays it out: subscriber
 * processes (WebSocket and long-poll on /bitrix/sub/ and /bitrix/subws/) and publisher processes
 * (/bitrix/pub/), each `node server.js --config <file>.json` with its own file, all sharing one
 * Redis for storage and pub/sub; here a private Redis and files the harness writes.
 */
export interface BitrixOptions {
  /** The operator's copy: the directory holding server.js, or a checkout with opt/push-server/server.js. */
  readonly dir: string;
  readonly subscribers: number;
  readonly publishers: number;
  readonly prefix: string;
}

/** Where server.js of the copy is, or an error telling the operator what is missing. */
export function bitrixEntry(dir: string): { serverJs: string; root: string } {
  const candidates = [resolve(dir), resolve(dir, 'opt', 'push-server')];
  for (const root of candidates) {
    const serverJs = join(root, 'server.js');
    if (!existsSync(serverJs)) continue;
    // Its dependencies (ws, redis, winston, minimist) are the operator's to install: never here.
    if (!existsSync(join(root, 'node_modules', 'ws'))) throw new Error(`--bitrix-dir: ${root} has no node_modules (run npm install there first; the bench never installs it)`);
    return { serverJs, root };
  }
  throw new Error(`--bitrix-dir: no server.js in ${candidates.join(' or ')} (give the directory of the Bitrix push server 1.0, e.g. its opt/push-server)`);
}

export interface BitrixProcess {
  readonly role: 'sub' | 'pub';
  readonly port: number;
  readonly redisPort: number;
  /** Channel signature key (HMAC-SHA1 of the channel id, as this server's subscribers sign theirs). */
  readonly key: string;
  readonly logDir: string;
}

/**
 * One process's configuration, in the shape of the init script's templates (push-server-sub-PORT.json,
 * push-server-pub-PORT.json) with the harness's ports, Redis over TCP instead of a socket file,
 * logs in the run's scratch directory and no debug addresses: its templates list 127.0.0.1,
 * which would make it log every local request in full, and the load generator is local.
 */
export function bitrixConfig(p: BitrixProcess): Record<string, unknown> {
  const name = `${p.role}-${p.port}`;
  const routes = p.role === 'sub' ? { sub: '/bitrix/subws/' } : { pub: '/bitrix/pub/', stat: '/server-stat/' };
  return {
    servers: [{ name, port: p.port, hostname: '127.0.0.1', backlog: 1024, routes }],
    ...(p.role === 'pub' ? { publishMode: true } : {}),
    clusterMode: true,
    processUniqueId: name,
    storage: { type: 'redis', host: '127.0.0.1', port: p.redisPort, messageTLL: 86400, channelTLL: 86400, onlineTLL: 120, onlineDelta: 10 },
    security: { key: p.key },
    debug: { ip: [], folderName: p.logDir },
  };
}

export class BitrixTarget implements Target {
  readonly name = 'bitrix';
  private constructor(
    private readonly opts: BitrixOptions,
    private readonly redis: RedisInstance,
    private readonly key: string,
    private readonly subs: ReadonlyArray<{ port: number; service: Service }>,
    private readonly pubs: ReadonlyArray<{ port: number; service: Service }>,
    private readonly removeDir: () => void,
  ) {}

  static async start(opts: BitrixOptions): Promise<BitrixTarget> {
    const { serverJs } = bitrixEntry(opts.dir);
    const redis = await startRedis();
    const { dir, remove } = scratchDir('push-bench-bitrix-');
    const key = randomBytes(32).toString('hex');
    const started: Array<{ port: number; service: Service }> = [];
    const launch = async (role: 'sub' | 'pub'): Promise<{ port: number; service: Service }> => {
      const port = await freePort();
      const logDir = join(dir, `logs-${role}-${port}`);
      writeFile(join(logDir, '.keep'), '');
      const conf = join(dir, `push-server-${role}-${port}.json`);
      writeFile(conf, `${JSON.stringify(bitrixConfig({ role, port, redisPort: redis.port, key, logDir }), null, 2)}\n`);
      const service = spawnService(`bitrix-${role}:${port}`, process.execPath, [serverJs, '--config', conf], { PATH: process.env['PATH'] ?? '' });
      started.push({ port, service });
      await Promise.race([
        waitForPort(port, 20_000, `Bitrix push server 1.0 (${role}) on ${port}`),
        service.exited.then((code) => {
          throw new Error(`Bitrix push server 1.0 (${role}) exited with ${code}:\n${service.output}`);
        }),
      ]);
      return { port, service };
    };
    try {
      const subs = await Promise.all(Array.from({ length: opts.subscribers }, () => launch('sub')));
      const pubs = await Promise.all(Array.from({ length: opts.publishers }, () => launch('pub')));
      return new BitrixTarget(opts, redis, key, subs, pubs, remove);
    } catch (err) {
      await Promise.all(started.map((s) => s.service.stop('SIGTERM')));
      await redis.stop();
      remove();
      throw err;
    }
  }

  get describe(): string {
    return `Bitrix push server 1.0 (cluster mode): ${this.opts.subscribers} subscriber and ${this.opts.publishers} publisher processes, ${redisLabel(this.redis)}, WebSocket text clients straight to the subscribers, unsigned publishes (it checks no publish signature)`;
  }

  subscribeTarget(): SubscribeTarget {
    // The same clients as this server's text WebSockets: /bitrix/subws/?CHANNEL_ID=<id>.<sha1 signature>, Bitrix text frames.
    return { kind: 'bitrix', urls: this.subs.map((s) => `http://127.0.0.1:${s.port}`), prefix: this.opts.prefix, signatureKey: this.key };
  }

  publishTarget(): PublishTarget {
    return { kind: 'bitrix', urls: this.pubs.map((s) => `http://127.0.0.1:${s.port}`), prefix: this.opts.prefix, auth: null };
  }

  pids(): Record<string, number[]> {
    return { subscribers: this.subs.map((s) => s.service.pid), publishers: this.pubs.map((s) => s.service.pid), redis: [this.redis.service.pid] };
  }

  subscriberPids(): number[] {
    return this.subs.map((s) => s.service.pid);
  }

  async stop(): Promise<void> {
    await Promise.all([...this.subs, ...this.pubs].map((s) => s.service.stop('SIGTERM')));
    await this.redis.stop();
    this.removeDir();
  }
}
