import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { eventually, freePort } from './ports.js';

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** A plain client for assertions (reading keys, flushing). */
  client(): Redis;
  /** Stops the server (SIGKILL when `crash`), keeping its directory for a restart. */
  kill(crash?: boolean): Promise<void>;
  /** Starts it again on the same port and directory (AOF data survives when enabled). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** A private redis-server on a free port, in a temporary directory; the real thing, not a mock. */
export async function startRedis(opts: { appendonly?: boolean } = {}): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'push-redis-'));
  const clients: Redis[] = [];
  let proc: ChildProcess | null = null;
  const launch = async (): Promise<void> => {
    proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', opts.appendonly ? 'yes' : 'no', '--logfile', join(dir, 'redis.log')], {
      stdio: 'ignore',
    });
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => {});
    await eventually(async () => {
      try {
        await probe.connect();
      } catch {
        probe.disconnect();
        return false;
      }
      return (await probe.ping()) === 'PONG';
    }, 10_000, `redis-server on ${port}`);
    probe.disconnect();
  };
  await launch();
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    client() {
      const c = new Redis({ port, host: '127.0.0.1' });
      c.on('error', () => {});
      clients.push(c);
      return c;
    },
    async kill(crash = false) {
      const p = proc;
      if (p === null || p.exitCode !== null) return;
      await new Promise<void>((resolve) => {
        p.once('exit', () => resolve());
        p.kill(crash ? 'SIGKILL' : 'SIGTERM');
      });
      proc = null;
    },
    async restart() {
      await launch();
    },
    async stop() {
      for (const c of clients) c.disconnect();
      await server.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}
