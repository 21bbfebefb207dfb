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
 * Faults a single box cannot show: a Redis master cut off the network (a partition: its
 * connections neither close nor answer) and kill -9 of a master.
 */
const reason = await netnsUnavailable();

describe('several hosts: Sentinel failover across a partition and a crash', { skip: reason ?? false }, () => {
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

  it('the master host is cut off the network: the others elect a new master, every process follows it, nothing acknowledged is lost', async () => {
    const old = await group.master();
    const oldHost = redisHosts.find((h) => h.addr === old.host) as Host;
    const chans = [channelId(), channelId(), channelId()];
    const client = new ResumingClient(sub.url, chans);
    await client.open();
    const r = await publishStreamAcrossFault(pub.url, client, chans, () => oldHost.link(false));
    client.close();
    check('partition of the master host', r);
    assert.notEqual((await group.master()).port, old.port, 'a new master');
    // The old master comes back as a replica of the new one (the sentinels reconfigure it).
    await oldHost.link(true);
    await group.settled({ replicas: 2, timeoutMs: 40_000 });
  });

  it('kill -9 of the (new) master: delivery resumes on the next one, nothing acknowledged is lost', async () => {
    const old = await group.master();
    const chans = [channelId(), channelId(), channelId()];
    const client = new ResumingClient(sub.url, chans);
    await client.open();
    const r = await publishStreamAcrossFault(pub.url, client, chans, () => old.kill(true));
    client.close();
    check('kill -9 of the master', r);
  });
});
