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
  /** The address it listens on (loopback, or its host's address on a test network). */
  readonly host: string;
  /** The network namespace it runs in (a "host" of tests/helpers/netns.ts), if any. */
  readonly netns: string | undefined;
  constructor(
    readonly port: number,
    private readonly args: readonly string[],
    where: { host?: string; netns?: string } = {},
  ) {
    this.host = where.host ?? '127.0.0.1';
    this.netns = where.netns;
  }

  get running(): boolean {
    return this.proc !== null && this.proc.exitCode === null;
  }

  async start(): Promise<void> {
    // `ip netns exec` execs redis-server itself, so the child's pid is the server's (kill -9 hits it).
    this.proc = this.netns === undefined ? spawn('redis-server', [...this.args], { stdio: 'ignore' }) : spawn('ip', ['netns', 'exec', this.netns, 'redis-server', ...this.args], { stdio: 'ignore' });
    await waitForPing(this);
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
    const c = new Redis({ port: this.port, host: this.host, maxRetriesPerRequest: 1, retryStrategy: () => null, lazyConnect: false });
    c.on('error', () => {});
    return c;
  }
}

/** A node's address: a loopback port, or host and port. */
export type NodeAddress = number | { readonly host: string; readonly port: number };
const addressOf = (a: NodeAddress): { host: string; port: number } => (typeof a === 'number' ? { host: '127.0.0.1', port: a } : { host: a.host, port: a.port });

export async function waitForPing(at: NodeAddress, timeoutMs = 10_000): Promise<void> {
  const { host, port } = addressOf(at);
  const probe = new Redis({ port, host, connectTimeout: 1000, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
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
    }, timeoutMs, `redis on ${host}:${port}`);
  } finally {
    probe.disconnect();
  }
}

/** Runs one command on a node over a short-lived connection. */
export async function nodeCall(at: NodeAddress, ...args: Array<string | number>): Promise<unknown> {
  const { host, port } = addressOf(at);
  const c = new Redis({ port, host, connectTimeout: 1000, commandTimeout: 2000, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  c.on('error', () => {});
  try {
    await c.connect();
    return await c.call(String(args[0]), ...args.slice(1).map(String));
  } finally {
    c.disconnect();
  }
}
