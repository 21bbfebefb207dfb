import { Agent, request } from 'node:http';
import type { Redis } from 'ioredis';
import { signed, channelId } from '../helpers/clients.js';
import { sleep } from '../helpers/ports.js';
import { ResumingWs } from '../ops/stack-helpers.js';

/**
 * Redis paused under publishing load, measured end to end (docs/reliability.md, "Redis paused").
 *
 * A sender publishes through nginx (two publishers behind it) at a fixed rate, open loop (the
 * schedule does not slow down while answers are late), either single messages or batches, every
 * request with its own X-Push-Request-Id. Each message carries a per-channel sequence number, and
 * one WebSocket subscriber per channel (resuming by mid like the official client) records what
 * arrives. Meanwhile Redis is paused for writes (`CLIENT PAUSE <ms> WRITE`): the publish scripts
 * queue in Redis, reads and pings go on. The sender treats answers as a portal should:
 *   200           stored once: recorded as acknowledged with the ids from X-Push-Message-Ids;
 *   504 / none    outcome unknown: resent with the same identity until it gets an answer;
 *   503           not carried out: checked (nothing of it may arrive) and resent the same way.
 * Afterwards every channel's deliveries are compared with what was acknowledged.
 */
export interface PauseScenario {
  readonly mode: 'stream' | 'batch';
  readonly pauseMs: number;
  /** Messages per second, both modes (a batch mode sends rate / batchSize batches per second). */
  readonly rate: number;
  readonly batchSize: number;
  readonly channels: number;
  /** Sending before the pause and after it ends. */
  readonly leadMs: number;
  readonly tailMs: number;
}

export interface PauseFigures {
  readonly mode: 'stream' | 'batch';
  readonly pauseMs: number;
  readonly requests: number;
  readonly messages: number;
  /** Answers by status over every attempt (0 = no answer: connection failed). */
  readonly answers: Readonly<Record<string, number>>;
  /** Requests that needed more than one attempt. */
  readonly retried: number;
  /** Messages whose request ended with a 200 (all of them, unless a request failed for good). */
  readonly acknowledged: number;
  /** Acknowledged but never delivered. */
  readonly lost: number;
  /** Deliveries beyond the first of a message. */
  readonly duplicated: number;
  /** Deliveries of a message under another id than its 200 named. */
  readonly wrongId: number;
  /** Answers contradicted by what happened: a 503 whose message arrived anyway. */
  readonly untrue: number;
  /** Requests that ended without a 200 (a status the sender does not retry). */
  readonly failed: number;
  /** Deliveries of messages no 200 acknowledged. */
  readonly unacknowledged: number;
  /** Slowest answer of any attempt, ms, and what it was. */
  readonly slowestAnswerMs: number;
  readonly slowestAnswer: string;
  /** Messages per second the sender achieved over its sending time (the target is `rate`). */
  readonly sentRate: number;
}

/** Keep-alive sockets, as many as requests outstanding: a portal's connection pool, not fetch's overhead. */
const agent = new Agent({ keepAlive: true, maxSockets: Infinity });

/** One POST; resolves with status (0 when no answer came) and the message-ids header. */
function post(url: string, headers: Record<string, string>, body: string): Promise<{ status: number; ids: string; code: string }> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'POST', agent, headers: { ...headers, 'Content-Length': String(Buffer.byteLength(body)) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ids: String(res.headers['x-push-message-ids'] ?? ''), code: /^(\d{4}): /.exec(text)?.[1] ?? '' }));
      res.on('error', () => resolve({ status: 0, ids: '', code: '' }));
    });
    req.on('error', () => resolve({ status: 0, ids: '', code: '' }));
    req.setTimeout(60_000, () => req.destroy());
    req.end(body);
  });
}

interface Msg {
  readonly ch: number;
  readonly seq: number;
}

