import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BACKEND_SENDER, PushError, type NewMessage, type StoredMessage } from '@push/protocol';
import { createMemoryBackend, createRedisBackend, type Backend } from '@push/backend';
import { createRootLogger } from '@push/runtime';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { channelId } from '../helpers/clients.js';
import { eventually, sleep } from '../helpers/ports.js';

/**
 * One conformance suite for the lifecycle and replay interfaces (ChannelRegistry, ReplayGuard, and
 * the lifecycle check inside Store.publish), run against the memory and the Redis backend.
 */
const WRITE_MS = 400;
const READ_MS = 900;
const common = { historyLimit: 50, onlineTtlSeconds: 60, statsStaleMs: 60_000, channelWriteMs: WRITE_MS, channelReadMs: READ_MS };
const msg = (channels: string[], n = 1, ttl = 60): NewMessage => ({ channels, body: `{"n":${n}}`, type: 't', ttl });

function conformance(name: string, make: () => Promise<Backend>, done: () => Promise<void>): void {
  describe(`lifecycle conformance: ${name}`, () => {
    let b: Backend;
    before(async () => {
      b = await make();
    });
    after(async () => {
      await b.close();
      await done();
    });

    it('times() reads without recording; create() records once and keeps the first time', async () => {
      const ch = channelId();
      const t0 = await b.channels.times([ch]);
      assert.deepEqual(t0.created, [null]);
      assert.ok(t0.now > 1_600_000_000_000);
      assert.deepEqual((await b.channels.times([ch])).created, [null]);
      const c1 = await b.channels.create([ch]);
      assert.equal(c1.created[0], c1.now);
      await sleep(20);
      const c2 = await b.channels.create([ch]);
      assert.equal(c2.created[0], c1.created[0]);
      assert.ok(c2.now > c1.now);
      // The history read carries the same creation times, so listeners need no extra round trip.
      const h = await b.store.history([ch, channelId()], null);
      assert.deepEqual(h.channelTimes?.created, [c1.created[0], null]);
      assert.ok((h.channelTimes?.now ?? 0) >= c2.now);
    });

    it('the first publish records the creation time', async () => {
      const ch = channelId();
      await b.store.publish([msg([ch])], BACKEND_SENDER);
      const t = await b.channels.times([ch]);
      assert.ok(t.created[0] !== null && t.now - (t.created[0] as number) < 200);
      // Derived keys (protocol 4 "pub:<id>") follow their pair and get no lifecycle of their own.
      const derived = `pub:${channelId()}`;
      await b.store.publish([msg([derived])], BACKEND_SENDER);
      assert.deepEqual((await b.channels.times([derived])).created, [null]);
    });

    it('a publish touching a channel past its write window stores nothing on any channel (410, 4126)', async () => {
      const old = channelId();
      const fresh = channelId();
      await b.store.publish([msg([old], 1)], BACKEND_SENDER);
      await sleep(WRITE_MS + 50);
      const before = await b.store.history([old, fresh], '0'.repeat(26));
      await assert.rejects(
        () => b.store.publish([msg([fresh], 2), msg([old, fresh], 3)], BACKEND_SENDER),
        (err: unknown) => err instanceof PushError && err.spec.code === 4126 && err.spec.status === 410 && err.wire.includes(old) && !err.wire.includes(fresh),
      );
      const after = await b.store.history([old, fresh], '0'.repeat(26));
      assert.deepEqual(after.messages.map((m) => m.body), before.messages.map((m) => m.body));
      assert.deepEqual((await b.channels.times([fresh])).created, [null], 'a refused publish records no creation either');
      // A later publish gets the next id: the refused one did not consume any.
      const [mid] = await b.store.publish([msg([fresh], 4)], BACKEND_SENDER);
      assert.ok(mid !== undefined && mid > (before.newestMid ?? ''));
    });

    it('expireNotice: none for unknown channels, early while writable, then one stored notice announced once', async () => {
      const ch = channelId();
      assert.deepEqual(await b.channels.expireNotice(ch, '{"x":1}'), { kind: 'none' });
      const created = (await b.channels.create([ch])).created[0];
      assert.ok(typeof created === 'number');
      const early = await b.channels.expireNotice(ch, '{"x":1}');
      assert.equal(early.kind, 'early');
      assert.ok(early.kind === 'early' && early.inMs > 0 && early.inMs <= WRITE_MS);
      const broker = b.createBroker();
      const got: StoredMessage[] = [];
      broker.setHandler((c, m) => c === ch && got.push(m));
      await broker.subscribe([ch]);
      await sleep(WRITE_MS + 20);
      const first = await b.channels.expireNotice(ch, '{"module_id":"pull","command":"channel_expire"}');
      const second = await b.channels.expireNotice(ch, '{"other":"body"}');
      assert.equal(first.kind, 'stored');
      assert.ok(first.kind === 'stored' && second.kind === 'stored');
      assert.equal(second.message.mid, first.message.mid);
      assert.equal(first.message.body, '{"module_id":"pull","command":"channel_expire"}');
      assert.equal(first.message.type, 'pull_channel_expire');
      assert.ok(first.message.expiry >= 1 && first.message.expiry <= Math.ceil(READ_MS / 1000));
      await eventually(() => got.length === 1, 2000, 'notice announced');
      await sleep(50);
      assert.equal(got.length, 1, 'announced exactly once');
      const h = await b.store.history([ch], '0'.repeat(26));
      assert.deepEqual(h.messages.map((m) => m.mid), [first.message.mid]);
      await broker.close();
      // Past the read window of this same channel (by the backend's clock): nothing to read any
      // more, so no notice either, not even the one stored above, and none is stored anew.
      const pastRead = async (): Promise<boolean> => {
        const t = await b.channels.times([ch]);
        return t.now - created >= READ_MS;
      };
      await sleep(Math.max(0, created + READ_MS + 20 - (await b.channels.times([])).now));
      assert.ok(await pastRead(), 'the read window has passed');
      assert.deepEqual(await b.channels.expireNotice(ch, '{"after":"read window"}'), { kind: 'none' });
      // The creation record outlives the read window (it is what refuses late subscribers), unchanged.
      const later = await b.channels.times([ch]);
      assert.deepEqual(later.created, [created]);
      assert.ok(later.now - created >= READ_MS);
      // Asking again after the read window recorded nothing new: still the one notice in history, or none.
      const h2 = await b.store.history([ch], '0'.repeat(26));
      assert.ok(h2.messages.every((m) => m.mid === first.message.mid), JSON.stringify(h2.messages));
    });

    it('a publish that carries its nonce claim: stale or replayed stores nothing; refused for an expired channel, the nonce stays unused', async () => {
      const now = Math.floor((await b.channels.times([])).now / 1000);
      const claim = (nonce: string, timestamp = now) => ({ keyId: 'k1', nonce, timestamp, maxSkewS: 300 });
      const code = async (p: Promise<unknown>): Promise<number> => {
        try {
          await p;
          return 0;
        } catch (err) {
          assert.ok(err instanceof PushError, String(err));
          return err.spec.code;
        }
      };
      const ch = channelId();
      const nonce = `p-${channelId()}`;
      const [mid] = await b.store.publish([msg([ch], 1)], BACKEND_SENDER, claim(nonce));
      assert.match(mid as string, /^[0-9]{26}$/);
      // The same nonce again: with other content a conflict (4133, issue 18), for the standalone claim a replay.
      assert.equal(await code(b.store.publish([msg([ch], 2)], BACKEND_SENDER, claim(nonce))), 4133);
      assert.equal(await b.replay.claim('k1', nonce, now, 300), 'replay');
      assert.equal(await code(b.store.publish([msg([ch], 3)], BACKEND_SENDER, claim(`s-${nonce}`, now - 301))), 4124);
      assert.deepEqual((await b.store.history([ch], '0'.repeat(26))).messages.map((m) => m.mid), [mid], 'refused publishes stored nothing');
      // A nonce claimed on its own is a replay for a publish too.
      const used = `u-${nonce}`;
      assert.equal(await b.replay.claim('k1', used, now, 300), 'ok');
      assert.equal(await code(b.store.publish([msg([ch], 4)], BACKEND_SENDER, claim(used))), 4125);
      // Past the write window: 410 (4126), and the nonce was not spent on the refused request.
      const old = channelId();
      await b.channels.create([old]);
      await sleep(WRITE_MS + 50);
      const spare = `e-${nonce}`;
      assert.equal(await code(b.store.publish([msg([old], 5)], BACKEND_SENDER, claim(spare))), 4126);
      assert.equal(await b.replay.claim('k1', spare, now, 300), 'ok', 'the refused publish left its nonce unused');
    });

    it('publishes issued together settle each on its own: refused ones store nothing, the rest keep their order', async () => {
      const now = Math.floor((await b.channels.times([])).now / 1000);
      const claim = (nonce: string, timestamp = now) => ({ keyId: 'k1', nonce, timestamp, maxSkewS: 300 });
      const old = channelId();
      await b.channels.create([old]);
      await sleep(WRITE_MS + 50);
      const [a, c] = [channelId(), channelId()];
      const nonce = `g-${channelId()}`;
      // All issued in one go. The Redis backend sends the first two at once (two calls in flight)
      // and the other six together in one script call, so the replay, the expired channel and the
      // stale timestamp are refused in the middle of a group.
      const settled = await Promise.allSettled([
        b.store.publish([msg([a], 1)], BACKEND_SENDER),
        b.store.publish([msg([c], 2)], BACKEND_SENDER),
        b.store.publish([msg([a], 3)], BACKEND_SENDER, claim(nonce)),
        b.store.publish([msg([c], 4)], BACKEND_SENDER, claim(nonce)),
        b.store.publish([msg([a], 5), msg([old], 6)], BACKEND_SENDER),
        b.store.publish([msg([c], 7)], BACKEND_SENDER, claim(`s-${nonce}`, now - 301)),
        b.store.publish([msg([a, c], 8), msg([c], 9)], BACKEND_SENDER, claim(`t-${nonce}`)),
        b.store.publish([msg([a], 10)], BACKEND_SENDER),
      ]);
      const codes = settled.map((s) => (s.status === 'fulfilled' ? 0 : s.reason instanceof PushError ? s.reason.spec.code : -1));
      // Request 4 reuses request 3's nonce for other content: 4133 (issue 18; it was 4125 before).
      assert.deepEqual(codes, [0, 0, 0, 4133, 4126, 4124, 0, 0]);
      const mids = settled.flatMap((s) => (s.status === 'fulfilled' ? s.value : []));
      assert.equal(mids.length, 6);
      assert.deepEqual([...mids].sort(), mids, 'ids follow the order the publishes were issued in');
      assert.equal(new Set(mids).size, mids.length);
      const bodies = async (ch: string) => (await b.store.history([ch], '0'.repeat(26))).messages.map((m) => m.body);
      // No 4 (conflict), 5 (its batch also named the expired channel), 6, or 7 (stale).
      assert.deepEqual(await bodies(a), ['{"n":1}', '{"n":3}', '{"n":8}', '{"n":10}']);
      assert.deepEqual(await bodies(c), ['{"n":2}', '{"n":8}', '{"n":9}']);
      // The replayed and the stale request did not spend their nonces; the accepted ones did.
      assert.equal(await b.replay.claim('k1', `s-${nonce}`, now, 300), 'ok');
      assert.equal(await b.replay.claim('k1', `t-${nonce}`, now, 300), 'replay');
    });

    it('replay guard: ok once, then replay; stale in both directions; key ids are separate scopes', async () => {
      const now = Math.floor((await b.channels.times([])).now / 1000);
      const nonce = `n-${channelId()}`;
      assert.equal(await b.replay.claim('k1', nonce, now, 300), 'ok');
      assert.equal(await b.replay.claim('k1', nonce, now, 300), 'replay');
      assert.equal(await b.replay.claim('k2', nonce, now, 300), 'ok');
      assert.equal(await b.replay.claim('k1', `x-${nonce}`, now - 301, 300), 'stale');
      assert.equal(await b.replay.claim('k1', `y-${nonce}`, now + 301, 300), 'stale');
      assert.equal(await b.replay.claim('k1', `z-${nonce}`, now - 299, 300), 'ok');
    });
  });
}

conformance('memory', async () => createMemoryBackend(common), async () => {});

let redis: RedisServer | undefined;
conformance(
  'redis',
  async () => {
    redis = await startRedis();
    const backend = createRedisBackend({ ...common, url: redis.url, keyPrefix: 'conf:', log: createRootLogger('silent', 'test') });
    await eventually(() => backend.store.ping().then(() => true), 5000, 'redis backend ready');
    return backend;
  },
  async () => {
    await redis?.stop();
  },
);
