import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startRedisCluster, type RedisClusterHandle } from '../helpers/redis-cluster.js';
import { startApp } from '../helpers/apps.js';

/**
 * A private 3-master / 3-replica Redis Cluster, as the Cluster backend is tested on
 * (docs/architecture.md, "Redis Cluster"; the backend's own tests are in
 * packages/backend/test/redis-cluster.test.ts and tests/integration/cluster.test.ts). The harness
 * itself is checked here so that work can rely on it: slots served, a master failed over after
 * kill -9, everything removed afterwards.
 */
describe('Redis Cluster (harness, and a publisher on it)', () => {
  let cluster: RedisClusterHandle;
  before(async () => {
    cluster = await startRedisCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  it('a publisher given REDIS_URL=redis+cluster://... starts, is ready and stores a publish', async () => {
    const pub = await startApp('publisher', { REDIS_URL: cluster.url });
    try {
      assert.equal((await fetch(`${pub.url}/readyz`)).status, 200, pub.output());
      const res = await fetch(`${pub.url}/bitrix/pub/?CHANNEL_ID=${'c'.repeat(32)}`, { method: 'POST', body: JSON.stringify({ module_id: 't', command: 'c' }) });
      assert.equal(res.status, 200, await res.text());
    } finally {
      await pub.stop();
    }
  });

  it('3 masters serve all 16384 slots with one replica each; kill -9 of a master promotes its replica', async () => {
    const t = await cluster.topology();
    assert.equal(t.filter((n) => n.role === 'master').length, 3);
    assert.equal(t.filter((n) => n.role === 'replica').length, 3);
    const any = cluster.nodes[0]?.client();
    const slot = Number(await any?.call('CLUSTER', 'KEYSLOT', '{k}x'));
    any?.disconnect();
    const old = await cluster.masterOf(slot);
    const m = old.client();
    await m.set('{k}x', '1');
    // Replication is asynchronous: make sure the replica has the key before the crash.
    assert.equal(await m.wait(1, 2000), 1);
    m.disconnect();
    await old.kill(true);
    await cluster.healthy();
    const now = await cluster.masterOf(slot);
    assert.notEqual(now.port, old.port, 'the replica took over the slot');
    const direct = now.client();
    try {
      assert.equal(await direct.get('{k}x'), '1', 'with the data');
    } finally {
      direct.disconnect();
    }
  });

  it('stop() removes every node and its directory', async () => {
    assert.equal(existsSync(cluster.dir), true);
    await cluster.stop();
    assert.equal(cluster.nodes.length, 6);
    assert.equal(cluster.nodes.filter((n) => n.running).length, 0, 'no node left running');
    assert.equal(existsSync(cluster.dir), false, 'data removed');
  });
});