export async function runPause(front: string, redis: Redis, s: PauseScenario): Promise<PauseFigures> {
  const run = Math.random().toString(36).slice(2, 10);
  const channels = Array.from({ length: s.channels }, () => channelId());
  const wsBase = `${front.replace(/^http/, 'ws')}/bitrix/subws/?CHANNEL_ID=`;
  const subs = channels.map((c) => new ResumingWs(() => `${wsBase}${signed(c)}&revision=19`));
  await Promise.all(subs.map((w) => w.start()));
  const nextSeq = channels.map(() => 0);
  const answers: Record<string, number> = {};
  const acked = new Map<string, string>(); // "ch:seq" -> mid from the 200
  let requests = 0;
  let messages = 0;
  let retried = 0;
  let untrue = 0;
  let failed = 0;
  let slowest = 0;
  let slowestLabel = '';
  let rr = 0;
  const delivered = (m: Msg): boolean => (subs[m.ch] as ResumingWs).seqs.includes(m.seq);

  const body = (m: Msg): Record<string, unknown> => ({ module_id: 'reliability', command: 'seq', params: { seq: m.seq, run } });
  async function send(batch: readonly Msg[], id: string): Promise<void> {
    const single = s.mode === 'stream';
    const first = batch[0] as Msg;
    const url = single ? `${front}/bitrix/pub/?CHANNEL_ID=${channels[first.ch]}` : `${front}/bitrix/pub/batch`;
    const payload = single ? JSON.stringify(body(first)) : JSON.stringify({ messages: batch.map((m) => ({ channels: [channels[m.ch]], body: body(m), expiry: 3600 })) });
    // Whether an earlier attempt may have been carried out (an unknown outcome): then this
    // request's messages may arrive whatever a later attempt is answered.
    let maybeDone = false;
    for (let attempt = 1; ; attempt++) {
      if (attempt === 2) retried++;
      const t0 = Date.now();
      const { status, ids, code } = await post(url, { 'X-Push-Request-Id': id, 'Message-Expiry': '3600' }, payload);
      const label = status === 200 || code === '' ? String(status) : `${status} ${code}`;
      if (Date.now() - t0 > slowest) {
        slowest = Date.now() - t0;
        slowestLabel = `${label} (attempt ${attempt})`;
      }
      answers[label] = (answers[label] ?? 0) + 1;
      if (status === 200) {
        const mids = ids.split(',');
        batch.forEach((m, i) => acked.set(`${m.ch}:${m.seq}`, mids[i] ?? ''));
        return;
      }
      if (status === 503) {
        // "Not carried out": unless an earlier attempt's outcome is open, nothing of it may
        // arrive (given time for a lying answer to show).
        await sleep(500);
        if (!maybeDone && batch.some(delivered)) untrue++;
      } else if (status !== 504 && status !== 0) {
        failed++;
        return;
      } else {
        maybeDone = true;
        await sleep(250);
      }
    }
  }

  const inFlight = new Set<Promise<void>>();
  const perTick = s.mode === 'stream' ? 1 : s.batchSize;
  const intervalMs = (1000 * perTick) / s.rate;
  const start = Date.now();
  const pauseAt = start + s.leadMs;
  const stopAt = pauseAt + s.pauseMs + s.tailMs;
  let paused = false;
  let tick = 0;
  while (Date.now() < stopAt) {
    if (!paused && Date.now() >= pauseAt) {
      paused = true;
      await redis.client('PAUSE', s.pauseMs, 'WRITE');
    }
    const batch: Msg[] = [];
    for (let i = 0; i < perTick; i++) {
      const ch = rr++ % s.channels;
      const seq = nextSeq[ch] as number;
      nextSeq[ch] = seq + 1;
      batch.push({ ch, seq });
    }
    requests++;
    messages += batch.length;
    const p = send(batch, `rel-${run}-${requests}`).finally(() => inFlight.delete(p));
    inFlight.add(p);
    tick++;
    const due = start + tick * intervalMs;
    if (due > Date.now()) await sleep(due - Date.now());
  }
  const sentRate = Math.round((messages * 1000) / (Date.now() - start));
  while (inFlight.size > 0) await Promise.all([...inFlight]);
  // Let the last deliveries arrive: until every acknowledged message is in, or 10 s.
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && ![...acked.keys()].every((k) => delivered({ ch: Number(k.split(':')[0]), seq: Number(k.split(':')[1]) }))) await sleep(100);
  await sleep(300);
  for (const w of subs) w.stop();

  let lost = 0;
  let duplicated = 0;
  let wrongId = 0;
  for (const [k, mid] of acked) {
    const [c, q] = k.split(':').map(Number) as [number, number];
    const w = subs[c] as ResumingWs;
    const at: number[] = [];
    w.seqs.forEach((x, i) => x === q && at.push(i));
    if (at.length === 0) lost++;
    duplicated += Math.max(0, at.length - 1);
    if (at.some((i) => w.mids[i] !== mid)) wrongId++;
  }
  // A delivery of a message no 200 acknowledged (only possible for a request that failed for good).
  let unacknowledged = 0;
  for (let c = 0; c < s.channels; c++) for (const q of (subs[c] as ResumingWs).seqs) if (!acked.has(`${c}:${q}`)) unacknowledged++;
  return { mode: s.mode, pauseMs: s.pauseMs, requests, messages, answers, retried, acknowledged: acked.size, lost, duplicated, wrongId, untrue, failed, unacknowledged, slowestAnswerMs: slowest, slowestAnswer: slowestLabel, sentRate };
}

export const STREAM = (pauseMs: number): PauseScenario => ({ mode: 'stream', pauseMs, rate: 500, batchSize: 1, channels: 10, leadMs: 1000, tailMs: 2000 });
export const BATCHES = (pauseMs: number): PauseScenario => ({ mode: 'batch', pauseMs, rate: 500, batchSize: 100, channels: 10, leadMs: 1000, tailMs: 2000 });
