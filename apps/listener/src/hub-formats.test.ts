import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { BACKEND_SENDER, Errors, bytesToHex, decodeResponseBatch, decodeTextFrames, publicChannelKey, type ErrorSpec, type NewMessage } from '@push/protocol';
import { createMemoryBackend, type Backend } from '@push/backend';
import { Hub, type FrameFormat, type Transport } from './hub.js';

/** Protocol-4 and -5 parts of the hub: per-connection frame formats, encode-once, coalescing, the 4029 cap. */

const log = pino({ level: 'silent' });
const A = 'a'.repeat(32);
const B = 'b'.repeat(32);
const PUB = publicChannelKey('c'.repeat(32));
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

class Recorder implements Transport {
  readonly kind = 'ws' as const;
  writes: Uint8Array[] = [];
  ended: ErrorSpec | null = null;
  constructor(readonly format: FrameFormat) {}
  write(frame: Uint8Array): boolean {
    this.writes.push(frame);
    return true;
  }
  end(spec: ErrorSpec): void {
    this.ended = spec;
  }
  /** Mids per write, decoding each write as its format says. */
  get batches(): string[][] {
    return this.writes.map((w) => {
      if (this.format === 'text') return decodeTextFrames(Buffer.from(w).toString('utf8')).map((f) => f.mid);
      if (this.format === 'jsonrpc') {
        // One notification is an object, several a JSON-RPC batch (array).
        const doc = JSON.parse(Buffer.from(w).toString('utf8')) as { method: string; params: { mid: string } } | Array<{ method: string; params: { mid: string } }>;
        const list = Array.isArray(doc) ? doc : [doc];
        assert.ok(list.every((n) => n.method === 'incoming.message'));
        if (list.length === 1) assert.ok(!Array.isArray(doc), 'a single notification is not wrapped');
        return list.map((n) => n.params.mid);
      }
      const batch = decodeResponseBatch(w);
      assert.equal(batch.responses.length, 1, 'one ResponseBatch with one outgoingMessages response per write');
      return (batch.responses[0]?.outgoingMessages?.messages ?? []).map((m) => bytesToHex(m.id));
    });
  }
}

const m = (channels: string[], n: number, ttl = 60): NewMessage => ({ channels, body: `{"n":${n}}`, type: 't', ttl });

