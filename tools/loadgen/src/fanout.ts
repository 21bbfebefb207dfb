import type { PublishPlan } from './driver.js';
import type { Fleet } from './fleet.js';
import type { Remote } from './ipc.js';
import { sleep } from './processes.js';
import { cpuPerDelivery, type CpuPerDelivery } from './cost.js';
import { Histogram } from './histogram.js';
import type { GroupUsage, ResourceMonitor } from './resources.js';
import { round1 } from './resources.js';
import { nextRampRate, type RampPlan } from './ramp-plan.js';
import { speedIndex } from './session.js';
import type { Timeline } from './timeline.js';

/**
 * Fan-out measurement shared by the private, broadcast and long-poll scenarios: publish at an
 * offered rate for a few seconds, wait until every subscriber has everything (or stops getting
 * anything), and judge whether the system kept up. A ramp raises the rate step by step until it
 * does not; the highest step that kept up is the sustained throughput.
 */

export interface FanoutRun {
  readonly fleet: Fleet;
  readonly driver: Remote;
  readonly monitor: ResourceMonitor;
  /** Connections per channel index: expected deliveries = sum over channels of seq x devices. */
  readonly devices: readonly number[];
  readonly plan: Omit<PublishPlan, 'rate' | 'seconds'>;
  /** Samples delivery rate and latency over time while steps run (charts). */
  readonly timeline?: Timeline;
}

export interface StepResult {
  /** Offered messages per second (0 = closed loop). */
  offeredRate: number;
  seconds: number;
  published: number;
  publishRate: number;
  requests: number;
  publishErrors: number;
  firstPublishError: string;
  /** Driver stopped early because deliveries fell more than `abortLagS` seconds behind. */
  aborted: boolean;
  delivered: number;
  deliveriesPerSec: number;
  /** Time after the last publish until the last delivery arrived (or until deliveries stopped). */
  drainMs: number;
  keptUp: boolean;
  /** From the moment each message was due at the publish driver (open loop: its queue counts). */
  latencyMs: ReturnType<Histogram['summaryMs']>;
  /** From the moment the request carrying it was sent: what the server and the client took. */
  sendLatencyMs: ReturnType<Histogram['summaryMs']>;
  /**
   * The load generator's own stalls during the step: the worst client worker's event-loop delay
   * (p99 and max, ms). Every delivery that arrives during a stall waits for it.
   */
  clientLoopDelayMs: { p99: number; max: number };
  /** Publish latency: from the moment a publish request was written to its answer (ms). */
  acceptMs: { p50: number; p99: number };
  maxBehindMs: number;
  /** Cumulative over the run so far (a loss in an earlier step stays visible). */
  lost: number;
  duplicates: number;
  reordered: number;
  malformed: number;
  /** Connections the server closed (without reconnect clients, each is a loss of what followed). */
  unexpectedCloses: number;
  lossSamples: Array<Record<string, unknown>>;
  firstClientError: string;
  usage: Record<string, GroupUsage>;
  /** Seconds the usage window covered (publishing and drain). */
  usageSeconds: number;
  /** Server CPU seconds (every group but the load generator) per 100,000 deliveries: efficiency, comparable across machines by ratio. */
  serverCpuPer100k: number;
  /** The same as microseconds of server CPU per delivery, in total and per process group (null: nothing delivered). */
  serverCpuPerDelivery: CpuPerDelivery | null;
  /**
   * The machine's speed index (session.ts) measured just before the step, while the system under
   * test was idle: steps measured on a slowed-down machine show it here.
   */
  speedIndex: number;
}

export interface StepOptions {
  /** Cut the step short when deliveries fall this many seconds behind (default 3; Infinity = never). */
  abortLagS?: number;
  maxDrainS?: number;
  /** The step's name on the timeline (default "<rate> msg/s"). */
  label?: string;
  /** Runs while the driver publishes (the storm restarts listeners here). */
  during?: () => Promise<unknown>;
}

