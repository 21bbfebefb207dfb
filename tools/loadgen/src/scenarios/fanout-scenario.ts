import { sourceAddress, runPrefix, type ClientKind, type ConnSpec } from '../channels.js';
import { formatCpuPerDelivery } from '../cost.js';
import { publishStep, RampRun, type FanoutRun, type RampResult, type StepResult } from '../fanout.js';
import { fmt, type Parsed, type ScenarioReport, pushExtras } from '../options.js';
import { publishingLabel, type PublishAuth, type PublishShape } from '../publish-shape.js';

export { lanesFor, parsePublishAuth, PUBLISH_OPTIONS } from '../publish-shape.js';
import type { RedisInstance } from '../processes.js';
import { takeTurns } from '../ramp-plan.js';
import { withTarget, type Session } from '../session.js';
import { BitrixTarget, bitrixEntry } from '../targets/bitrix.js';
import { NchanTarget, nchanAvailable } from '../targets/nchan.js';
import { PushTarget } from '../targets/push.js';
import type { Target } from '../targets/types.js';
import { Timeline, type TimelinePoint } from '../timeline.js';

/**
 * The shape shared by `private` and `broadcast`: open the subscribers, ramp the offered rate until
 * the system stops keeping up, measure latency at half the best sustained rate, then do the same
 * against nchan in the same invocation and report the ratio.
 */
export interface FanoutShape {
  readonly scenario: string;
  /** WebSocket clients, or long-poll clients looping with their mid. */
  readonly transport: 'ws' | 'lp';
  /** Run the same shape against nchan in the same invocation (unless --no-nchan). */
  readonly compareNchan: boolean;
  readonly channels: number;
  /** Connections on channel c. */
  readonly devices: (c: number) => number;
  readonly fanout: number;
  /** Share of this server's WebSocket clients that ask for protobuf frames (binaryMode=true). */
  readonly binaryShare: number;
  readonly lanes: { push: number; nchan: number };
  /** How this server's driver publishes (publish-shape.ts); nchan always gets one message per request. */
  readonly publishShape: PublishShape;
  /** Signed (ed25519, hmac-sha256) or unsigned from a trusted address, as nchan is always driven. */
  readonly publishAuth: PublishAuth;
  /** Messages per request of the batch shape. */
  readonly batch: number;
  /** This server's lanes start at most one request per tick (PublishPlan.tickMs); nchan's cannot batch. */
  readonly tickMs: number;
  readonly startRate: number;
  readonly factor: number;
  readonly maxSteps: number;
  readonly maxRate: number;
  /** Steps that narrow the bracket between the best kept-up rate and the lowest failed one (ramp-plan.ts). */
  readonly refine: number;
  readonly targets: { deliveriesPerSec: number | null; p99Ms: number | null };
  /** The Redis this server uses (default: one private redis-server; `cluster` gives a Cluster). */
  readonly redis?: () => Promise<RedisInstance>;
}

interface TargetResult {
  describe: string;
  connections: { opened: number; failed: number; ms: number; firstError: string };
  ramp: RampResult;
  half: StepResult | null;
  /** A step at 80 % of the best sustained rate: the latency targets hold "below 80 % of saturation". */
  at80: StepResult | null;
  timeline: readonly TimelinePoint[];
}

