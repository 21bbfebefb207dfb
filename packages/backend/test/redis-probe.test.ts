import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { Redis } from 'ioredis';
import { BACKEND_SENDER, PushError, type StoredMessage } from '@push/protocol';
import { createRedisBackend, type Backend } from '../src/index.js';
import { startRedis, type RedisServer } from '../../../tests/helpers/redis.js';
import { startTcpProxy, type TcpProxy } from '../../../tests/helpers/tcp-proxy.js';
import { CONFORMANCE_OPTIONS, ch } from './conformance.js';

const log = pino({ level: process.env['PROBE_TEST_LOG'] ?? 'silent' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const STALL_MS = 400;

async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(10);
  }
}

/**
 * The Redis broker's subscriber connection behind a proxy that stalls it without closing it:
 * health, the stall count and the lost/restored announcements the listener's refill relies on.
 */
describe('Redis broker: a subscriber connection that stalls silently', () => {
  let redis: RedisServer;
  let proxy: TcpProxy;
  let backend: Backend;
  before(async () => {
    redis = await startRedis();
    proxy = await startTcpProxy(redis.port);
    backend = createRedisBackend({ ...CONFORMANCE_OPTIONS, url: proxy.url, keyPrefix: 'push:', log, pubsubStallMs: STALL_MS });
  });
  after(async () => {
    await backend?.close();
    await proxy?.close();
    await redis?.stop();
  });

  it('is down until connected, found stalled within the budget, reconnected and announced lost then restored', async () => {
    const broker = backend.createBroker();
    assert.equal(broker.health().down, 1, 'down until its first connection is ready');
    const events: string[] = [];
    const got: StoredMessage[] = [];
    broker.setHandler((_c, msg) => got.push(msg));
    broker.onResync({ lost: () => events.push('lost'), restored: () => events.push('restored') });
    const a = ch();
    await broker.subscribe([a]);
    assert.deepEqual(broker.health(), { connections: 1, down: 0, stalls: 0 });
    // Idle and healthy: PINGs are answered, so several budgets pass without a stall.
    await sleep(STALL_MS * 3);
    assert.deepEqual(broker.health(), { connections: 1, down: 0, stalls: 0 });

    proxy.stall('push-sub');
    const stalledAt = Date.now();
    await until(() => broker.health().stalls === 1, 'stall detected');
    const detectedMs = Date.now() - stalledAt;
    assert.ok(detectedMs <= STALL_MS + 300, `detected after ${detectedMs} ms`);
    assert.equal(broker.health().down, 1);
    // Published while the subscription is down: it cannot arrive live (the refill reads it).
    await backend.store.publish([{ channels: [a], body: '{"n":1}', type: 't', ttl: 60 }], BACKEND_SENDER);
    await sleep(STALL_MS * 2);
    assert.equal(got.length, 0);
    assert.equal(broker.health().down, 1, 'still down while the path carries nothing');
    assert.equal(events.length, 0, 'nothing announced before a new connection is ready');

    proxy.resume();
    await until(() => events.includes('restored'), 'restored', 10_000);
    assert.deepEqual(events, ['lost', 'restored']);
    assert.deepEqual(broker.health(), { connections: 1, down: 0, stalls: 1 });
    const [live] = await backend.store.publish([{ channels: [a], body: '{"n":2}', type: 't', ttl: 60 }], BACKEND_SENDER);
    await until(() => got.some((m) => m.mid === live), 'live again');
    await broker.close();
  });
});

/**
 * The command and publish connections behind the same kind of proxy: a silent one is found within
 * the budget, torn down and replaced, what was on it fails at once with a true answer, and a
 * write Redis itself holds (CLIENT PAUSE WRITE) is not taken for a stall.
 */
