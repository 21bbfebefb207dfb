import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import type { Redis } from 'ioredis';
import { SenderType, decodeResponseBatch, encodeRequestBatch, errorText, Errors, signChannel, signChannelPair, signPublicChannel, type ChannelSecret } from '@push/protocol';
import { startFrontStack, type FrontStack } from '../helpers/front-stack.js';
import { SECRET, TrackedSocket, WsClient, channelId, longPoll } from '../helpers/clients.js';
import { eventually, sleep } from '../helpers/ports.js';
import { storedState } from '../helpers/redis-snapshot.js';
import { startRedis } from '../helpers/redis.js';
import { startApp } from '../helpers/apps.js';
import { MODES, Portal, SdkClient, eachMode, wireCommands } from './sdk-harness.js';
import { PortalV5, SdkV5Client } from './sdk-v5.js';

/**
 * Shared mode (PUSH_MODE=shared) through the real nginx of a stack from `npm start`: two portals
 * registered on one installation, each with its own client id and key, isolated both ways; the
 * refusals of push server 2.0's shared mode, each leaving Redis as it was; registration and
 * unregistration; per-portal limits; and the official client in shared mode.
 */
const ADMIN = 'shared-admin-token-0123456789abcdef';
const A_ID = 'a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1';
const B_ID = 'b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2';
const C_ID = 'c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3';
const UNKNOWN = 'd4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4';
/** Per portal and listener; the limit test fills portal C's, the other portals stay well below it. */
const MAX_CONN = 20;
const RATE = 20;

const hmac = (data: string | Uint8Array, key: string): string => createHmac('sha1', key).update(data).digest('hex');
const msg = (command: string, n = 0): string => JSON.stringify({ module_id: 'test', command, params: { n } });

