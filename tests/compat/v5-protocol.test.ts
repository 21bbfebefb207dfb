import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { signChannelPair, signPublicChannel, signSubscriptionToken } from '@push/protocol';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { storedState } from '../helpers/redis-snapshot.js';
import { startApp, TEST_KEY, type AppProcess } from '../helpers/apps.js';
import { TrackedSocket, channelId, publish, signed, SECRET } from '../helpers/clients.js';
import { eventually, sleep } from '../helpers/ports.js';

/** Black-box protocol-5 checks (JSON-RPC, tokens) against real publisher + listener processes and a real Redis. */

/** Stored messages and ids, without presence and users' last-seen times (those change as clients come and go). */
const stored = async (r: RedisServer): Promise<string> => (await storedState(r.client())).split('\n').filter((l) => !l.includes(':ls:{')).join('\n');
const now = (): number => Math.floor(Date.now() / 1000);
const token = (claims: { sub?: string; chan?: string[]; exp?: number }, key = TEST_KEY): string => signSubscriptionToken({ iss: 'host', iat: now(), exp: now() + 3600, ...claims }, key);

interface Rpc {
  jsonrpc: string;
  id?: number | string | null;
  method?: string;
  params?: { mid: string; body: { module_id: string; command: string; params: Record<string, unknown>; extra: Record<string, unknown> }; sender: { type: number; id: string } };
  result?: unknown;
  error?: { code: number; message: string };
}

/** A protocol-5 WebSocket client: keeps notifications, responses and "ping" frames apart. */
class V5Ws extends TrackedSocket {
  readonly notes: NonNullable<Rpc['params']>[] = [];
  readonly responses: Rpc[] = [];
  pings = 0;
  private nextId = 0;
  constructor(url: string) {
    super(url);
    this.ws.on('message', (data, isBinary) => {
      assert.equal(isBinary, false, 'protocol 5 frames are text');
      const text = data.toString();
      if (text === 'ping') {
        this.pings++;
        this.ws.send('pong');
        return;
      }
      const doc = JSON.parse(text) as Rpc | Rpc[];
      for (const m of Array.isArray(doc) ? doc : [doc]) {
        assert.equal(m.jsonrpc, '2.0');
        if (m.method === 'incoming.message' && m.params !== undefined) {
          this.notes.push(m.params);
          this.ws.send(`mack:${m.params.mid}`);
        } else this.responses.push(m);
      }
    });
  }
  static async open(base: string, query: string): Promise<V5Ws> {
    const c = new V5Ws(`${base.replace(/^http/, 'ws')}/bitrix/subws/?${query}&jsonRpc=true&revision=19`);
    await c.opened;
    return c;
  }
  /** Sends one request and waits for its response. */
  async call(method: string, params: unknown): Promise<Rpc> {
    const id = ++this.nextId;
    this.ws.send(JSON.stringify({ jsonrpc: '2.0', method, params, id }));
    return (await eventually(() => this.responses.find((r) => r.id === id), 5000, `response to ${method}`)) as Rpc;
  }
  async sendRaw(text: string): Promise<Rpc> {
    const before = this.responses.length;
    this.ws.send(text);
    await eventually(() => this.responses.length > before, 5000, 'a response');
    return this.responses[before] as Rpc;
  }
}

/** The portal's protocol-5 call: POST /bitrix/api/?signature=<HMAC-SHA1 of the body>. */
function portalRpc(pubUrl: string, doc: unknown, sign = true): Promise<Response> {
  const body = JSON.stringify(doc);
  const sig = createHmac('sha1', TEST_KEY).update(body).digest('hex');
  return fetch(`${pubUrl}/bitrix/api/${sign ? `?signature=${sig}` : ''}`, { method: 'POST', headers: { 'X-HostId': 'host' }, body });
}
const publishCall = (params: Record<string, unknown>): Record<string, unknown> => ({ jsonrpc: '2.0', method: 'publish', params: { expiry: 86400, ...params } });

