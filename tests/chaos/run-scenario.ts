import { randomBytes } from 'node:crypto';
import { channelId } from '../helpers/clients.js';
import { eventually, sleep } from '../helpers/ports.js';
import { ResumingPoll, ResumingWs } from '../ops/stack-helpers.js';
import type { ChaosStack } from './chaos-stack.js';
import { checkDeliveries, type ClientLog, type Delivery, type Verdict } from './delivery-check.js';
import { PublishStream, type SeqBody, type StreamOptions } from './publish-stream.js';

/** How long the phases of a scenario last; `npm run chaos` uses longer ones than CI. */
export interface Timing {
  /** Steady traffic before the fault. */
  readonly beforeMs: number;
  /** Steady traffic after the fault is healed. */
  readonly afterMs: number;
  /** After the stream stops: how long clients may take to get every acknowledged message. */
  readonly settleMs: number;
  /** Duration of the timed faults (stall, slow consumer). */
  readonly faultMs: number;
}

/** What a scenario's hooks may use. */
export interface FaultContext {
  readonly stack: ChaosStack;
  readonly timing: Timing;
  readonly log: (line: string) => void;
  /** Set by `inject`: the WebSocket the slow-consumer fault stops reading from. */
  readonly slowClient: ResumingWs | null;
  /** Scenario-private state between prepare, inject and cleanup. */
  readonly state: Record<string, unknown>;
}

export interface FaultOutcome {
  /**
   * When the fault took effect, where that is later than the moment `inject` was called (Redis
   * pauses once CLIENT PAUSE is answered); detection and recovery count from here.
   */
  readonly injectedAt?: number;
  /** When the harness took the cause away (Redis back, pause over, stall ended...). */
  readonly healedAt: number;
  /** Fault -> the faulted process first reported it (a 503 from its /readyz, or its fault counter); null: never. */
  readonly serverDetectMs?: number | null;
  /** Facts worth a line in the report (close codes seen, readiness answers, script output). */
  readonly notes: readonly string[];
  /** Promises of the faulted process the scenario found broken (each fails the scenario). */
  readonly problems?: readonly string[];
}

/**
 * The CI test file a scenario runs in (`tests/chaos/ci-<group>.test.ts`): node's test runner gives
 * each file a time limit, so the scenarios are spread over a few files, each with its own stack.
 */
export type CiGroup = 'processes' | 'redis' | 'restart' | 'pause' | 'pause-long' | 'stall';

export interface Scenario {
  readonly name: string;
  readonly title: string;
  readonly ciGroup: CiGroup;
  /** Fault-specific stream settings (message size...). */
  readonly stream?: Partial<Pick<StreamOptions, 'padBytes' | 'singleGapMs' | 'batchGapMs' | 'retries'>>;
  /** 2 WebSockets and a long poll straight to listener-1 (not through nginx): the faulted one. */
  readonly pinToListener1?: boolean;
  /** One more WebSocket straight to listener-1 that the fault stops reading from. */
  readonly slowConsumer?: boolean;
  /**
   * Detection and recovery counted from the heal instead of the injection: for a fault that is the
   * client's own doing (a slow consumer cannot get anything while it does not read).
   */
  readonly measureFromHealed?: boolean;
  /** Worst acceptable fault -> the faulted process reports itself unready (`serverDetectMs`). */
  readonly maxServerDetectMs?: number;
  /** Before the clients connect (e.g. put a proxy under a listener). */
  prepare?(ctx: FaultContext): Promise<void>;
  /** Injects the fault; resolves when the harness has taken its cause away again. */
  inject(ctx: FaultContext): Promise<FaultOutcome>;
  /** Leaves the stack as `npm start` made it, for the next scenario. */
  cleanup?(ctx: FaultContext): Promise<void>;
}

export interface ScenarioResult {
  readonly name: string;
  readonly title: string;
  readonly ok: boolean;
  readonly failures: readonly string[];
  readonly verdict: Verdict;
  readonly serverDetectMs: number | null;
  /** Fault -> cause taken away. */
  readonly healedMs: number;
  readonly answers: Readonly<Record<string, number>>;
  readonly clients: number;
  readonly notes: readonly string[];
  readonly durationMs: number;
}

