import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { BACKEND_SENDER } from '@push/protocol';
import { createRedisBackend, type Backend } from '../src/index.js';
import { startRedis, type RedisServer } from '../../../tests/helpers/redis.js';
import { CONFORMANCE_OPTIONS, backendConformance, ch } from './conformance.js';

const log = pino({ level: 'silent' });

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

  it('publish fails fast while Redis is down (callers answer 503)', async () => {
    await redis.kill();
    const t0 = Date.now();
    await assert.rejects(backend.store.publish([{ channels: [ch()], body: '{}', type: 't', ttl: 60 }], BACKEND_SENDER));
    assert.ok(Date.now() - t0 < 3500, 'no long hang');
    await redis.restart();
  });
});
