import { decodeTextFrames } from '@push/protocol';
import { WsClient, publish, signed, type Frame } from './clients.js';
import { eventually, sleep } from './ports.js';

/** What publishStreamAcrossFault needs of a subscriber: what it got, when, and how often it had to reconnect. */
export interface StreamClient {
  /** 'ws' or 'long-poll', for the figures. */
  readonly kind: string;
  readonly got: Array<{ frame: Frame; at: number }>;
  /** When the client gave up a connection (closed by the server or found dead by its own timer). */
  readonly dropped: number[];
  reconnects: number;
  /** What happened to the connections (close codes, timeouts, failed reconnects), for failure messages. */
  readonly events: string[];
  open(): Promise<void>;
  close(): void;
}

export interface ResumingClientOptions {
  /**
   * Drop the socket and resume when the server sent nothing (no message, no ping) for this long,
   * as protocol-5 clients do with the server's "ping" (section 6.3 of the reference: 20 s): the only
   * way a client learns that a listener it reaches through nginx went silent without closing.
   * Also bounds the upgrade handshake. Off by default (a browser sees no ping frames).
   */
  readonly silenceMs?: number;
}

/**
 * A WebSocket client that does what the Bitrix clients do when the server closes its socket:
 * reconnects with the newest mid it got. Collects every message it was given, with arrival times.
 */