export async function publishStep(run: FanoutRun, rate: number, seconds: number, opts: StepOptions = {}): Promise<StepResult> {
  const abortLagS = opts.abortLagS ?? 3;
  const perMessage = estimateFanout(run);
  // The previous step has drained, so nothing else is running: a quarter second on one core.
  const speed = speedIndex(250);
  await run.fleet.resetLatency();
  const stopTimeline = run.timeline?.sample(run.fleet, opts.label ?? `${rate} msg/s`);
  run.monitor.window();
  const before = (await run.fleet.progress()).received;
  let finished = false;
  let aborted = false;
  const ran = run.driver.call<Record<string, unknown>>('run', { plan: { ...run.plan, rate, seconds } satisfies PublishPlan }).finally(() => (finished = true));
  const during = opts.during?.();
  // Overload guard: a step the system cannot keep up with is cut short, so the backlog stays small
  // enough to drain (Redis would otherwise cut a lagging subscriber connection at its buffer limit).
  while (!finished && rate > 0 && Number.isFinite(abortLagS)) {
    await sleep(250);
    if (finished) break;
    const [{ made }, p] = await Promise.all([run.driver.call<{ made: number }>('progress'), run.fleet.progress()]);
    if (made * perMessage - (p.received - before) > rate * perMessage * abortLagS) {
      aborted = true;
      await run.driver.call('stop');
      break;
    }
  }
  const r = await ran;
  await during;
  const publishedAt = performance.now();
  const seqs = r['seqs'] as number[];
  let expected = 0;
  seqs.forEach((s, c) => (expected += s * (run.devices[c] ?? 0)));
  // Drain: until everything expected arrived, or nothing arrived for 3 s (then something is lost).
  let last = (await run.fleet.progress()).received;
  let lastChange = performance.now();
  const maxDrainMs = (opts.maxDrainS ?? 60) * 1000;
  while (last < expected && performance.now() - lastChange < 3000 && performance.now() - publishedAt < maxDrainMs) {
    await sleep(50);
    const now = (await run.fleet.progress()).received;
    if (now !== last) {
      last = now;
      lastChange = performance.now();
    }
  }
  const drainMs = Math.max(0, Math.round((last >= expected ? lastChange : performance.now()) - publishedAt));
  const win = run.monitor.window();
  await stopTimeline?.();
  const usage = win.groups;
  const col = await run.fleet.collect(seqs);
  const delivered = col.received - before;
  const pubSeconds = r['seconds'] as number;
  const published = r['messages'] as number;
  const accept = new Histogram();
  accept.add(r['accept'] as Parameters<typeof accept.add>[0]);
  const deliveriesPerSec = Math.round(delivered / (pubSeconds + drainMs / 1000));
  const offeredOk = rate === 0 || published >= 0.95 * rate * seconds;
  return {
    offeredRate: rate,
    seconds: round1(pubSeconds),
    published,
    publishRate: Math.round(published / pubSeconds),
    requests: r['requests'] as number,
    publishErrors: r['errors'] as number,
    firstPublishError: r['firstError'] as string,
    aborted,
    delivered,
    deliveriesPerSec,
    drainMs,
    keptUp: !aborted && offeredOk && drainMs <= 1000 && last >= expected && (r['errors'] as number) === 0,
    latencyMs: col.latency.summaryMs(),
    sendLatencyMs: col.sendLatency.summaryMs(),
    clientLoopDelayMs: col.loopDelayMs,
    acceptMs: { p50: Math.round(accept.quantile(0.5) / 100) / 10, p99: Math.round(accept.quantile(0.99) / 100) / 10 },
    maxBehindMs: r['maxBehindMs'] as number,
    lost: col.lost,
    duplicates: col.duplicates,
    reordered: col.reordered,
    malformed: col.malformed,
    unexpectedCloses: col.unexpectedCloses,
    lossSamples: col.lossSamples,
    firstClientError: col.firstError,
    usage,
    usageSeconds: win.seconds,
    serverCpuPer100k: delivered === 0 ? 0 : Math.round((serverCpuSeconds(usage, win.seconds) * 100_000 * 1000) / delivered) / 1000,
    serverCpuPerDelivery: cpuPerDelivery(usage, win.seconds, delivered),
    speedIndex: speed,
  };
}

/** CPU seconds the system under test used (every process group but the load generator). */
function serverCpuSeconds(usage: Record<string, GroupUsage>, seconds: number): number {
  let cores = 0;
  for (const [group, u] of Object.entries(usage)) if (group !== 'loadgen') cores += u.cpu;
  return cores * seconds;
}

/** Average deliveries one message causes (fanout x devices per channel), for the overload guard. */
function estimateFanout(run: FanoutRun): number {
  const total = run.devices.reduce((s, d) => s + d, 0);
  return (run.plan.fanout * total) / Math.max(1, run.devices.length);
}

export interface RampResult {
  steps: StepResult[];
  /** The step with the highest delivery rate among those that kept up (null if none did). */
  best: StepResult | null;
}

/**
 * One system's ramp, a step at a time, so that two systems' ramps can take turns on the machine:
 * steps run at the rates `nextRampRate` picks (ramp-plan.ts: geometric, halving below a failed
 * start, then refinement between the best kept-up rate and the lowest failed one).
 */
export class RampRun {
  readonly steps: StepResult[] = [];

  constructor(
    private readonly run: FanoutRun,
    private readonly o: RampPlan & { seconds: number; log: (s: string) => void },
  ) {}

  /** Runs the next step, if the plan has one; false once the ramp is over. */
  async next(): Promise<boolean> {
    const rate = nextRampRate(
      this.steps.map((s) => ({ rate: s.offeredRate, keptUp: s.keptUp })),
      this.o,
    );
    if (rate === null) return false;
    const s = await publishStep(this.run, Math.round(rate), this.o.seconds);
    this.steps.push(s);
    this.o.log(`  ${Math.round(rate)} msg/s offered: ${s.deliveriesPerSec.toLocaleString('en-US')} deliveries/s, server CPU ${s.serverCpuPerDelivery?.totalUs ?? 'n/a'} us per delivery, e2e p99 ${s.latencyMs.p99} ms, publish p99 ${s.acceptMs.p99} ms, drain ${s.drainMs} ms, speed ${s.speedIndex}${s.keptUp ? '' : ' -> did not keep up'}${s.aborted ? ' (cut short)' : ''}`);
    return true;
  }

  /** The best step is the one with the highest delivery rate among those that kept up. */
  result(): RampResult {
    const kept = this.steps.filter((s) => s.keptUp);
    const best = kept.length === 0 ? null : kept.reduce((a, b) => (b.deliveriesPerSec > a.deliveriesPerSec ? b : a));
    return { steps: this.steps, best };
  }
}
