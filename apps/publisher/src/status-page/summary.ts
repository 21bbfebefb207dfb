/**
 * Pure summary of the cluster for the status page, from the /server-stat/ snapshots every process
 * reports to Redis. Snapshots are untrusted-ish JSON (another version of the server may write
 * other fields), so every number is read defensively.
 */
export interface ProcessRow {
  readonly type: string;
  readonly pid: number;
  readonly processUniqueId: string;
  readonly port: number;
  readonly websockets: number;
  readonly pollings: number;
  readonly channels: number;
  /** Messages per second over the last report interval (published for publishers, delivered for listeners). */
  readonly rate: number;
  readonly draining: boolean;
  /** Milliseconds since the process last reported. */
  readonly ageMs: number;
  /** Listeners: store-to-listener delay over their last report interval, ms (null: no messages). */
  readonly latencyP50: number | null;
  readonly latencyP99: number | null;
  readonly latencyCount: number;
}

export interface ClusterSummary {
  readonly generatedAt: number;
  /** Redis health; with the memory backend (single-process mode) there is no Redis to report. */
  readonly redis: { readonly up: boolean; readonly latencyMs: number | null };
  readonly backend: 'redis' | 'memory';
  readonly totals: {
    readonly publishers: number;
    readonly listeners: number;
    readonly websockets: number;
    readonly pollings: number;
    readonly channels: number;
    readonly publishRate: number;
    readonly deliveryRate: number;
    /** The listeners' p50 weighted by their message counts, and the worst listener's p99 (ms). */
    readonly latencyP50: number | null;
    readonly latencyP99: number | null;
  };
  readonly processes: readonly ProcessRow[];
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);
const numOrNull = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : null);

export function summarize(stats: readonly Record<string, unknown>[], redis: { up: boolean; latencyMs: number | null }, now: number, backend: 'redis' | 'memory' = 'redis'): ClusterSummary {
  const processes: ProcessRow[] = stats
    .map((s) => {
      const rates = (typeof s['rates'] === 'object' && s['rates'] !== null ? s['rates'] : {}) as Record<string, unknown>;
      const type = typeof s['type'] === 'string' ? s['type'] : 'unknown';
      const latency = (typeof s['latency'] === 'object' && s['latency'] !== null ? s['latency'] : {}) as Record<string, unknown>;
      return {
        type,
        pid: num(s['pid']),
        processUniqueId: typeof s['processUniqueId'] === 'string' ? s['processUniqueId'] : '?',
        port: num(s['port']),
        websockets: num(s['websockets']),
        pollings: num(s['pollings']),
        channels: num(s['channels']),
        rate: num(type === 'publisher' ? rates['published'] : rates['delivered']),
        draining: s['draining'] === true,
        ageMs: Math.max(0, now - num(s['date'])),
        latencyP50: numOrNull(latency['p50']),
        latencyP99: numOrNull(latency['p99']),
        latencyCount: num(latency['count']),
      };
    })
    .sort((a, b) => (a.type === b.type ? a.port - b.port : a.type < b.type ? 1 : -1));
  const sum = (f: (p: ProcessRow) => number, type?: string): number => processes.filter((p) => type === undefined || p.type === type).reduce((a, p) => a + f(p), 0);
  const measured = processes.filter((p) => p.latencyCount > 0 && p.latencyP50 !== null && p.latencyP99 !== null);
  const weight = measured.reduce((a, p) => a + p.latencyCount, 0);
  const round = (v: number): number => Math.round(v * 100) / 100;
  return {
    generatedAt: now,
    redis,
    backend,
    totals: {
      publishers: processes.filter((p) => p.type === 'publisher').length,
      listeners: processes.filter((p) => p.type === 'listener').length,
      websockets: sum((p) => p.websockets),
      pollings: sum((p) => p.pollings),
      channels: sum((p) => p.channels),
      publishRate: sum((p) => p.rate, 'publisher'),
      deliveryRate: sum((p) => p.rate, 'listener'),
      latencyP50: weight > 0 ? round(measured.reduce((a, p) => a + (p.latencyP50 ?? 0) * p.latencyCount, 0) / weight) : null,
      latencyP99: weight > 0 ? Math.max(...measured.map((p) => p.latencyP99 ?? 0)) : null,
    },
    processes,
  };
}