/** A delivery later than this after its send counts as "behind" (recovery ends with the last one). */
export const LATE_MS = 500;

const SINGLE_CHANNELS = 4;
const BATCH_CHANNELS = 2;

/**
 * One scenario against a running stack: clients connect (WebSocket and long poll, through nginx,
 * resuming by mid like the official client), a steady stream runs, the fault is injected and
 * healed, the stream stops, the clients get time to catch up, and every delivery is checked
 * against the per-channel sequence numbers.
 */
export async function runScenario(stack: ChaosStack, sc: Scenario, timing: Timing, log: (line: string) => void): Promise<ScenarioResult> {
  const started = Date.now();
  const state: Record<string, unknown> = {};
  const ctxBase = { stack, timing, log, state };
  await sc.prepare?.({ ...ctxBase, slowClient: null });
  const singles = Array.from({ length: SINGLE_CHANNELS }, () => channelId());
  const batches = Array.from({ length: BATCH_CHANNELS }, () => channelId());
  const stream = new PublishStream({
    front: stack.front,
    singleChannels: singles,
    batchChannels: batches,
    singleGapMs: 20,
    batchGapMs: 1000,
    batchSize: 100,
    retries: 2,
    padBytes: 0,
    runId: randomBytes(6).toString('hex'),
    ...sc.stream,
  });
  const channels = stream.channels;
  const query = `?CHANNEL_ID=${encodeURIComponent(channels.map((c) => stack.sign(c)).join('/'))}`;
  const viaNginx = stack.front;
  const direct = `http://127.0.0.1:${stack.listenerPorts[0]}`;
  const logs: Array<ClientLog & { deliveries: Delivery[] }> = [];
  const record = (name: string) => {
    const log_ = { name, channels, deliveries: [] as Delivery[] };
    logs.push(log_);
    return (text: unknown): void => {
      const p = (text as SeqBody | null)?.params;
      if (typeof p?.c !== 'number' || typeof p.seq !== 'number') return;
      log_.deliveries.push({ ch: channels[p.c] ?? `?${p.c}`, seq: p.seq, at: Date.now() });
    };
  };
  const wsUrl = (base: string) => () => `${base.replace(/^http/, 'ws')}/bitrix/subws/${query}`;
  const pollUrl = (base: string) => () => `${base}/bitrix/sub/${query}`;
  const wss: ResumingWs[] = [];
  const polls: ResumingPoll[] = [];
  for (let i = 0; i < 4; i++) wss.push(new ResumingWs(wsUrl(viaNginx), record(`ws-${i + 1}`)));
  for (let i = 0; i < 2; i++) polls.push(new ResumingPoll(pollUrl(viaNginx), record(`poll-${i + 1}`)));
  if (sc.pinToListener1) {
    for (let i = 0; i < 2; i++) wss.push(new ResumingWs(wsUrl(direct), record(`ws-l1-${i + 1}`)));
    polls.push(new ResumingPoll(pollUrl(direct), record('poll-l1')));
  }
  let slowClient: ResumingWs | null = null;
  if (sc.slowConsumer) {
    slowClient = new ResumingWs(wsUrl(direct), record('ws-slow'));
    wss.push(slowClient);
  }
  const ctx: FaultContext = { ...ctxBase, slowClient };
  let outcome: FaultOutcome | null = null;
  let faultAt = 0;
  let injectError: string | null = null;
  try {
    await Promise.all(wss.map((w) => w.start()));
    for (const p of polls) p.start();
    await warmUp(stack.front, stream, logs);

    stream.start();
    await sleep(timing.beforeMs);
    faultAt = Date.now();
    log(`${sc.name}: fault injected`);
    try {
      outcome = await sc.inject(ctx);
    } catch (err) {
      // A fault that did not take would make the scenario pass for nothing: it fails instead.
      injectError = (err as Error).message;
      log(`${sc.name}: fault not injected: ${injectError}`);
      outcome = { healedAt: Date.now(), notes: [] };
    }
    faultAt = outcome.injectedAt ?? faultAt;
    log(`${sc.name}: healed after ${outcome.healedAt - faultAt} ms`);
    await sleep(timing.afterMs);
    await stream.stop();
    const published = stream.published;
    const everything = (): boolean => logs.every((l) => {
      const have = new Set(l.deliveries.map((d) => `${d.ch}#${d.seq}`));
      return published.every((p) => p.ackAt === null || have.has(`${p.ch}#${p.seq}`));
    });
    await eventually(everything, timing.settleMs, 'every client to have every acknowledged message').catch(() => {});
    // Late duplicates (a refill racing a live message) would come right after the last one.
    await sleep(500);
  } finally {
    for (const w of wss) w.stop();
    await Promise.all(polls.map((p) => p.stop()));
    await sc.cleanup?.(ctx).catch((err: unknown) => log(`${sc.name}: cleanup failed: ${(err as Error).message}`));
  }
  // Sequence 0 is the warm-up marker (published until everyone had it), not part of the stream.
  const counted = logs.map((l) => ({ ...l, deliveries: l.deliveries.filter((d) => d.seq > 0) }));
  const from = sc.measureFromHealed && outcome !== null ? outcome.healedAt : faultAt;
  const verdict = checkDeliveries(stream.published, counted, from, LATE_MS);
  const failures: string[] = [];
  if (injectError !== null) failures.push(`the fault did not take: ${injectError}`);
  if (verdict.lost > 0) failures.push(`${verdict.lost} acknowledged deliveries lost (${verdict.clients.filter((c) => c.lost > 0).map((c) => `${c.name}: ${c.lost}, e.g. ${c.lostSample.join(' ')}`).join('; ')})`);
  if (verdict.duplicated > 0) failures.push(`${verdict.duplicated} deliveries duplicated`);
  if (verdict.reordered > 0) failures.push(`${verdict.reordered} deliveries out of order`);
  if (verdict.unexpected > 0) failures.push(`${verdict.unexpected} deliveries of messages never published`);
  if (verdict.unackedDelivered > 0) failures.push(`${verdict.unackedDelivered} messages answered "not stored" (503 or 4xx) but delivered (a wrong answer)`);
  if (verdict.acked === 0) failures.push('nothing was acknowledged: the stream did not run');
  if (verdict.detectMs === null) failures.push('some client got no message sent after the fault');
  for (const p of outcome?.problems ?? []) failures.push(p);
  if (sc.maxServerDetectMs !== undefined && injectError === null) {
    const d = outcome?.serverDetectMs ?? null;
    if (d === null) failures.push('the faulted process never reported the fault (no 503 from its /readyz, no stall counted)');
    else if (d > sc.maxServerDetectMs) failures.push(`the faulted process reported the fault after ${d} ms (bound ${sc.maxServerDetectMs} ms)`);
  }
  return {
    name: sc.name,
    title: sc.title,
    ok: failures.length === 0,
    serverDetectMs: outcome?.serverDetectMs ?? null,
    failures,
    verdict,
    healedMs: outcome === null ? -1 : outcome.healedAt - faultAt,
    answers: Object.fromEntries(stream.answers),
    clients: logs.length,
    notes: outcome?.notes ?? [],
    durationMs: Date.now() - started,
  };
}

/**
 * Publishes sequence number 0 on every channel until every client has it on every channel: from
 * then on each client is subscribed and holds a mid to resume from, so sequence 1 onwards counts.
 */
async function warmUp(front: string, stream: PublishStream, logs: readonly ClientLog[]): Promise<void> {
  const ready = (): boolean => logs.every((l) => stream.channels.every((ch) => l.deliveries.some((d) => d.ch === ch && d.seq === 0)));
  const deadline = Date.now() + 30_000;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`warm-up: not every client got sequence 0 on every channel within 30 s (${logs.map((l) => `${l.name}: ${l.deliveries.length}`).join(', ')})`);
    await Promise.all(stream.channels.map((ch) => fetch(`${front}/bitrix/pub/?CHANNEL_ID=${ch}`, { method: 'POST', body: JSON.stringify(stream.body(ch, 0)) }).then((r) => r.arrayBuffer()).catch(() => null)));
    await eventually(ready, 1000).catch(() => {});
  }
}