export async function runFanout(shape: FanoutShape, o: Parsed, log: (s: string) => void): Promise<ScenarioReport> {
  const prefix = runPrefix();
  const devices = Array.from({ length: shape.channels }, (_, c) => shape.devices(c));
  const seconds = o.num('seconds');
  const bodyBytes = o.num('body-bytes');
  const listeners = o.num('listeners');

  const specs = (kindOf: (i: number) => ClientKind, urls: number): ConnSpec[] => {
    const out: ConnSpec[] = [];
    for (let c = 0; c < shape.channels; c++) {
      for (let d = 0; d < (devices[c] as number); d++) {
        const i = out.length;
        out.push({ chan: c, kind: kindOf(i), url: i % urls, local: sourceAddress(i) });
      }
    }
    return out;
  };
  const binaryAt = (i: number): boolean => Math.floor((i + 1) * shape.binaryShare) > Math.floor(i * shape.binaryShare);

  /** A system under test: how to start it, what its clients speak, how its driver publishes. */
  interface Contender {
    readonly name: 'push' | 'nchan' | 'bitrix';
    readonly start: () => Promise<Target>;
    readonly kindOf: (i: number) => ClientKind;
    readonly lanes: number;
    readonly shape: PublishShape;
    readonly batch: number;
    readonly tickMs: number;
  }
  /** A started system with its subscribers open and warmed up, and its ramp. */
  interface Entrant {
    readonly describe: string;
    readonly opened: TargetResult['connections'];
    readonly run: FanoutRun;
    readonly timeline: Timeline;
    readonly ramp: RampRun;
    readonly log: (s: string) => void;
  }
  const withNchan = shape.compareNchan && !o.flag('no-nchan');
  const bitrixDir = o.str('bitrix-dir');
  const withBitrix = shape.compareNchan && bitrixDir !== '';
  const compare = withNchan || withBitrix;
  const contenders: Contender[] = [
    {
      name: 'push',
      start: () => PushTarget.start({ listeners, publishers: o.num('publishers'), prefix, auth: shape.publishAuth, ...pushExtras(o), ...(shape.redis === undefined ? {} : { redis: shape.redis }) }),
      kindOf: (i) => (shape.transport === 'lp' ? (binaryAt(i) ? 'lp-binary' : 'lp-text') : binaryAt(i) ? 'ws-binary' : 'ws-text'),
      lanes: shape.lanes.push,
      shape: shape.publishShape,
      batch: shape.batch,
      tickMs: shape.tickMs,
    },
  ];
  if (withNchan) {
    if (!nchanAvailable()) throw new Error('nchan is not installed (Debian libnginx-mod-nchan); npm run bench installs it, or pass --no-nchan');
    contenders.push({ name: 'nchan', start: () => NchanTarget.start({ workers: listeners, prefix, bufferLength: 100, messageTimeoutS: 3600 }), kindOf: () => 'nchan-ws', lanes: shape.lanes.nchan, shape: 'text', batch: 1, tickMs: 0 });
  }
  if (withBitrix) {
    // Checked before anything starts, so a wrong path costs nothing.
    bitrixEntry(bitrixDir);
    // Its only forms are the text publish and text frames (1.0 has no protocol 4): its clients are
    // all text WebSockets, and it gets the text shape whatever this server's shape is.
    contenders.push({ name: 'bitrix', start: () => BitrixTarget.start({ dir: bitrixDir, subscribers: listeners, publishers: o.num('publishers'), prefix }), kindOf: () => 'ws-text', lanes: shape.lanes.nchan, shape: 'text', batch: 1, tickMs: 0 });
  } else if (shape.compareNchan) {
    log('Bitrix push server 1.0: skipped (pass --bitrix-dir <path> to a local copy to run it side by side; the bench never downloads or installs it)');
  }
  // Every log line of a side-by-side run says whose it is.
  const logFor = (c: Contender) => (compare ? (line: string) => log(`  ${c.name.padEnd(6)} ${line.trimStart()}`) : log);

  const enter = async (c: Contender, s: Session): Promise<Entrant> => {
    const say = logFor(c);
    const conns = specs(c.kindOf, s.target.subscribeTarget().urls.length);
    log(`${s.target.describe}`);
    say(`  ${c.lanes} publishing lanes, one request in flight each`);
    say(`  opening ${fmt(conns.length)} subscribers on ${fmt(shape.channels)} channels ...`);
    const opened = await s.fleet.open(s.target.subscribeTarget(), conns, { reconnect: false, reconnectJitterMs: 0, concurrency: 50 });
    say(`  ${fmt(opened.opened)} open, ${opened.failed} failed in ${opened.ms} ms`);
    const timeline = new Timeline();
    const run: FanoutRun = { fleet: s.fleet, driver: s.driver, monitor: s.monitor, devices, timeline, plan: { channels: shape.channels, fanout: shape.fanout, lanes: c.lanes, shape: c.shape, batch: c.batch, tickMs: c.tickMs, bodyBytes, expiry: 3600, presign: 0 } };
    // Warm-up (not reported, but its deliveries are checked like the rest): JIT compilation,
    // first-time channel records in Redis, and socket buffers growing would otherwise be
    // charged to the first step.
    const warm = await publishStep(run, Math.max(1, Math.round(shape.startRate / 2)), 2, { label: 'warm-up' });
    say(`  warm-up: ${fmt(warm.deliveriesPerSec)} deliveries/s`);
    const ramp = new RampRun(run, { startRate: shape.startRate, factor: shape.factor, maxSteps: shape.maxSteps, maxRate: shape.maxRate, refine: shape.refine, seconds, log: say });
    return { describe: s.target.describe, opened, run, timeline, ramp, log: say };
  };

  // Both systems stay up, and their steps take turns (ramp-plan.ts): this machine's speed drifts
  // under sustained load (every step records the speed index it started with), and measuring one
  // system after the other gave whichever went first the faster machine.
  const race = async (entrants: Entrant[]): Promise<TargetResult[]> => {
    await takeTurns(entrants.map((e) => () => e.ramp.next()));
    const results: TargetResult[] = [];
    for (const e of entrants) {
      const r = e.ramp.result();
      let half: StepResult | null = null;
      let at80: StepResult | null = null;
      if (r.best !== null) {
        const rate80 = Math.max(1, Math.round(r.best.publishRate * 0.8));
        at80 = await publishStep(e.run, rate80, seconds, { label: `80 %: ${rate80} msg/s` });
        e.log(`  80 % rate (${fmt(rate80)} msg/s): ${fmt(at80.deliveriesPerSec)} deliveries/s, server CPU ${formatCpuPerDelivery(at80.serverCpuPerDelivery)} per delivery, publish p50 ${at80.acceptMs.p50} / p99 ${at80.acceptMs.p99} ms, end-to-end p50 ${at80.latencyMs.p50} / p99 ${at80.latencyMs.p99} ms (from the send: p99 ${at80.sendLatencyMs.p99}), speed ${at80.speedIndex}`);
        const rate = Math.max(1, Math.round(r.best.publishRate / 2));
        half = await publishStep(e.run, rate, seconds, { label: `half: ${rate} msg/s` });
        e.log(`  half rate (${fmt(rate)} msg/s): ${fmt(half.deliveriesPerSec)} deliveries/s, server CPU ${formatCpuPerDelivery(half.serverCpuPerDelivery)} per delivery, publish p50 ${half.acceptMs.p50} / p99 ${half.acceptMs.p99} ms, end-to-end p50 ${half.latencyMs.p50} / p99 ${half.latencyMs.p99} / p99.9 ${half.latencyMs.p999} ms (from the send: p50 ${half.sendLatencyMs.p50} / p99 ${half.sendLatencyMs.p99}; client loop stalls p99 ${half.clientLoopDelayMs.p99} / max ${half.clientLoopDelayMs.max}), speed ${half.speedIndex}`);
      }
      results.push({ describe: e.describe, connections: e.opened, ramp: r, half, at80, timeline: e.timeline.points });
    }
    return results;
  };

  // Start every contender (each withTarget tears its system down however the run ends), then race.
  const within = async (i: number, entered: Entrant[]): Promise<TargetResult[]> => {
    const c = contenders[i];
    if (c === undefined) return race(entered);
    return withTarget(c.start, o.num('workers'), async (s) => within(i + 1, [...entered, await enter(c, s)]));
  };
  log(publishingLabel(shape.publishShape, shape.publishAuth, shape.batch));
  const results = await within(0, []);
  const of = (name: Contender['name']): TargetResult | null => results[contenders.findIndex((c) => c.name === name)] ?? null;
  return report(shape, of('push') as TargetResult, of('nchan'), of('bitrix'));
}