describe('Hub frame formats', () => {
  let backend: Backend;
  let hub: Hub;
  const publish = (...msgs: NewMessage[]): Promise<string[]> => backend.store.publish(msgs, BACKEND_SENDER);

  beforeEach(() => {
    backend = createMemoryBackend({ historyLimit: 100, onlineTtlSeconds: 130, statsStaleMs: 1000 });
    hub = new Hub({ store: backend.store, broker: backend.createBroker(), presence: backend.presence, log, unsubscribeDelayMs: 20, onlineTtlMs: 130_000, maxConnPerPublicChannel: 2 });
  });
  afterEach(() => hub.stop());

  it('mixed text and protobuf connections: one write each per turn, each message encoded once per format', async () => {
    const proto = [new Recorder('protobuf'), new Recorder('protobuf'), new Recorder('protobuf')];
    const text = [new Recorder('text'), new Recorder('text')];
    const both = new Recorder('protobuf');
    for (const t of [...proto, ...text]) await hub.open([A], t, null);
    await hub.open([A, B], both, null);
    // Three messages in one turn; the last goes to A and B (arrives twice from the broker).
    const mids = await publish(m([A], 1), m([A], 2), m([A, B], 3));
    await tick();
    for (const t of [...proto, ...text, both]) assert.deepEqual(t.batches, [mids], `${t.format}: one write, all three, in order, once`);
    assert.equal(hub.counters.encodedProtobuf, 3, 'three messages, three protobuf encodings for four protobuf connections');
    assert.equal(hub.counters.encodedText, 3, 'three messages, three text encodings for two text connections');
  });

  it('protocol-5 connections: one write per turn (a batch array for several), each message encoded once, beside the other formats', async () => {
    const rpc = [new Recorder('jsonrpc'), new Recorder('jsonrpc')];
    const text = new Recorder('text');
    for (const t of [...rpc, text]) await hub.open([A], t, null);
    const mids = await publish(m([A], 1), m([A], 2));
    await tick();
    for (const t of [...rpc, text]) assert.deepEqual(t.batches, [mids], `${t.format}: one write, both, in order`);
    assert.equal(hub.counters.encodedJsonRpc, 2);
    assert.equal(hub.counters.encodedText, 2);
    const [one] = await publish(m([A], 3));
    await tick();
    assert.deepEqual(rpc[0]?.batches[1], [one]);
    // Both protocol-5 connections got the very same frame object (built once per turn).
    assert.equal(rpc[0]?.writes[0], rpc[1]?.writes[0]);
  });

  it('connections that get the same messages in one turn share one frame per format; others get their own', async () => {
    const text = [new Recorder('text'), new Recorder('text'), new Recorder('text')];
    const proto = [new Recorder('protobuf'), new Recorder('protobuf')];
    const other = new Recorder('text');
    // Interleaved formats, as a broadcast channel's subscribers would be.
    for (const t of [text[0], proto[0], text[1], proto[1], text[2]] as Recorder[]) await hub.open([A], t, null);
    await hub.open([B], other, null);
    const mids = await publish(m([A], 1), m([A, B], 2), m([A], 3));
    await tick();
    for (const t of [...text, ...proto]) assert.deepEqual(t.batches, [mids]);
    assert.deepEqual(other.batches, [[mids[1]]]);
    assert.ok(text.every((t) => t.writes[0] === text[0]?.writes[0]), 'the three text sockets were handed the same bytes');
    assert.ok(proto.every((t) => t.writes[0] === proto[0]?.writes[0]), 'the two protobuf sockets were handed the same bytes');
    assert.notEqual(other.writes[0], text[0]?.writes[0], 'a socket with other messages gets its own frame');
    const bytes = [...text, ...proto, other].reduce((sum, t) => sum + (t.writes[0]?.byteLength ?? 0), 0);
    assert.equal(hub.counters.bytesOut, bytes);
  });

  it('load-adaptive coalescing: after a slow flush, messages of later turns wait and share one write; unloaded, every turn flushes', async () => {
    /** A transport whose writes take `ms` of CPU, like a saturated listener's syscalls. */
    class Slow extends Recorder {
      constructor(private readonly ms: number) {
        super('text');
      }
      override write(frame: Uint8Array): boolean {
        const until = performance.now() + this.ms;
        while (performance.now() < until);
        return super.write(frame);
      }
    }
    const run = async (coalesceMaxMs: number): Promise<{ writes: string[][]; window: number }> => {
      const h = new Hub({ store: backend.store, broker: backend.createBroker(), presence: backend.presence, log, unsubscribeDelayMs: 20, onlineTtlMs: 130_000, maxConnPerPublicChannel: 2, coalesceMaxMs });
      const t = new Slow(20);
      const ch = coalesceMaxMs === 0 ? A : B;
      await h.open([ch], t, null);
      const first = await publish(m([ch], 1));
      await tick();
      const window = h.counters.coalesceWindowMs;
      // Two more messages in two separate event-loop turns.
      const second = await publish(m([ch], 2));
      await tick();
      const third = await publish(m([ch], 3));
      await new Promise((r) => setTimeout(r, 120));
      h.stop();
      assert.deepEqual(t.batches.flat(), [...first, ...second, ...third], 'every message once, in order');
      return { writes: t.batches, window };
    };
    const coalesced = await run(100);
    assert.ok(coalesced.window >= 20 && coalesced.window <= 100, `window follows the 20 ms flush: ${coalesced.window}`);
    assert.equal(coalesced.writes.length, 2, 'the first message at once, the next two in one write');
    const immediate = await run(0);
    assert.equal(immediate.window, 0);
    assert.equal(immediate.writes.length, 3, 'without a window every turn flushes');
  });

  it('bytes out counts UTF-8 bytes, not characters', async () => {
    const t = new Recorder('text');
    await hub.open([A], t, null);
    await backend.store.publish([{ channels: [A], body: '{"text":"Привет"}', type: 't', ttl: 60 }], BACKEND_SENDER);
    await tick();
    const frame = t.writes[0] as Uint8Array;
    assert.equal(hub.counters.bytesOut, frame.byteLength);
    assert.ok(frame.byteLength > Buffer.from(frame).toString('utf8').length, 'the frame holds multi-byte characters');
  });

  it('only the formats in use are encoded', async () => {
    const t = new Recorder('text');
    await hub.open([A], t, null);
    await publish(m([A], 1));
    await tick();
    assert.equal(hub.counters.encodedText, 1);
    assert.equal(hub.counters.encodedProtobuf, 0);
  });

  it('protobuf replay from history is one batch in mid order, then live messages follow without duplicates', async () => {
    const [m1, m2, m3] = await publish(m([A], 1), m([B], 2), m([A], 3));
    const t = new Recorder('protobuf');
    await hub.open([A, B], t, m1 as string);
    await tick();
    const [m4] = await publish(m([A, B], 4));
    await tick();
    assert.deepEqual(t.batches, [[m2, m3], [m4]]);
  });

  it('one connection more than the cap on a public channel closes the oldest with 4029; private/shared channels are not capped', async () => {
    const first = new Recorder('protobuf');
    const second = new Recorder('protobuf');
    const third = new Recorder('text');
    await hub.open([A, PUB], first, null);
    await hub.open([A, PUB], second, null);
    const sharedOnly = [new Recorder('text'), new Recorder('text'), new Recorder('text')];
    for (const s of sharedOnly) await hub.open([A], s, null);
    assert.equal(first.ended, null);
    await hub.open([A, PUB], third, null);
    assert.equal(first.ended, Errors.TOO_MANY_CONNECTIONS);
    assert.equal(second.ended, null);
    assert.ok(sharedOnly.every((s) => s.ended === null));
    // The evicted connection is gone from the registry: it gets nothing more.
    const [mid] = await publish(m([PUB], 9));
    await tick();
    assert.equal(first.writes.length, 0);
    assert.deepEqual(second.batches, [[mid]]);
    assert.deepEqual(third.batches, [[mid]]);
  });
});
