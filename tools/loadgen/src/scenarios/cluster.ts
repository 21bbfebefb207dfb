import { runPrefix } from '../channels.js';
import { cpuPerDelivery, formatCpuPerDelivery, type CpuPerDelivery } from '../cost.js';
import type { PublishPlan } from '../driver.js';
import { Histogram } from '../histogram.js';
import { fmt, parse, pushExtras, type Scenario } from '../options.js';
import { parseShape } from '../publish-shape.js';
import { startRedis, type RedisInstance } from '../processes.js';
import { startRedisCluster } from '../redis-cluster.js';
import { withTarget } from '../session.js';
import { PushTarget } from '../targets/push.js';
import { lanesFor, parsePublishAuth, PUBLISH_OPTIONS, runFanout } from './fanout-scenario.js';

/** One backend's figures: fan-out (private) and publish capacity (ingest), Redis CPU per shard. */
interface BackendResult {
  backend: string;
  deliveriesPerSec: number;
  /** Server CPU per delivery at the best private step, by group (redis-1, redis-2, ... per shard). */
  privateCpu: CpuPerDelivery | null;
  /** Single-message publishes answered per second by one publisher, closed loop, no subscribers. */
  publishesPerSec: number;
  publishMs: { p50: number; p99: number };
  /** Server CPU per stored message in the publish capacity phase, by group. */
  ingestCpu: CpuPerDelivery | null;
  publishErrors: number;
  firstPublishError: string;
  ok: boolean;
  failures: string[];
}

/**
 * `cluster`: the private fan-out and the publish capacity of one publisher on one Redis and on a
 * Redis Cluster of 1, 2 and 3 masters (`--masters`), side by side: deliveries/s, publishes/s and
 * Redis CPU per delivery for each shard. The Cluster has no replicas and no persistence, like the
 * single Redis of the other scenarios: this measures what sharding costs and buys, not replication.
 */
export const clusterScenario: Scenario = async (argv, log) => {
  const o = parse(argv, { ...PUBLISH_OPTIONS, masters: '1,2,3', channels: '5000', fanout: '10', 'binary-share': '0.5', lanes: 'auto', batch: '200', 'start-rate': '2000', factor: '1.4', 'max-steps': '12', refine: '2', 'max-rate': '1000000', 'ingest-lanes': '64' });
  const shape = parseShape(o.str('shape'));
  const auth = parsePublishAuth(o.str('publish-auth'));
  const backends: Array<[string, () => Promise<RedisInstance>]> = [['one Redis', startRedis], ...o.nums('masters').map((m): [string, () => Promise<RedisInstance>] => [`Cluster of ${m}`, () => startRedisCluster(m)])];
  const results: BackendResult[] = [];
  for (const [backend, redis] of backends) {
    log(`--- ${backend}`);
    const fan = await runFanout(
      {
        scenario: `private on ${backend}`,
        transport: 'ws',
        compareNchan: false,
        channels: o.num('channels'),
        devices: (c) => (c % 2 === 0 ? 2 : 1),
        fanout: o.num('fanout'),
        binaryShare: o.num('binary-share'),
        lanes: { push: lanesFor(o.str('lanes'), shape, Math.floor(o.num('channels') / o.num('fanout'))), nchan: 1 },
        publishShape: shape,
        publishAuth: auth,
        batch: o.num('batch'),
        tickMs: 0,
        startRate: o.num('start-rate'),
        factor: o.num('factor'),
        maxSteps: o.num('max-steps'),
        maxRate: o.num('max-rate'),
        refine: o.num('refine'),
        targets: { deliveriesPerSec: null, p99Ms: null },
        redis,
      },
      o,
      log,
    );
    const best = (fan.results as { push: { ramp: { best: { deliveriesPerSec: number; serverCpuPerDelivery: CpuPerDelivery | null } | null } } }).push.ramp.best;
    // Publish capacity: one publisher, no listeners, single-message requests as fast as it answers.
    const prefix = runPrefix();
    const ingest = await withTarget(() => PushTarget.start({ listeners: 0, publishers: 1, prefix, auth, redis, ...pushExtras(o) }), o.num('workers'), async (s) => {
      const plan: PublishPlan = { channels: o.num('channels'), fanout: 1, lanes: o.num('ingest-lanes'), shape, batch: o.num('batch'), rate: 0, seconds: o.num('seconds'), bodyBytes: o.num('body-bytes'), expiry: 60, presign: 0 };
      s.monitor.window();
      const r = await s.driver.call<Record<string, unknown>>('run', { plan });
      const win = s.monitor.window();
      const accept = new Histogram();
      accept.add(r['accept'] as Parameters<Histogram['add']>[0]);
      const sec = r['seconds'] as number;
      return { requestsPerSec: Math.round((r['requests'] as number) / sec), messages: r['messages'] as number, errors: r['errors'] as number, firstError: r['firstError'] as string, accept: accept.summaryMs(), cpu: cpuPerDelivery(win.groups, win.seconds, r['messages'] as number) };
    });
    const failures = [...fan.failures, ...(ingest.errors > 0 ? [`publish capacity: ${ingest.errors} requests failed: ${ingest.firstError}`] : [])];
    const res: BackendResult = {
      backend,
      deliveriesPerSec: best?.deliveriesPerSec ?? 0,
      privateCpu: best?.serverCpuPerDelivery ?? null,
      publishesPerSec: ingest.requestsPerSec,
      publishMs: { p50: ingest.accept.p50, p99: ingest.accept.p99 },
      ingestCpu: ingest.cpu,
      publishErrors: ingest.errors,
      firstPublishError: ingest.firstError,
      ok: failures.length === 0,
      failures,
    };
    log(`  ${backend}: ${fmt(res.deliveriesPerSec)} deliveries/s (server CPU ${formatCpuPerDelivery(res.privateCpu)} per delivery); ${fmt(res.publishesPerSec)} publishes/s, p99 ${res.publishMs.p99} ms (server CPU ${formatCpuPerDelivery(res.ingestCpu)} per message)`);
    results.push(res);
  }
  const redisOnly = (c: CpuPerDelivery | null): string => (c === null ? 'n/a' : Object.entries(c.byGroupUs).filter(([g]) => g.startsWith('redis')).map(([g, us]) => `${g} ${us}`).join(', ') || 'n/a');
  const summary = [
    `cluster: private fan-out and one publisher's publish capacity on one Redis and on Redis Clusters (no replicas), ${shape} shape`,
    ...results.flatMap((r) => [
      `  ${r.backend}: ${fmt(r.deliveriesPerSec)} deliveries/s, server CPU ${formatCpuPerDelivery(r.privateCpu)} per delivery; Redis us per delivery by shard: ${redisOnly(r.privateCpu)}`,
      `    publish capacity ${fmt(r.publishesPerSec)} requests/s (p50 ${r.publishMs.p50} ms, p99 ${r.publishMs.p99} ms), Redis us per message by shard: ${redisOnly(r.ingestCpu)}`,
    ]),
  ];
  const failures = results.flatMap((r) => r.failures.map((f) => `${r.backend}: ${f}`));
  return { scenario: 'cluster', ok: failures.length === 0, failures, summary, results: { shape, publishAuth: auth, backends: results } };
};