/** The latency targets of the single-message work: publish p99 < 50 ms and end-to-end p99 < 100 ms below 80 % of saturation. */
function at80Line(x: StepResult): string {
  const ok = (v: number, limit: number): string => (v < limit ? 'met' : 'NOT met');
  return `at 80 % of that rate: end-to-end p99 ${x.latencyMs.p99} ms (< 100: ${ok(x.latencyMs.p99, 100)}), publish p99 ${x.acceptMs.p99} ms (< 50: ${ok(x.acceptMs.p99, 50)}); server CPU ${formatCpuPerDelivery(x.serverCpuPerDelivery)} per delivery`;
}

/** "lowest-highest" speed index over a target's steps (the half-rate step included). */
function speedRange(t: TargetResult): string {
  const all = [...t.ramp.steps, ...(t.half === null ? [] : [t.half])].map((x) => x.speedIndex);
  return all.length === 0 ? 'n/a' : `${fmt(Math.min(...all))}-${fmt(Math.max(...all))}`;
}

function lastStep(t: TargetResult): StepResult | undefined {
  return t.half ?? t.ramp.steps[t.ramp.steps.length - 1];
}

function report(shape: FanoutShape, push: TargetResult, nchan: TargetResult | null, bitrix: TargetResult | null): ScenarioReport {
  const failures: string[] = [];
  const end = lastStep(push);
  if (push.connections.failed > 0) failures.push(`${push.connections.failed} subscriber connections failed to open: ${push.connections.firstError}`);
  if (end !== undefined) {
    if (end.lost > 0) failures.push(`${end.lost} deliveries lost`);
    if (end.duplicates > 0) failures.push(`${end.duplicates} duplicate deliveries`);
    if (end.reordered > 0) failures.push(`${end.reordered} deliveries out of order`);
    if (end.malformed > 0) failures.push(`${end.malformed} unreadable messages`);
    if (end.unexpectedCloses > 0) failures.push(`${end.unexpectedCloses} connections closed by the server (${end.firstClientError})`);
  }
  const pubErrors = push.ramp.steps.reduce((s, x) => s + x.publishErrors, 0) + (push.half?.publishErrors ?? 0);
  if (pubErrors > 0) failures.push(`${pubErrors} publish requests failed: ${push.ramp.steps.find((x) => x.firstPublishError !== '')?.firstPublishError ?? push.half?.firstPublishError}`);
  if (push.ramp.best === null) failures.push('no step kept up, not even the first');

  const best = push.ramp.best?.deliveriesPerSec ?? 0;
  // The comparison is conservative: ours is the best step that kept up; a peer's is the best
  // delivery rate of any of its steps that lost nothing, even one where its publish endpoint
  // could not accept the offered rate (nchan answers a publish only after its fan-out).
  const peerBest = (t: TargetResult | null): number | null => (t === null ? null : Math.max(0, ...t.ramp.steps.filter((x) => x.lost === 0).map((x) => x.deliveriesPerSec)));
  const ratioTo = (t: TargetResult | null): number | null => {
    const b = peerBest(t);
    return b === null || b === 0 ? null : Math.round((best / b) * 100) / 100;
  };
  const ratio = ratioTo(nchan);
  const bitrixRatio = ratioTo(bitrix);
  const summary = [
    publishingLabel(shape.publishShape, shape.publishAuth, shape.batch),
    `${shape.scenario}: sustained ${fmt(best)} deliveries/s${shape.targets.deliveriesPerSec === null ? '' : ` (target ${fmt(shape.targets.deliveriesPerSec)}: ${best >= shape.targets.deliveriesPerSec ? 'met' : 'NOT met'})`}, server CPU ${formatCpuPerDelivery(push.ramp.best?.serverCpuPerDelivery ?? null)} per delivery at that step`,
  ];
  if (push.half !== null) {
    const p99 = push.half.latencyMs.p99;
    summary.push(`  at half that rate: end-to-end p50 ${push.half.latencyMs.p50} ms, p99 ${p99} ms, p99.9 ${push.half.latencyMs.p999} ms${shape.targets.p99Ms === null ? '' : ` (target p99 < ${shape.targets.p99Ms} ms: ${p99 < shape.targets.p99Ms ? 'met' : 'NOT met'})`}; publish (request sent to answer) p50 ${push.half.acceptMs.p50} ms, p99 ${push.half.acceptMs.p99} ms; server CPU ${formatCpuPerDelivery(push.half.serverCpuPerDelivery)} per delivery`);
    summary.push(`    end-to-end from the due time; from the moment the request was sent: p50 ${push.half.sendLatencyMs.p50} ms, p99 ${push.half.sendLatencyMs.p99} ms`);
  }
  if (push.at80 !== null) summary.push(`  ${at80Line(push.at80)}`);
  if (end !== undefined) summary.push(`  lost ${end.lost}, duplicates ${end.duplicates}, out of order ${end.reordered}`);
  const bestUsage = push.ramp.best?.usage;
  if (bestUsage !== undefined) summary.push(`  CPU at the best step (cores): ${Object.entries(bestUsage).map(([k, u]) => `${k} ${u.cpu}`).join(', ')}`);
  const peers: Array<[string, TargetResult, number | null]> = [];
  if (nchan !== null) peers.push(['nchan', nchan, ratio]);
  if (bitrix !== null) peers.push(['Bitrix push server 1.0', bitrix, bitrixRatio]);
  for (const [label, t, r] of peers) {
    const bestStep = t.ramp.steps.filter((x) => x.lost === 0).reduce<StepResult | null>((a, b) => (a === null || b.deliveriesPerSec > a.deliveriesPerSec ? b : a), null);
    summary.push(`${label}: sustained ${fmt(t.ramp.best?.deliveriesPerSec ?? 0)} deliveries/s, best delivered ${fmt(peerBest(t) ?? 0)}/s, server CPU ${formatCpuPerDelivery(bestStep?.serverCpuPerDelivery ?? null)} per delivery at that step; lost ${lastStep(t)?.lost ?? 0}`);
    if (t.half !== null) summary.push(`  at half its sustained rate: end-to-end p50 ${t.half.latencyMs.p50} ms, p99 ${t.half.latencyMs.p99} ms (${t.half.sendLatencyMs.p99} ms from the send); publish p50 ${t.half.acceptMs.p50} ms, p99 ${t.half.acceptMs.p99} ms; server CPU ${formatCpuPerDelivery(t.half.serverCpuPerDelivery)} per delivery`);
    if (t.at80 !== null) summary.push(`  ${at80Line(t.at80)}`);
    summary.push(`ratio push/${label} (ours sustained / its best delivered): ${r ?? 'n/a'}`);
  }
  if (peers.length > 0) summary.push(`machine speed index before the steps (higher = faster): push ${speedRange(push)}${peers.map(([label, t]) => `, ${label} ${speedRange(t)}`).join('')}; the systems took turns step by step`);
  const charts = [{ name: 'push', title: `${shape.scenario} (this server)\n${push.describe}`, points: push.timeline }];
  if (nchan !== null) charts.push({ name: 'nchan', title: `${shape.scenario} (nchan)\n${nchan.describe}`, points: nchan.timeline });
  if (bitrix !== null) charts.push({ name: 'bitrix', title: `${shape.scenario} (Bitrix push server 1.0)\n${bitrix.describe}`, points: bitrix.timeline });
  return { scenario: shape.scenario, ok: failures.length === 0, failures, summary, results: { shape, publishing: publishingLabel(shape.publishShape, shape.publishAuth, shape.batch), push, nchan, bitrix, ratio, bitrixRatio }, charts };
}
