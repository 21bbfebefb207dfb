import { sleep } from '../helpers/ports.js';
import type { Published } from './delivery-check.js';

export interface StreamOptions {
  /** Base URL publishes go to (nginx in front of the publishers). */
  readonly front: string;
  /** One sequential lane of single-message publishes per channel. */
  readonly singleChannels: readonly string[];
  /** Channels the batch lane spreads its messages over (round robin, one channel per message). */
  readonly batchChannels: readonly string[];
  /** Pause between two single publishes of one lane. */
  readonly singleGapMs: number;
  /** Pause between two batches (0: no batches). */
  readonly batchGapMs: number;
  readonly batchSize: number;
  /** Extra attempts of a request answered 5xx or not at all, with the same X-Push-Request-Id (0: none). */
  readonly retries: number;
  /** Filler characters per message body (a slow consumer needs bytes to fall behind on). */
  readonly padBytes: number;
  /** Unique per run: request ids must never repeat across runs on one Redis. */
  readonly runId: string;
}

/** The body every message carries: its channel (by index) and sequence number. */
export interface SeqBody {
  readonly module_id: 'chaos';
  readonly command: 'seq';
  readonly params: { readonly c: number; readonly seq: number; readonly pad?: string };
}

/** A message the stream is publishing or has published; `ackAt` set on its first 200. */
interface Attempt {
  ch: string;
  seq: number;
  sentAt: number;
  ackAt: number | null;
  outcomeUnknown: boolean;
}

/**
 * Answers that do not say whether the publish was stored: 504 (the publisher's "outcome unknown,
 * resend with the same identity"; nginx's upstream timeout), 502 (nginx lost the publisher with
 * the request on it) and no answer at all.
 */
const UNKNOWN_OUTCOME = new Set(['502', '504', 'error']);

/**
 * A steady publish stream like a portal's: each single-message channel has its own lane that
 * publishes 1, 2, 3, ... one request at a time (so publish order is storage order), and one lane
 * posts 100-message batches over its channels. Every request carries an `X-Push-Request-Id`; one
 * answered 5xx or not at all is retried (same id) up to `retries` times. Records every message's send and
 * acknowledgement time and every HTTP answer.
 */
export class PublishStream {
  private readonly records = new Map<string, Attempt>();
  /** HTTP status (or `error`) -> count, over every attempt. */
  readonly answers = new Map<string, number>();
  private running = false;
  private lanes: Promise<void>[] = [];
  private readonly nextSeq = new Map<string, number>();
  private requestNo = 0;
  private readonly channelIndex: Map<string, number>;

  constructor(private readonly opts: StreamOptions) {
    this.channelIndex = new Map([...opts.singleChannels, ...opts.batchChannels].map((c, i) => [c, i]));
  }

  /** Every channel, in the index order the bodies use. */
  get channels(): string[] {
    return [...this.channelIndex.keys()];
  }

  /** The message body for one channel and sequence number. */
  body(ch: string, seq: number): SeqBody {
    const c = this.channelIndex.get(ch) as number;
    return { module_id: 'chaos', command: 'seq', params: this.opts.padBytes > 0 ? { c, seq, pad: 'x'.repeat(this.opts.padBytes) } : { c, seq } };
  }

  start(): void {
    this.running = true;
    this.lanes = [...this.opts.singleChannels.map((ch) => this.singleLane(ch)), ...(this.opts.batchGapMs > 0 && this.opts.batchChannels.length > 0 ? [this.batchLane()] : [])];
  }

  /** Stops after the requests in flight are answered. */
  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.lanes);
  }

  get published(): Published[] {
    return [...this.records.values()];
  }

  private seq(ch: string): number {
    const n = (this.nextSeq.get(ch) ?? 0) + 1;
    this.nextSeq.set(ch, n);
    return n;
  }

  private async singleLane(ch: string): Promise<void> {
    while (this.running) {
      const seq = this.seq(ch);
      const rec: Attempt = { ch, seq, sentAt: Date.now(), ackAt: null, outcomeUnknown: false };
      this.records.set(`${ch}#${seq}`, rec);
      const last = await this.send(`/bitrix/pub/?CHANNEL_ID=${ch}`, JSON.stringify(this.body(ch, seq)), { 'Message-Expiry': '3600' });
      if (last === '200') rec.ackAt = Date.now();
      else rec.outcomeUnknown = UNKNOWN_OUTCOME.has(last);
      await sleep(this.opts.singleGapMs);
    }
  }

  private async batchLane(): Promise<void> {
    let turn = 0;
    while (this.running) {
      const recs: Attempt[] = [];
      const messages = [];
      const sentAt = Date.now();
      for (let i = 0; i < this.opts.batchSize; i++) {
        const ch = this.opts.batchChannels[turn++ % this.opts.batchChannels.length] as string;
        const seq = this.seq(ch);
        const rec: Attempt = { ch, seq, sentAt, ackAt: null, outcomeUnknown: false };
        this.records.set(`${ch}#${seq}`, rec);
        recs.push(rec);
        messages.push({ channels: [ch], body: this.body(ch, seq), expiry: 3600 });
      }
      const last = await this.send('/bitrix/pub/batch', JSON.stringify({ messages }), { 'Content-Type': 'application/json' });
      const at = Date.now();
      for (const r of recs) {
        if (last === '200') r.ackAt = at;
        else r.outcomeUnknown = UNKNOWN_OUTCOME.has(last);
      }
      await sleep(this.opts.batchGapMs);
    }
  }

  /** One request with its retries; the last answer (`200` once an attempt is acknowledged). */
  private async send(path: string, body: string, headers: Record<string, string>): Promise<string> {
    const id = `chaos-${this.opts.runId}-${++this.requestNo}`;
    for (let attempt = 0; attempt <= this.opts.retries; attempt++) {
      let status: string;
      try {
        const res = await fetch(`${this.opts.front}${path}`, { method: 'POST', headers: { ...headers, 'X-Push-Request-Id': id }, body, signal: AbortSignal.timeout(30_000) });
        await res.arrayBuffer();
        status = String(res.status);
      } catch {
        status = 'error';
      }
      this.answers.set(status, (this.answers.get(status) ?? 0) + 1);
      // A refusal (4xx) is final: resending the same request cannot change it.
      if (status === '200' || !(status.startsWith('5') || status === 'error') || attempt === this.opts.retries) return status;
      await sleep(250);
    }
    return 'error';
  }
}
