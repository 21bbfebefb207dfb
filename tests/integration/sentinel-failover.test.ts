import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startRedisSentinel, type RedisSentinelHandle } from '../helpers/redis-sentinel.js';
import { startApp, type AppProcess } from '../helpers/apps.js';
import { channelId, longPoll, signed } from '../helpers/clients.js';
import { ResumingClient, publishStreamAcrossFault } from '../helpers/publish-stream.js';

describe('a publisher and a listener on a Sentinel group (REDIS_URL=redis+sentinel://...)', () => {
  let group: RedisSentinelHandle;
  let pub: AppProcess;
  let sub: AppProcess;
  before(async () => {
    group = await startRedisSentinel({ replicas: 2 });
    const env = { REDIS_URL: group.url, PUSH_PUBLISH_DURABILITY: 'replicated', PUSH_HISTORY_LIMIT: '1000', PUSH_LONGPOLL_TIMEOUT_S: '1' };
    [pub, sub] = await Promise.all([startApp('publisher', env), startApp('listener', env)]);
  });
  after(async () => {
    await Promise.all([pub?.stop(), sub?.stop()]);
    await group?.stop();
  });

  it('kill -9 of the master under a publish stream: a WebSocket gets every acknowledged message once, in order; long poll resumes across it', async () => {
    const chans = [channelId(), channelId(), channelId()];
    const client = new ResumingClient(sub.url, chans);
    await client.open();
    const old = await group.master();
    const r = await publishStreamAcrossFault(pub.url, client, chans, () => old.kill(true));
    client.close();
    const figures = `${r.acked} acknowledged, ${r.refused} refused, ${r.reconnects} reconnects (${client.events.join('; ') || 'none'}), resumed after ${r.resumedMs} ms`;
    console.log(`sentinel kill -9 through the apps: ${figures}`);
    assert.ok(r.ackedAfterFault >= 30, `publishing resumed after the failover (${figures})`);
    assert.deepEqual(r.lost, [], `acknowledged, never delivered (${figures})`);
    assert.equal(r.duplicated, 0, 'nothing delivered twice');
    assert.equal(r.outOfOrder, 0, 'each channel in order');
    // The subscriber connection can be back before the command connection the refill reads on:
    // the refill waits for it (tried again) instead of closing the sockets with 4109.
    assert.deepEqual(client.events.filter((e) => e.startsWith('closed 4109')), [], `no socket closed for a failed refill (${client.events.join('; ') || 'no socket events'})`);
    const mids = client.got.map((g) => g.frame.mid);
    assert.deepEqual(mids, [...mids].sort(), 'mids increase across the failover');
    // A long-poll client that was away for the whole failover resumes from the first mid.
    const h = await longPoll(sub.url, chans.map((c) => signed(c)), `&mid=${mids[0]}`);
    assert.equal(h.status, 200);
    assert.deepEqual(h.messages.map((m) => m.mid), mids.slice(1), 'long poll replays everything after the first mid, once, in order');
  });
});
