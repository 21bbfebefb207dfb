import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BACKEND_SENDER, PushError, SenderType, type NewMessage, type StoredMessage } from '@push/protocol';
import { scopeToClient, type Backend, type BackendOptions } from '../src/index.js';

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

    it('history with no cursor on channels with nothing stored gives the newest issued id as a floor, below every later id', async () => {
      const a = ch();
      const [elsewhere] = await backend.store.publish([msg([ch()], 1)], BACKEND_SENDER);
      const h = await backend.store.history([a], null);
      assert.equal(h.newestMid, null);
      assert.ok(h.floorMid !== null && h.floorMid !== undefined && h.floorMid >= (elsewhere as string), `floor ${h.floorMid} at or above the last issued id`);
      const [later] = await backend.store.publish([msg([a], 2)], BACKEND_SENDER);
      assert.ok((later as string) > h.floorMid, 'a later publish sorts above the floor');
      assert.deepEqual((await backend.store.history([a], h.floorMid)).messages.map((x) => x.mid), [later], 'a resume from the floor finds it');
      assert.equal((await backend.store.history([a], null)).floorMid ?? null, null, 'not needed once something is stored');
    });

    it('history is capped per channel', async () => {
      const a = ch();
      const mids: string[] = [];
      for (let i = 0; i < 8; i++) mids.push(...(await backend.store.publish([msg([a], i)], BACKEND_SENDER)));
      const h = await backend.store.history([a], '0'.repeat(26));
      assert.deepEqual(h.messages.map((m) => m.mid), mids.slice(-CONFORMANCE_OPTIONS.historyLimit));
    });

    it('history: a cursor older than what the cap kept is told which channel lost messages, up to which mid', async () => {
      const a = ch();
      const b = ch();
      const mids: string[] = [];
      for (let i = 0; i < 8; i++) mids.push(...(await backend.store.publish([msg([a], i)], BACKEND_SENDER)));
      const [onB] = await backend.store.publish([msg([b], 9)], BACKEND_SENDER);
      const limit = CONFORMANCE_OPTIONS.historyLimit;
      // The cap pushed out mids[0..2]: a reader after mids[0] missed mids[1] and mids[2].
      const h = await backend.store.history([a, b], mids[0] as string);
      assert.deepEqual(h.messages.map((m) => m.mid), [...mids.slice(-limit), onB]);
      assert.deepEqual(h.gaps, [{ channel: a, upTo: mids[2], cause: 'limit' }], 'b kept everything: no gap there');
      // A cursor at or past the newest pushed-out mid missed nothing; no cursor asks for nothing.
      assert.deepEqual((await backend.store.history([a, b], mids[2] as string)).gaps, []);
      assert.deepEqual((await backend.store.history([a], mids[5] as string)).gaps, []);
      assert.deepEqual((await backend.store.history([a], null)).gaps ?? [], []);
      // The mark follows the list: ten more publishes push mids[3..7] out too.
      for (let i = 0; i < 5; i++) mids.push(...(await backend.store.publish([msg([a], 10 + i)], BACKEND_SENDER)));
      assert.deepEqual((await backend.store.history([a], mids[2] as string)).gaps, [{ channel: a, upTo: mids[7], cause: 'limit' }]);
      // A message on two channels pushed out of one of them: only that one has the gap.
      const c = ch();
      const bothIds = await backend.store.publish([msg([a, c], 20)], BACKEND_SENDER);
      const both = bothIds[0] as string;
      // Its id on c: the same on one step backends, c's own part id on Redis Cluster.
      const onC = bothIds.parts?.[0]?.[c] ?? both;
      for (let i = 0; i < limit; i++) await backend.store.publish([msg([a], 21 + i)], BACKEND_SENDER);
      const h2 = await backend.store.history([a, c], mids[12] as string);
      assert.deepEqual(h2.gaps, [{ channel: a, upTo: both, cause: 'limit' }]);
      assert.ok(h2.messages.some((m) => m.mid === onC), 'still replayed from the channel that kept it');
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
      const [gone] = await backend.store.publish([msg([a], 1, 1)], BACKEND_SENDER);
      const [keep] = await backend.store.publish([msg([a], 2, 60)], BACKEND_SENDER);
      await sleep(1200);
      const h = await backend.store.history([a], '0'.repeat(26));
      assert.deepEqual(h.messages.map((m) => m.mid), [keep]);
      // The expired one is gone for a reader whose cursor is older: reported as a gap.
      assert.deepEqual(h.gaps, [{ channel: a, upTo: gone, cause: 'expired' }]);
      assert.deepEqual((await backend.store.history([a], gone as string)).gaps, [], 'nothing missed after it');
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
      // On Redis Cluster a message to channels of two shards has one id per shard (`parts`); one
      // step backends give both channels the same id, in the order the channels were named.
      const idOf = (i: number, c: string): string => mids.parts?.[i]?.[c] ?? (mids[i] as string);
      const expected: Array<[string, string]> = [
        [a, idOf(0, a)],
        [b, idOf(2, b)],
        [a, idOf(2, a)],
      ];
      assert.deepEqual(got, expected.sort((x, y) => (x[1] < y[1] ? -1 : x[1] > y[1] ? 1 : 0)));
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

    it('client registry: add keeps the first entry and its key, get, list, remove', async () => {
      const id = ch().replace(/^./, 'z');
      const first = { id, key: 'a'.repeat(64), created: 1, note: 'portal-a' };
      assert.deepEqual(await backend.clients.add(first), { added: true, client: first });
      const again = await backend.clients.add({ ...first, key: 'b'.repeat(64), note: 'other' });
      assert.equal(again.added, false);
      assert.deepEqual(again.client, first, 'a second add never changes the key');
      assert.deepEqual(await backend.clients.get(id), first);
      assert.ok((await backend.clients.list()).some((c) => c.id === id && c.key === first.key));
      assert.equal(await backend.clients.remove(id), true);
      assert.equal(await backend.clients.remove(id), false);
      assert.equal(await backend.clients.get(id), null);
      assert.ok(!(await backend.clients.list()).some((c) => c.id === id));
    });

    it('a client scope isolates channels, presence and request ids from other clients and from personal keys', async () => {
      const a = scopeToClient(backend, 'a'.repeat(32));
      const b = scopeToClient(backend, 'b'.repeat(32));
      const c = ch();
      const [mid] = await a.store.publish([msg([c], 1)], BACKEND_SENDER);
      assert.deepEqual((await a.store.history([c], null)).newestMid, mid);
      assert.equal((await b.store.history([c], null)).newestMid, null, 'another client does not see it');
      assert.equal((await backend.store.history([c], null)).newestMid, null, 'nor does personal mode');
      await a.presence.touch([c]);
      assert.deepEqual(await a.presence.online([c]), [true]);
      assert.deepEqual(await b.presence.online([c]), [false]);
      assert.deepEqual(await backend.presence.online([c]), [false]);
      // The same X-Push-Request-Id in two portals is two requests.
      const rid = `rid-${c}`;
      const idA = await a.store.publish([msg([c], 2)], BACKEND_SENDER, { scope: 'b', requestId: rid, windowS: 10 });
      const idB = await b.store.publish([msg([c], 2)], BACKEND_SENDER, { scope: 'b', requestId: rid, windowS: 10 });
      assert.notDeepEqual(idA, idB);
      assert.equal(idB.replayed, undefined);
      // Stats: the process list without its traffic counters.
      await backend.stats.report({ processUniqueId: 'scoped', date: Date.now(), type: 'listener', websockets: 7, channels: 9, limits: { maxPayload: 1 } });
      const seen = (await a.stats.list()).find((s) => s.processUniqueId === 'scoped');
      assert.deepEqual({ ...seen, date: 0 }, { processUniqueId: 'scoped', date: 0, type: 'listener', limits: { maxPayload: 1 } });
      await backend.stats.remove('scoped');
    });

    describe('publish identity (exactly-once)', () => {
      const code = async (p: Promise<unknown>): Promise<number> => {
        try {
          await p;
          return 0;
        } catch (err) {
          assert.ok(err instanceof PushError, String(err));
          return err.spec.code;
        }
      };
      const rid = (requestId: string, scope = 'b') => ({ scope, requestId, windowS: 60 });

      it('a request id carried out once: the same request again returns the same ids, marked replayed, and stores and announces nothing', async () => {
        const a = ch();
        const got: StoredMessage[] = [];
        const broker = backend.createBroker();
        broker.setHandler((_c, m) => got.push(m));
        await broker.subscribe([a]);
        const id = `req-${a}`;
        const first = await backend.store.publish([msg([a], 1), msg([a], 2)], BACKEND_SENDER, rid(id));
        assert.equal(first.replayed, undefined);
        const again = await backend.store.publish([msg([a], 1), msg([a], 2)], BACKEND_SENDER, rid(id));
        assert.deepEqual([...again], [...first]);
        assert.equal(again.replayed, true);
        await sleep(50);
        assert.deepEqual(got.map((m) => m.mid), first, 'announced once');
        assert.deepEqual((await backend.store.history([a], '0'.repeat(26))).messages.map((m) => m.mid), first, 'stored once');
        await broker.close();
      });

      it('the same id with other content is refused with 4133 and stores nothing; ids are scoped; a refused publish leaves its id unused', async () => {
        const a = ch();
        const id = `conf-${a}`;
        const [mid] = await backend.store.publish([msg([a], 1)], BACKEND_SENDER, rid(id));
        assert.equal(await code(backend.store.publish([msg([a], 9)], BACKEND_SENDER, rid(id))), 4133);
        assert.equal(await code(backend.store.publish([msg([a], 1, 30)], BACKEND_SENDER, rid(id))), 4133, 'another TTL is other content');
        assert.equal(await code(backend.store.publish([msg([a], 1)], { type: SenderType.CLIENT, id: 'f'.repeat(32) }, rid(id))), 4133, 'another sender is other content');
        // The same id in another scope is another identity.
        const other = await backend.store.publish([msg([a], 9)], BACKEND_SENDER, rid(id, 'c:someone'));
        assert.equal(other.replayed, undefined);
        assert.deepEqual((await backend.store.history([a], '0'.repeat(26))).messages.map((m) => m.mid), [mid, ...other]);
      });

      it('two requests with one identity issued together (one group) are carried out once; both get the same ids', async () => {
        const a = ch();
        const id = `grp-${a}`;
        const same = () => backend.store.publish([msg([a], 1)], BACKEND_SENDER, rid(id));
        const [x, y, z] = await Promise.all([backend.store.publish([msg([a], 0)], BACKEND_SENDER), same(), same()]);
        assert.deepEqual([...(y ?? [])], [...(z ?? [])]);
        assert.equal(z?.replayed, true);
        assert.deepEqual((await backend.store.history([a], '0'.repeat(26))).messages.map((m) => m.mid), [...(x ?? []), ...(y ?? [])]);
      });

      it('a signed nonce carried out returns its outcome for the same content, 4133 for other, and the standalone claim calls it a replay', async () => {
        const a = ch();
        const now = Math.floor(Date.now() / 1000);
        const claim = { keyId: 'k9', nonce: `n-${a}`, timestamp: now, maxSkewS: 300 };
        const first = await backend.store.publish([msg([a], 1)], BACKEND_SENDER, claim);
        assert.deepEqual([...(await backend.store.publish([msg([a], 1)], BACKEND_SENDER, claim))], [...first]);
        assert.equal(await code(backend.store.publish([msg([a], 2)], BACKEND_SENDER, claim)), 4133);
        assert.equal(await backend.replay.claim('k9', claim.nonce, now, 300), 'replay');
        assert.equal((await backend.store.history([a], '0'.repeat(26))).messages.length, 1);
      });
    });
  });
}

