import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { Fleet } from './fleet.js';
import { forkRemote, type Remote } from './ipc.js';
import { ResourceMonitor } from './resources.js';
import type { Target } from './targets/types.js';

/** Everything a scenario drives against one target: subscriber workers, the publish driver, the sampler. */
export interface Session {
  readonly target: Target;
  readonly fleet: Fleet;
  readonly driver: Remote;
  readonly monitor: ResourceMonitor;
  close(): Promise<void>;
}

export async function openSession(target: Target, workers: number): Promise<Session> {
  const fleet = Fleet.start(workers);
  const driver = forkRemote('driver', 'driver');
  await driver.call('setup', { target: target.publishTarget() });
  // The load generator's own consumption is part of every report: on one machine it competes
  // with the server for the same cores.
  const monitor = new ResourceMonitor(() => ({ ...target.pids(), loadgen: [process.pid, driver.pid, ...fleet.pids()] }));
  return {
    target,
    fleet,
    driver,
    monitor,
    async close() {
      monitor.stop();
      await fleet.stop();
      await driver.stop();
      await target.stop();
    },
  };
}

/** Runs `body` against a freshly started target and always tears everything down. */
export async function withTarget<T>(start: () => Promise<Target>, workers: number, body: (s: Session) => Promise<T>): Promise<T> {
  const target = await start();
  let session: Session | null = null;
  try {
    session = await openSession(target, workers);
    return await body(session);
  } finally {
    if (session !== null) await session.close();
    else await target.stop();
  }
}

function version(cmd: string, args: string[], re: RegExp): string {
  // Some tools (nginx -v) print their version on stderr: read both streams.
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  return re.exec(out)?.[1] ?? 'unknown';
}

/**
 * A speed index of this machine right now: SHA-256 digests of a 1 KiB buffer per second on one
 * core, over `ms` (half a second unless told). Shared and virtual machines change speed from hour
 * to hour, and this one also slows down for minutes after sustained load (docs/benchmarks.md), so
 * runs of the same code compare only together with this figure, and every step records its own.
 */
export function speedIndex(ms = 500): number {
  const buf = Buffer.alloc(1024, 7);
  const started = performance.now();
  let n = 0;
  while (performance.now() - started < ms) {
    for (let i = 0; i < 100; i++) createHash('sha256').update(buf).digest();
    n += 100;
  }
  return Math.round((n * 1000) / (performance.now() - started));
}

/** What the numbers were measured on: recorded with every report. */
export function machine(): Record<string, unknown> {
  const cpu = cpus();
  return {
    cpu: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    memoryGb: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    redis: version('redis-server', ['--version'], /v=(\S+)/),
    nginx: version('nginx', ['-v'], /nginx\/(\S+)/),
    loadAverageAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
    sha256PerSecond: speedIndex(),
  };
}
