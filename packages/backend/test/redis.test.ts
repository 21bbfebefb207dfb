import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { Redis } from 'ioredis';
import { BACKEND_SENDER, PushError, type NewMessage } from '@push/protocol';
import { ID_SAFETY_GAP, createMemoryBackend, createRedisBackend, type Backend } from '../src/index.js';
import { startRedis, type RedisServer } from '../../../tests/helpers/redis.js';
import { CONFORMANCE_OPTIONS, backendConformance, ch } from './conformance.js';

const log = pino({ level: 'silent' });
const CAP = CONFORMANCE_OPTIONS.historyLimit;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const m = (channels: string[], ttl = 60): NewMessage => ({ channels, body: '{"x":1}', type: 't', ttl });

/** Publishes, retrying while the backend reconnects (after a Redis restart or a killed connection). */
async function publishWhenBack(backend: Backend, msg: NewMessage): Promise<string> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const [mid] = await backend.store.publish([msg], BACKEND_SENDER);
      return mid as string;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}

/** Runs `op` until it resolves (Redis coming back), for at most 10 s. */
async function eventuallyOk(op: () => Promise<unknown>): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await op();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}

/** Mids among `mids` whose record (push:m:) still exists; their reference counts (push:r:) too. */
async function liveRecords(c: Redis, mids: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const mid of mids) {
    const [record, refs] = [await c.exists(`push:m:${mid}`), await c.exists(`push:r:${mid}`)];
    assert.equal(record, refs, `record and count of ${mid} live and go together`);
    if (record === 1) out.push(mid);
  }
  return out;
}

backendConformance('redis', async () => {
  const redis = await startRedis();
  const backend = createRedisBackend({ ...CONFORMANCE_OPTIONS, url: redis.url, keyPrefix: 't:', log });
  return { backend, cleanup: () => redis.stop() };
});

