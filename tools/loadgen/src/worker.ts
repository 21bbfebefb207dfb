import { Agent, get, type IncomingMessage } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import WebSocket from 'ws';
import { bytesToHex, decodeResponseBatch, signChannel } from '@push/protocol';
import { nowUs, readBenchBody, readTextFrames, type DeliverySink } from './bench-body.js';
import { channelName, type ConnSpec, type SubscribeTarget } from './channels.js';
import { Histogram } from './histogram.js';
import { serve } from './ipc.js';
import { SequenceTracker } from './sequence.js';

/**
 * A subscriber worker: plays thousands of clients of one kind or another (WebSocket text or
 * protobuf, long poll text or protobuf, nchan WebSocket), checks every delivery against the
 * per-channel sequence and records latency from the message's send time to the moment its frame
 * was parsed here. Reconnecting clients resume from the mid of the last message they got, as the
 * official clients do.
 */

const ZERO_MID = '0'.repeat(26);

interface Settings {
  target: SubscribeTarget;
  /** Reconnect after a close (resume by mid); otherwise a close is counted as unexpected. */
  reconnect: boolean;
  /** Upper bound of the random delay before a reconnect, ms (the official client waits 0.5-15 s). */
  reconnectJitterMs: number;
}

class Totals {
  /** From the moment each message was due at the publish driver (its queue included). */
  readonly latency = new Histogram();
  /** From the moment the request carrying it was built and sent: the server's part. */
  readonly sendLatency = new Histogram();
  /** Latency since the coordinator's last `slice` call: the timeline's points (timeline.ts). */
  readonly slice = new Histogram();
  opened = 0;
  failed = 0;
  unexpectedCloses = 0;
  reconnects = 0;
  malformed = 0;
  requests = 0;
  firstError = '';
  error(e: string): void {
    if (this.firstError === '') this.firstError = e;
  }
}

const totals = new Totals();
/**
 * This worker's own event-loop delay since the last reset: on two shared cores the clients queue
 * for the CPU too, and every message that arrives during a stall waits for it. Sampled every
 * LOOP_SAMPLE_MS (the histogram's values include that interval, which is subtracted when reported).
 */
const LOOP_SAMPLE_MS = 10;
const loopDelay = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS });
loopDelay.enable();
let settings: Settings;
let stopping = false;
const conns: Client[] = [];
const agents = new Map<string, Agent>();

abstract class Client implements DeliverySink {
  readonly seq = new SequenceTracker();
  mid: string = ZERO_MID;
  frameUs = 0;
  attempts = 0;
  /** Set once the first connection or request succeeded. */
  up = false;
  constructor(readonly spec: ConnSpec) {}

  deliver(seq: number, dueUs: number, sentUs: number): void {
    this.seq.observe(seq);
    totals.latency.record(this.frameUs - dueUs);
    totals.sendLatency.record(this.frameUs - sentUs);
    totals.slice.record(this.frameUs - dueUs);
  }
  malformed(): void {
    totals.malformed++;
  }

  get id(): string {
    return channelName(settings.target.prefix, this.spec.chan);
  }
  baseUrl(): string {
    const urls = settings.target.urls;
    return urls[(this.spec.url + this.attempts) % urls.length] as string;
  }
  pushQuery(binary: boolean): string {
    const signed = signChannel(this.id, { key: settings.target.signatureKey, algorithm: 'sha1' });
    return `?CHANNEL_ID=${signed}${binary ? '&binaryMode=true' : ''}&mid=${this.mid}`;
  }
  abstract start(): Promise<void>;
  abstract stop(): void;
  /** Whether the client can receive right now (a long-poll client always polls again). */
  abstract get connected(): boolean;

  /** Reads one frame or response body of this client's format. */
  read(data: Buffer, binary: boolean): void {
    this.frameUs = nowUs();
    if (binary) {
      let batch;
      try {
        batch = decodeResponseBatch(data);
      } catch {
        totals.malformed++;
        return;
      }
      for (const r of batch.responses) {
        for (const m of r.outgoingMessages?.messages ?? []) {
          readBenchBody(m.body, 0, m.body.length, this.spec.chan, this);
          this.mid = bytesToHex(m.id);
        }
      }
      return;
    }
    // Bench bodies are ASCII; latin1 is the cheapest decoding.
    const text = data.toString('latin1');
    if (this.spec.kind === 'nchan-ws') readBenchBody(text, 0, text.length, this.spec.chan, this);
    else this.mid = readTextFrames(text, this.spec.chan, this) ?? this.mid;
  }
}

class WsClient extends Client {
  private ws: WebSocket | null = null;
  private timer: NodeJS.Timeout | null = null;

  start(): Promise<void> {
    return new Promise((resolve) => this.open(resolve));
  }

  private url(): string {
    const base = this.baseUrl().replace(/^http/, 'ws');
    if (this.spec.kind === 'nchan-ws') return `${base}/sub/${this.id}`;
    return `${base}/bitrix/subws/${this.pushQuery(this.spec.kind === 'ws-binary')}`;
  }