export class ResumingClient implements StreamClient {
  readonly kind = 'ws';
  readonly got: Array<{ frame: Frame; at: number }> = [];
  readonly dropped: number[] = [];
  private ws: WsClient | null = null;
  private closed = false;
  reconnects = 0;
  readonly events: string[] = [];
  constructor(
    private readonly base: string,
    private readonly channels: string[],
    private readonly opts: ResumingClientOptions = {},
  ) {}
  async open(): Promise<void> {
    const last = this.got[this.got.length - 1]?.frame.mid;
    const connecting = WsClient.connect(this.base, this.channels.map((c) => signed(c)), last === undefined ? '' : `&mid=${last}`);
    const silence = this.opts.silenceMs;
    let ws: WsClient;
    if (silence === undefined) ws = await connecting;
    else {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no upgrade answer within ${silence} ms`)), silence)));
      try {
        ws = await Promise.race([connecting, late]);
      } catch (err) {
        // The socket may still open later: never leave it behind.
        void connecting.then((w) => w.ws.terminate(), () => undefined);
        throw err;
      } finally {
        clearTimeout(timer);
      }
    }
    this.ws = ws;
    // Closed while this reconnect was under way: leave nothing open behind.
    if (this.closed) ws.close();
    const take = (): void => {
      const at = Date.now();
      for (const frame of ws.messages.splice(0)) this.got.push({ frame, at });
    };
    // The backlog can arrive in the same read as the upgrade answer, i.e. before this line runs:
    // take what is there already, then everything that follows.
    take();
    ws.ws.on('message', take);
    let watchdog: NodeJS.Timeout | undefined;
    if (silence !== undefined) {
      const arm = (): void => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => {
          this.events.push(`silent for ${silence} ms: dropped`);
          ws.ws.terminate();
        }, silence);
      };
      arm();
      ws.ws.on('message', arm);
      ws.ws.on('ping', arm);
    }
    void ws.closed.then(async () => {
      clearTimeout(watchdog);
      if (this.closed) return;
      this.dropped.push(Date.now());
      this.reconnects++;
      this.events.push(`closed ${ws.closeCode} ${ws.closeReason}`);
      for (;;) {
        try {
          await sleep(200);
          if (this.closed) return;
          await this.open();
          this.events.push('reopened');
          return;
        } catch (err) {
          // The listener refuses while Redis is away; try again.
          this.events.push(`reopen failed: ${(err as Error).message}`);
        }
      }
    });
  }
  close(): void {
    this.closed = true;
    this.ws?.close();
  }
}

/** The client only trusts Last-Message-Id on a 304 when Expires is exactly this (reference 5.1). */
const LP_EXPIRES = 'Thu, 01 Jan 1973 11:11:01 GMT';

/**
 * A long-poll client that behaves like the official one (reference 5.1): one request at a time
 * with the newest mid it got; a 304 hands it the server's Last-Message-Id (trusted only with the
 * magic Expires); a request unanswered after `abortMs` is aborted and sent again (the SDK does this
 * after 60 s against the server's 40 s hold); an error status or a failed request is retried after
 * a short backoff (the SDK's first step, 0.5 s).
 */
export class LongPollClient implements StreamClient {
  readonly kind = 'long-poll';
  readonly got: Array<{ frame: Frame; at: number }> = [];
  readonly dropped: number[] = [];
  reconnects = 0;
  readonly events: string[] = [];
  private mid = '';
  private closed = false;
  private ctl: AbortController | null = null;
  private loop: Promise<void> | null = null;
  constructor(
    private readonly base: string,
    private readonly channels: string[],
    private readonly abortMs: number,
  ) {}
  async open(): Promise<void> {
    this.loop ??= this.run();
  }
  private async run(): Promise<void> {
    const ids = encodeURIComponent(this.channels.map((c) => signed(c)).join('/'));
    while (!this.closed) {
      const ctl = new AbortController();
      this.ctl = ctl;
      let timedOut = false;
      const timer = setTimeout(() => ((timedOut = true), ctl.abort()), this.abortMs);
      try {
        const res = await fetch(`${this.base}/bitrix/sub/?CHANNEL_ID=${ids}${this.mid === '' ? '' : `&mid=${this.mid}`}`, { signal: ctl.signal });
        const body = await res.text();
        if (res.status === 200) {
          const at = Date.now();
          const frames = decodeTextFrames(body);
          for (const frame of frames) this.got.push({ frame, at });
          this.mid = frames[frames.length - 1]?.mid ?? this.mid;
        } else if (res.status === 304) {
          if (res.headers.get('expires') === LP_EXPIRES) this.mid = res.headers.get('last-message-id') ?? this.mid;
        } else {
          this.dropped.push(Date.now());
          this.reconnects++;
          this.events.push(`status ${res.status}: ${body.slice(0, 80)}`);
          await sleep(500);
        }
      } catch (err) {
        if (this.closed) return;
        this.dropped.push(Date.now());
        this.reconnects++;
        this.events.push(timedOut ? `no answer within ${this.abortMs} ms: aborted` : `request failed: ${(err as Error).message}`);
        if (!timedOut) await sleep(500);
      } finally {
        clearTimeout(timer);
      }
    }
  }
  close(): void {
    this.closed = true;
    this.ctl?.abort();
  }
}

/** What one client saw of a stream. */
export interface ClientOutcome {
  readonly kind: string;
  /** Acknowledged ("channel#seq") but never delivered to this client. */
  readonly lost: string[];
  readonly duplicated: number;
  readonly outOfOrder: number;
  /** From the fault to this client's first delivery of a message published after it (-1: never). */
  readonly resumedMs: number;
  /** From the fault to the first connection this client gave up after it (-1: none). */
  readonly droppedMs: number;
  readonly reconnects: number;
  readonly events: readonly string[];
}

export interface StreamOutcome {
  readonly acked: number;
  readonly ackedAfterFault: number;
  readonly refused: number;
  /** Answers that left the outcome open (504, or 502 from nginx) and were resent with the same identity. */
  readonly unknown: number;
  /** Acknowledged ("channel#seq") but never delivered (with several clients: "client i: channel#seq"). */
  readonly lost: string[];
  readonly duplicated: number;
  readonly outOfOrder: number;
  /** From the fault to the first delivery of a message published after it (-1: never); with several clients, the slowest. */
  readonly resumedMs: number;
  readonly reconnects: number;
  /** One entry per client, in the order given. */
  readonly clients: readonly ClientOutcome[];
}

/** The p-th percentile (0-100, nearest rank) of some figures; -1 when there are none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return -1;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

/**
 * Publishes over HTTP, one message per request, round robin over `channels`, each carrying its
 * channel's sequence number and its own X-Push-Request-Id; runs `fault` once `before` messages were
 * acknowledged, then keeps publishing until `after` more were acknowledged (or `timeoutMs`), and
 * counts what each client received against what was acknowledged. An answer that leaves the
 * outcome open (504: 4134, or 4170 with replicated durability; 502 from nginx when the publisher
 * died under the request) is resent unchanged, as a portal should, until it is 200 or refused;
 * refused publishes (503, nothing stored; a failed connection) are not retried.
 */
export async function publishStreamAcrossFault(
  pubUrl: string,
  client: StreamClient | readonly StreamClient[],
  channels: readonly string[],
  fault: () => Promise<void>,
  opts: { before?: number; after?: number; timeoutMs?: number; deliveryTimeoutMs?: number } = {},
): Promise<StreamOutcome> {
  const clients: readonly StreamClient[] = Array.isArray(client) ? client : [client as StreamClient];
  const seq = channels.map(() => 0);
  const acked: string[] = [];
  const sentAfter = new Set<string>();
  let refused = 0;
  let unknown = 0;
  let faultAt = 0;
  let ackedAfter = 0;
  const started = Date.now();
  let i = 0;
  while (ackedAfter < (opts.after ?? 30) && Date.now() - started < (opts.timeoutMs ?? 40_000)) {
    if (faultAt === 0 && acked.length >= (opts.before ?? 30)) {
      faultAt = Date.now();
      await fault();
    }
    const c = i++ % channels.length;
    const n = ++seq[c]!;
    const key = `${c}#${n}`;
    if (faultAt > 0) sentAfter.add(key);
    const send = (): Promise<Response | null> => publish(pubUrl, [channels[c] as string], { module_id: 't', command: 'seq', params: { c, n } }, { 'X-Push-Request-Id': `stream-${started}-${c}-${n}` }).catch(() => null);
    let res = await send();
    for (let tries = 0; (res?.status === 504 || res?.status === 502) && tries < 40; tries++) {
      unknown++;
      await sleep(250);
      res = await send();
    }
    if (res?.status === 200) {
      acked.push(key);
      if (faultAt > 0) ackedAfter++;
    } else {
      refused++;
      if (res !== null && res.status !== 503) throw new Error(`a refused publish must be 503 (a 504 is resent), got ${res.status}: ${await res.text()}`);
      await sleep(50);
    }
  }
  const keyOf = (f: Frame): string => {
    const p = (f.text as { params: { c: number; n: number } }).params;
    return `${p.c}#${p.n}`;
  };
  const delivered = (cl: StreamClient): string[] => cl.got.map((g) => keyOf(g.frame));
  await eventually(() => clients.every((cl) => acked.every((k) => delivered(cl).includes(k))), opts.deliveryTimeoutMs ?? 15_000, 'every acknowledged message delivered').catch(() => {});
  const outcomes = clients.map((cl): ClientOutcome => {
    const got = delivered(cl);
    let outOfOrder = 0;
    for (let c = 0; c < channels.length; c++) {
      const ns = got.filter((k) => k.startsWith(`${c}#`)).map((k) => Number(k.split('#')[1]));
      for (let k = 1; k < ns.length; k++) if ((ns[k] as number) < (ns[k - 1] as number)) outOfOrder++;
    }
    const resumed = cl.got.find((g) => sentAfter.has(keyOf(g.frame)));
    const dropped = cl.dropped.find((t) => t >= faultAt);
    return {
      kind: cl.kind,
      lost: acked.filter((k) => !got.includes(k)),
      duplicated: got.length - new Set(got).size,
      outOfOrder,
      resumedMs: resumed === undefined ? -1 : resumed.at - faultAt,
      droppedMs: faultAt === 0 || dropped === undefined ? -1 : dropped - faultAt,
      reconnects: cl.reconnects,
      events: [...cl.events],
    };
  });
  const resumes = outcomes.map((o) => o.resumedMs);
  return {
    acked: acked.length,
    ackedAfterFault: ackedAfter,
    refused,
    unknown,
    lost: clients.length === 1 ? [...(outcomes[0] as ClientOutcome).lost] : outcomes.flatMap((o, k) => o.lost.map((l) => `client ${k}: ${l}`)),
    duplicated: outcomes.reduce((a, o) => a + o.duplicated, 0),
    outOfOrder: outcomes.reduce((a, o) => a + o.outOfOrder, 0),
    resumedMs: resumes.includes(-1) ? -1 : Math.max(...resumes),
    reconnects: outcomes.reduce((a, o) => a + o.reconnects, 0),
    clients: outcomes,
  };
}
