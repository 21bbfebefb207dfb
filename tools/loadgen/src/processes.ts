import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (tools/loadgen/dist/ -> ../../..). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => resolve(typeof addr === 'object' && addr !== null ? addr.port : 0));
    });
  });
}

/** Resolves once something accepts TCP connections on the port. */
export async function waitForPort(port: number, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not accept connections on port ${port} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Resolves once GET url answers 200. */
export async function waitForHttp(url: string, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await fetch(url).then((r) => r.ok, () => false);
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} was not ready at ${url} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/**
 * Every server process the harness started and has not seen exit. If the harness itself ends
 * without stopping them (an error, Ctrl-C, a timeout's SIGTERM) they are killed on the way out:
 * a forgotten listener or redis-server would quietly load the machine and falsify the next run.
 */
const running = new Set<Service>();
let guarded = false;
function guardExit(): void {
  if (guarded) return;
  guarded = true;
  process.once('exit', () => {
    for (const s of running) s.proc.kill('SIGKILL');
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, () => process.exit(130));
}

/** A child process of the system under test, with its output kept for error messages. */
export class Service {
  private out = '';
  readonly exited: Promise<number | null>;
  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    proc.stdout?.on('data', (d: Buffer) => this.keep(d));
    proc.stderr?.on('data', (d: Buffer) => this.keep(d));
    this.exited = new Promise((resolve) =>
      proc.once('exit', (code) => {
        running.delete(this);
        resolve(code);
      }),
    );
    running.add(this);
    guardExit();
  }
  private keep(d: Buffer): void {
    // Only the tail matters (why it failed); a server that logs a lot must not fill our memory.
    this.out = (this.out + d.toString()).slice(-20_000);
  }
  get pid(): number {
    return this.proc.pid ?? 0;
  }
  get output(): string {
    return this.out;
  }
  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }
  async stop(signal: NodeJS.Signals = 'SIGTERM', killAfterMs = 15_000): Promise<void> {
    if (!this.running) return;
    this.proc.kill(signal);
    const t = setTimeout(() => this.proc.kill('SIGKILL'), killAfterMs);
    await this.exited;
    clearTimeout(t);
  }
}

export function spawnService(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Service {
  return new Service(name, spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** A private redis-server (no persistence) in its own directory on a free port. */
export interface RedisInstance {
  readonly service: Service;
  readonly port: number;
  readonly url: string;
  /** The niceness it runs at (0 = like everything else; see setRedisBoost). */
  readonly nice: number;
  /** A Redis Cluster: the pid of each master, in order (the report shows CPU per shard); absent for one Redis. */
  readonly shards?: readonly number[];
  stop(): Promise<void>;
}

/**
 * Redis is the one single-threaded process every message of both systems passes through. Sharing
 * two cores with eight busy processes under fair scheduling, it got less CPU than it needed and
 * was preempted in the middle of publish scripts for tens of milliseconds (Redis SLOWLOG: a plain
 * RPUSH over 2 ms), stalling every publisher and listener at once. So the harness starts Redis,
 * ours and nchan's alike, with this much higher priority (nice -N; `--redis-boost 0` turns it off),
 * which is how an operator would run it on a shared host (docs/operations.md).
 */
let redisBoost = 10;
export function setRedisBoost(n: number): void {
  redisBoost = n;
}
export function getRedisBoost(): number {
  return redisBoost;
}

/** "redis-server" plus its niceness when raised, for a target's description line. */
export function redisLabel(redis: RedisInstance): string {
  const what = redis.shards === undefined ? 'redis-server' : `a Redis Cluster of ${redis.shards.length} master${redis.shards.length === 1 ? '' : 's'} (no replicas)`;
  return redis.nice === 0 ? what : `${what} (nice ${redis.nice})`;
}

export async function startRedis(): Promise<RedisInstance> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'push-bench-redis-'));
  const service = spawnService('redis-server', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--maxclients', '10000']);
  await waitForPort(port, 10_000, 'redis-server');
  let nice = 0;
  if (redisBoost > 0) {
    try {
      setPriority(service.pid, -redisBoost);
      nice = -redisBoost;
    } catch (err) {
      process.stderr.write(`  note: could not raise redis-server's priority (${(err as Error).message}); it runs at the default\n`);
    }
  }
  return {
    service,
    port,
    nice,
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      await service.stop('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A built app of this repository (`apps/<name>/dist/main.js`) on the given port. */
export async function startApp(name: 'publisher' | 'listener', port: number, env: Record<string, string>, nodeArgs: readonly string[] = []): Promise<Service> {
  const main = join(ROOT, 'apps', name, 'dist', 'main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: build first (npm run build)`);
  const service = spawnService(`${name}:${port}`, process.execPath, [...nodeArgs, main], { PATH: process.env['PATH'] ?? '', ...env, PUSH_PORT: String(port) });
  await Promise.race([
    waitForHttp(`http://127.0.0.1:${port}/readyz`, 20_000, `${name} on ${port}`),
    service.exited.then((code) => {
      throw new Error(`${name} on ${port} exited with ${code}:\n${service.output}`);
    }),
  ]);
  return service;
}

/** A scratch directory for config files and logs, removed by the returned function. */
export function scratchDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function writeFile(path: string, text: string): void {
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
}
