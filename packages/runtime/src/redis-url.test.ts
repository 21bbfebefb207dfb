import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseRedisUrl, type RedisTarget } from './redis-url.js';
import { ConfigError, loadConfig } from './config.js';

describe('parseRedisUrl', () => {
  it('accepts the three documented forms', () => {
    const good: Array<[string, RedisTarget]> = [
      ['redis://127.0.0.1:6379', { kind: 'single', url: 'redis://127.0.0.1:6379' }],
      ['rediss://:pw@r.example:6380/2', { kind: 'single', url: 'rediss://:pw@r.example:6380/2' }],
      ['unix:///run/redis.sock', { kind: 'single', url: 'unix:///run/redis.sock' }],
      ['redis+sentinel://10.0.0.1:26379/mymaster', { kind: 'sentinel', sentinels: [{ host: '10.0.0.1', port: 26379 }], masterName: 'mymaster', db: 0 }],
      [
        'redis+sentinel://:s%40cret@s1.example,s2.example:26380,[::1]:5000/push.main_1/3',
        {
          kind: 'sentinel',
          sentinels: [
            { host: 's1.example', port: 26379 },
            { host: 's2.example', port: 26380 },
            { host: '::1', port: 5000 },
          ],
          masterName: 'push.main_1',
          db: 3,
          password: 's@cret',
        },
      ],
      ['redis+cluster://127.0.0.1:7000,127.0.0.1:7001', { kind: 'cluster', nodes: [{ host: '127.0.0.1', port: 7000 }, { host: '127.0.0.1', port: 7001 }] }],
      ['redis+cluster://:pw@node-a/', { kind: 'cluster', nodes: [{ host: 'node-a', port: 6379 }], password: 'pw' }],
      ['redis+cluster://:p%40ss%2Fw@[::1]:7000,10.0.0.2', { kind: 'cluster', nodes: [{ host: '::1', port: 7000 }, { host: '10.0.0.2', port: 6379 }], password: 'p@ss/w' }],
    ];
    for (const [url, want] of good) assert.deepEqual(parseRedisUrl(url), want, url);
  });

  it('refuses malformed ones with a reason', () => {
    const bad: Array<[string, RegExp]> = [
      ['', /expected redis:\/\/host:port\[\/db\], unix:\/\/\/path, redis\+sentinel:\/\/.*redis\+cluster:\/\//],
      ['http://x', /expected redis:\/\//],
      ['redis+sentinel://10.0.0.1:26379', /the master name is missing/],
      ['redis+sentinel://10.0.0.1:26379/', /the master name must be/],
      ['redis+sentinel://10.0.0.1:26379/my master', /the master name must be/],
      ['redis+sentinel://10.0.0.1:26379/m/x', /the database must be a number/],
      ['redis+sentinel://10.0.0.1:26379/m/1/2', /too many path parts/],
      ['redis+sentinel:///m', /no host given/],
      ['redis+sentinel://a:1,,b:2/m', /"" is not host\[:port\]/],
      ['redis+sentinel://a:99999/m', /port 99999 of "a:99999" is outside 1-65535/],
      ['redis+sentinel://a:0/m', /outside 1-65535/],
      ['redis+sentinel://user:pw@a/m', /credentials must be ":password@"/],
      ['redis+sentinel://:@a/m', /empty password/],
      ['redis+sentinel://:%zz@a/m', /not valid percent-encoding/],
      ['redis+cluster://a:7000/0', /a Cluster has no database number or path/],
      ['redis+cluster://', /no host given/],
      ['redis+cluster://a:b', /"a:b" is not host\[:port\]/],
      ['redis+cluster://user:pw@a:7000', /credentials must be ":password@"/],
      ['redis+cluster://a:7000,b:70000', /port 70000 of "b:70000" is outside 1-65535/],
    ];
    for (const [url, re] of bad) assert.throws(() => parseRedisUrl(url), re, url);
  });

  it('the configuration parses REDIS_URL once (and the durability settings), reporting bad values without a password', () => {
    const base = { PUSH_SIGNATURE_KEY: 'k'.repeat(16) };
    const c = loadConfig({ ...base, REDIS_URL: 'redis+sentinel://127.0.0.1:26379/pushmaster' }, { port: 1 });
    assert.deepEqual(c.redis, { kind: 'sentinel', sentinels: [{ host: '127.0.0.1', port: 26379 }], masterName: 'pushmaster', db: 0 });
    assert.equal(c.redisUrl, 'redis+sentinel://127.0.0.1:26379/pushmaster');
    assert.equal(loadConfig(base, { port: 1 }).redis.kind, 'single');
    // A Cluster is served (packages/backend/src/redis-cluster-backend.ts), parsed here like the others.
    assert.deepEqual(loadConfig({ ...base, REDIS_URL: 'redis+cluster://127.0.0.1:7000,127.0.0.1:7001' }, { port: 1 }).redis, { kind: 'cluster', nodes: [{ host: '127.0.0.1', port: 7000 }, { host: '127.0.0.1', port: 7001 }] });
    const secret = 'Sentinel-Secret-123';
    assert.equal(loadConfig(base, { port: 1 }).publishDurability, 'local');
    const replicated = loadConfig({ ...base, PUSH_PUBLISH_DURABILITY: 'replicated', PUSH_PUBLISH_REPLICA_TIMEOUT_MS: '250' }, { port: 1 });
    assert.equal(replicated.publishDurability, 'replicated');
    assert.equal(replicated.publishReplicaTimeoutMs, 250);
    assert.equal(replicated.publishReplicas, 1);
    assert.equal(loadConfig({ ...base, PUSH_PUBLISH_REPLICAS: '2' }, { port: 1 }).publishReplicas, 2);
    assert.throws(() => loadConfig({ ...base, PUSH_PUBLISH_REPLICAS: '0' }, { port: 1 }), /PUSH_PUBLISH_REPLICAS: expected a whole number from 1 to 16/);
    assert.throws(() => loadConfig({ ...base, PUSH_PUBLISH_DURABILITY: 'sync' }, { port: 1 }), /PUSH_PUBLISH_DURABILITY: local or replicated, got "sync"/);
    // Above the command timeout a WAIT that runs out would look like an unreachable Redis (4109).
    assert.throws(() => loadConfig({ ...base, PUSH_PUBLISH_REPLICA_TIMEOUT_MS: '5000' }, { port: 1 }), /PUSH_PUBLISH_REPLICA_TIMEOUT_MS: expected a whole number from 10 to 2500/);
    try {
      loadConfig({ ...base, REDIS_URL: `redis+sentinel://:${secret}@a:1` }, { port: 1 });
      assert.fail('accepted');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /REDIS_URL: the master name is missing; .*got "redis\+sentinel:\/\/\*\*\*@a:1"/);
      assert.ok(!err.message.includes(secret));
    }
  });
});
