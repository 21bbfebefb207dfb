import { spawn, type ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { eventually } from './ports.js';

/**
 * One redis-server process (data node or sentinel) that a topology helper starts, kills and
 * restarts by itself. `args` are the command-line options after the config file (if any); the
 * process answers PING on `port` before `start` resolves.
 */
export class RedisNode {
  private proc: ChildProcess | null = null;
  constructor(
    readonly port: number,
    private readonly args: readonly string[],
  ) {}

  get running(): boolean {
    return this.proc !== null && this.proc.exitCode === null;
  }

  async start(): Promise<void> {
    this.proc = spawn('redis-server', [...this.args], { stdio: 'ignore' });
    await waitForPing(this.port);
  }

  /** SIGKILL (a crash, what kill -9 does) or SIGTERM; resolves once the process is gone. */
  async kill(crash = true): Promise<void> {
    const p = this.proc;
    if (p === null || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill(crash ? 'SIGKILL' : 'SIGTERM');
    });
    this.proc = null;
  }

  /** A client to this node alone, for assertions and administration; the caller disconnects it. */
  client(): Redis {
    const c = new Redis({ port: this.port, host: '127.0.0.1', maxRetriesPerRequest: 1, retryStrategy: () => null, lazyConnect: false });
    c.on('error', () => {});
    return c;
  }
}

export async function waitForPing(port: number, timeoutMs = 10_000): Promise<void> {
  const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  probe.on('error', () => {});
  try {
    await eventually(async () => {
      try {
        if (probe.status !== 'ready') await probe.connect();
      } catch {
        probe.disconnect();
        return false;
      }
      return (await probe.ping()) === 'PONG';
    }, timeoutMs, `redis on ${port}`);
  } finally {
    probe.disconnect();
  }
}

/** Runs one command on a node over a short-lived connection. */
export async function nodeCall(port: number, ...args: Array<string | number>): Promise<unknown> {
  const c = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  c.on('error', () => {});
  try {
    await c.connect();
    return await c.call(String(args[0]), ...args.slice(1).map(String));
  } finally {
    c.disconnect();
  }
}
