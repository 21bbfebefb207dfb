import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AdminGate } from './admin-gate.js';
import { Exchange } from './http.js';
import type { TemplatedApp } from './uws.js';

export { Counter, Gauge, Histogram, Registry };

/**
 * Prometheus metrics shared by both apps. Each process has its own registry (one scrape target per
 * process, like the Bitrix layout of several processes behind nginx); the default Node metrics
 * give memory, CPU, file descriptors and event-loop lag (`nodejs_eventloop_lag_*`).
 */
export interface CommonMetrics {
  readonly registry: Registry;
  /** Redis round trips by command: the store's atomic publish script, history reads, pings, (un)subscribes. */
  readonly redisDuration: Histogram<'command'>;
  /** 1 while the last Redis ping answered, 0 otherwise. */
  readonly redisUp: Gauge;
  /** 1 once SIGTERM started the drain. */
  readonly draining: Gauge;
  /**
   * Messages the store accepted through this process, by storage (stored = kept for resume by mid,
   * live = expiry 0). Publishers count every publish form (text, batch, protocol-4 binary,
   * `/bitrix/rest/`); listeners count protocol-4 client publishes sent over a WebSocket.
   */
  readonly published: Counter<'storage'>;
}

export function createCommonMetrics(app: 'publisher' | 'listener'): CommonMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ app });
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
  return {
    registry,
    redisDuration: new Histogram({
      name: 'push_redis_command_duration_seconds',
      help: 'Redis round-trip time by command (publish = the atomic store+PUBLISH script).',
      labelNames: ['command'],
      // Loopback Redis answers in ~0.1-1 ms; the tail up to seconds shows a struggling server.
      buckets: [0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5],
      registers: [registry],
    }),
    redisUp: new Gauge({ name: 'push_redis_up', help: '1 while Redis answers pings, 0 otherwise.', registers: [registry] }),
    draining: new Gauge({ name: 'push_draining', help: '1 while the process is shutting down (readiness is 503).', registers: [registry] }),
    published: new Counter({ name: 'push_messages_published_total', help: 'Messages accepted by the store through this process, by storage (stored = kept for resume, live = expiry 0).', labelNames: ['storage'], registers: [registry] }),
  };
}

/** Runs `fn` and records its duration under `command`, whether it succeeds or fails. */
export async function timed<T>(h: Histogram<'command'>, command: string, fn: () => Promise<T>): Promise<T> {
  const end = h.startTimer({ command });
  try {
    return await fn();
  } finally {
    end();
  }
}

/** Counts messages the store has just accepted under `push_messages_published_total`. */
export function countPublished(m: CommonMetrics, messages: ReadonlyArray<{ readonly ttl: number }>): void {
  let stored = 0;
  for (const msg of messages) if (msg.ttl > 0) stored++;
  if (stored > 0) m.published.inc({ storage: 'stored' }, stored);
  if (messages.length > stored) m.published.inc({ storage: 'live' }, messages.length - stored);
}

/**
 * A counter whose value lives elsewhere (e.g. the hub's plain-number counters, kept as numbers on
 * the hot path); it is read at scrape time. The source only ever grows, so this is a true counter.
 */
export function mirroredCounter(registry: Registry, name: string, help: string, read: () => number): Counter {
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/**
 * `push_redis_stalls_total{connection}`: Redis connections of this process found open but silent
 * (no answer to a PING for PUSH_PUBSUB_STALL_MS) and torn down to reconnect, by connection name
 * (push-cmd, push-pub, push-sub), read from the backend at scrape time.
 */
export function registerRedisStalls(registry: Registry, read: () => Readonly<Record<string, number>>): Counter<'connection'> {
  return new Counter({
    name: 'push_redis_stalls_total',
    help: 'Redis connections found open but silent (PING unanswered for PUSH_PUBSUB_STALL_MS) and reconnected, by connection.',
    labelNames: ['connection'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [connection, n] of Object.entries(read())) this.inc({ connection }, n);
    },
  });
}

/** `GET /metrics` in the Prometheus text format, behind the admin gate (docs/operations.md, scraping). */
export function serveMetrics(app: TemplatedApp, registry: Registry, gate: AdminGate): void {
  app.get('/metrics', gate.guard((res) => {
    const ex = new Exchange(res);
    registry.metrics().then(
      (text) => ex.send(200, text, [['Content-Type', registry.contentType]]),
      (err: Error) => ex.send(500, `metrics failed: ${err.message}\n`, [['Content-Type', 'text/plain; charset=utf-8']]),
    );
  }));
}

/**
 * Pings Redis every `intervalMs` so `push_redis_up` and the ping latency stay current between
 * scrapes and readiness probes. Returns a stopper.
 */
export function startRedisProbe(m: CommonMetrics, ping: () => Promise<void>, intervalMs = 5000): { stop(): void } {
  const tick = (): void => {
    timed(m.redisDuration, 'ping', ping).then(
      () => m.redisUp.set(1),
      () => m.redisUp.set(0),
    );
  };
  tick();
  const t = setInterval(tick, intervalMs);
  t.unref();
  return { stop: () => clearInterval(t) };
}

/** Per-second rate of a growing counter between two reports; 0 on the first report or a reset. */
export class RateMeter {
  private last: { value: number; at: number } | null = null;
  rate(value: number, now: number): number {
    const prev = this.last;
    this.last = { value, at: now };
    if (prev === null || now <= prev.at || value < prev.value) return 0;
    return Math.round(((value - prev.value) * 1000 * 10) / (now - prev.at)) / 10;
  }
}