describe('shared mode through nginx: two portals on one installation', () => {
  let stack: FrontStack;
  let redis: Redis;
  let front: string;
  const key: Record<string, string> = {};
  const secret = (id: string): ChannelSecret => ({ key: key[id] as string, algorithm: 'sha1' });
  const sockets: WsClient[] = [];
  const sdk: SdkClient[] = [];
  const sdk5: SdkV5Client[] = [];

  const register = (id: string, headers: Record<string, string> = { Authorization: `Bearer ${ADMIN}` }) =>
    fetch(`${front}/register-client/`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers }, body: `verificationQuery=${encodeURIComponent(`BX_LICENCE=${id}&BX_TYPE=CP&BX_HASH=00&BX_ALL=y`)}` });
  const systemctl = (body: string, sig = hmac(body, SECRET.key)) => fetch(`${front}/systemctl/?signature=${sig}`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN}` }, body });
  /** A portal's text publish as the pull module sends it in shared mode. */
  const publish = (id: string | null, channels: string[], body: string, sig?: string | null, path = '/bitrix/pub/') => {
    const q = id === null ? '' : `&clientId=${id}`;
    const s = sig === null ? '' : `&signature=${sig ?? hmac(body, key[id ?? ''] ?? 'none')}`;
    return fetch(`${front}${path}?CHANNEL_ID=${channels.join('/')}${q}${s}`, { method: 'POST', body });
  };
  const ws = async (id: string | null, channels: string[], extra = ''): Promise<WsClient> => {
    const c = await WsClient.connect(front, channels, `${id === null ? '' : `&clientId=${id}`}${extra}`);
    sockets.push(c);
    return c;
  };
  /** Asserts `work` is refused with `spec` (HTTP status and "<code>: <reason>" body) and changes nothing in Redis. */
  const refusedUnchanged = async (name: string, spec: { code: number; status: number; reason: string }, work: () => Promise<Response>): Promise<void> => {
    const before = await storedState(redis);
    const res = await work();
    assert.equal(res.status, spec.status, `${name}: status`);
    assert.ok((await res.text()).startsWith(errorText(spec)), `${name}: body "${spec.code}: ${spec.reason}"`);
    assert.equal(await storedState(redis), before, `${name}: Redis unchanged`);
  };

  before(async () => {
    stack = await startFrontStack({
      publishers: 2,
      listeners: 1,
      env: { PUSH_PUBLISH_TRUSTED_NETWORKS: 'none', PUSH_MODE: 'shared', PUSH_ADMIN_TOKEN: ADMIN, PUSH_CLIENT_MAX_CONNECTIONS: String(MAX_CONN), PUSH_CLIENT_PUBLISH_RATE: String(RATE), PUSH_UNSUBSCRIBE_DELAY_MS: '200' },
    });
    front = stack.front;
    redis = stack.redis.client();
  });
  after(async () => {
    for (const c of sockets) c.close();
    for (const c of sdk) c.destroy();
    for (const c of sdk5) if (!c.destroyed) c.destroy();
    redis?.disconnect();
    await stack?.stop();
  });

  it('registration: the admin gate decides who registers; a portal gets its own key, the same one when it registers again', async () => {
    // No trusted network in this stack (PUSH_PUBLISH_TRUSTED_NETWORKS=none): only the admin token opens it.
    await refusedUnchanged('registration without the admin token', Errors.ADMIN_CLOSED, () => register(A_ID, {}));
    await refusedUnchanged('registration with a wrong admin token', Errors.ADMIN_BAD_TOKEN, () => register(A_ID, { Authorization: 'Bearer not-the-admin-token-000000' }));
    await refusedUnchanged('unregistration without the admin token', Errors.ADMIN_CLOSED, () => fetch(`${front}/systemctl/?signature=00`, { method: 'POST', body: '{}' }));
    for (const id of [A_ID, B_ID, C_ID]) {
      const res = await register(id);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/json');
      const answer = (await res.json()) as { status: string; securityKey: string };
      assert.equal(answer.status, 'success');
      assert.match(answer.securityKey, /^[0-9a-f]{64}$/);
      key[id] = answer.securityKey;
    }
    assert.notEqual(key[A_ID], key[B_ID]);
    assert.notEqual(key[A_ID], SECRET.key);
    const again = (await (await register(A_ID)).json()) as { securityKey: string };
    assert.equal(again.securityKey, key[A_ID], 'registering again keeps the key');
    await refusedUnchanged('empty registration', Errors.EMPTY_REQUEST, () => fetch(`${front}/register-client/`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN}` }, body: '' }));
    await refusedUnchanged('registration without verificationQuery', Errors.VERIFICATION_QUERY_REQUIRED, () => fetch(`${front}/register-client/`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN}` }, body: 'x=1' }));
    await refusedUnchanged('registration with a bad licence code', Errors.INVALID_CLIENT, () => fetch(`${front}/register-client/`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN}` }, body: `verificationQuery=${encodeURIComponent('BX_LICENCE=short')}` }));
  });

  it('each portal receives only its own messages, even on the same channel id; each publishes only into its own namespace', async () => {
    const same = channelId();
    const aSub = await ws(A_ID, [signChannel(same, secret(A_ID))]);
    const bSub = await ws(B_ID, [signChannel(same, secret(B_ID))]);
    const aPoll = longPoll(front, [signChannel(same, secret(A_ID))], `&clientId=${A_ID}`);
    await sleep(300);
    assert.equal((await publish(A_ID, [same], msg('from-a', 1))).status, 200);
    const polled = await aPoll;
    assert.deepEqual(polled.messages.map((m) => (m.text as { command: string }).command), ['from-a']);
    assert.equal((await publish(B_ID, [same], msg('from-b', 2))).status, 200);
    await aSub.waitFor(1);
    await bSub.waitFor(1);
    await sleep(500);
    assert.deepEqual(aSub.messages.map((m) => (m.text as { command: string }).command), ['from-a']);
    assert.deepEqual(bSub.messages.map((m) => (m.text as { command: string }).command), ['from-b']);
    // Resuming by mid reads history in the portal's own namespace only.
    const first = aSub.messages[0]?.mid as string;
    const resumedB = await longPoll(front, [signChannel(same, secret(B_ID))], `&clientId=${B_ID}&mid=${'0'.repeat(26)}`);
    assert.deepEqual(resumedB.messages.map((m) => (m.text as { command: string }).command), ['from-b']);
    assert.ok(!resumedB.body.includes(first));
  });

  it('a portal cannot read another portal channel: its own clientId with the other key, or the other clientId with its key, is refused', async () => {
    const ch = channelId();
    const lp = (id: string, s: ChannelSecret) => fetch(`${front}/bitrix/sub/?CHANNEL_ID=${encodeURIComponent(signChannel(ch, s))}&clientId=${id}`);
    await refusedUnchanged('A id, channel signed with B key', Errors.WRONG_CHANNEL_ID, () => lp(A_ID, secret(B_ID)));
    await refusedUnchanged('B id, channel signed with A key', Errors.WRONG_CHANNEL_ID, () => lp(B_ID, secret(A_ID)));
    await refusedUnchanged('installation key in shared mode', Errors.WRONG_CHANNEL_ID, () => lp(A_ID, SECRET));
    await refusedUnchanged('long poll without clientId', Errors.WRONG_CLIENT_ID, () => fetch(`${front}/bitrix/sub/?CHANNEL_ID=${encodeURIComponent(signChannel(ch, secret(A_ID)))}`));
    await refusedUnchanged('long poll with an unregistered clientId', Errors.WRONG_CLIENT_ID, () => fetch(`${front}/bitrix/sub/?CHANNEL_ID=${encodeURIComponent(signChannel(ch, secret(A_ID)))}&clientId=${UNKNOWN}`));
    for (const [name, id] of [['without clientId', null], ['unregistered clientId', UNKNOWN]] as const) {
      const before = await storedState(redis);
      const c = new WsClient(`${front.replace(/^http/, 'ws')}/bitrix/subws/?CHANNEL_ID=${encodeURIComponent(signChannel(ch, secret(A_ID)))}${id === null ? '' : `&clientId=${id}`}`);
      await c.closed;
      assert.equal(c.closeCode, 4036, `WebSocket ${name}`);
      assert.equal(c.closeReason, errorText(Errors.WRONG_CLIENT_ID));
      assert.equal(await storedState(redis), before, `WebSocket ${name}: Redis unchanged`);
    }
  });

  it('portal publishing refusals: no clientId 4025, unknown clientId 4025, missing or wrong signature 4026; nothing is stored', async () => {
    const ch = channelId();
    const body = msg('refused');
    await refusedUnchanged('no clientId', Errors.CLIENT_ID_REQUIRED, () => publish(null, [ch], body, null));
    await refusedUnchanged('unregistered clientId', Errors.CLIENT_ID_REQUIRED, () => publish(UNKNOWN, [ch], body, hmac(body, key[A_ID] as string)));
    await refusedUnchanged('no signature', Errors.WRONG_REQUEST_SIGNATURE, () => publish(A_ID, [ch], body, null));
    await refusedUnchanged('signed with the other portal key', Errors.WRONG_REQUEST_SIGNATURE, () => publish(A_ID, [ch], body, hmac(body, key[B_ID] as string)));
    await refusedUnchanged('signed with the installation key', Errors.WRONG_REQUEST_SIGNATURE, () => publish(A_ID, [ch], body, hmac(body, SECRET.key)));
    await refusedUnchanged('signature of another body', Errors.WRONG_REQUEST_SIGNATURE, () => publish(A_ID, [ch], body, hmac(msg('other'), key[A_ID] as string)));
    // The protocol-4 binary publish is signed the same way.
    const batch = encodeRequestBatch({ requests: [{ incomingMessages: { messages: [{ receivers: [{ id: Buffer.from(ch, 'hex'), isPrivate: true }], body, expiry: 60, type: 'test_b' }] } }] });
    await refusedUnchanged('binary publish signed with the other key', Errors.WRONG_REQUEST_SIGNATURE, () => fetch(`${front}/bitrix/pub/?binaryMode=true&clientId=${A_ID}&signature=${hmac(batch, key[B_ID] as string)}`, { method: 'POST', body: batch }));
    const sub = await ws(A_ID, [signChannel(ch, secret(A_ID))]);
    const ok = await fetch(`${front}/bitrix/pub/?binaryMode=true&clientId=${A_ID}&signature=${hmac(batch, key[A_ID] as string)}`, { method: 'POST', body: batch });
    assert.equal(ok.status, 200);
    await sub.waitFor(1);
  });

  it('online status, channel stats and server stats are per portal', async () => {
    const ch = channelId();
    await ws(A_ID, [signChannel(ch, secret(A_ID))]);
    const online = async (id: string) => {
      const res = await fetch(`${front}/bitrix/pub/?CHANNEL_ID=${ch}&clientId=${id}&signature=${hmac(ch, key[id] as string)}`);
      assert.equal(res.status, 200);
      return ((await res.json()) as { infos: Array<{ channel: string }> }).infos.map((i) => i.channel);
    };
    await eventually(async () => (await online(A_ID)).includes(ch), 5000, 'A sees its channel online');
    assert.deepEqual(await online(B_ID), [], 'B does not see A channel online');
    await refusedUnchanged('online query signed with another key', Errors.WRONG_REQUEST_SIGNATURE, () => fetch(`${front}/bitrix/pub/?CHANNEL_ID=${ch}&clientId=${B_ID}&signature=${hmac(ch, key[A_ID] as string)}`));
    await refusedUnchanged('online query without clientId', Errors.CLIENT_ID_REQUIRED, () => fetch(`${front}/bitrix/pub/?CHANNEL_ID=${ch}`));
    // Protocol-4 channelStats and serverStats over the portal's signed binary request.
    const stats = async (id: string, request: Parameters<typeof encodeRequestBatch>[0]) => {
      const bytes = encodeRequestBatch(request);
      const res = await fetch(`${front}/bitrix/pub/?binaryMode=true&clientId=${id}&signature=${hmac(bytes, key[id] as string)}`, { method: 'POST', body: bytes });
      assert.equal(res.status, 200);
      return decodeResponseBatch(new Uint8Array(await res.arrayBuffer())).responses[0];
    };
    const channelStats = { requests: [{ channelStats: { channels: [{ id: Buffer.from(ch, 'hex'), isPrivate: true }] } }] };
    assert.equal((await stats(A_ID, channelStats))?.channelStats?.channels[0]?.isOnline, true);
    assert.equal((await stats(B_ID, channelStats))?.channelStats?.channels[0]?.isOnline, false);
    const server = JSON.parse((await stats(B_ID, { requests: [{ serverStats: {} }] }))?.serverStats?.json ?? '[]') as Array<Record<string, unknown>>;
    // The same view over GET /server-stat/ naming the portal (signature of its client id).
    const viaGet = await fetch(`${front}/server-stat/?clientId=${B_ID}&signature=${hmac(B_ID, key[B_ID] as string)}`);
    assert.equal(viaGet.status, 200);
    const listed = (await viaGet.json()) as Array<Record<string, unknown>>;
    for (const view of [server, listed]) {
      assert.ok(view.length >= 3, 'every process is listed');
      for (const p of view) {
        assert.ok(p['limits'] !== undefined, 'with its limits');
        for (const traffic of ['websockets', 'pollings', 'channels', 'messages']) assert.equal(p[traffic], undefined, `no ${traffic}: they count every portal`);
      }
    }
    await refusedUnchanged('/server-stat/ naming a portal, signed with another key', Errors.WRONG_REQUEST_SIGNATURE, () => fetch(`${front}/server-stat/?clientId=${B_ID}&signature=${hmac(B_ID, key[A_ID] as string)}`));
    await refusedUnchanged('/server-stat/ naming an unregistered portal', Errors.CLIENT_ID_REQUIRED, () => fetch(`${front}/server-stat/?clientId=${UNKNOWN}&signature=${hmac(UNKNOWN, key[A_ID] as string)}`));
    await refusedUnchanged('/server-stat/ without a portal and without the admin token', Errors.ADMIN_CLOSED, () => fetch(`${front}/server-stat/`));
    const operator = (await (await fetch(`${front}/server-stat/`, { headers: { Authorization: `Bearer ${ADMIN}` } })).json()) as Array<Record<string, unknown>>;
    assert.ok(operator.some((p) => p['websockets'] !== undefined), 'the operator sees the traffic counters');
  });

  it('client publishing (protocol 4 over WebSocket) reaches users of the same portal only; another portal cannot address them', async () => {
    const target = { priv: channelId(), pub: channelId() };
    const senderA = { priv: channelId(), pub: channelId() };
    const senderB = { priv: channelId(), pub: channelId() };
    // Binary sockets (protobuf frames): plain tracked sockets, not the text-frame recorder.
    const binary = async (id: string, c: { priv: string; pub: string }): Promise<TrackedSocket> => {
      const t = new TrackedSocket(`${front.replace(/^http/, 'ws')}/bitrix/subws/?CHANNEL_ID=${encodeURIComponent(signChannelPair(c.priv, c.pub, secret(id)))}&binaryMode=true&clientId=${id}`);
      await t.opened;
      opened.push(t);
      return t;
    };
    const opened: TrackedSocket[] = [];
    const recv = await binary(A_ID, target);
    const frames: Uint8Array[] = [];
    recv.ws.on('message', (d: Buffer) => frames.push(new Uint8Array(d)));
    const a = await binary(A_ID, senderA);
    const b = await binary(B_ID, senderB);
    const clientPublish = (s: ChannelSecret, command: string) => {
      const sig = signPublicChannel(target.pub, s).split('.')[1] as string;
      return encodeRequestBatch({ requests: [{ incomingMessages: { messages: [{ receivers: [{ id: Buffer.from(target.pub, 'hex'), isPrivate: false, signature: Buffer.from(sig, 'hex') }], body: msg(command), expiry: 0, type: '' }] } }] });
    };
    // B with A's channel signature (leaked): B's key checks it, so 4021 and the socket closes.
    b.ws.send(clientPublish(secret(A_ID), 'b-leaked-sig'));
    await b.closed;
    assert.equal(b.closeCode, 4021);
    // B signing with its own key addresses its own namespace: delivered to nobody of A's.
    const b2 = await binary(B_ID, senderB);
    b2.ws.send(clientPublish(secret(B_ID), 'b-own-sig'));
    a.ws.send(clientPublish(secret(A_ID), 'a-to-target'));
    await eventually(() => frames.length >= 1, 5000, 'A client message delivered');
    await sleep(500);
    const got = frames.flatMap((f) => decodeResponseBatch(f).responses.flatMap((r) => r.outgoingMessages?.messages ?? []));
    assert.deepEqual(got.map((m) => (JSON.parse(m.body) as { command: string }).command), ['a-to-target']);
    assert.equal(got[0]?.sender?.type, SenderType.CLIENT);
    assert.equal(Buffer.from(got[0]?.sender?.id ?? []).toString('hex'), senderA.pub);
    for (const t of opened) t.ws.close();
  });

  it('client publishing over POST /rest/ (no WebSocket): with the portal clientId it reaches the portal user; without it 4025, as another portal 4012; nothing stored on a refusal', async () => {
    const target = { priv: channelId(), pub: channelId() };
    const sender = { priv: channelId(), pub: channelId() };
    const sub = await ws(A_ID, [signChannelPair(target.priv, target.pub, secret(A_ID))]);
    const sig = signPublicChannel(target.pub, secret(A_ID)).split('.')[1] as string;
    const batch = encodeRequestBatch({ requests: [{ incomingMessages: { messages: [{ receivers: [{ id: Buffer.from(target.pub, 'hex'), isPrivate: false, signature: Buffer.from(sig, 'hex') }], body: msg('via-rest'), expiry: 60, type: '' }] } }] });
    const from = encodeURIComponent(signChannelPair(sender.priv, sender.pub, secret(A_ID)));
    await refusedUnchanged('/rest/ without clientId', Errors.CLIENT_ID_REQUIRED, () => fetch(`${front}/bitrix/rest/?CHANNEL_ID=${from}`, { method: 'POST', body: batch }));
    await refusedUnchanged('/rest/ naming another portal', Errors.PUBLIC_ID_REQUIRED, () => fetch(`${front}/bitrix/rest/?CHANNEL_ID=${from}&clientId=${B_ID}`, { method: 'POST', body: batch }));
    const ok = await fetch(`${front}/bitrix/rest/?CHANNEL_ID=${from}&clientId=${A_ID}`, { method: 'POST', body: batch });
    assert.equal(ok.status, 200, await ok.text());
    const got = await sub.waitFor(1);
    assert.equal((got[0]?.text as { command: string }).command, 'via-rest');
  });

  it('per-portal limits: connections per listener (4180) and publish rate (4181); one portal at its limit leaves the other unaffected', async () => {
    const ch = channelId();
    const held: WsClient[] = [];
    for (let i = 0; i < MAX_CONN; i++) held.push(await ws(C_ID, [signChannel(ch, secret(C_ID))]));
    const before = await storedState(redis);
    const over = new WsClient(`${front.replace(/^http/, 'ws')}/bitrix/subws/?CHANNEL_ID=${encodeURIComponent(signChannel(ch, secret(C_ID)))}&clientId=${C_ID}`);
    await over.closed;
    assert.equal(over.closeCode, 4180);
    assert.equal(over.closeReason, errorText(Errors.CLIENT_CONNECTION_LIMIT));
    const lp = await fetch(`${front}/bitrix/sub/?CHANNEL_ID=${encodeURIComponent(signChannel(ch, secret(C_ID)))}&clientId=${C_ID}`);
    assert.equal(lp.status, 429);
    assert.ok((await lp.text()).startsWith('4180: '));
    assert.equal(await storedState(redis), before, 'refused subscriptions change nothing');
    // A slot comes back when a connection closes.
    held[0]?.close();
    await held[0]?.closed;
    await eventually(async () => {
      const c = new WsClient(`${front.replace(/^http/, 'ws')}/bitrix/subws/?CHANNEL_ID=${encodeURIComponent(signChannel(ch, secret(C_ID)))}&clientId=${C_ID}`);
      sockets.push(c);
      await c.opened;
      await sleep(200);
      return c.closeCode === null;
    }, 5000, 'a freed slot is usable');

    // Publish rate: the burst is two seconds' worth (2 x RATE); a batch above it never fits.
    const batch = (n: number) => JSON.stringify({ messages: Array.from({ length: n }, (_, i) => ({ channels: [ch], body: { module_id: 'test', command: 'rate', params: { i } } })) });
    const big = batch(2 * RATE + 1);
    await refusedUnchanged('a batch larger than the burst', Errors.CLIENT_PUBLISH_LIMIT, () => publish(C_ID, [], big, undefined, '/bitrix/pub/batch'));
    // Two publishers behind nginx: each has its own budget; spend both and the next is refused.
    let refused: Response | null = null;
    for (let i = 0; i < 6 && refused === null; i++) {
      const res = await publish(C_ID, [], batch(2 * RATE), undefined, '/bitrix/pub/batch');
      if (res.status === 429) refused = res;
      else assert.equal(res.status, 200);
    }
    assert.ok(refused !== null, 'the portal runs out of budget');
    assert.ok((await refused.text()).startsWith('4181: '));
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    // The other portal publishes as usual meanwhile.
    assert.equal((await publish(A_ID, [channelId()], msg('a-still-fine'))).status, 200);
  });

  it('the official client in shared mode (v3/v4, WebSocket and long poll): each portal receives its own messages only, on the same channel ids; client-to-client stays inside a portal', async () => {
    let user = 100;
    await eachMode(MODES, async (mode) => {
      // One pair of portals per mode (the modes run at once), with the same shared channel id.
      const pa = new Portal(front, front, secret(A_ID), A_ID);
      const pb = new Portal(front, front, secret(B_ID), B_ID);
      (pb as { shared: string }).shared = pa.shared;
      const ca = new SdkClient(pa, user++, mode);
      const cb = new SdkClient(pb, user++, mode);
      sdk.push(ca, cb);
      await Promise.all([ca.start(), cb.start()]);
      assert.ok(ca.connectionPath().includes(`clientId=${A_ID}`), `${mode.name}: the SDK sends clientId`);
      await sleep(300);
      await pa.publish([pa.shared], 'test', 'shared-a', {});
      await pb.publish([pb.shared], 'test', 'shared-b', {});
      await pa.publish([pa.channels(ca.userId).priv], 'test', 'private-a', {});
      await ca.waitForCommands(['shared-a', 'private-a']);
      await cb.waitForCommands(['shared-b']);
      await sleep(500);
      assert.deepEqual(wireCommands(ca), ['shared-a', 'private-a'], `${mode.name}: A`);
      assert.deepEqual(wireCommands(cb), ['shared-b'], `${mode.name}: B`);
    });
    // Client-to-client in protocol 4 over WebSocket, within portal A.
    const pa = new Portal(front, front, secret(A_ID), A_ID);
    const ws4 = MODES.find((m) => m.version === 4 && m.websocket);
    assert.ok(ws4 !== undefined);
    const from = new SdkClient(pa, user++, ws4);
    const to = new SdkClient(pa, user++, ws4);
    sdk.push(from, to);
    await Promise.all([from.start(), to.start()]);
    await from.pull.sendMessage([to.userId], 'test', 'c2c', { x: 1 }, 0);
    await eventually(() => to.client.some((m) => m.command === 'c2c'), 10_000, 'client-to-client within portal A');
    assert.equal((to.client.find((m) => m.command === 'c2c')?.extra['sender'] as { id: string }).id, pa.channels(from.userId).pub);
  });

  it('protocol 5 in shared mode (official client, token subscriptions): users, status changes, last seen and client messages stay inside their portal, even for the same user ids', async () => {
    const pa = new PortalV5(front, front, key[A_ID] as string, A_ID);
    const pb = new PortalV5(front, front, key[B_ID] as string, B_ID);
    (pb as { shared: string }).shared = pa.shared;
    const v5 = async (p: PortalV5, userId: number): Promise<SdkV5Client> => {
      const c = new SdkV5Client(p, userId);
      sdk5.push(c);
      await c.start();
      await c.connected();
      return c;
    };
    // The same user ids in both portals.
    const [a500, b500, a501] = await Promise.all([v5(pa, 500), v5(pb, 500), v5(pa, 501)]);
    assert.ok(a500.connectionPath().includes(`clientId=${A_ID}`), 'the SDK sends clientId with its token');
    await pa.publish({ users: [500] }, 'test', 'to-a500', {});
    await pb.publish({ users: [500] }, 'test', 'to-b500', {});
    await pa.publish({ channels: [pa.shared] }, 'test', 'a-shared', {});
    await a500.waitForCommands(['to-a500', 'a-shared']);
    await b500.waitForCommands(['to-b500']);
    await sleep(500);
    assert.deepEqual(a500.commands(), ['to-a500', 'a-shared']);
    assert.deepEqual(b500.commands(), ['to-b500']);
    assert.deepEqual(await a501.pull.listChannels(), [pa.shared, 'user:501'], 'listChannels names the portal\'s own ids');
    // Client-to-client: user 501 of A writes to user 500: A's user 500 only.
    await a501.pull.sendMessage([500], 'test', 'c2c-v5', {});
    await eventually(() => a500.client.some((m) => m.command === 'c2c-v5'), 5000, 'A user 500 gets the client message');
    await sleep(500);
    assert.ok(!b500.client.some((m) => m.command === 'c2c-v5'), 'B user 500 does not');
    // Status changes: A's watcher hears A's user 502, not B's user 502.
    const events: Array<{ userId: number; isOnline: boolean }> = [];
    await a501.pull.subscribeUserStatusChange(502, (e: { userId: number; isOnline: boolean }) => events.push(e));
    await v5(pb, 502);
    await sleep(1500);
    assert.deepEqual(events, [], 'B user 502 coming online is not A user 502');
    await v5(pa, 502);
    await eventually(() => events.length === 1, 5000, 'A user 502 online');
    assert.deepEqual(events[0], { userId: 502, isOnline: true });
    // Last seen: B user 503 is connected, A knows no user 503.
    await v5(pb, 503);
    await a501.pull.getUsersLastSeen([500, 503]);
    const asked = a501.restCalls.filter((r) => r.method === 'pull.api.user.getLastSeen').map((r) => (r.params as { userIds: number[] }).userIds);
    assert.deepEqual(asked, [[503]], 'the server answers for A user 500 (online) and knows no A user 503 (only B has one): the client asks its portal about 503 only');
    // The portal endpoint: no clientId 4025, another portal's key 4140; nothing stored.
    const doc = JSON.stringify([{ jsonrpc: '2.0', method: 'publish', params: { userList: [500], body: { module_id: 'test', command: 'refused' }, expiry: 60 } }]);
    await refusedUnchanged('portal JSON-RPC without clientId', Errors.CLIENT_ID_REQUIRED, () => fetch(`${front}/bitrix/api/?signature=${hmac(doc, key[A_ID] as string)}`, { method: 'POST', body: doc }));
    await refusedUnchanged('portal JSON-RPC signed with another portal key', Errors.PORTAL_RPC_SIGNATURE, () => fetch(`${front}/bitrix/api/?signature=${hmac(doc, key[B_ID] as string)}&clientId=${A_ID}`, { method: 'POST', body: doc }));
    // A token of portal B presented as portal A is refused (4010).
    const c = new WsClient(`${front.replace(/^http/, 'ws')}/bitrix/subws/?token=${pb.token(500)}&jsonRpc=true&clientId=${A_ID}`);
    await c.closed;
    assert.equal(c.closeCode, 4010);
  });

  it('unregistration by /systemctl/: refusals first (4026, 4032-4035), then the portal is refused everywhere and its connections closed within seconds while the other goes on', async () => {
    const good = JSON.stringify({ method: 'unregister', params: { clientId: B_ID, host: 'push' } });
    await refusedUnchanged('unsigned', Errors.WRONG_REQUEST_SIGNATURE, () => fetch(`${front}/systemctl/`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN}` }, body: good }));
    await refusedUnchanged('signed with a portal key', Errors.WRONG_REQUEST_SIGNATURE, () => systemctl(good, hmac(good, key[B_ID] as string)));
    await refusedUnchanged('empty', Errors.EMPTY_REQUEST, () => systemctl('', hmac('', SECRET.key)));
    await refusedUnchanged('not JSON', Errors.BAD_JSON_REQUEST, () => systemctl('{'));
    await refusedUnchanged('no method', Errors.NO_METHOD, () => systemctl('{"params":{}}'));
    await refusedUnchanged('no params', Errors.NO_PARAMS, () => systemctl('{"method":"unregister"}'));
    await refusedUnchanged('unknown command', Errors.UNKNOWN_COMMAND, () => systemctl('{"method":"reboot","params":{}}'));
    const missing = (await (await systemctl(JSON.stringify({ method: 'unregister', params: { clientId: UNKNOWN } }))).json()) as unknown;
    assert.deepEqual(missing, { result: null, error: 'Client not found.' });

    // Connections B holds when it is removed: closed with 4036 (the long poll answered with it).
    const held = channelId();
    const bWs = await ws(B_ID, [signChannel(held, secret(B_ID))]);
    const bPoll = fetch(`${front}/bitrix/sub/?CHANNEL_ID=${encodeURIComponent(signChannel(held, secret(B_ID)))}&clientId=${B_ID}`);
    const aWs = await ws(A_ID, [signChannel(held, secret(A_ID))]);
    await sleep(300);
    const res = await systemctl(good);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { result: { status: 'success' }, error: null });
    const ch = channelId();
    // Every process forgets a removed portal within its cache time (2 s); a publish that reached a
    // publisher still holding it meanwhile is stored, in B's namespace, before the snapshot below.
    await eventually(async () => (await publish(B_ID, [ch], msg('after'))).status === 400, 5000, 'B publishing refused');
    await sleep(2500);
    await refusedUnchanged('publish by the unregistered portal', Errors.CLIENT_ID_REQUIRED, () => publish(B_ID, [ch], msg('after')));
    await refusedUnchanged('subscription of the unregistered portal', Errors.WRONG_CLIENT_ID, () => fetch(`${front}/bitrix/sub/?CHANNEL_ID=${encodeURIComponent(signChannel(ch, secret(B_ID)))}&clientId=${B_ID}`));
    assert.equal((await publish(A_ID, [ch], msg('a-goes-on'))).status, 200);
    await eventually(() => bWs.closeCode !== null, 10_000, 'B WebSocket closed');
    assert.equal(bWs.closeCode, 4036);
    const polled = await bPoll;
    assert.equal(polled.status, 400);
    assert.equal(await polled.text(), errorText(Errors.WRONG_CLIENT_ID));
    assert.equal(aWs.closeCode, null, 'A connections stay');
    // Registering again gives a new key: the old one signs nothing any more.
    const fresh = (await (await register(B_ID)).json()) as { securityKey: string };
    assert.notEqual(fresh.securityKey, key[B_ID]);
    await refusedUnchanged('old key after re-registration', Errors.WRONG_REQUEST_SIGNATURE, () => publish(B_ID, [ch], msg('old-key'), hmac(msg('old-key'), key[B_ID] as string)));
  });
});

describe('personal mode (the default): no registration routes', () => {
  it('/register-client/ and /systemctl/ answer 404 4182 and change nothing; clientId is ignored as before', async () => {
    const redis = await startRedis();
    const pub = await startApp('publisher', { REDIS_URL: redis.url });
    try {
      const c = redis.client();
      for (const path of ['/register-client/', '/systemctl/', '/bitrix/register-client/']) {
        const before = await storedState(c);
        const res = await fetch(`${pub.url}${path}`, { method: 'POST', body: `verificationQuery=${encodeURIComponent(`BX_LICENCE=${A_ID}`)}` });
        assert.equal(res.status, 404, path);
        assert.equal(await res.text(), errorText(Errors.SHARED_MODE_ONLY), path);
        assert.equal(await storedState(c), before, `${path}: Redis unchanged`);
      }
      // A portal in personal mode publishes as before, whatever else is in the query.
      assert.equal((await fetch(`${pub.url}/bitrix/pub/?CHANNEL_ID=${channelId()}&clientId=${A_ID}`, { method: 'POST', body: msg('personal') })).status, 200);
      c.disconnect();
    } finally {
      await pub.stop();
      await redis.stop();
    }
  });
});
