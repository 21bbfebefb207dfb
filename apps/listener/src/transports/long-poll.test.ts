import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { BACKEND_SENDER, ORIGIN_MID, decodeTextFrames, type NewMessage } from '@push/protocol';
import { createMemoryBackend, type Backend } from '@push/backend';
import { Exchange, type HttpResponse } from '@push/runtime';
import { Hub } from '../hub.js';
import { LONG_POLL_EXPIRES, LongPoll, type LongPollOptions } from './long-poll.js';

const log = pino({ level: 'silent' });
const A = 'a'.repeat(32);
const B = 'b'.repeat(32);
const tick = () => new Promise((r) => setImmediate(r));

/** The parts of a uWS response an Exchange uses, recording the one answer. */
class FakeResponse {
  status = '';
  headers = new Map<string, string>();
  body = '';
  answers = 0;
  onAborted(): this {
    return this;
  }
  cork(fn: () => void): this {
    fn();
    return this;
  }
  writeStatus(s: string): this {
    this.status = s;
    return this;
  }
  writeHeader(k: string, v: string): this {
    this.headers.set(k.toLowerCase(), v);
    return this;
  }
  end(body: string | Uint8Array): this {
    this.body = typeof body === 'string' ? body : Buffer.from(body).toString('utf8');
    this.answers++;
    return this;
  }
}

const m = (channels: string[], n: number, ttl = 60): NewMessage => ({ channels, body: `{"n":${n}}`, type: 't', ttl });

describe('LongPoll: the end of the hold time', () => {
  let backend: Backend;
  let hub: Hub;
  let opts: LongPollOptions;
  const publish = (...msgs: NewMessage[]) => backend.store.publish(msgs, BACKEND_SENDER);

  /** A poll parked as handleLongPoll parks it, with an hour's hold: the tests end it themselves. */
  async function park(channels: string[], mid: string | null): Promise<{ poll: LongPoll; res: FakeResponse }> {
    const res = new FakeResponse();
    const poll = new LongPoll(new Exchange(res as unknown as HttpResponse), opts, 'text');
    const { conn, result } = await hub.open(channels, poll, mid);
    poll.bind(conn, mid ?? result.newestMid ?? result.floorMid ?? '');
    return { poll, res };
  }

  beforeEach(() => {
    backend = createMemoryBackend({ historyLimit: 100, onlineTtlSeconds: 130, statsStaleMs: 1000 });
    hub = new Hub({ store: backend.store, broker: backend.createBroker(), presence: backend.presence, log, unsubscribeDelayMs: 20, onlineTtlMs: 130_000, maxConnPerPublicChannel: 100 });
    // Only the hub, the hold time and the parked set matter to a parked poll.
    opts = { hub, holdMs: 3_600_000, parked: new Set(), log } as unknown as LongPollOptions;
  });
  afterEach(() => {
    for (const p of opts.parked) p.timeout();
    hub.stop();
  });

  it('a message that reached the poll in the same event-loop turn as its hold timer is answered with 200, not dropped behind a 304', async () => {
    const { poll, res } = await park([A], null);
    const [x] = await publish(m([A], 1));
    // The hold timer fires before the hub's flush of this turn.
    poll.timeout();
    assert.equal(res.status, '200 OK');
    assert.deepEqual(decodeTextFrames(res.body).map((f) => f.mid), [x]);
    await tick();
    assert.equal(res.answers, 1, 'answered once; the flush finds nothing left for it');
    assert.equal(opts.parked.size, 0);
  });

  it('without a mid and with nothing stored, the 304 carries the newest issued id, from which the next poll finds what was published in between', async () => {
    await publish(m([B], 1));
    const first = await park([A], null);
    first.poll.timeout();
    assert.equal(first.res.status, '304 Not Modified');
    assert.equal(first.res.headers.get('expires'), LONG_POLL_EXPIRES);
    const cursor = first.res.headers.get('last-message-id') ?? '';
    assert.match(cursor, /^\d{26}$/, 'a cursor, not an empty header');
    // Published between the 304 and the next poll: with an empty cursor this one was lost.
    const [between] = await publish(m([A], 2));
    const next = await park([A], cursor);
    await tick();
    assert.equal(next.res.status, '200 OK');
    assert.deepEqual(decodeTextFrames(next.res.body).map((f) => f.mid), [between]);
  });

  it('on a store that never issued an id the 304 cursor sorts below every id, so the very first message is not missed either', async () => {
    const { poll, res } = await park([A], null);
    poll.timeout();
    assert.equal(res.status, '304 Not Modified');
    assert.equal(res.headers.get('last-message-id'), ORIGIN_MID);
    const [first] = await publish(m([A], 1));
    const next = await park([A], ORIGIN_MID);
    await tick();
    assert.deepEqual(decodeTextFrames(next.res.body).map((f) => f.mid), [first]);
  });
});
