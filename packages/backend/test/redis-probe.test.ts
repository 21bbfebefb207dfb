import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { BACKEND_SENDER, type StoredMessage } from '@push/protocol';
import { createRedisBackend, type Backend } from '../src/index.js';
import { startRedis, type RedisServer } from '../../../tests/helpers/redis.js';
import { startTcpProxy, type TcpProxy } from '../../../tests/helpers/tcp-proxy.js';
import { CONFORMANCE_OPTIONS, ch } from './conformance.js';

const log = pino({ level: 'silent' });
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
