import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startRedisCluster, type RedisClusterHandle } from '../helpers/redis-cluster.js';
import { spawn } from 'node:child_process';
import { ROOT, TEST_KEY } from '../helpers/apps.js';
import { freePort } from '../helpers/ports.js';

/**
 * A private 3-master / 3-replica Redis Cluster, as the Cluster backend will be tested on
 * (docs/architecture.md, "Redis Cluster"). Today the server refuses it with a clear reason; the
 * harness itself is checked here so that work can rely on it: slots served, a master failed over
 * after kill -9, everything removed afterwards.
 */
describe('Redis Cluster (harness, and the server refusing it for now)', () => {
  let cluster: RedisClusterHandle;
  before(async () => {
    cluster = await startRedisCluster();
  });
  after(async () => {
    await cluster?.stop();
  });

  it('a publisher given REDIS_URL=redis+cluster://... refuses to start and says why', async () => {
    const env = { PATH: process.env['PATH'] ?? '', REDIS_URL: cluster.url, PUSH_SIGNATURE_KEY: TEST_KEY, PUSH_PORT: String(await freePort()) };
    const proc = spawn(process.execPath, [`${ROOT}apps/publisher/dist/main.js`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => proc.once('exit', resolve));
    assert.notEqual(code, 0, out);
    assert.match(out, /REDIS_URL: Redis Cluster \(redis\+cluster:\/\/\) is not served by this version yet/);
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
