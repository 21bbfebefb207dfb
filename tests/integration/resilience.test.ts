import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startApp, type AppProcess } from '../helpers/apps.js';
import { WsClient, channelId, longPoll, publish, signed } from '../helpers/clients.js';
import { eventually, sleep } from '../helpers/ports.js';

const cmd = (m: { text: unknown }) => (m.text as { command: string }).command;

/**
 * Publishes `count` messages (command m0, m1, ...) to the channel `channelOf(i)` picks, killing
 * Redis's pub/sub connections before the messages listed in `killBefore`; returns what was sent.
 */
async function publishAcrossKills(pubUrl: string, redis: RedisServer, count: number, killBefore: readonly number[], channelOf: (i: number) => string, pauseMs: number): Promise<string[]> {
  const rc = redis.client();
  const sent: string[] = [];
  for (let i = 0; i < count; i++) {
    if (killBefore.includes(i)) await rc.client('KILL', 'TYPE', 'pubsub');
    const name = `m${i}`;
    await publish(pubUrl, [channelOf(i)], { module_id: 't', command: name });
    sent.push(name);
    if (pauseMs > 0) await sleep(pauseMs);
  }
  return sent;
}

describe('restarts, reconnects and keep-alive', () => {
  let redis: RedisServer;
  let pub: AppProcess;
  let sub: AppProcess;
  let env: Record<string, string>;

  before(async () => {
    redis = await startRedis({ appendonly: true });
    env = { REDIS_URL: redis.url, PUSH_LONGPOLL_TIMEOUT_S: '1', PUSH_WS_IDLE_TIMEOUT_S: '8', PUSH_ONLINE_TTL_S: '10', PUSH_STATS_INTERVAL_S: '1' };
    [pub, sub] = await Promise.all([startApp('publisher', env), startApp('listener', env)]);
  });
  after(async () => {
    await Promise.all([pub?.stop(), sub?.stop()]);
    await redis?.stop();
  });

  it('checklist 11: mids strictly increase across channels and survive publisher and Redis restarts', async () => {
    const chans = [channelId(), channelId(), channelId()];
    const ws = await WsClient.connect(sub.url, chans.map((c) => signed(c)));
    for (const c of chans) await publish(pub.url, [c], { module_id: 't', command: 'a' });
    await pub.stop();
    pub = await startApp('publisher', env);
    await publish(pub.url, [chans[0] as string], { module_id: 't', command: 'b' });
    await ws.waitFor(4);
    ws.close();
    await Promise.all([pub.stop(), sub.stop()]);
    await redis.kill();
    await redis.restart();
    [pub, sub] = await Promise.all([startApp('publisher', env), startApp('listener', env)]);
    await publish(pub.url, [chans[1] as string], { module_id: 't', command: 'c' });
    const h = await longPoll(sub.url, chans.map((c) => signed(c)), `&mid=${'0'.repeat(26)}`);
    const mids = h.messages.map((m) => m.mid);
    assert.equal(mids.length, 5, 'AOF kept the stored messages');
    for (let i = 1; i < mids.length; i++) assert.ok((mids[i] as string) > (mids[i - 1] as string));
    assert.deepEqual(ws.messages.map((m) => m.mid), mids.slice(0, 4));
  });

  it('checklist 29: a listener restart loses nothing for a client that resumes with its mid', async () => {
    const ch = channelId();
    const ws = await WsClient.connect(sub.url, [signed(ch)]);
    await publish(pub.url, [ch], { module_id: 't', command: 'one' });
    await ws.waitFor(1);
    const lastMid = ws.messages[0]?.mid as string;
    await sub.stop();
    await ws.closed;
    assert.equal(ws.closeCode, 4111, 'told the server is restarting');
    for (const c of ['two', 'three']) await publish(pub.url, [ch], { module_id: 't', command: c });
    sub = await startApp('listener', env);
    const again = await WsClient.connect(sub.url, [signed(ch)], `&mid=${lastMid}`);
    await publish(pub.url, [ch], { module_id: 't', command: 'four' });
    await again.waitFor(3);
    await sleep(100);
    assert.deepEqual(again.messages.map(cmd), ['two', 'three', 'four']);
    again.close();
  });

  it('a lost Redis subscription is refilled from history: an open WebSocket misses nothing', async (t) => {
    const ch = channelId();
    const ws = await WsClient.connect(sub.url, [signed(ch)]);
    t.after(() => ws.close());
    const sent = await publishAcrossKills(pub.url, redis, 30, [10], () => ch, 10);
    await ws.waitFor(30, 10_000);
    await sleep(200);
    assert.deepEqual(ws.messages.map(cmd), sent, 'all, once, in order');
  });

  it('pub/sub connections killed again and again during the refills: an open WebSocket still misses nothing', async (t) => {
    const [a, b] = [channelId(), channelId()];
    const ws = await WsClient.connect(sub.url, [signed(a), signed(b)]);
    t.after(() => ws.close());
    // Back to back (a second loss while the first refill is still reading), and again later.
    const sent = await publishAcrossKills(pub.url, redis, 40, [5, 6, 7, 25], (i) => (i % 2 === 0 ? a : b), 5);
    await ws.waitFor(40, 10_000);
    await sleep(200);
    assert.deepEqual(ws.messages.map(cmd), sent, 'all, once, in order');
  });

  it('a resubscription in several batches: messages on a channel that is back early do not make the refill skip the outage', async (t) => {
    // The listener resubscribes 512 channels per SUBSCRIBE; channel `a` (subscribed first) is in
    // the first batch and gets live messages while the later batches are still pending.
    const a = channelId();
    const ws = await WsClient.connect(sub.url, [signed(a)]);
    const fillers: WsClient[] = [];
    for (let k = 0; k < 28; k++) fillers.push(await WsClient.connect(sub.url, Array.from({ length: 40 }, () => signed(channelId()))));
    // Closed whatever happens: a socket left open would throw off the next test's socket count.
    t.after(() => [ws, ...fillers].forEach((f) => f.close()));
    const sent = await publishAcrossKills(pub.url, redis, 150, [20], () => a, 0);
    await ws.waitFor(150, 15_000);
    await sleep(200);
    assert.deepEqual(ws.messages.map(cmd), sent, 'all, once, in order');
  });

  it('checklist 25: the server pings idle sockets and drops a peer that stops answering', async () => {
    const ch = channelId();
    const url = `${sub.url.replace('http', 'ws')}/bitrix/subws/?CHANNEL_ID=${signed(ch)}`;
    const alive = new WebSocket(url);
    let pings = 0;
    alive.on('ping', () => pings++);
    const dead = new WebSocket(url);
    await Promise.all([new Promise((r) => alive.once('open', r)), new Promise((r) => dead.once('open', r))]);
    // A peer that stops reading never answers pings: pause its socket. (A paused client cannot see
    // the server hang up either, so the server's own count of sockets is what we watch.)
    (dead as unknown as { _socket: { pause(): void } })._socket.pause();
    const listenerSockets = async (): Promise<number> => {
      const list = (await (await fetch(`${pub.url}/server-stat/`)).json()) as Array<{ type: string; pid: number; websockets: number }>;
      return list.find((p) => p.pid === sub.proc.pid)?.websockets ?? -1;
    };
    await eventually(async () => (await listenerSockets()) === 2, 5000, 'both sockets counted');
    const t0 = Date.now();
    await eventually(() => pings > 0, 15_000, 'a ping');
    await eventually(async () => (await listenerSockets()) === 1, 30_000, 'the dead peer dropped');
    assert.ok(Date.now() - t0 < 30_000);
    assert.equal(alive.readyState, WebSocket.OPEN, 'the answering peer stays connected');
    alive.close();
  });

  it('checklist 18: presence lingers at most the online TTL after disconnect; a long-open socket stays online', async () => {
    const [a, b] = [channelId(), channelId()];
    const stay = await WsClient.connect(sub.url, [signed(a)]);
    const leave = await WsClient.connect(sub.url, [signed(b)]);
    const online = async () => ((await (await fetch(`${pub.url}/bitrix/pub/?CHANNEL_ID=${a}/${b}`)).json()) as { infos: Array<{ channel: string }> }).infos.map((i) => i.channel);
    await eventually(async () => (await online()).length === 2, 3000, 'both online');
    leave.close();
    await sleep(500);
    assert.deepEqual((await online()).sort(), [a, b].sort(), 'lingers right after disconnect');
    await sleep(11_000);
    assert.deepEqual(await online(), [a], 'gone after the TTL; the open one was refreshed past its TTL');
    stay.close();
  });
});