  private open(first: ((v: void) => void) | null): void {
    const ws = new WebSocket(this.url(), { perMessageDeflate: false, skipUTF8Validation: true, handshakeTimeout: 60_000, maxPayload: 256 * 1024 * 1024, ...(this.spec.local === undefined ? {} : { localAddress: this.spec.local }) });
    this.ws = ws;
    let opened = false;
    ws.on('open', () => {
      opened = true;
      if (!this.up) {
        this.up = true;
        totals.opened++;
      }
      first?.();
      first = null;
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => this.read(data, isBinary));
    ws.on('error', (err) => totals.error(`ws: ${err.message}`));
    ws.on('close', (code, reason) => {
      this.ws = null;
      if (stopping) return;
      if (!settings.reconnect) {
        if (opened) {
          totals.unexpectedCloses++;
          totals.error(`closed by the server: ${code} ${reason.toString()}`);
        }
        else {
          totals.failed++;
          first?.();
          first = null;
        }
        return;
      }
      if (opened) totals.reconnects++;
      else if (code !== 1006) totals.error(`ws closed during handshake with ${code}`);
      this.attempts++;
      // A server restart closes everyone at once: spread the reconnects like real clients do.
      const delay = opened ? Math.random() * settings.reconnectJitterMs : 250 + Math.random() * 500;
      this.timer = setTimeout(() => this.open(first), delay);
    });
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.ws?.terminate();
  }

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }
}

class LongPollClient extends Client {
  private req: ReturnType<typeof get> | null = null;
  private timer: NodeJS.Timeout | null = null;

  start(): Promise<void> {
    // A long-poll client is "open" once its first poll is on its way (there is no handshake).
    this.up = true;
    totals.opened++;
    this.poll();
    return Promise.resolve();
  }

  private poll(): void {
    if (stopping) return;
    const binary = this.spec.kind === 'lp-binary';
    const url = new URL(`${this.baseUrl()}/bitrix/sub/${this.pushQuery(binary)}`);
    totals.requests++;
    this.req = get({ host: url.hostname, port: url.port, path: url.pathname + url.search, agent: agentFor(this.spec.local) }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        if (res.statusCode === 200) this.read(Buffer.concat(chunks), binary);
        else if (res.statusCode === 304) {
          const last = res.headers['last-message-id'];
          if (typeof last === 'string' && last.length === 26) this.mid = last;
        } else {
          totals.error(`long poll answered ${res.statusCode}`);
          return this.retry();
        }
        setImmediate(() => this.poll());
      });
      res.on('error', () => this.retry());
    });
    this.req.on('error', (err) => {
      totals.error(`long poll: ${err.message}`);
      this.retry();
    });
  }

  private retry(): void {
    if (stopping) return;
    this.attempts++;
    totals.reconnects++;
    this.timer = setTimeout(() => this.poll(), 250 + Math.random() * 500);
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.req?.destroy();
  }

  get connected(): boolean {
    return true;
  }
}

function agentFor(local: string | undefined): Agent {
  const key = local ?? '';
  let a = agents.get(key);
  if (a === undefined) {
    a = new Agent({ keepAlive: true, maxSockets: Infinity, ...(local === undefined ? {} : { localAddress: local }) });
    agents.set(key, a);
  }
  return a;
}

/** Opens connections `concurrency` at a time (a handshake storm would only measure the backlog). */
async function openAll(specs: readonly ConnSpec[], concurrency: number): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < specs.length) {
      const spec = specs[next++] as ConnSpec;
      const c = spec.kind.startsWith('lp') ? new LongPollClient(spec) : new WsClient(spec);
      conns.push(c);
      await c.start();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
}

function receivedSoFar(): number {
  let received = 0;
  for (const c of conns) received += c.seq.unique;
  return received;
}

serve({
  async open(req) {
    settings = req['settings'] as Settings;
    const before = totals.opened;
    await openAll(req['conns'] as ConnSpec[], (req['concurrency'] as number | undefined) ?? 100);
    return { opened: totals.opened - before, failed: totals.failed, firstError: totals.firstError };
  },
  progress() {
    let connected = 0;
    for (const c of conns) if (c.connected) connected++;
    return { received: receivedSoFar(), connected, reconnects: totals.reconnects, requests: totals.requests };
  },
  slice() {
    const latency = totals.slice.toJSON();
    totals.slice.reset();
    return { received: receivedSoFar(), latency };
  },
  reset() {
    totals.latency.reset();
    totals.sendLatency.reset();
    loopDelay.reset();
    return {};
  },
  collect(req) {
    const expected = req['expected'] as number[];
    let lost = 0;
    let duplicates = 0;
    let reordered = 0;
    let received = 0;
    let expectedTotal = 0;
    const lossSamples: Array<Record<string, unknown>> = [];
    for (const c of conns) {
      const e = expected[c.spec.chan] ?? 0;
      expectedTotal += e;
      const l = c.seq.lost(e);
      lost += l;
      if (l > 0 && lossSamples.length < 5) lossSamples.push({ chan: c.spec.chan, kind: c.spec.kind, url: c.baseUrl(), expected: e, last: c.seq.last, missing: c.seq.missingSample(), mid: c.mid, attempts: c.attempts });
      duplicates += c.seq.duplicates;
      reordered += c.seq.reordered;
      received += c.seq.unique;
    }
    return {
      connections: conns.length,
      expected: expectedTotal,
      received,
      lost,
      duplicates,
      reordered,
      malformed: totals.malformed,
      opened: totals.opened,
      failed: totals.failed,
      unexpectedCloses: totals.unexpectedCloses,
      reconnects: totals.reconnects,
      requests: totals.requests,
      firstError: totals.firstError,
      lossSamples,
      latency: totals.latency.toJSON(),
      sendLatency: totals.sendLatency.toJSON(),
      loopDelayMs: { p99: Math.max(0, loopDelay.percentile(99) / 1e6 - LOOP_SAMPLE_MS), max: Math.max(0, loopDelay.max / 1e6 - LOOP_SAMPLE_MS) },
    };
  },
  close() {
    stopping = true;
    for (const c of conns) c.stop();
    for (const a of agents.values()) a.destroy();
    return {};
  },
});
