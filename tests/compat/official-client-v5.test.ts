import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { signSubscriptionToken } from '@push/protocol';
import { PortalV5, SdkV5Client } from './sdk-v5.js';
import { wire } from './sdk-harness.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startApp, TEST_KEY, type AppProcess } from '../helpers/apps.js';
import { eventually, sleep } from '../helpers/ports.js';

/**
 * The official client (@bitrix24/b24jssdk 2.2.0, unmodified) in protocol 5: JSON-RPC over
 * WebSocket and long poll, subscribed with the portal's token, against real publisher and listener
 * processes and a real Redis.
 */

interface RpcFrame {
  id?: number;
  method?: string;
  result?: unknown;
  params?: { mid: string };
}
const frames = (c: SdkV5Client): RpcFrame[] =>
  c.sockets().flatMap((s) =>
    s.received.flatMap((f) => {
      if (typeof f.data !== 'string' || f.data === 'ping') return [];
      const doc = JSON.parse(f.data) as RpcFrame | RpcFrame[];
      return Array.isArray(doc) ? doc : [doc];
    }),
  );

describe('official client @bitrix24/b24jssdk in protocol 5 against the stack', () => {
  let redis: RedisServer;
  let pub: AppProcess;
  let listener: AppProcess;
  let portal: PortalV5;
  const clients: SdkV5Client[] = [];
  let nextUser = 500;
  // A long hold, as in production: the long-polling client counts as connected after its own 5 s
// timer, and a publish at that moment must find its poll parked, not between two polls.
const env = (r: RedisServer): Record<string, string> => ({ REDIS_URL: r.url, PUSH_UNSUBSCRIBE_DELAY_MS: '200', PUSH_LONGPOLL_TIMEOUT_S: '40', PUSH_ONLINE_TTL_S: '10' });

  const client = async (opts: ConstructorParameters<typeof SdkV5Client>[2] = {}, userId = nextUser++): Promise<SdkV5Client> => {
    const c = new SdkV5Client(portal, userId, opts);
    clients.push(c);
    await c.start();
    await c.connected();
    return c;
  };

  before(async () => {
    redis = await startRedis();
    [pub, listener] = await Promise.all([startApp('publisher', env(redis)), startApp('listener', env(redis))]);
    portal = new PortalV5(pub.url, listener.url);
  });
  after(async () => {
    for (const c of clients) c.destroy();
    await Promise.all([pub?.stop(), listener?.stop()]);
    await redis?.stop();
  });

  it('receives what the portal publishes to its user and to the shared channel, over WebSocket and long poll', async () => {
    const [ws, lp] = await Promise.all([client(), client({ websocket: false })]);
    assert.equal((ws.pull.getDebugInfo() as Record<string, unknown>)['WebSocket mode'], 'json-rpc');
    for (const c of [ws, lp]) {
      const path = new URL(c.connectionPath());
      assert.ok(path.searchParams.get('token') !== null && path.searchParams.get('CHANNEL_ID') === null, `token subscription: ${path}`);
      assert.equal(path.searchParams.get('jsonRpc'), 'true');
    }
    assert.ok(lp.connectionPath().includes('/bitrix/sub/'), 'the long-polling client polls');
    for (const c of [ws, lp]) await portal.publish({ users: [c.userId] }, 'test', `to-user-${c.userId}`, { n: 1 });
    await portal.publish({ channels: [portal.shared] }, 'test', 'to-shared', {});
    for (const c of [ws, lp]) await c.waitForCommands([`to-user-${c.userId}`, 'to-shared']);
    await sleep(300);
    for (const c of [ws, lp]) {
      assert.deepEqual(c.commands(), [`to-user-${c.userId}`, 'to-shared'], `user ${c.userId}: once each, in order`);
      assert.deepEqual(c.server[0]?.params, { n: 1 });
      assert.equal((c.server[0]?.extra['sender'] as { type: number }).type, 2, 'from the portal');
      assert.ok(typeof c.server[0]?.extra['server_time_ago'] === 'number', 'the client computed the age from server time');
    }
    // The WebSocket client acknowledged each message with "mack:<mid>", as protocol 5 does.
    const acks = ws.sockets().flatMap((s) => s.sent.map((f) => Buffer.from(f.data).toString()).filter((t) => t.startsWith('mack:')));
    assert.equal(acks.length, 2);
    // The long-polling client posts its acks to its publish URL: answered 200, not refused.
    const lpAcks = wire.requests.filter((r) => r.method === 'POST' && r.requestBody !== null && Buffer.from(r.requestBody).toString().startsWith('mack:'));
    await eventually(() => lpAcks.every((r) => r.doneAt !== null), 5000, 'acks answered');
    assert.equal(lpAcks.length, 2);
    assert.deepEqual(lpAcks.map((r) => r.status), [200, 200]);
  });

  it('client-to-client: sendMessage to another user arrives as a client message with the sender; sendMessageToChannels is refused without signed channels', async () => {
    const [a, b] = await Promise.all([client(), client()]);
    await a.pull.sendMessage([b.userId], 'test', 'hello', { from: a.userId });
    await eventually(() => b.client.length === 1, 5000, 'client message');
    assert.equal(b.client[0]?.command, 'hello');
    assert.deepEqual(b.client[0]?.params, { from: a.userId });
    assert.deepEqual(b.client[0]?.extra['sender'], { type: 1, id: String(a.userId) });
    assert.equal(b.server.length, 0, 'a client message is not a server message');
    // The response to the publish call reached the client (its promise resolved with {}).
    assert.deepEqual(await a.pull.sendMessage([b.userId], 'test', 'again', {}), {});
    await assert.rejects(a.pull.sendMessageToChannels(['0123456789abcdef0123456789abcdef.00'], 'test', 'x', {}), (e: unknown) => (e as { code?: number }).code === 4021);
  });

  it('subscribeUserStatusChange hears a user come online and go offline; ping and listChannels answer', async () => {
    const watcher = await client();
    const events: Array<{ userId: number; isOnline: boolean }> = [];
    const watched = nextUser++;
    await watcher.pull.subscribeUserStatusChange(watched, (e: { userId: number; isOnline: boolean }) => events.push(e));
    const u = await client({}, watched);
    await eventually(() => events.length === 1, 5000, 'online');
    assert.deepEqual(events[0], { userId: watched, isOnline: true });
    assert.deepEqual(await watcher.pull.listChannels(), [portal.shared, `user:${watcher.userId}`]);
    await watcher.pull.ping(2);
    u.destroy();
    await eventually(() => events.length === 2, 30_000, 'offline once the presence lapsed');
    assert.deepEqual(events[1], { userId: watched, isOnline: false });
  });

  it('getUsersLastSeen: the server answers for known users, the client asks the portal only about the others', async () => {
    const [a, b] = await Promise.all([client(), client()]);
    const unknown = 999_999;
    await a.pull.getUsersLastSeen([b.userId, unknown]);
    const call = frames(a).find((f) => f.id !== undefined && f.result !== undefined && typeof f.result === 'object' && f.result !== null && String(b.userId) in (f.result as object));
    assert.deepEqual(call?.result, { [String(b.userId)]: 0 }, 'b is online; the unknown user is left out');
    const rest = a.restCalls.filter((r) => r.method === 'pull.api.user.getLastSeen');
    assert.deepEqual(rest.map((r) => (r.params as { userIds: number[] }).userIds), [[unknown]]);
  });

  it('a refused token (expired) makes the client fetch a new config and connect with the new token', async () => {
    const nowS = Math.floor(Date.now() / 1000);
    const userId = nextUser++;
    const expired = signSubscriptionToken({ iss: 'portal-host-id', iat: nowS - 100, exp: nowS - 1, sub: String(userId), chan: [portal.shared] }, TEST_KEY);
    const c = new SdkV5Client(portal, userId, { firstToken: expired });
    clients.push(c);
    await c.start();
    // Closed with 4010, the client reloads its config after its own 5-35 s delay, then connects.
    await eventually(() => c.sockets().some((s) => s.closeCode === 4010), 10_000, 'refused with 4010');
    assert.match(c.sockets()[0]?.closeReason ?? '', /^4010: Wrong Channel Id\. The token has expired/);
    await c.connected(45_000);
    assert.ok(c.configs >= 1, 'a new config was fetched');
    await portal.publish({ users: [userId] }, 'test', 'after-reload', {});
    await c.waitForCommands(['after-reload']);
  });

  it('a listener restart: the client reconnects with its mid and misses nothing published meanwhile', async () => {
    const c = await client();
    await portal.publish({ users: [c.userId] }, 'test', 'before', {});
    await c.waitForCommands(['before']);
    const mid = frames(c).find((f) => f.method === 'incoming.message')?.params?.mid as string;
    assert.match(mid, /^[0-9]{26}$/);
    const port = listener.port;
    await listener.stop();
    await eventually(() => !c.pull.isConnected(), 10_000, 'the client noticed');
    for (const cmd of ['gap1', 'gap2']) await portal.publish({ users: [c.userId] }, 'test', cmd, {});
    listener = await startApp('listener', { ...env(redis), PUSH_PORT: String(port) });
    await c.waitForCommands(['gap1', 'gap2'], 45_000);
    await portal.publish({ users: [c.userId] }, 'test', 'after', {});
    await c.waitForCommands(['after']);
    await sleep(300);
    assert.deepEqual(c.commands(), ['before', 'gap1', 'gap2', 'after'], 'nothing lost, nothing twice');
    const resumed = c.sockets().find((s) => s.openedAt !== null && new URL(s.url).searchParams.get('mid') !== null);
    assert.equal(new URL(resumed?.url ?? 'http://x/').searchParams.get('mid'), mid, 'reconnected with the last mid');
    // Every other client of this suite comes back too (a watcher re-subscribes its status
    // subscriptions with string ids), so none is left half-connected when the suite ends.
    for (const other of clients) if (!other.destroyed) await other.connected(45_000);
  });
});
