import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createTestNetwork, netnsUnavailable, type Host, type TestNetwork } from '../helpers/netns.js';
import { startRedisSentinel, type RedisSentinelHandle } from '../helpers/redis-sentinel.js';
import { startApp, type AppProcess } from '../helpers/apps.js';
import { channelId } from '../helpers/clients.js';
import { ResumingClient, publishStreamAcrossFault, type StreamOutcome } from '../helpers/publish-stream.js';

/**
 * The installation as separate machines: three Redis hosts (a data node and a sentinel each), an
 * application host (publisher and listener) and the test process as the client host, each in its
 * own network namespace on 198.18.0.0/15, every connection crossing a real (virtual) network.
 * The partition case (the master's host cut off with `Host.link(false)`) is not here yet: in about
 * one run in four the WebSocket client stopped receiving after the failover although publishing
 * resumed (see docs/operations.md, "Redis topologies"); it needs the subscription liveness probe.
 */
const reason = await netnsUnavailable();

describe('several hosts: Sentinel failover after a crash', { skip: reason ?? false }, () => {
  let net: TestNetwork;
  let redisHosts: Host[];
  let appHost: Host;
  let group: RedisSentinelHandle;
  let pub: AppProcess;
  let sub: AppProcess;
  before(async () => {
    net = await createTestNetwork();
    redisHosts = [await net.addHost(), await net.addHost(), await net.addHost()];
    appHost = await net.addHost();
    group = await startRedisSentinel({ replicas: 2, dataHosts: redisHosts, sentinelHosts: redisHosts });
    const env = {
      REDIS_URL: group.url,
      PUSH_HOST: appHost.addr,
      PUSH_PUBLISH_DURABILITY: 'replicated',
      PUSH_HISTORY_LIMIT: '1000',
      PUSH_PUBLISH_TRUSTED_NETWORKS: `${net.clientAddr}/32`,
    };
    [pub, sub] = await Promise.all([startApp('publisher', env, { netns: appHost.ns }), startApp('listener', env, { netns: appHost.ns })]);
  });
  after(async () => {
    await Promise.all([pub?.stop(), sub?.stop()]);
    await group?.stop();
    await net?.destroy();
  });

  const check = (what: string, r: StreamOutcome): void => {
    const figures = `${r.acked} acknowledged, ${r.refused} refused, ${r.reconnects} client reconnects, delivery resumed ${r.resumedMs} ms after the fault`;
    console.log(`${what}: ${figures}`);
    assert.ok(r.ackedAfterFault >= 30, `publishing resumed (${figures})`);
    assert.deepEqual(r.lost, [], `acknowledged, never delivered (${figures})`);
    assert.equal(r.duplicated, 0, 'nothing delivered twice');
    assert.equal(r.outOfOrder, 0, 'each channel in order');
    assert.ok(r.resumedMs >= 0, 'delivery resumed');
  };

  it('kill -9 of the master host\'s Redis: delivery resumes on the promoted replica, nothing acknowledged is lost', async () => {
    const old = await group.master();
    const chans = [channelId(), channelId(), channelId()];
    const client = new ResumingClient(sub.url, chans);
    await client.open();
    const r = await publishStreamAcrossFault(pub.url, client, chans, () => old.kill(true));
    client.close();
    check('kill -9 of the master', r);
  });
});