describe('Redis backend specifics', () => {
  let redis: RedisServer;
  let backend: Backend;
  before(async () => {
    redis = await startRedis({ appendonly: true });
    backend = createRedisBackend({ ...CONFORMANCE_OPTIONS, url: redis.url, keyPrefix: 'push:', log });
  });
  after(async () => {
    await backend?.close();
    await redis?.stop();
  });

  it('stores a body once however many channels it goes to; channel indexes expire with their messages', async () => {
    const a = ch();
    const b = ch();
    const [mid] = await backend.store.publish([{ channels: [a, b], body: '{"x":1}', type: 't', ttl: 30 }], BACKEND_SENDER);
    const c = redis.client();
    assert.deepEqual(await c.keys(`push:m:*`), [`push:m:${mid}`]);
    assert.deepEqual(await c.lrange(`push:h:{${a}}`, 0, -1), [mid]);
    assert.deepEqual(await c.lrange(`push:h:{${b}}`, 0, -1), [mid]);
    const ttl = await c.ttl(`push:h:{${a}}`);
    assert.ok(ttl > 0 && ttl <= 30, `index TTL ${ttl}`);
  });

  it('a list trimmed in batches reads exactly like an exact cap: same history and gaps as the memory backend', async () => {
    // Cap 20: the list may hold 22 before the excess leaves in one LPOP (a tenth of slack).
    const opts = { ...CONFORMANCE_OPTIONS, historyLimit: 20 };
    const viaRedis = createRedisBackend({ ...opts, url: redis.url, keyPrefix: 'trim:', log });
    const viaMemory = createMemoryBackend(opts);
    const c = redis.client();
    try {
      const a = ch();
      const other = ch();
      // One mid older than everything on a, from another channel: a cursor from before a's history.
      const [old] = await viaRedis.store.publish([m([other])], BACKEND_SENDER);
      const [oldM] = await viaMemory.store.publish([m([other])], BACKEND_SENDER);
      const r: string[] = [];
      const mm: string[] = [];
      const publish = async (n: number): Promise<void> => {
        for (let i = 0; i < n; i++) {
          r.push(...(await viaRedis.store.publish([m([a])], BACKEND_SENDER)));
          mm.push(...(await viaMemory.store.publish([m([a])], BACKEND_SENDER)));
        }
      };
      // Compares what a reader after the k-th mid (-1: the older cursor, null: none) is given.
      const same = async (label: string, cursors: Array<number | null>): Promise<void> => {
        for (const k of cursors) {
          const hr = await viaRedis.store.history([a], k === null ? null : k < 0 ? (old as string) : (r[k] as string));
          const hm = await viaMemory.store.history([a], k === null ? null : k < 0 ? (oldM as string) : (mm[k] as string));
          const index = (ids: readonly string[], mids: readonly string[]) => ids.map((x) => mids.indexOf(x));
          assert.deepEqual(index(hr.messages.map((x) => x.mid), r), index(hm.messages.map((x) => x.mid), mm), `${label}, cursor ${k}: messages`);
          assert.deepEqual(
            (hr.gaps ?? []).map((g) => [g.cause, r.indexOf(g.upTo)]),
            (hm.gaps ?? []).map((g) => [g.cause, mm.indexOf(g.upTo)]),
            `${label}, cursor ${k}: gaps`,
          );
        }
      };
      await publish(21);
      assert.equal(await c.llen(`trim:h:{${a}}`), 21, 'over the cap, within the slack: not trimmed yet');
      await same('21 published', [null, -1, 0, 1, 5, 20]);
      await publish(2);
      assert.equal(await c.llen(`trim:h:{${a}}`), 20, 'past the slack: trimmed back to the cap in one go');
      assert.equal(await c.get(`trim:g:{${a}}`), r[2], 'one gap mark, the newest entry that left');
      await same('23 published', [null, -1, 0, 1, 2, 3, 22]);
      await publish(1);
      await same('24 published', [null, -1, 1, 2, 3, 4, 23]);
      const h = await viaRedis.store.history([a], r[2] as string);
      assert.deepEqual(h.gaps, [{ channel: a, upTo: r[3], cause: 'limit' }], 'the entry beyond the cap, not yet trimmed, is a gap mark');
      assert.deepEqual(h.messages.map((x) => x.mid), r.slice(4));
    } finally {
      await viaRedis.close();
      await viaMemory.close();
    }
  });

  it('reads each channel creation time once per process: later publishes check the write window against what it remembers', async () => {
    const a = ch();
    const b = ch();
    const c = redis.client();
    const gets = async (): Promise<number> => Number(/cmdstat_get:calls=(\d+)/.exec(await c.info('commandstats'))?.[1] ?? 0);
    await backend.store.publish([m([a, b])], BACKEND_SENDER);
    const created = Number(await c.get(`push:ch:{${a}}`));
    assert.ok(created > 0, 'creation recorded');
    const before = await gets();
    await backend.store.publish([m([a, b]), m([b])], BACKEND_SENDER);
    await backend.store.publish([m([b, a])], BACKEND_SENDER);
    // The script still GETs the id start key once per call; no creation time is read.
    assert.equal((await gets()) - before, 2, 'two calls, one GET each (id:start), none for ch:{...}');
    // A new channel in the same request is looked up (and created) as before.
    const fresh = ch();
    const b0 = await gets();
    await backend.store.publish([m([a, fresh])], BACKEND_SENDER);
    assert.equal((await gets()) - b0, 2, 'id:start and the unknown channel');
    assert.equal(await c.get(`push:ch:{${a}}`), String(created), 'the remembered time is the stored one, unchanged');
    // A second process knows nothing yet and reads Redis: same outcome.
    const other = createRedisBackend({ ...CONFORMANCE_OPTIONS, url: redis.url, keyPrefix: 'push:', log });
    try {
      const b1 = await gets();
      await other.store.publish([m([a, b])], BACKEND_SENDER);
      assert.equal((await gets()) - b1, 3);
    } finally {
      await other.close();
    }
  });

  it('ids keep increasing across a Redis restart (start time and counter persist)', async () => {
    const a = ch();
    const [before] = await backend.store.publish([{ channels: [a], body: '{}', type: 't', ttl: 60 }], BACKEND_SENDER);
    await redis.kill();
    await redis.restart();
    let after: string | undefined;
    const deadline = Date.now() + 10_000;
    while (after === undefined) {
      try {
        [after] = await backend.store.publish([{ channels: [a], body: '{}', type: 't', ttl: 60 }], BACKEND_SENDER);
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    assert.ok((after as string) > (before as string), `${after} > ${before}`);
    assert.equal(after.slice(0, 10), (before as string).slice(0, 10), 'same id space start');
  });

  it('publish and ping fail fast while Redis is down (callers answer 503), and work again after', async () => {
    await redis.kill();
    const t0 = Date.now();
    await assert.rejects(backend.store.publish([{ channels: [ch()], body: '{}', type: 't', ttl: 60 }], BACKEND_SENDER));
    await assert.rejects(backend.store.ping());
    assert.ok(Date.now() - t0 < 3500, 'no long hang');
    await redis.restart();
    await publishWhenBack(backend, m([ch()]));
    // The command connection reconnects on its own schedule, apart from the publish connection.
    await eventuallyOk(() => backend.store.ping());
  });

  it('the history cap bounds memory: a record is deleted when the last list drops it', async () => {
    const c = redis.client();
    const a = ch();
    const mids: string[] = [];
    for (let i = 0; i < CAP + 4; i++) mids.push(...(await backend.store.publish([m([a])], BACKEND_SENDER)));
    assert.deepEqual(await c.lrange(`push:h:{${a}}`, 0, -1), mids.slice(-CAP));
    assert.deepEqual(await liveRecords(c, mids), mids.slice(-CAP), 'only the records the list still holds exist');
    const newest = mids[mids.length - 1] as string;
    assert.equal(await c.get(`push:r:${newest}`), '1');
    for (const k of [`push:m:${newest}`, `push:r:${newest}`]) {
      const ttl = await c.ttl(k);
      assert.ok(ttl > 0 && ttl <= 60, `${k} TTL ${ttl}`);
    }
  });

  it('a message on two channels lives while either list holds it', async () => {
    const c = redis.client();
    const [a, b] = [ch(), ch()];
    const [shared] = (await backend.store.publish([m([a, b])], BACKEND_SENDER)) as [string];
    assert.equal(await c.get(`push:r:${shared}`), '2');
    for (let i = 0; i < CAP; i++) await backend.store.publish([m([a])], BACKEND_SENDER);
    assert.ok(!(await c.lrange(`push:h:{${a}}`, 0, -1)).includes(shared), 'pushed out of a');
    assert.equal(await c.get(`push:r:${shared}`), '1', 'still referenced by b');
    assert.deepEqual((await backend.store.history([b], '0'.repeat(26))).messages.map((x) => x.mid), [shared]);
    for (let i = 0; i < CAP; i++) await backend.store.publish([m([b])], BACKEND_SENDER);
    assert.deepEqual(await liveRecords(c, [shared]), [], 'gone with the last reference');
  });

  it('a record that expired before it was pushed out leaves no key behind', async () => {
    const c = redis.client();
    const a = ch();
    const [short] = (await backend.store.publish([m([a], 1)], BACKEND_SENDER)) as [string];
    await sleep(1200);
    for (let i = 0; i < CAP; i++) await backend.store.publish([m([a])], BACKEND_SENDER);
    assert.ok(!(await c.lrange(`push:h:{${a}}`, 0, -1)).includes(short));
    assert.deepEqual(await liveRecords(c, [short]), [], 'releasing an expired record does not recreate its count');
    for (const k of [...(await c.keys('push:m:*')), ...(await c.keys('push:r:*'))]) assert.ok((await c.ttl(k)) > 0, `${k} has a TTL`);
  });

  it('a channel list lives as long as its longest-lived entry', async () => {
    const c = redis.client();
    const a = ch();
    await backend.store.publish([m([a], 30)], BACKEND_SENDER);
    await backend.store.publish([m([a], 5)], BACKEND_SENDER);
    const ttl = await c.ttl(`push:h:{${a}}`);
    assert.ok(ttl > 25 && ttl <= 30, `a shorter entry does not shorten the list: ${ttl}`);
    await backend.store.publish([m([a], 50)], BACKEND_SENDER);
    const longer = await c.ttl(`push:h:{${a}}`);
    assert.ok(longer > 45 && longer <= 50, `a longer entry extends it: ${longer}`);
  });

  it('records without a count (written by earlier versions) are left to their TTL when pushed out', async () => {
    const c = redis.client();
    const [a, b] = [ch(), ch()];
    const [mid] = (await backend.store.publish([m([a, b])], BACKEND_SENDER)) as [string];
    await c.del(`push:r:${mid}`);
    for (let i = 0; i < CAP; i++) await backend.store.publish([m([a])], BACKEND_SENDER);
    assert.equal(await c.exists(`push:m:${mid}`), 1, 'b may still replay it');
    assert.equal(await c.exists(`push:r:${mid}`), 0, 'no count recreated');
    assert.deepEqual((await backend.store.history([b], '0'.repeat(26))).messages.map((x) => x.mid), [mid]);
  });

  it('a publish in flight when the connection drops is not sent again after the reconnect', async () => {
    const c = redis.client();
    const b2 = createRedisBackend({ ...CONFORMANCE_OPTIONS, url: redis.url, keyPrefix: 'push:', log, commandTimeoutMs: 1000 });
    try {
      await b2.store.publish([m([ch()])], BACKEND_SENDER);
      const a = ch();
      // Redis holds the script (a write) unexecuted while writes are paused; the connection is then
      // cut, which discards it. ioredis would resend it on the new connection by default.
      await c.client('PAUSE', 700, 'WRITE');
      const pending = b2.store.publish([m([a])], BACKEND_SENDER);
      await sleep(100);
      // The connection of b2 is the one whose command Redis holds (flag b = blocked).
      const list = String(await c.call('CLIENT', 'LIST', 'TYPE', 'normal'));
      const id = /^id=(\d+) .* flags=b .*cmd=evalsha/m.exec(list)?.[1];
      assert.ok(id !== undefined, list);
      await c.client('KILL', 'ID', id);
      await assert.rejects(pending, 'the caller is told it failed');
      await sleep(1000);
      assert.equal(await c.exists(`push:h:{${a}}`), 0, 'and it was not stored later behind its back');
      assert.equal(await c.exists(`push:ch:{${a}}`), 0);
    } finally {
      await b2.close();
    }
  });

  it('a lost subscription is announced before anything arrives on the new one, and restored after every batch', async () => {
    const c = redis.client();
    const broker = backend.createBroker();
    const events: string[] = [];
    const first = ch();
    // More channels than one SUBSCRIBE batch (512): the first channel is back well before the last.
    const all = [first, ...Array.from({ length: 1200 }, () => ch())];
    broker.setHandler((channel, msg) => events.push(channel === first ? msg.mid : 'other'));
    broker.onResync({ lost: () => events.push('lost'), restored: () => events.push('restored') });
    try {
      await broker.subscribe(all);
      // Publish to the first channel without pause across the kill and the resubscription, so
      // messages arrive while later batches are still being subscribed.
      let publishing = true;
      let killed = false;
      const afterKill: string[] = [];
      const publisher = (async () => {
        while (publishing) {
          const mid = await publishWhenBack(backend, m([first], 0));
          if (killed) afterKill.push(mid);
        }
      })();
      await sleep(50);
      await c.client('KILL', 'TYPE', 'pubsub');
      killed = true;
      const deadline = Date.now() + 10_000;
      while (!events.includes('restored') && Date.now() < deadline) await sleep(20);
      await sleep(100);
      publishing = false;
      await publisher;
      const lost = events.indexOf('lost');
      const restored = events.indexOf('restored');
      assert.ok(lost >= 0 && restored > lost, `lost, then restored: ${events.filter((e) => e === 'lost' || e === 'restored').join(' ')}`);
      assert.equal(events.filter((e) => e === 'lost').length, 1, 'one loss, one announcement');
      // Accepted after the kill, so delivered over the new subscription: only after `lost`, which is
      // what lets the listener hold its connections in time.
      const delivered = afterKill.filter((mid) => events.includes(mid));
      assert.ok(delivered.length > 0, 'messages flow on the new subscription');
      for (const mid of delivered) assert.ok(events.indexOf(mid) > lost, `${mid} arrived after lost`);
    } finally {
      await broker.close();
    }
  });

  it('ids stay above every id issued before when Redis rolls its counter back (failover, lost fsync)', async () => {
    const c = redis.client();
    const a = ch();
    const before = await backend.store.publish([m([a]), m([a]), m([a])], BACKEND_SENDER);
    const counter = Number(await c.get('push:id:counter'));
    // A replica that missed the last writes: the counter is behind, every connection is new.
    await c.decrby('push:id:counter', 3);
    await c.client('KILL', 'TYPE', 'normal');
    const after = await publishWhenBack(backend, m([a]));
    assert.ok(after > (before[2] as string), `${after} > ${before[2]}`);
    assert.equal(Number(await c.get('push:id:counter')), counter - 3 + ID_SAFETY_GAP + 1, 'one gap for the one reconnect');
  });
});

describe('publish outcomes when Redis does not answer (ioredis: sent vs never sent)', () => {
  let redis: RedisServer;
  let backend: Backend;
  let c: Redis;
  before(async () => {
    redis = await startRedis({ appendonly: false });
    backend = createRedisBackend({ ...CONFORMANCE_OPTIONS, url: redis.url, keyPrefix: 'push:', log, publishTimeoutMs: 800 });
    c = redis.client();
    await backend.store.ping();
    await backend.store.publish([m([ch()])], BACKEND_SENDER);
  });
  after(async () => {
    await c?.client('UNPAUSE').catch(() => undefined);
    await backend?.close();
    await redis?.stop();
  });
  const code = (err: unknown): number => (err instanceof PushError ? err.spec.code : -1);

  it('sent, then no answer within the bound: 4134 (unknown) - and Redis does run it later; the same identity then gets that outcome', async () => {
    const a = ch();
    const id = { scope: 'b', requestId: `held-${a}`, windowS: 60 };
    await c.client('PAUSE', 1500, 'WRITE');
    const t0 = Date.now();
    const err = await backend.store.publish([m([a])], BACKEND_SENDER, id).then(() => null, (e: unknown) => e);
    assert.equal(code(err), 4134, String(err));
    assert.ok(Date.now() - t0 < 1400, 'answered at the bound, not at the end of the stall');
    await sleep(1200);
    const stored = await c.lrange(`push:h:{${a}}`, 0, -1);
    assert.equal(stored.length, 1, 'the held script ran after the stall: "unknown" was the honest answer');
    const again = await backend.store.publish([m([a])], BACKEND_SENDER, id);
    assert.deepEqual([...again], stored);
    assert.equal(again.replayed, true);
  });

  it('sent, then the connection is lost: 4134 at once, not after the bound', async () => {
    await c.client('PAUSE', 3000, 'WRITE');
    const pending = backend.store.publish([m([ch()])], BACKEND_SENDER).then(() => null, (e: unknown) => e);
    await sleep(100);
    const list = String(await c.client('LIST'));
    const pubId = /id=(\d+) [^\n]*name=push-pub/.exec(list)?.[1];
    assert.ok(pubId !== undefined, `the publish connection is named push-pub: ${list}`);
    const t0 = Date.now();
    await c.client('KILL', 'ID', pubId);
    const err = await pending;
    assert.equal(code(err), 4134, String(err));
    assert.ok(Date.now() - t0 < 700, 'settled when the connection closed');
    await c.client('UNPAUSE');
  });

  it('never sent (Redis unreachable): a plain failure, which the publisher answers 503 4109 "not carried out"', async () => {
    await redis.kill();
    try {
      const err = await backend.store.publish([m([ch()])], BACKEND_SENDER).then(() => null, (e: unknown) => e);
      assert.ok(err instanceof Error && !(err instanceof PushError), String(err));
    } finally {
      await redis.restart();
    }
  });
});

describe('Redis that loses its counter', () => {
  let redis: RedisServer;
  let backend: Backend;
  let c: Redis;
  before(async () => {
    redis = await startRedis({ appendonly: false });
    backend = createRedisBackend({ ...CONFORMANCE_OPTIONS, url: redis.url, keyPrefix: 'push:', log });
    c = redis.client();
  });
  after(async () => {
    await backend?.close();
    await redis?.stop();
  });

  it('a crash that loses the last writes (counter rolled back) still gives ids above every id issued before', async () => {
    const a = ch();
    const kept = await backend.store.publish([m([a])], BACKEND_SENDER);
    const start = (await c.get('push:id:start')) as string;
    const counter = (await c.get('push:id:counter')) as string;
    // What reached the disk: Redis loads this snapshot on restart before it accepts a connection,
    // as it would an everysec AOF that missed the last second.
    await c.save();
    // Issued and acknowledged, but never reached the disk before the crash.
    const lost = await backend.store.publish([m([a]), m([a]), m([a])], BACKEND_SENDER);
    await redis.kill(true);
    await redis.restart();
    const next = await publishWhenBack(backend, m([a]));
    assert.equal(Number(await c.get('push:id:counter')), Number(counter) + ID_SAFETY_GAP + 1, 'one gap over the counter the snapshot brought back');
    assert.equal(next.slice(0, 10), start, 'same id space');
    for (const mid of [...kept, ...lost]) assert.ok(next > mid, `${next} > ${mid}`);
  });

  it('a counter lost entirely (start still there) restarts the id space above every earlier id', async () => {
    const a = ch();
    const issued = await backend.store.publish([m([a]), m([a]), m([a])], BACKEND_SENDER);
    const start = (await c.get('push:id:start')) as string;
    await sleep(1100); // the new id space starts at a later second
    // The snapshot Redis comes back with: the start, but no counter.
    await c.del('push:id:counter');
    await c.save();
    await redis.kill(true);
    await redis.restart();
    const next = await publishWhenBack(backend, m([a]));
    assert.ok(next.slice(0, 10) > start, 'a later start');
    for (const mid of issued) assert.ok(next > mid, `${next} > ${mid}`);
  });
});
