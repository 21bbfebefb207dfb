import type { ConnSpec, SubscribeTarget } from './channels.js';
import { Histogram } from './histogram.js';
import { forkRemote, type Remote } from './ipc.js';

export interface OpenOptions {
  readonly reconnect: boolean;
  readonly reconnectJitterMs: number;
  /** Handshakes in flight per worker. */
  readonly concurrency: number;
}

export interface Progress {
  received: number;
  connected: number;
  reconnects: number;
  requests: number;
}

export interface Collected {
  connections: number;
  expected: number;
  received: number;
  lost: number;
  duplicates: number;
  reordered: number;
  malformed: number;
  opened: number;
  failed: number;
  unexpectedCloses: number;
  reconnects: number;
  requests: number;
  firstError: string;
  /** Up to five connections per worker that missed something: which channel, what they last saw. */
  lossSamples: Array<Record<string, unknown>>;
  /** From the moment each message was due at the publish driver. */
  latency: Histogram;
  /** From the moment the request carrying it was sent. */
  sendLatency: Histogram;
  /** The worst worker's event-loop delay since the last latency reset (ms). */
  loopDelayMs: { p99: number; max: number };
}

/** The subscriber side of the load generator: worker processes each playing a share of the clients. */
export class Fleet {
  private constructor(readonly workers: Remote[]) {}

  static start(count: number): Fleet {
    return new Fleet(Array.from({ length: count }, (_, i) => forkRemote('worker', `worker-${i + 1}`)));
  }

  pids(): number[] {
    return this.workers.map((w) => w.pid);
  }

  /** Opens the connections, dealt round-robin to the workers; resolves when every one is open or failed. */
  async open(target: SubscribeTarget, conns: readonly ConnSpec[], opts: OpenOptions): Promise<{ opened: number; failed: number; firstError: string; ms: number }> {
    const t0 = performance.now();
    const shares: ConnSpec[][] = this.workers.map(() => []);
    conns.forEach((c, i) => shares[i % this.workers.length]?.push(c));
    const res = await Promise.all(
      this.workers.map((w, i) => w.call<{ opened: number; failed: number; firstError: string }>('open', { settings: { target, reconnect: opts.reconnect, reconnectJitterMs: opts.reconnectJitterMs }, conns: shares[i], concurrency: opts.concurrency })),
    );
    return {
      opened: res.reduce((s, r) => s + r.opened, 0),
      failed: res.reduce((s, r) => s + r.failed, 0),
      firstError: res.find((r) => r.firstError !== '')?.firstError ?? '',
      ms: Math.round(performance.now() - t0),
    };
  }

  async progress(): Promise<Progress> {
    const all = await Promise.all(this.workers.map((w) => w.call<Progress>('progress')));
    return all.reduce((s, p) => ({ received: s.received + p.received, connected: s.connected + p.connected, reconnects: s.reconnects + p.reconnects, requests: s.requests + p.requests }), { received: 0, connected: 0, reconnects: 0, requests: 0 });
  }

  /** Deliveries so far and the latency of those since the previous call (timeline.ts). */
  async slice(): Promise<{ received: number; latency: Histogram }> {
    const parts = await Promise.all(this.workers.map((w) => w.call<{ received: number; latency: Parameters<Histogram['add']>[0] }>('slice')));
    const latency = new Histogram();
    for (const p of parts) latency.add(p.latency);
    return { received: parts.reduce((s, p) => s + p.received, 0), latency };
  }

  /** Starts a new latency window (counts of deliveries are cumulative and never reset). */
  async resetLatency(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.call('reset')));
  }

  /** Delivery check against the final sequence number of every channel. */
  async collect(expected: readonly number[]): Promise<Collected> {
    const parts = await Promise.all(this.workers.map((w) => w.call<Record<string, unknown>>('collect', { expected })));
    const merged = (k: string): Histogram => {
      const h = new Histogram();
      for (const p of parts) h.add(p[k] as Parameters<Histogram['add']>[0]);
      return h;
    };
    const sum = (k: string): number => parts.reduce((s, p) => s + (p[k] as number), 0);
    return {
      connections: sum('connections'),
      expected: sum('expected'),
      received: sum('received'),
      lost: sum('lost'),
      duplicates: sum('duplicates'),
      reordered: sum('reordered'),
      malformed: sum('malformed'),
      opened: sum('opened'),
      failed: sum('failed'),
      unexpectedCloses: sum('unexpectedCloses'),
      reconnects: sum('reconnects'),
      requests: sum('requests'),
      firstError: (parts.find((p) => p['firstError'] !== '')?.['firstError'] as string | undefined) ?? '',
      lossSamples: parts.flatMap((p) => p['lossSamples'] as Array<Record<string, unknown>>),
      latency: merged('latency'),
      sendLatency: merged('sendLatency'),
      loopDelayMs: {
        p99: Math.round(Math.max(...parts.map((p) => (p['loopDelayMs'] as { p99: number }).p99)) * 10) / 10,
        max: Math.round(Math.max(...parts.map((p) => (p['loopDelayMs'] as { max: number }).max)) * 10) / 10,
      },
    };
  }

  async stop(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.call('close').catch(() => undefined)));
    await Promise.all(this.workers.map((w) => w.stop()));
  }
}
