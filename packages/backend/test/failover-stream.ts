import { BACKEND_SENDER, type StoredMessage } from '@push/protocol';
import type { Backend } from '../src/index.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface StreamReport {
  /** Publishes answered OK (acknowledged), and answered with an error (outcome unknown). */
  readonly acked: number;
  readonly failed: number;
  /** Acknowledged messages (as "channel#seq") that the consumer never got. */
  readonly lost: string[];
  /** Sequence numbers delivered more than once (a second copy under another id counts too). */
  readonly duplicated: number;
  /** Deliveries whose sequence number was below the previous one on the same channel. */
  readonly outOfOrder: number;
  /** From the end of the fault to the first delivery of a message published after it. */
  readonly resumedMs: number;
  /** Error messages seen by the publisher, distinct. */
  readonly errors: string[];
}

/**
 * Publishes a steady stream (one message per call, round robin over `channels`, each carrying its
 * channel's next sequence number), runs `fault` in the middle of it, keeps publishing until
 * `afterFault` messages were acknowledged after the fault, and counts what a consumer built like
 * the listener's hub received: live messages from one broker, held from `lost` to `restored` and
 * then merged with a history read from the channel's cursor, de-duplicated by mid. A failed
 * publish is not retried (its outcome is unknown), so no seq may legitimately arrive twice.
 */
export async function publishAcrossFault(backend: Backend, channels: readonly string[], fault: () => Promise<void>, opts: { afterFault?: number; warmupMs?: number } = {}): Promise<StreamReport> {
  const broker = backend.createBroker();
  const cursor = new Map<string, string>();
  const delivered = new Map<string, number[]>();
  let holding = false;
  let held: Array<[string, StoredMessage]> = [];
  let faultEnd = 0;
  let resumedAt = 0;
  const postFault = new Set<string>();
  const deliver = (channel: string, m: StoredMessage): void => {
    if (m.mid <= (cursor.get(channel) ?? '')) return;
    cursor.set(channel, m.mid);
    const seq = (JSON.parse(m.body) as { seq: number }).seq;
    const list = delivered.get(channel) ?? [];
    list.push(seq);
    delivered.set(channel, list);
    if (resumedAt === 0 && postFault.has(`${channel}#${seq}`)) resumedAt = Date.now();
  };
  broker.setHandler((channel, m) => (holding ? held.push([channel, m]) : deliver(channel, m)));
  let refill: Promise<void> = Promise.resolve();
  broker.onResync({
    lost: () => {
      holding = true;
    },
    restored: () => {
      refill = refill.then(async () => {
        for (const c of channels) {
          for (;;) {
            try {
              const h = await backend.store.history([c], cursor.get(c) ?? '0'.repeat(26));
              for (const m of h.messages) deliver(c, m);
              break;
            } catch {
              await sleep(50);
            }
          }
        }
        const waiting = held.sort((a, b) => (a[1].mid < b[1].mid ? -1 : 1));
        held = [];
        holding = false;
        for (const [c, m] of waiting) deliver(c, m);
      });
    },
  });
  await broker.subscribe(channels);

  const seqs = new Map<string, number>();
  const acked: string[] = [];
  const errors = new Set<string>();
  let failed = 0;
  let ackedAfter = 0;
  let faultDone = false;
  let stop = false;
  const publisher = (async () => {
    let i = 0;
    while (!stop) {
      const c = channels[i++ % channels.length] as string;
      const seq = (seqs.get(c) ?? 0) + 1;
      seqs.set(c, seq);
      const key = `${c}#${seq}`;
      const sentAfterFault = faultDone;
      if (sentAfterFault) postFault.add(key);
      try {
        await backend.store.publish([{ channels: [c], body: JSON.stringify({ seq }), type: 'seq', ttl: 300 }], BACKEND_SENDER);
        acked.push(key);
        if (sentAfterFault) ackedAfter++;
      } catch (err) {
        failed++;
        errors.add((err as Error).message.slice(0, 120));
        await sleep(20);
      }
      await sleep(2);
    }
  })();
  await sleep(opts.warmupMs ?? 300);
  await fault();
  faultEnd = Date.now();
  faultDone = true;
  const deadline = Date.now() + 30_000;
  while ((ackedAfter < (opts.afterFault ?? 100) || resumedAt === 0) && Date.now() < deadline) await sleep(20);
  stop = true;
  await publisher;
  // Let the last live messages and any refill arrive.
  const missing = (): string[] => acked.filter((k) => {
    const [c, s] = k.split('#') as [string, string];
    return !(delivered.get(c) ?? []).includes(Number(s));
  });
  const drain = Date.now() + 10_000;
  while (missing().length > 0 && Date.now() < drain) await sleep(50);
  await refill;
  await broker.close();
  let duplicated = 0;
  let outOfOrder = 0;
  for (const list of delivered.values()) {
    duplicated += list.length - new Set(list).size;
    for (let k = 1; k < list.length; k++) if ((list[k] as number) < (list[k - 1] as number)) outOfOrder++;
  }
  return { acked: acked.length, failed, lost: missing(), duplicated, outOfOrder, resumedMs: resumedAt === 0 ? -1 : resumedAt - faultEnd, errors: [...errors] };
}
