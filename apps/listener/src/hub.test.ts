import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { BACKEND_SENDER, ORIGIN_MID, decodeTextFrames, type NewMessage, type StoredMessage } from '@push/protocol';
import { createMemoryBackend, type Backend, type Broker, type BrokerHealth, type HistoryGap, type MessageHandler, type ResyncHandlers } from '@push/backend';
import { Hub, type Transport } from './hub.js';

const log = pino({ level: 'silent' });
const A = 'a'.repeat(32);
const B = 'b'.repeat(32);
const tick = () => new Promise((r) => setImmediate(r));
/** Waits until `check` holds (generous: the machine may be loaded), then returns; fails after `ms`. */
async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

class Recorder implements Transport {
  readonly kind = 'ws' as const;
  readonly format = 'text' as const;
  gapCalls: Array<{ after: string; gaps: readonly HistoryGap[] }> = [];
  historyGap(after: string, gaps: readonly HistoryGap[]): void {
    this.gapCalls.push({ after, gaps });
  }
  ended: number[] = [];
  end(err: { code: number }): void {
    this.ended.push(err.code);
  }
  writes: string[] = [];
  write(frame: Uint8Array): boolean {
    this.writes.push(Buffer.from(frame).toString('utf8'));
    return true;
  }
  get mids(): string[] {
    return this.writes.flatMap((w) => decodeTextFrames(w).map((f) => f.mid));
  }
  /** `module/command` of every message written, in order. */
  get commands(): string[] {
    return this.writes.flatMap((w) => decodeTextFrames(w).map((f) => {
      const t = f.text as { module_id?: string; command?: string };
      return `${t.module_id ?? ''}/${t.command ?? ''}`;
    }));
  }
}

/**
 * Wraps a broker so a test can lose messages (a dead subscription) and then announce the resync
 * as the Redis broker does: `lost` before resubscribing, `restored` once every channel is back.
 */
class FlakyBroker implements Broker {
  down = false;
  subscribeFails = false;
  resync: ResyncHandlers[] = [];
  subscribed = new Set<string>();
  private handler: MessageHandler = () => {};
  constructor(private readonly inner: Broker) {
    inner.setHandler((c, m) => {
      if (!this.down) this.handler(c, m);
    });
  }
  setHandler(h: MessageHandler): void {
    this.handler = h;
  }
  onResync(h: ResyncHandlers): void {
    this.resync.push(h);
  }
  lost(): void {
    for (const h of this.resync) h.lost();
  }
  restored(): void {
    for (const h of this.resync) h.restored();
  }
  /** Hands a message to the hub as a broker would (a Cluster broker's release, say). */
  deliver(channel: string, msg: StoredMessage): void {
    this.handler(channel, msg);
  }
  async subscribe(channels: readonly string[]): Promise<void> {
    if (this.subscribeFails) throw new Error('redis down');
    for (const c of channels) this.subscribed.add(c);
    await this.inner.subscribe(channels);
  }
  async unsubscribe(channels: readonly string[]): Promise<void> {
    for (const c of channels) this.subscribed.delete(c);
    await this.inner.unsubscribe(channels);
  }
  health(): BrokerHealth {
    return { connections: 1, down: this.down ? 1 : 0, stalls: 0 };
  }
  async close(): Promise<void> {
    await this.inner.close();
  }
}

const m = (channels: string[], n: number, ttl = 60): NewMessage => ({ channels, body: `{"n":${n}}`, type: 't', ttl });

