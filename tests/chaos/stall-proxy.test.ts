import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { sleep } from '../helpers/ports.js';
import { StallProxy } from './stall-proxy.js';

describe('StallProxy', () => {
  let redis: RedisServer;
  let proxy: StallProxy;
  const clients: Redis[] = [];
  const client = (): Redis => {
    const c = new Redis({ port: proxy.port, host: '127.0.0.1', commandTimeout: 5000, maxRetriesPerRequest: 0 });
    c.on('error', () => {});
    clients.push(c);
    return c;
  };
  before(async () => {
    redis = await startRedis();
    proxy = await StallProxy.listen(redis.port);
  });
  after(async () => {
    for (const c of clients) c.disconnect();
    await proxy.close();
    await redis.stop();
  });

  it('forwards, then freezes open connections without closing them, and lets new ones through', async () => {
    const old = client();
    assert.equal(await old.ping(), 'PONG');
    let closed = false;
    old.on('close', () => (closed = true));
    assert.equal(proxy.stall('no-such-name'), 0, 'a selection that matches nothing freezes nothing');
    assert.equal(await old.ping(), 'PONG');
    assert.equal(proxy.stall(), 1);
    let answered = false;
    const pending = old.ping().then(() => (answered = true));
    await sleep(700);
    assert.equal(answered, false, 'no answer through a stalled connection');
    assert.equal(closed, false, 'and no close either');
    assert.equal(await client().ping(), 'PONG', 'a new connection is forwarded');
    proxy.resume();
    await pending;
    assert.equal(answered, true, 'the held command goes through once resumed');
  });
});