describe('Redis backend: command and publish connections that stall silently', () => {
  const BUDGET_MS = 1000;
  let redis: RedisServer;
  let proxy: TcpProxy;
  let backend: Backend;
  let admin: Redis;
  const publishOne = (body: string) => backend.store.publish([{ channels: [ch()], body, type: 't', ttl: 60 }], BACKEND_SENDER, { scope: 'test', requestId: `r-${body}-${Date.now()}`, windowS: 60 });
  before(async () => {
    redis = await startRedis();
    proxy = await startTcpProxy(redis.port);
    // The publish wait is long (20 s): a stalled publish connection must not make anyone wait that long.
    backend = createRedisBackend({ ...CONFORMANCE_OPTIONS, url: proxy.url, keyPrefix: 'push:', log, pubsubStallMs: BUDGET_MS, publishTimeoutMs: 20_000 });
    admin = new Redis({ port: redis.port, host: '127.0.0.1' });
    await backend.store.ping();
  });
  after(async () => {
    admin?.disconnect();
    await backend?.close();
    await proxy?.close();
    await redis?.stop();
  });

  it('a publish on a stalled publish connection is answered 504 4134 (outcome unknown) within the budget, not after the 20 s wait; the connection is replaced', async () => {
    await publishOne('warm');
    proxy.stall('push-pub');
    const started = Date.now();
    const err = await publishOne('stalled').then(
      () => null,
      (e: unknown) => e,
    );
    const tookMs = Date.now() - started;
    assert.ok(err instanceof PushError, `rejected with a catalogue error (${String(err)})`);
    assert.equal(err.spec.code, 4134, `outcome unknown: it was written (${err.message})`);
    assert.match(err.message, /push-pub/, 'the answer names the connection');
    assert.ok(tookMs <= BUDGET_MS + 1500, `answered after ${tookMs} ms`);
    assert.equal(backend.connectionStalls()['push-pub'], 1);
    assert.equal(backend.connectionStalls()['push-cmd'], 0, 'the command connection was not touched');
    // Readiness names what does not answer while the replacement cannot get through either.
    const readyErr = await backend.store.ping().then(() => null, (e: unknown) => e as Error);
    assert.ok(readyErr !== null, 'not ready while the publish connection is down');
    proxy.resume();
    await until(() => true, 'resumed');
    const deadline = Date.now() + 10_000;
    for (;;) {
      const ok = await backend.store.ping().then(() => true, () => false);
      if (ok) break;
      if (Date.now() > deadline) throw new Error('not ready again after the path came back');
      await sleep(100);
    }
    const ids = await publishOne('after');
    assert.equal(ids.length, 1, 'publishes go through the new connection');
  });

  it('a stalled command connection: the readiness check answers within the budget naming it, the connection is replaced, and reads work again', async () => {
    const before = backend.connectionStalls()['push-cmd'] ?? 0;
    await backend.store.history([ch()], null);
    proxy.stall('push-cmd');
    const started = Date.now();
    const err = await backend.store.ping().then(() => null, (e: unknown) => e as Error);
    const tookMs = Date.now() - started;
    assert.ok(err !== null, 'not ready');
    assert.match(err.message, /push-cmd/, `names the command connection: ${err.message}`);
    assert.ok(tookMs <= BUDGET_MS + 750, `answered after ${tookMs} ms`);
    await until(() => (backend.connectionStalls()['push-cmd'] ?? 0) === before + 1, 'the command connection found stalled', BUDGET_MS + 3000);
    proxy.resume();
    const deadline = Date.now() + 10_000;
    for (;;) {
      const ok = await backend.store.history([ch()], null).then(() => true, () => false);
      if (ok) break;
      if (Date.now() > deadline) throw new Error('reads did not work again after the path came back');
      await sleep(100);
    }
    await backend.store.ping();
  });

  it('Redis holding the writes (CLIENT PAUSE WRITE, 4 budgets): no connection is taken for stalled, the publish waits and is stored once', async () => {
    const before = backend.connectionStalls();
    await publishOne('before-pause');
    await admin.call('CLIENT', 'PAUSE', String(BUDGET_MS * 4), 'WRITE');
    const started = Date.now();
    const ids = await publishOne('held');
    const tookMs = Date.now() - started;
    assert.equal(ids.length, 1);
    assert.ok(tookMs >= BUDGET_MS * 3, `the publish really waited for the pause (${tookMs} ms)`);
    assert.deepEqual(backend.connectionStalls(), before, 'held by Redis is not a stall');
  });
});