describe('Hub', () => {
  let backend: Backend;
  let broker: FlakyBroker;
  let hub: Hub;
  const publish = (...msgs: NewMessage[]) => backend.store.publish(msgs, BACKEND_SENDER);

  beforeEach(() => {
    backend = createMemoryBackend({ historyLimit: 100, onlineTtlSeconds: 130, statsStaleMs: 1000 });
    broker = new FlakyBroker(backend.createBroker());
    hub = new Hub({ store: backend.store, broker, presence: backend.presence, log, unsubscribeDelayMs: 20, onlineTtlMs: 130_000, maxConnPerPublicChannel: 100 });
  });
  afterEach(() => hub.stop());

  it('replays history after the cursor, then live, with no duplicates', async () => {
    const [m1, m2] = await publish(m([A], 1), m([A], 2));
    const t = new Recorder();
    await hub.open([A], t, m1 as string);
    const [m3] = await publish(m([A], 3));
    await tick();
    assert.deepEqual(t.mids, [m2, m3]);
  });

  it('without a cursor only live messages are sent; the result carries the newest stored id', async () => {
    const [, m2] = await publish(m([A], 1), m([A], 2));
    const t = new Recorder();
    const { result } = await hub.open([A], t, null);
    assert.equal(result.newestMid, m2);
    const [m3] = await publish(m([A], 3));
    await tick();
    assert.deepEqual(t.mids, [m3]);
  });

  it('with nothing stored on the channels the result carries the store\'s newest issued id as a floor; a later publish sorts above it', async () => {
    const t = new Recorder();
    assert.equal((await hub.open([A], t, null)).result.floorMid, ORIGIN_MID, 'nothing issued yet: below every id');
    const [elsewhere] = await publish(m([B], 1));
    const { result } = await hub.open([A], new Recorder(), null);
    assert.equal(result.newestMid, null);
    assert.equal(result.floorMid, elsewhere, 'the newest id issued on any channel');
    const [later] = await publish(m([A], 2));
    assert.ok((later as string) > (result.floorMid as string), 'a resume from the floor finds it');
    assert.deepEqual((await backend.store.history([A], result.floorMid as string)).messages.map((x) => x.mid), [later]);
  });

  it('flushConnection writes what waits for one connection at once, and the next flush does not write it again', async () => {
    const t = new Recorder();
    const other = new Recorder();
    const { conn } = await hub.open([A], t, null);
    await hub.open([A], other, null);
    assert.equal(hub.flushConnection(conn), false, 'nothing waits');
    const [x] = await publish(m([A], 1));
    assert.equal(hub.flushConnection(conn), true);
    assert.deepEqual(t.mids, [x], 'written before the scheduled flush');
    assert.deepEqual(other.mids, [], 'the other connection waits for the flush');
    await tick();
    assert.deepEqual(t.mids, [x], 'once');
    assert.deepEqual(other.mids, [x]);
  });

  it('messages published while the history read is in flight are neither lost nor doubled', async () => {
    const [m1] = await publish(m([A], 1));
    const original = backend.store.history.bind(backend.store);
    let during: string[] = [];
    backend.store.history = async (channels, after) => {
      // Published after the subscription is active but before history is read: appears in both.
      during = await publish(m([A], 2), m([A], 3, 0));
      return original(channels, after);
    };
    const t = new Recorder();
    await hub.open([A], t, m1 as string);
    await tick();
    assert.deepEqual(t.mids, during, 'stored and live-only messages from the gap, once each, in order');
  });

  it('a message stored shard by shard (Redis Cluster) reaches each connection once, under the first id it may see', async () => {
    const both = new Recorder();
    const onlyB = new Recorder();
    await hub.open([A, B], both, null);
    await hub.open([B], onlyB, null);
    const base = { createdMs: Date.now(), expiry: 60, type: 't', sender: BACKEND_SENDER, body: '{"module_id":"m","command":"c","params":{}}' };
    const first = '17000000000000100001000000';
    const second = '17000000000000100002000000';
    broker.deliver(A, { ...base, mid: first });
    broker.deliver(B, { ...base, mid: second, earlier: [{ channel: A, mid: first }] });
    await tick();
    assert.deepEqual(both.mids, [first], 'the later part is the same message');
    assert.deepEqual(onlyB.mids, [second], 'a connection without the earlier channel gets its own part');
  });

  it('a publish to two channels the connection holds arrives once', async () => {
    const t = new Recorder();
    await hub.open([A, B], t, null);
    const [x] = await publish(m([A, B], 1));
    await tick();
    assert.deepEqual(t.mids, [x]);
  });

  it('coalesces what arrives in one event-loop turn into one write', async () => {
    const t = new Recorder();
    await hub.open([A], t, null);
    const mids = await publish(m([A], 1), m([A], 2), m([A], 3));
    await tick();
    assert.equal(t.writes.length, 1);
    assert.deepEqual(t.mids, mids);
  });

  it('unsubscribes a channel only after the last connection left and the delay passed', async () => {
    const t1 = new Recorder();
    const t2 = new Recorder();
    const { conn: c1 } = await hub.open([A], t1, null);
    const { conn: c2 } = await hub.open([A], t2, null);
    hub.close(c1);
    await new Promise((r) => setTimeout(r, 40));
    assert.ok(broker.subscribed.has(A), 'still one connection');
    hub.close(c2);
    assert.ok(broker.subscribed.has(A), 'lingers for returning long polls');
    await new Promise((r) => setTimeout(r, 40));
    assert.ok(!broker.subscribed.has(A), 'gone after the delay');
    assert.equal(hub.channelCount, 0);
  });

  it('a reconnecting long poll within the delay keeps the subscription', async () => {
    const { conn } = await hub.open([A], new Recorder(), null);
    hub.close(conn);
    await hub.open([A], new Recorder(), null);
    await new Promise((r) => setTimeout(r, 40));
    assert.ok(broker.subscribed.has(A));
  });

  it('open rejects and registers nothing when the subscription fails', async () => {
    broker.subscribeFails = true;
    await assert.rejects(hub.open([A], new Recorder(), null), /redis down/);
    assert.equal(hub.channelCount, 0);
    assert.deepEqual(hub.countByTransport(), { ws: 0, lp: 0 });
  });

  it('after a lost subscription, a resync refills exactly what each connection missed', async () => {
    const t1 = new Recorder();
    const t2 = new Recorder();
    await hub.open([A, B], t1, null);
    await hub.open([B], t2, null);
    const [x1] = await publish(m([A], 1));
    await tick();
    broker.down = true;
    const missed = await publish(m([B], 2), m([A], 3), m([A, B], 4));
    broker.lost();
    broker.down = false;
    broker.restored();
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(t1.mids, [x1, ...missed]);
    assert.deepEqual(t2.mids, [missed[0], missed[2]]);
  });

  it('a live message arriving while a refill reads history does not make the refill skip anything', async () => {
    const t = new Recorder();
    await hub.open([A], t, null);
    broker.down = true;
    const missed = await publish(m([A], 1), m([A], 2));
    broker.down = false;
    const original = backend.store.history.bind(backend.store);
    let live: string[] = [];
    backend.store.history = async (channels, after) => {
      const h = await original(channels, after);
      live = await publish(m([A], 3)); // delivered over the (restored) subscription first
      return h;
    };
    broker.lost();
    broker.restored();
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(t.mids, [...missed, ...live]);
  });

  it('a message on a channel that is subscribed again before the resync completes does not make the refill skip anything', async () => {
    // Redis: the SUBSCRIBE reply and the next message can arrive in one read, before the broker
    // has confirmed every channel; the refill must still start from where the connection was.
    const t = new Recorder();
    await hub.open([A], t, null);
    const [before] = await publish(m([A], 1));
    await tick();
    broker.down = true;
    const missed = await publish(m([A], 2), m([A], 3));
    broker.lost();
    broker.down = false;
    const early = await publish(m([A], 4), m([A], 5, 0));
    await tick();
    assert.deepEqual(t.mids, [before], 'held until the refill');
    broker.restored();
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(t.mids, [before, ...missed, ...early], 'everything once, in order, the live-only one included');
    const [after] = await publish(m([A], 6));
    await tick();
    assert.equal(t.mids[t.mids.length - 1], after, 'live again');
  });

  it('a connection opened while the subscription is being restored is read again after it', async () => {
    await hub.open([A], new Recorder(), null); // the channel is one this listener serves already
    broker.down = true;
    broker.lost();
    const t = new Recorder();
    await hub.open([A], t, null);
    const missed = await publish(m([A], 1)); // after its history read, before its channel is back
    broker.down = false;
    broker.restored();
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(t.mids, missed);
  });

  it('a connection whose first read overlaps the whole outage is read again on its own', async () => {
    const original = backend.store.history.bind(backend.store);
    let missed: string[] = [];
    backend.store.history = async (channels, after) => {
      const h = await original(channels, after);
      // The loss and the restore both happen while this first read is in flight.
      broker.down = true;
      broker.lost();
      missed = await publish(m([A], 1));
      broker.down = false;
      broker.restored();
      backend.store.history = original;
      return h;
    };
    const t = new Recorder();
    await hub.open([A], t, null);
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(t.mids, missed);
  });

  it('a second loss while a refill reads holds the connections until the next restore', async () => {
    const t = new Recorder();
    await hub.open([A], t, null);
    broker.down = true;
    const first = await publish(m([A], 1));
    broker.lost();
    const original = backend.store.history.bind(backend.store);
    let second: string[] = [];
    backend.store.history = async (channels, after) => {
      const h = await original(channels, after);
      broker.lost(); // resubscribing failed and starts over
      second = await publish(m([A], 2));
      backend.store.history = original;
      return h;
    };
    broker.restored();
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(t.mids, [], 'nothing sent from the interrupted refill');
    broker.down = false;
    broker.restored();
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(t.mids, [...first, ...second]);
  });

  it('a refill whose history read fails (every attempt) closes its connections with 4109 so clients resume by mid', async () => {
    hub.stop();
    hub = new Hub({ store: backend.store, broker, presence: backend.presence, log, unsubscribeDelayMs: 20, onlineTtlMs: 130_000, maxConnPerPublicChannel: 100, refillRetryMs: [5, 5] });
    const t = new Recorder();
    await hub.open([A], t, null);
    broker.down = true;
    await publish(m([A], 1));
    broker.lost();
    broker.down = false;
    let reads = 0;
    backend.store.history = async () => {
      reads++;
      throw new Error('redis down');
    };
    broker.restored();
    await until(() => t.ended.length > 0, 'the connection closed');
    assert.equal(reads, 3, 'the first read and one per wait');
    assert.deepEqual(t.ended, [4109]);
    assert.deepEqual(hub.countByTransport(), { ws: 0, lp: 0 });
    assert.deepEqual(t.mids, []);
  });

  it('a refill whose history read fails while the command connection is not back yet is tried again: nothing closed, lost or doubled', async () => {
    hub.stop();
    hub = new Hub({ store: backend.store, broker, presence: backend.presence, log, unsubscribeDelayMs: 20, onlineTtlMs: 130_000, maxConnPerPublicChannel: 100, refillRetryMs: [10, 20, 40, 80] });
    const t = new Recorder();
    await hub.open([A], t, null);
    const [before] = await publish(m([A], 0));
    await tick();
    broker.down = true;
    const missed = await publish(m([A], 1), m([A], 2));
    broker.lost();
    broker.down = false;
    const read = backend.store.history.bind(backend.store);
    let reads = 0;
    backend.store.history = async (channels, after) => {
      reads++;
      if (reads <= 2) throw new Error('redis command connection not connected yet');
      return read(channels, after);
    };
    broker.restored();
    // Live while the refill waits for its read: buffered, sent after what was missed.
    await new Promise((r) => setTimeout(r, 5));
    const [live] = await publish(m([A], 3));
    await until(() => t.mids.length >= 4, 'the refill and the live message sent');
    await new Promise((r) => setTimeout(r, 50)); // nothing more (a duplicate) follows
    assert.equal(reads, 3);
    assert.deepEqual(t.ended, [], 'not closed');
    assert.deepEqual(t.mids, [before, ...missed, live], 'every message once, in order');
  });

  it('a resume older than the kept history gets one pull/history_gap notice where the gap ends, then what is kept; counted', async () => {
    const [m0] = await publish(m([A], 0));
    const mids: string[] = [m0 as string];
    for (let i = 1; i <= 150; i++) mids.push(...(await publish(m([A], i))));
    const t = new Recorder();
    await hub.open([A, B], t, m0 as string);
    await tick();
    // 151 published, 100 kept: mids[1..50] are gone, mids[51..150] replayed after the notice.
    assert.deepEqual(t.mids, [mids[50], ...mids.slice(51)]);
    assert.deepEqual(t.commands.slice(0, 2), ['pull/history_gap', '/']);
    const notice = decodeTextFrames(t.writes.join(''))[0]?.text as { params: Record<string, unknown> };
    assert.deepEqual(notice.params, { after: m0, up_to: mids[50], channels: [{ id: A, up_to: mids[50], cause: 'limit' }] });
    assert.deepEqual(t.gapCalls, [{ after: m0, gaps: [{ channel: A, upTo: mids[50], cause: 'limit' }] }]);
    assert.equal(hub.counters.truncatedResumes, 1);
    // Resuming from the notice's mid (what an official client does) is not told again.
    const again = new Recorder();
    await hub.open([A], again, mids[50] as string);
    await tick();
    assert.deepEqual(again.mids, mids.slice(51));
    assert.equal(hub.counters.truncatedResumes, 1);
    // Nor is a resume whose cursor is inside what is kept, or a fresh connection without one.
    await hub.open([A], new Recorder(), mids[60] as string);
    await hub.open([A], new Recorder(), null);
    assert.equal(hub.counters.truncatedResumes, 1);
  });

  it('the notice sorts by its mid, after a message that still carries the same mid (clients drop a repeated mid)', async () => {
    const [m1, m2, m3] = await publish(m([A], 1), m([A], 2), m([A], 3));
    const original = backend.store.history.bind(backend.store);
    // A bound equal to a mid still delivered (a live message that arrived before its entry was
    // pushed out): the message first, the notice right after it, then the rest.
    backend.store.history = async (channels, after) => ({ ...(await original(channels, after)), gaps: [{ channel: A, upTo: m2 as string, cause: 'limit' }] });
    const t = new Recorder();
    await hub.open([A], t, m1 as string);
    await tick();
    assert.deepEqual(t.mids, [m2, m2, m3]);
    assert.deepEqual(t.commands.map((c) => c.startsWith('pull/')), [false, true, false]);
  });

  it('a refill after an outage longer than the kept history tells each connection whose cursor fell behind, once', async () => {
    const t1 = new Recorder();
    const t2 = new Recorder();
    await hub.open([A], t1, null);
    await hub.open([B], t2, null);
    const [x1] = await publish(m([A, B], 1));
    await tick();
    broker.down = true;
    const missed: string[] = [];
    for (let i = 0; i < 120; i++) missed.push(...(await publish(m([A], 100 + i))));
    const [onB] = await publish(m([B], 2));
    broker.lost();
    broker.down = false;
    broker.restored();
    await new Promise((r) => setTimeout(r, 20));
    // A kept the last 100 of its 121: x1 and missed[0..19] went, the cursor was x1.
    assert.deepEqual(t1.mids, [x1, missed[19], ...missed.slice(20)]);
    assert.equal(t1.commands[1], 'pull/history_gap');
    assert.deepEqual(t2.mids, [x1, onB], 'B kept everything: no notice');
    assert.equal(hub.counters.truncatedResumes, 1);
  });

  it('counts connections by transport', async () => {
    await hub.open([A], new Recorder(), null);
    const lp: Transport = { kind: 'lp', format: 'text', write: () => true, end: () => {} };
    await hub.open([A, B], lp, null);
    assert.deepEqual(hub.countByTransport(), { ws: 1, lp: 1 });
    assert.equal(hub.channelCount, 2);
  });
});
