import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startApp, type AppProcess } from '../helpers/apps.js';
import { WsClient, channelId, longPoll, publish, signed, type Frame } from '../helpers/clients.js';
import { eventually, sleep } from '../helpers/ports.js';

/**
 * The 12/24-hour lifecycle with shortened windows (write 2 s, read 6 s), through real processes:
 * writes refused after the write window with nothing stored, backlog then channel_expire for
 * readers, and the invalid-channel rejection after the read window.
 */
const WRITE_S = 2;
// Longer than write window + one periodic check interval (~3.3 s), so that path is seen too.
const READ_S = 6;

const isExpireNotice = (f: Frame | undefined, ch: string): boolean => {
  const t = f?.text as { module_id?: string; command?: string; params?: { action?: string; channel?: { id?: string } } } | undefined;
  return t?.module_id === 'pull' && t.command === 'channel_expire' && t.params?.action === 'get_config' && t.params.channel?.id === signed(ch);
};

describe('channel lifecycle (shortened windows)', () => {
  let redis: RedisServer;
  let r: Redis;
  let pub: AppProcess;
  let lis: AppProcess;

  before(async () => {
    redis = await startRedis();
    r = redis.client();
    // The online TTL of 10 s makes the hub's periodic lifecycle check run every ~3.3 s.
    const env = { REDIS_URL: redis.url, PUSH_CHANNEL_WRITE_S: String(WRITE_S), PUSH_CHANNEL_READ_S: String(READ_S), PUSH_ONLINE_TTL_S: '10', PUSH_LONGPOLL_TIMEOUT_S: '2' };
    [pub, lis] = await Promise.all([startApp('publisher', env), startApp('listener', env)]);
  });
  after(async () => {
    await Promise.all([pub?.stop(), lis?.stop()]);
    await redis?.stop();
  });

  it('write window -> 410 and nothing stored; readers get backlog then channel_expire; read window -> 4010', async () => {
    const ch = channelId();
    const lone = channelId();
    // Subscribed before the channel exists: `early` shares its channel with `armed` below (whose
    // open arms the channel's timer); `loner` is alone on its channel, so only the hub's periodic
    // check can learn the creation time and deliver the notice.
    const early = await WsClient.connect(lis.url, [signed(ch)]);
    const loner = await WsClient.connect(lis.url, [signed(lone)]);
    await sleep(100);
    const t0 = Date.now();
    for (const n of [1, 2]) assert.equal((await publish(pub.url, [ch], { module_id: 'test', command: 'm', params: { n } }, { 'Message-Expiry': '60' })).status, 200);
    assert.equal((await publish(pub.url, [lone], { module_id: 'test', command: 'm', params: { n: 0 } }, { 'Message-Expiry': '60' })).status, 200);
    // Subscribed after creation: its timer is armed at open.
    const armed = await WsClient.connect(lis.url, [signed(ch)], `&mid=${'0'.repeat(26)}`);
    await armed.waitFor(2);

    // The write window passes, counted from the channel's creation as Redis recorded it (the
    // first publish may take a while on a loaded machine; the same clock: one host).
    const created = Number(await r.get(`push:ch:{${ch}}`));
    assert.ok(created >= t0 - 1000 && created <= Date.now(), `creation time recorded (${created})`);
    await sleep(Math.max(0, created + WRITE_S * 1000 + 100 - Date.now()));
    const counter = await r.get('push:id:counter');
    const refused = await publish(pub.url, [ch, channelId()], { module_id: 'test', command: 'm', params: { n: 3 } }, { 'Message-Expiry': '60' });
    assert.equal(refused.status, 410);
    const text = await refused.text();
    assert.ok(text.startsWith('4126: ') && text.includes('rotate') && text.includes(ch), text);
    assert.equal(await r.get('push:id:counter'), counter, 'no message id was used');

    // A connection that was open across the window end gets the notice pushed by its timer.
    const armedMsgs = await armed.waitFor(3, 3000);
    assert.deepEqual(armedMsgs.slice(0, 2).map((m) => (m.text as { params: { n: number } }).params.n), [1, 2]);
    assert.ok(isExpireNotice(armedMsgs[2], ch), JSON.stringify(armedMsgs[2]));

    // A "laptop that slept": resumes with its old cursor, gets the backlog, then the notice.
    const sleeper = await WsClient.connect(lis.url, [signed(ch)], `&mid=${armedMsgs[0]?.mid}`);
    const resumed = await sleeper.waitFor(2);
    assert.equal((resumed[0]?.text as { params: { n: number } }).params.n, 2);
    assert.ok(isExpireNotice(resumed[1], ch));
    assert.equal(resumed[1]?.mid, armedMsgs[2]?.mid, 'one stored notice, same mid everywhere');

    // A long poll without a cursor is answered with the notice at once.
    const lp = await longPoll(lis.url, [signed(ch)]);
    assert.equal(lp.status, 200);
    assert.equal(lp.messages.length, 1);
    assert.ok(isExpireNotice(lp.messages[0], ch));

    // The connection that subscribed before the first publish gets its two messages and the
    // notice from the periodic check.
    const earlyMsgs = await early.waitFor(3, 5000);
    assert.ok(isExpireNotice(earlyMsgs[2], ch));
    const lonerMsgs = await loner.waitFor(2, 5000);
    assert.ok(isExpireNotice(lonerMsgs[1], lone), JSON.stringify(lonerMsgs[1]));
    await sleep(200);
    for (const c of [early, armed, sleeper]) assert.equal(c.messages.filter((m) => isExpireNotice(m, ch)).length, 1, 'the notice arrives once per connection');
    assert.equal(await r.llen(`push:h:{${ch}}`), 3, 'history: two messages and one notice');

    // The read window passes: the channel is refused like an invalid one.
    await sleep(Math.max(0, created + READ_S * 1000 + 200 - Date.now()));
    const gone = new WsClient(`${lis.url.replace(/^http/, 'ws')}/bitrix/subws/?CHANNEL_ID=${encodeURIComponent(signed(ch))}`);
    await gone.closed;
    assert.equal(gone.closeCode, 4010);
    assert.equal(gone.closeReason, '4010: Wrong Channel Id.');
    const lpGone = await longPoll(lis.url, [signed(ch)]);
    assert.equal(lpGone.status, 400);
    assert.equal(lpGone.body, '4010: Wrong Channel Id.');
    // ...also when listed together with a valid channel.
    const mixed = await longPoll(lis.url, [signed(channelId()), signed(ch)]);
    assert.equal(mixed.status, 400);
    for (const c of [early, armed, sleeper, loner]) c.close();
  });

  it('a freshly minted or unknown channel is writable and readable', async () => {
    const ch = channelId();
    const poll = longPoll(lis.url, [signed(ch)]);
    await sleep(150);
    assert.equal((await publish(pub.url, [ch], { module_id: 't', command: 'c', params: {} })).status, 200);
    const res = await poll;
    assert.equal(res.status, 200);
    assert.equal(res.messages.length, 1);
    await eventually(async () => (await r.get(`push:ch:{${ch}}`)) !== null, 1000, 'creation recorded');
  });
});
