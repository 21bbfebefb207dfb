import { WsClient, publish, signed, type Frame } from './clients.js';
import { eventually, sleep } from './ports.js';

/**
 * A WebSocket client that does what the Bitrix clients do when the server closes its socket:
 * reconnects with the newest mid it got. Collects every message it was given, with arrival times.
 */
export class ResumingClient {
  readonly got: Array<{ frame: Frame; at: number }> = [];
  private ws: WsClient | null = null;
  private closed = false;
  reconnects = 0;
  /** What happened to the sockets (close codes, failed reconnects), for failure messages. */
  readonly events: string[] = [];
  constructor(
    private readonly base: string,
    private readonly channels: string[],
  ) {}
  async open(): Promise<void> {
    const last = this.got[this.got.length - 1]?.frame.mid;
    const ws = await WsClient.connect(this.base, this.channels.map((c) => signed(c)), last === undefined ? '' : `&mid=${last}`);
    this.ws = ws;
    const take = (): void => {
      const at = Date.now();
      for (const frame of ws.messages.splice(0)) this.got.push({ frame, at });
    };
    // The backlog can arrive in the same read as the upgrade answer, i.e. before this line runs:
    // take what is there already, then everything that follows.
    take();
    ws.ws.on('message', take);
    void ws.closed.then(async () => {
      if (this.closed) return;
      this.reconnects++;
      this.events.push(`closed ${ws.closeCode} ${ws.closeReason}`);
      for (;;) {
        try {
          await sleep(200);
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

export interface StreamOutcome {
  readonly acked: number;
  readonly ackedAfterFault: number;
  readonly refused: number;
  /** Answers that left the outcome open (504) and were resent with the same identity. */
  readonly unknown: number;
  /** Acknowledged ("channel#seq") but never delivered. */
  readonly lost: string[];
  readonly duplicated: number;
  readonly outOfOrder: number;
  /** From the fault to the first delivery of a message published after it (-1: never). */
  readonly resumedMs: number;
  readonly reconnects: number;
}

/**
 * Publishes over HTTP, one message per request, round robin over `channels`, each carrying its
 * channel's sequence number and its own X-Push-Request-Id; runs `fault` once `before` messages were
 * acknowledged, then keeps publishing until `after` more were acknowledged (or `timeoutMs`), and
 * counts what `client` received against what was acknowledged. An answer that leaves the outcome
 * open (504: 4134, or 4170 with replicated durability) is resent unchanged, as a portal should,
 * until it is 200 or refused; refused publishes (503, nothing stored) are not retried.
 */
export async function publishStreamAcrossFault(pubUrl: string, client: ResumingClient, channels: readonly string[], fault: () => Promise<void>, opts: { before?: number; after?: number; timeoutMs?: number } = {}): Promise<StreamOutcome> {
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
    for (let tries = 0; res?.status === 504 && tries < 40; tries++) {
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
  const delivered = (): string[] => client.got.map((g) => keyOf(g.frame));
  await eventually(() => acked.every((k) => delivered().includes(k)), 15_000, 'every acknowledged message delivered').catch(() => {});
  const got = delivered();
  let outOfOrder = 0;
  for (let c = 0; c < channels.length; c++) {
    const ns = got.filter((k) => k.startsWith(`${c}#`)).map((k) => Number(k.split('#')[1]));
    for (let k = 1; k < ns.length; k++) if ((ns[k] as number) < (ns[k - 1] as number)) outOfOrder++;
  }
  const resumed = client.got.find((g) => sentAfter.has(keyOf(g.frame)));
  return {
    acked: acked.length,
    ackedAfterFault: ackedAfter,
    refused,
    unknown,
    lost: acked.filter((k) => !got.includes(k)),
    duplicated: got.length - new Set(got).size,
    outOfOrder,
    resumedMs: resumed === undefined ? -1 : resumed.at - faultAt,
    reconnects: client.reconnects,
  };
}