describe('protocol 5 over the real stack', () => {
  let redis: RedisServer;
  let pub: AppProcess;
  let l1: AppProcess;
  let l2: AppProcess;

  before(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, PUSH_LONGPOLL_TIMEOUT_S: '2', PUSH_UNSUBSCRIBE_DELAY_MS: '200', PUSH_ONLINE_TTL_S: '10', PUSH_CLIENT_RATE: '5', PUSH_CLIENT_BURST: '20' };
    [pub, l1, l2] = await Promise.all([startApp('publisher', env), startApp('listener', env), startApp('listener', env)]);
  });
  after(async () => {
    await Promise.all([pub?.stop(), l1?.stop(), l2?.stop()]);
    await redis?.stop();
  });

  it('a token subscription gets portal messages to its user and its channels as incoming.message, with server time and sender', async () => {
    const shared = channelId();
    const c = await V5Ws.open(l1.url, `token=${token({ sub: '7', chan: [shared] })}`);
    const t0 = Date.now() / 1000;
    const res = await portalRpc(pub.url, [publishCall({ userList: [7], body: { module_id: 'im', command: 'toUser', params: { n: 1 } } }), publishCall({ channelList: [shared], body: { module_id: 'im', command: 'toShared', params: {} } })]);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), [{ jsonrpc: '2.0', id: null, result: {} }, { jsonrpc: '2.0', id: null, result: {} }]);
    // The text publish route reaches a token subscription's channels too.
    assert.equal((await publish(pub.url, [shared], { module_id: 'im', command: 'viaPub', params: {} })).status, 200);
    await eventually(() => c.notes.length === 3, 5000, 'three messages');
    assert.deepEqual(c.notes.map((n) => n.body.command), ['toUser', 'toShared', 'viaPub']);
    for (const n of c.notes) {
      assert.match(n.mid, /^[0-9]{26}$/);
      assert.deepEqual(n.sender, { type: 2, id: '' });
      assert.ok(Math.abs((n.body.extra['server_time_unix'] as number) - t0) < 30, 'server time in extra');
      assert.equal(typeof n.body.extra['server_time'], 'string');
    }
    assert.ok((c.notes[0] as { mid: string }).mid < (c.notes[1] as { mid: string }).mid);
    c.ws.close();
  });

  it('client-to-client publish to users and to signed public channels, across listeners; answered with result {}', async () => {
    const [priv, pubId] = [channelId(), channelId()];
    const a = await V5Ws.open(l1.url, `token=${token({ sub: '21' })}`);
    const b = await V5Ws.open(l2.url, `token=${token({ sub: '22' })}`);
    const v4 = await V5Ws.open(l2.url, `CHANNEL_ID=${encodeURIComponent(signChannelPair(priv, pubId, SECRET))}`);
    await sleep(100);
    const r1 = await a.call('publish', { userList: [22], body: { module_id: 'chat', command: 'hello', params: { x: 1 } } });
    assert.deepEqual(r1, { jsonrpc: '2.0', id: 1, result: {} });
    const r2 = await a.call('publish', { channelList: [signPublicChannel(pubId, SECRET)], body: { module_id: 'chat', command: 'toChannel', params: {} }, expiry: 60 });
    assert.deepEqual(r2.result, {});
    await eventually(() => b.notes.length === 1 && v4.notes.length === 1, 5000, 'both delivered');
    assert.deepEqual(b.notes[0]?.sender, { type: 1, id: '21' });
    assert.equal(b.notes[0]?.body.command, 'hello');
    assert.equal(v4.notes[0]?.body.command, 'toChannel');
    // A CHANNEL_ID connection publishes as its public id (protocol-4 identity).
    await v4.call('publish', { userList: [21], body: { module_id: 'chat', command: 'back', params: {} } });
    await eventually(() => a.notes.length === 1, 5000, 'reply delivered');
    assert.deepEqual(a.notes[0]?.sender, { type: 1, id: pubId });
    for (const c of [a, b, v4]) c.ws.close();
  });

  it('bad requests get JSON-RPC errors and the socket stays open; nothing is stored or delivered', async () => {
    const [priv, pubId] = [channelId(), channelId()];
    const a = await V5Ws.open(l1.url, `token=${token({ sub: '31' })}`);
    const target = await V5Ws.open(l1.url, `CHANNEL_ID=${encodeURIComponent(signChannelPair(priv, pubId, SECRET))}`);
    const noIdentity = await V5Ws.open(l1.url, `CHANNEL_ID=${signed(channelId())}`);
    const before = await stored(redis);
    const cases: Array<[string, () => Promise<Rpc>, number]> = [
      ['not JSON', () => a.sendRaw('{oops'), -32700],
      ['not a request', () => a.sendRaw('{"jsonrpc":"2.0","id":"raw"}'), -32600],
      ['empty batch', () => a.sendRaw('[]'), -32600],
      ['unknown method', () => a.call('frobnicate', {}), -32601],
      ['publish without body', () => a.call('publish', { userList: [1] }), -32602],
      ['publish without receivers', () => a.call('publish', { body: {} }), 4017],
      ['publish to a badly signed public channel', () => a.call('publish', { channelList: [`${pubId}.${'0'.repeat(40)}`], body: {} }), 4021],
      ['publish to a channel id that is not one', () => a.call('publish', { channelList: [`zz.${'0'.repeat(40)}`], body: {} }), 4019],
      ['publish to 101 users', () => a.call('publish', { userList: Array.from({ length: 101 }, (_, i) => i + 1), body: {} }), 4018],
      ['publish without an identity to publish as', () => noIdentity.call('publish', { userList: [31], body: {} }), 4012],
      ['subscribeStatusChange without a user', () => a.call('subscribeStatusChange', {}), -32602],
    ];
    for (const [name, send, code] of cases) {
      const r = await send();
      assert.equal(r.error?.code, code, `${name}: ${JSON.stringify(r)}`);
      assert.ok((r.error?.message ?? '').length > 0, name);
    }
    await sleep(200);
    assert.deepEqual(await stored(redis), before, 'nothing stored');
    assert.equal(target.notes.length + a.notes.length, 0, 'nothing delivered');
    assert.equal(a.closeCode, null, 'still connected');
    assert.deepEqual((await a.call('ping', {})).result, {});
    for (const c of [a, target, noIdentity]) c.ws.close();
  });

  it('client publishing keeps the protocol-4 rate limit (PUSH_CLIENT_RATE per sender): refused calls get 4113 and deliver nothing', async () => {
    const a = await V5Ws.open(l1.url, `token=${token({ sub: '41' })}`);
    const b = await V5Ws.open(l1.url, `token=${token({ sub: '42' })}`);
    // The burst is 20 receivers: of 25 single-receiver calls in one batch frame, 20 fit (21 if a
    // token refilled meanwhile at 5/s), the rest are refused; each call is answered in order.
    const calls = Array.from({ length: 25 }, (_, i) => ({ jsonrpc: '2.0', method: 'publish', params: { userList: [42], body: { module_id: 'x', command: 'n', params: { i } } }, id: 100 + i }));
    a.ws.send(JSON.stringify(calls));
    await eventually(() => a.responses.length === 25, 5000, 'a batch answer');
    const results = a.responses;
    assert.deepEqual(results.map((r) => r.id), calls.map((c) => c.id));
    const admitted = results.filter((r) => r.result !== undefined).length;
    assert.ok(admitted === 20 || admitted === 21, `admitted ${admitted}`);
    for (const r of results.slice(admitted)) {
      assert.equal(r.error?.code, 4113);
      assert.match(r.error?.message ?? '', /^4113: /);
    }
    await eventually(() => b.notes.length === admitted, 5000, 'the admitted ones');
    await sleep(200);
    assert.equal(b.notes.length, admitted, 'refused calls delivered nothing');
    assert.deepEqual(b.notes.map((n) => n.body.params['i']), Array.from({ length: admitted }, (_, i) => i));
    assert.equal(a.closeCode, null);
    a.ws.close();
    b.ws.close();
  });

  it('getUsersLastSeen: 0 for a connected user, seconds for one who left, absent for one never seen; listChannels', async () => {
    const shared = channelId();
    const gone = await V5Ws.open(l2.url, `token=${token({ sub: '52' })}`);
    await sleep(300);
    gone.ws.close();
    const a = await V5Ws.open(l1.url, `token=${token({ sub: '51', chan: [shared] })}`);
    await sleep(300);
    const r = await a.call('getUsersLastSeen', { userList: [51, 52, 53] });
    const seen = r.result as Record<string, number>;
    assert.equal(seen['51'], 0);
    assert.ok(seen['52'] === 0 || (typeof seen['52'] === 'number' && seen['52'] < 20), `left recently: ${JSON.stringify(seen)}`);
    assert.equal('53' in seen, false);
    assert.deepEqual((await a.call('listChannels', {})).result, [shared, 'user:51']);
    // The portal asks the same question through its endpoint (one call, no id).
    const portal = await portalRpc(pub.url, { jsonrpc: '2.0', method: 'getUsersLastSeen', params: { userList: [51, 53] } });
    assert.equal(portal.status, 200);
    assert.deepEqual(await portal.json(), { jsonrpc: '2.0', id: null, result: { '51': 0 } });
    a.ws.close();
  });

  it('subscribeStatusChange: the watcher hears the user come online and, once its presence lapses, go offline; unsubscribe stops it', async () => {
    const watcher = await V5Ws.open(l1.url, `token=${token({ sub: '61' })}`);
    assert.deepEqual((await watcher.call('subscribeStatusChange', { userId: 62 })).result, {});
    const user = await V5Ws.open(l2.url, `token=${token({ sub: '62' })}`);
    await eventually(() => watcher.notes.length === 1, 5000, 'online');
    assert.deepEqual(watcher.notes[0]?.body.params, { user_id: 62, online: true });
    assert.equal(watcher.notes[0]?.body.module_id, 'online');
    assert.equal(watcher.notes[0]?.body.command, 'userStatusChange');
    user.ws.close();
    await eventually(() => watcher.notes.length === 2, 30_000, 'offline after the online TTL');
    assert.deepEqual(watcher.notes[1]?.body.params, { user_id: 62, online: false });
    assert.deepEqual((await watcher.call('unsubscribeStatusChange', { userId: 62 })).result, {});
    const again = await V5Ws.open(l2.url, `token=${token({ sub: '62' })}`);
    await sleep(1000);
    assert.equal(watcher.notes.length, 2, 'no news after unsubscribing');
    // The server keeps protocol-5 sockets alive with "ping" text frames (every 10 s).
    assert.ok(watcher.pings >= 1, 'the server sent "ping"');
    watcher.ws.close();
    again.ws.close();
  });

  it('resume by mid: a reconnect with the last mid gets exactly what it missed', async () => {
    const c = await V5Ws.open(l1.url, `token=${token({ sub: '71' })}`);
    await portalRpc(pub.url, [publishCall({ userList: [71], body: { module_id: 'm', command: 'n', params: { i: 0 } } })]);
    await eventually(() => c.notes.length === 1, 5000, 'first');
    const mid = c.notes[0]?.mid as string;
    c.ws.close();
    await c.closed;
    for (let i = 1; i <= 3; i++) await portalRpc(pub.url, [publishCall({ userList: [71], body: { module_id: 'm', command: 'n', params: { i } } })]);
    const back = await V5Ws.open(l2.url, `token=${token({ sub: '71' })}&mid=${mid}`);
    await eventually(() => back.notes.length === 3, 5000, 'the three missed');
    assert.deepEqual(back.notes.map((n) => n.body.params['i']), [1, 2, 3]);
    back.ws.close();
  });

  it('long poll with jsonRpc=true answers JSON-RPC notifications (a batch array for several), resumes by mid', async () => {
    const shared = channelId();
    const t = token({ sub: '81', chan: [shared] });
    for (const i of [1, 2]) await portalRpc(pub.url, [publishCall({ channelList: [shared], body: { module_id: 'm', command: 'n', params: { i } } })]);
    const first = await fetch(`${l1.url}/bitrix/sub/?token=${t}&jsonRpc=true&mid=${'0'.repeat(26)}`);
    assert.equal(first.status, 200);
    assert.equal(first.headers.get('access-control-allow-origin'), '*');
    const batch = (await first.json()) as Rpc[];
    assert.equal(batch.length, 2);
    assert.deepEqual(batch.map((m) => m.params?.body.params['i']), [1, 2]);
    const parked = fetch(`${l2.url}/bitrix/sub/?token=${t}&jsonRpc=true&mid=${batch[1]?.params?.mid}`);
    await sleep(300);
    await portalRpc(pub.url, [publishCall({ userList: [81], body: { module_id: 'm', command: 'n', params: { i: 3 } } })]);
    const live = await parked;
    assert.equal(live.status, 200);
    const one = (await live.json()) as Rpc;
    assert.equal(one.method, 'incoming.message');
    assert.equal(one.params?.body.params['i'], 3);
  });

  it('tokens that are expired, tampered, of another key or another algorithm (none too) are refused with 4010, on WebSocket and long poll', async () => {
    const good = token({ sub: '91' });
    const [h, p] = good.split('.') as [string, string, string];
    const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
    const bad: Array<[string, string]> = [
      ['expired', token({ sub: '91', exp: now() - 1 })],
      ['tampered', `${h}.${b64({ iss: 'host', exp: now() + 3600, sub: '1' })}.${good.split('.')[2]}`],
      ['another key', token({ sub: '91' }, 'not the key')],
      ['alg none', `${b64({ alg: 'none', typ: 'JWT' })}.${p}.`],
      ['alg HS512', signSubscriptionToken({ exp: now() + 3600, sub: '91' }, TEST_KEY, { alg: 'HS512', typ: 'JWT' })],
      ['garbage', 'not-a-token'],
    ];
    for (const [name, t] of bad) {
      const ws = new V5Ws(`${l1.url.replace(/^http/, 'ws')}/bitrix/subws/?token=${encodeURIComponent(t)}&jsonRpc=true`);
      await ws.closed;
      assert.equal(ws.closeCode, 4010, name);
      assert.match(ws.closeReason, /^4010: Wrong Channel Id\. \S/, name);
      const lp = await fetch(`${l1.url}/bitrix/sub/?token=${encodeURIComponent(t)}&jsonRpc=true`);
      assert.equal(lp.status, 400, name);
      assert.match(await lp.text(), /^4010: Wrong Channel Id\./, name);
      assert.equal(lp.headers.get('access-control-allow-origin'), '*');
    }
  });

  it('the portal endpoint refuses unsigned, wrongly signed and malformed requests whole, storing nothing', async () => {
    const shared = channelId();
    const before = await stored(redis);
    const ok = publishCall({ channelList: [shared], body: { module_id: 'x', command: 'y', params: {} } });
    const cases: Array<[string, () => Promise<Response>, number, number]> = [
      ['unsigned', () => portalRpc(pub.url, [ok], false), 401, 4140],
      ['signed with another key', () => fetch(`${pub.url}/bitrix/api/?signature=${createHmac('sha1', 'other').update(JSON.stringify([ok])).digest('hex')}`, { method: 'POST', body: JSON.stringify([ok]) }), 401, 4140],
      ['a bad second call', () => portalRpc(pub.url, [ok, { jsonrpc: '2.0', method: 'publish', params: { channelList: ['nothex'], body: {} } }]), 400, 4141],
      ['an unknown method', () => portalRpc(pub.url, [ok, { jsonrpc: '2.0', method: 'drop', params: {} }]), 400, 4141],
      ['no receivers', () => portalRpc(pub.url, [publishCall({ body: {} })]), 400, 4017],
      ['not JSON', () => fetch(`${pub.url}/bitrix/api/?signature=${createHmac('sha1', TEST_KEY).update('{').digest('hex')}`, { method: 'POST', body: '{' }), 400, 4141],
      ['a body over 1 MiB', () => portalRpc(pub.url, [publishCall({ channelList: [shared], body: { pad: 'x'.repeat(1024 * 1024) } })]), 413, 4101],
    ];
    for (const [name, send, status, code] of cases) {
      const res = await send();
      assert.equal(res.status, status, name);
      assert.match(await res.text(), new RegExp(`^${code}: \\S`), name);
    }
    assert.deepEqual(await stored(redis), before, 'nothing stored');
  });
});
