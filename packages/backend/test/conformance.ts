import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BACKEND_SENDER, type NewMessage, type StoredMessage } from '@push/protocol';
import type { Backend, BackendOptions } from '../src/index.js';

export const CONFORMANCE_OPTIONS: BackendOptions = { historyLimit: 5, onlineTtlSeconds: 1, statsStaleMs: 1000 };

let seq = 0;
/** A fresh channel id per call so tests never see each other's data. */
export function ch(): string {
  seq++;
  return (Date.now().toString(16) + seq.toString(16).padStart(8, '0')).padStart(32, 'c').slice(-32);
}

function msg(channels: string[], n: number, ttl = 60): NewMessage {
  return { channels, body: JSON.stringify({ module_id: 'test', command: 'c', params: { n } }), type: 'test_c', ttl };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(10);
  }
}

/**
 * One behavioural contract for every Backend implementation. The memory backend runs it as a unit
 * test; the Redis backend runs it against a real redis-server.
 */
export function backendConformance(name: string, create: () => Promise<{ backend: Backend; cleanup: () => Promise<void> }>): void {
  describe(`Backend conformance: ${name}`, () => {
    let backend: Backend;
    let cleanup: () => Promise<void>;
    before(async () => ({ backend, cleanup } = await create()));
    after(async () => {
      await backend?.close();
      await cleanup?.();
    });

    it('assigns 26-digit, strictly increasing ids across channels and batches', async () => {
      const a = ch();
      const b = ch();
      const first = await backend.store.publish([msg([a], 1), msg([b], 2)], BACKEND_SENDER);
      const second = await backend.store.publish([msg([a, b], 3)], BACKEND_SENDER);
      const all = [...first, ...second];
      for (const mid of all) assert.match(mid, /^[0-9]{26}$/);
      for (let i = 1; i < all.length; i++) assert.ok((all[i] as string) > (all[i - 1] as string), 'ids increase');
    });

    it('history: after a cursor, oldest first, each message once across channels', async () => {
      const a = ch();
      const b = ch();
      const [m1] = await backend.store.publish([msg([a], 1)], BACKEND_SENDER);
      const [m2] = await backend.store.publish([msg([a, b], 2)], BACKEND_SENDER);
      const [m3] = await backend.store.publish([msg([b], 3)], BACKEND_SENDER);
      const h = await backend.store.history([a, b], m1 as string);
      assert.deepEqual(h.messages.map((m) => m.mid), [m2, m3]);
      assert.equal(h.newestMid, m3);
      assert.equal(h.messages[0]?.body, msg([], 2).body);
      assert.equal(h.messages[0]?.type, 'test_c');
      assert.equal(h.messages[0]?.expiry, 60);
      assert.deepEqual(h.messages[0]?.sender, BACKEND_SENDER);
      assert.ok(Math.abs((h.messages[0]?.createdMs ?? 0) - Date.now()) < 5000, 'created from the backend clock');
    });

    it('history with no cursor returns only the newest id', async () => {
      const a = ch();
      const [, m2] = await backend.store.publish([msg([a], 1), msg([a], 2)], BACKEND_SENDER);
      const h = await backend.store.history([a], null);
      assert.deepEqual(h.messages, []);
      assert.equal(h.newestMid, m2);
      assert.equal((await backend.store.history([ch()], null)).newestMid, null);
    });

    it('history is capped per channel', async () => {
      const a = ch();
      const mids: string[] = [];
      for (let i = 0; i < 8; i++) mids.push(...(await backend.store.publish([msg([a], i)], BACKEND_SENDER)));
      const h = await backend.store.history([a], '0'.repeat(26));
      assert.deepEqual(h.messages.map((m) => m.mid), mids.slice(-CONFORMANCE_OPTIONS.historyLimit));
    });

    it('ttl 0 is delivered live but never stored', async () => {
      const a = ch();
      const broker = backend.createBroker();
      const got: StoredMessage[] = [];
      broker.setHandler((_c, m) => got.push(m));
      await broker.subscribe([a]);
      const [mid] = await backend.store.publish([msg([a], 1, 0)], BACKEND_SENDER);
      await until(() => got.length === 1, 'live delivery');
      assert.equal(got[0]?.mid, mid);
      const h = await backend.store.history([a], '0'.repeat(26));
      assert.deepEqual(h.messages, []);
      assert.equal(h.newestMid, null);
      await broker.close();
    });

    it('a message is never replayed after its TTL', async () => {
      const a = ch();
      await backend.store.publish([msg([a], 1, 1)], BACKEND_SENDER);
      const [keep] = await backend.store.publish([msg([a], 2, 60)], BACKEND_SENDER);
      await sleep(1200);
      const h = await backend.store.history([a], '0'.repeat(26));
      assert.deepEqual(h.messages.map((m) => m.mid), [keep]);
    });

    it('broker: delivers subscribed channels in id order, stops after unsubscribe', async () => {
      const a = ch();
      const b = ch();
      const other = ch();
      const broker = backend.createBroker();
      const got: Array<[string, string]> = [];
      broker.setHandler((c, m) => got.push([c, m.mid]));
      await broker.subscribe([a, b]);
      const mids = await backend.store.publish([msg([a], 1), msg([other], 2), msg([b, a], 3)], BACKEND_SENDER);
      await until(() => got.length === 3, 'three deliveries');
      assert.deepEqual(got, [
        [a, mids[0]],
        [b, mids[2]],
        [a, mids[2]],
      ]);
      await broker.unsubscribe([a, b]);
      await backend.store.publish([msg([a], 4)], BACKEND_SENDER);
      await sleep(100);
      assert.equal(got.length, 3);
      await broker.close();
    });

    it('broker: many concurrent subscribes all take effect before they resolve', async () => {
      const channels = Array.from({ length: 600 }, () => ch());
      const broker = backend.createBroker();
      const got = new Set<string>();
      broker.setHandler((c) => got.add(c));
      await Promise.all(channels.map((c) => broker.subscribe([c])));
      await backend.store.publish([msg(channels, 1)], BACKEND_SENDER);
      await until(() => got.size === channels.length, 'one delivery per channel');
      await broker.close();
    });

    it('presence: online after touch, gone after the TTL', async () => {
      const a = ch();
      const b = ch();
      await backend.presence.touch([a]);
      assert.deepEqual(await backend.presence.online([a, b]), [true, false]);
      await sleep(1100);
      assert.deepEqual(await backend.presence.online([a]), [false]);
    });

    it('presence: last seen is kept for user keys after the online TTL, not tracked for channels', async () => {
      const user = `user:${ch()}`;
      const plain = ch();
      assert.deepEqual(await backend.presence.lastSeen([user, plain]), [null, null]);
      const before = Date.now();
      await backend.presence.touch([user, plain]);
      const [seen, other] = await backend.presence.lastSeen([user, plain]);
      assert.equal(other, null);
      assert.ok(seen !== null && seen !== undefined && Math.abs(seen - before) < 2000, `last seen ${seen} near ${before}`);
      await sleep(1100);
      assert.deepEqual(await backend.presence.online([user]), [false], 'offline after the TTL');
      assert.deepEqual(await backend.presence.lastSeen([user]), [seen], 'last seen still known');
    });

    it('stats: lists fresh reports, drops stale and removed ones', async () => {
      await backend.stats.report({ processUniqueId: 'fresh', date: Date.now(), websockets: 1 });
      await backend.stats.report({ processUniqueId: 'stale', date: Date.now() - 5000 });
      await backend.stats.report({ processUniqueId: 'gone', date: Date.now() });
      await backend.stats.remove('gone');
      const ids = (await backend.stats.list()).map((s) => s.processUniqueId).sort();
      assert.deepEqual(ids, ['fresh']);
    });

    it('ping answers promptly while the backend serves', async () => {
      const t0 = Date.now();
      assert.equal(await backend.store.ping(), undefined);
      assert.ok(Date.now() - t0 < 1000, 'readiness checks need a quick answer');
      // Readiness means the store works: a publish and its history read succeed right after.
      const a = ch();
      const [mid] = await backend.store.publish([msg([a], 1)], BACKEND_SENDER);
      assert.equal((await backend.store.history([a], null)).newestMid, mid);
    });
  });
}
