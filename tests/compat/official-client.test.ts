import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { bytesToHex, encodeRequestBatch, V4Types } from '@push/protocol';
import { MODES, Portal, SdkClient, eachMode, wireCommands, type HttpRecord, type Mode, type SocketRecord } from './sdk-harness.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startApp, type AppProcess } from '../helpers/apps.js';
import { eventually, sleep } from '../helpers/ports.js';

/**
 * The official client (@bitrix24/b24jssdk 2.2.0, unmodified) against real publisher and listener
 * processes and a real Redis, in its four modes. Each scenario runs the four modes at once (one
 * user per mode) so the client's own fixed timers are waited for once per scenario, not four times.
 */

const V4_MODES = MODES.filter((m) => m.version === 4);
const WS_MODES = MODES.filter((m) => m.websocket);
const LP_MODES = MODES.filter((m) => !m.websocket);
let nextUser = 1;

/** The `mid` query parameter of a connection URL (null when absent). */
const midOf = (url: string): string | null => new URL(url).searchParams.get('mid');

/**
 * A client's `test`-module messages as they came over the wire; asserts none came twice (the SDK
 * would drop a repeated mid silently, so only the wire shows a duplicate).
 */

describe('official client @bitrix24/b24jssdk against the stack', () => {
  let redis: RedisServer;
  let pub: AppProcess;
  let listener: AppProcess;
  let portal: Portal;
  const clients: SdkClient[] = [];
  const env = (r: RedisServer): Record<string, string> => ({ REDIS_URL: r.url, PUSH_UNSUBSCRIBE_DELAY_MS: '200', PUSH_LONGPOLL_TIMEOUT_S: '40' });

  const client = async (mode: Mode, config?: Record<string, unknown>): Promise<SdkClient> => {
    const c = new SdkClient(portal, nextUser++, mode);
    clients.push(c);
    await c.start(config);
    return c;
  };

  before(async () => {
    redis = await startRedis();
    [pub, listener] = await Promise.all([startApp('publisher', env(redis)), startApp('listener', env(redis))]);
    portal = new Portal(pub.url, listener.url);
  });
  after(async () => {
    for (const c of clients) c.destroy();
    await Promise.all([pub?.stop(), listener?.stop()]);
    await redis?.stop();
  });

  it('private and shared channel messages arrive once each and in order, in every mode', async () => {
    await eachMode(MODES, async (mode) => {
      const c = await client(mode);
      if (mode.websocket) assert.equal(c.wsMode(), mode.version === 4 ? 'protobuf' : 'text', `${mode.name} framing`);
      const path = c.connectionPath();
      assert.ok(path.includes(mode.websocket ? '/bitrix/subws/' : '/bitrix/sub/'), `${mode.name} transport: ${path}`);
      assert.equal(path.includes('binaryMode=true'), mode.version === 4, `${mode.name} binaryMode`);
      const priv = portal.channels(c.userId).priv;
      const expected: string[] = [];
      for (let i = 0; i < 6; i++) {
        const cmd = `m${i}`;
        expected.push(cmd);
        // Private only, shared only, and both at once (must still arrive once).
        const targets = i % 3 === 0 ? [priv] : i % 3 === 1 ? [portal.shared] : [priv, portal.shared];
        // The shared channel is shared by every mode's client: tag commands with the user.
        await portal.publish(targets, 'test', `${cmd}-u${c.userId}`, { i });
      }
      const mine = expected.map((e) => `${e}-u${c.userId}`);
      await c.waitForCommands(mine);
      await sleep(300);
      assert.deepEqual(c.commands().filter((x) => x.endsWith(`-u${c.userId}`)), mine, `${mode.name}: once each, in order`);
      // Protobuf frames carry the sender (BACKEND = 2), which the client copies into extra.sender;
      // text frames have none: this proves which framing each mode really got.
      const sender = c.server[0]?.extra['sender'] as { type?: number } | undefined;
      if (mode.version === 4) assert.equal(sender?.type, 2, `${mode.name}: sender BACKEND from protobuf`);
      else assert.equal(sender, undefined, `${mode.name}: text frame has no sender`);
    });
  });

  it('a listener restart: every client reconnects with its mid and misses nothing published meanwhile', async () => {
    const cs = await eachMode(MODES, (mode) => client(mode));
    for (const c of cs) await portal.publish([portal.channels(c.userId).priv], 'test', 'before', {});
    await Promise.all(cs.map((c) => c.waitForCommands(['before'])));
    // The cursor each client holds: the mid the server sent with `before`.
    const lastMid = cs.map((c) => {
      const got = c.wireMessages().filter((m) => m.command === 'before');
      assert.equal(got.length, 1, `${c.mode.name}: before once`);
      assert.match(got[0]?.mid ?? '', /^[0-9]{26}$/);
      return got[0]?.mid as string;
    });
    const port = listener.port;
    // The old listener goes away completely (drain, exit) before anything else happens: no process
    // serves the port, so the clients cannot receive the gap messages live.
    await listener.stop();
    const stoppedAt = Date.now();
    await eventually(() => cs.every((c) => !c.pull.isConnected()), 10_000, 'every client noticed the listener is gone');
    for (const c of cs) for (const cmd of ['gap1', 'gap2']) await portal.publish([portal.channels(c.userId).priv], 'test', cmd, {});
    await sleep(300);
    for (const c of cs) assert.deepEqual(c.commands(), ['before'], `${c.mode.name}: nothing can arrive while no listener runs`);
    listener = await startApp('listener', { ...env(redis), PUSH_PORT: String(port) });
    // The SDK retries 0.5 s after losing the connection (refused: nothing listens), then 15-18 s
    // later; the replacement is up long before that second retry.
    await Promise.all(cs.map((c) => c.waitForCommands(['gap1', 'gap2'], 45_000)));
    for (const c of cs) await portal.publish([portal.channels(c.userId).priv], 'test', 'after', {});
    await Promise.all(cs.map((c) => c.waitForCommands(['after'])));
    await sleep(300);
    cs.forEach((c, i) => {
      const name = c.mode.name;
      assert.deepEqual(c.commands(), ['before', 'gap1', 'gap2', 'after'], `${name}: nothing lost, nothing twice`);
      assert.deepEqual(wireCommands(c), ['before', 'gap1', 'gap2', 'after'], `${name}: on the wire too, each once, in order`);
      // Every connection attempt after the old listener's last answer (refused ones included)
      // carried the cursor, and the first one the replacement answered brought the gap messages.
      let attempts: Array<SocketRecord | HttpRecord>;
      let first: SocketRecord | HttpRecord | undefined;
      if (c.mode.websocket) {
        const all = c.sockets();
        const lastOld = all.findLastIndex((s) => s.openedAt !== null && s.openedAt < stoppedAt);
        assert.equal(all[lastOld]?.closeCode, 4111, `${name}: the draining listener closed the socket with 4111`);
        assert.match(all[lastOld]?.closeReason ?? '', /^4111: /);
        attempts = all.slice(lastOld + 1);
        first = (attempts as SocketRecord[]).find((s) => s.openedAt !== null);
        const gapFrames = c.wireMessages().filter((m) => m.command.startsWith('gap')).map((m) => m.frame.split(':')[0]);
        assert.deepEqual(gapFrames, [`ws${all.indexOf(first as SocketRecord)}`, `ws${all.indexOf(first as SocketRecord)}`], `${name}: the gap came on the first socket to the replacement`);
      } else {
        const all = c.requests().filter((r) => r.method === 'GET');
        // The old listener answers until it exits (parked polls 304, a poll on a kept-alive
        // connection while draining 503); anything answered after that is the replacement.
        const answered = (r: HttpRecord): boolean => r.status !== null && r.status !== 0;
        const lastOld = all.findLastIndex((r) => answered(r) && (r.doneAt as number) <= stoppedAt);
        attempts = all.slice(lastOld + 1);
        first = (attempts as HttpRecord[]).find(answered);
        assert.equal((first as HttpRecord | undefined)?.status, 200, `${name}: the replacement answered the resumed poll at once`);
        const gapFrames = c.wireMessages().filter((m) => m.command.startsWith('gap')).map((m) => m.frame);
        const firstKey = `lp${c.requests().indexOf(first as HttpRecord)}`;
        assert.deepEqual(gapFrames, [firstKey, firstKey], `${name}: both gap messages in that answer`);
      }
      assert.ok(first !== undefined, `${name}: reconnected`);
      assert.ok(attempts.length >= 2, `${name}: at least one refused attempt before the replacement (${attempts.length})`);
      const upTo = attempts.slice(0, attempts.indexOf(first) + 1);
      assert.deepEqual(upTo.map((a) => midOf(a.url)), upTo.map(() => lastMid[i]), `${name}: every reconnect URL carried mid=${lastMid[i]}`);
      // Any close but 4010 means "reconnect with backoff", never a config reload.
      assert.ok(!c.restCalls.includes('pull.config.get'), `${name}: no config reload`);
    });
  });

  it('channel_expire with action get_config: the client reloads its config over REST and reconnects with the new ids, losing nothing', async () => {
    const cs = await eachMode(MODES, (mode) => client(mode));
    await eachMode(MODES, async (mode) => {
      const c = cs.find((x) => x.mode === mode) as SdkClient;
      const old = portal.channels(c.userId);
      const oldSigned = portal.signedPrivate(c.userId, mode.version);
      portal.rotate(c.userId);
      await portal.publish([old.priv], 'pull', 'channel_expire', { action: 'get_config', channel: { id: oldSigned, type: 'private' } });
      await eventually(() => c.restCalls.includes('pull.config.get'), 10_000, `${mode.name} config reload`);
      // Published to the new id right after the reload, whether or not the client is connected yet.
      const fresh = portal.channels(c.userId);
      await portal.publish([fresh.priv], 'test', 'on-new-channel', {});
      await c.waitForCommands(['on-new-channel'], 15_000);
      await eventually(() => c.connectionPath().includes(fresh.priv), 5000, `${mode.name} connected with the new id`);
      assert.ok(!c.connectionPath().includes(old.priv), `${mode.name}: old id dropped`);
      await portal.publish([fresh.priv], 'test', 'live-after', {});
      await c.waitForCommands(['live-after']);
      await sleep(200);
      assert.deepEqual(c.commands(), ['on-new-channel', 'live-after'], `${mode.name}: each once`);
    });
  });

  it('channel_expire with action reconnect and new_channel: the client swaps the channel and reconnects without asking REST', async () => {
    const cs = await eachMode(MODES, (mode) => client(mode));
    await eachMode(MODES, async (mode) => {
      const c = cs.find((x) => x.mode === mode) as SdkClient;
      const old = portal.channels(c.userId);
      const oldSigned = portal.signedPrivate(c.userId, mode.version);
      portal.rotate(c.userId);
      const fresh = portal.channels(c.userId);
      const newChannel = (portal.config(c.userId, mode)['channels'] as { private: Record<string, unknown> }).private;
      await portal.publish([old.priv], 'pull', 'channel_expire', { action: 'reconnect', channel: { id: oldSigned, type: 'private' }, new_channel: newChannel });
      await eventually(() => c.connectionPath().includes(fresh.priv) && c.pull.isConnected(), 10_000, `${mode.name} reconnected on the new id`);
      await portal.publish([fresh.priv], 'test', 'on-swapped-channel', {});
      await c.waitForCommands(['on-swapped-channel']);
      assert.ok(!c.restCalls.includes('pull.config.get'), `${mode.name}: no REST config reload`);
    });
  });

  it('a WebSocket closed with 4010 makes the client reload its config (after its own 6-35 s delay) and connect', async () => {
    const cs = await eachMode(WS_MODES, async (mode) => {
      const c = new SdkClient(portal, nextUser++, mode);
      clients.push(c);
      // The first config carries a signature the server refuses: the server closes with 4010.
      await c.pull.start(portal.config(c.userId, mode, { breakSignature: true }) as never);
      return c;
    });
    await eachMode(WS_MODES, async (mode) => {
      const c = cs.find((x) => x.mode === mode) as SdkClient;
      await eventually(() => c.restCalls.includes('pull.config.get'), 40_000, `${mode.name} reload after 4010`);
      const refused = c.sockets()[0] as SocketRecord;
      assert.equal(refused.closeCode, 4010, `${mode.name}: closed with 4010`);
      assert.equal(refused.closeReason, '4010: Wrong Channel Id.');
      const reloadAt = c.restLog.find((r) => r.method === 'pull.config.get')?.at as number;
      const delay = reloadAt - (refused.closedAt as number);
      assert.ok(delay >= 5000 && delay <= 36_000, `${mode.name}: reload ${delay} ms after the close (the SDK waits 6-35 s)`);
      assert.equal(c.sockets().filter((s) => s.createdAt < reloadAt).length, 1, `${mode.name}: no reconnect with the refused config meanwhile`);
      await c.connected(10_000);
      const good = c.sockets().at(-1) as SocketRecord;
      assert.ok(good.url.includes(encodeURIComponent(portal.signedPrivate(c.userId, mode.version))), `${mode.name}: reconnected with the reloaded, valid signature`);
      await portal.publish([portal.channels(c.userId).priv], 'test', 'after-reload', {});
      await c.waitForCommands(['after-reload']);
    });
  });

  it('a long poll with a bad signature or an expired channel gets 400 "4010: Wrong Channel Id." with CORS headers; the SDK only retries with backoff and never reloads its config', async () => {
    // The SDK's long-poll connector treats every status but 200/304 as a plain connection error
    // (reconnect with backoff 0.5/15/15/45 s...); only a WebSocket close code can ask it for a
    // config reload. A long-poll client with a refused config is therefore stuck until its 60 s
    // config check finds the config's channels past their `end` (docs/compat-checklist.md).
    // An expired channel: past the read window of a listener with shortened windows.
    const short = await startApp('listener', { ...env(redis), PUSH_CHANNEL_WRITE_S: '1', PUSH_CHANNEL_READ_S: '2' });
    try {
      const shortPortal = new Portal(pub.url, short.url);
      const expiredUser = nextUser++;
      await shortPortal.publish([shortPortal.channels(expiredUser).priv], 'test', 'creates-the-channel', {});
      await sleep(2500);
      const v4lp = LP_MODES.find((m) => m.version === 4) as Mode;
      const cases = [
        ...LP_MODES.map((mode) => ({ label: `${mode.name}, bad signature`, client: new SdkClient(portal, nextUser++, mode), broken: true })),
        { label: `${v4lp.name}, expired channel`, client: new SdkClient(shortPortal, expiredUser, v4lp), broken: false },
      ];
      await Promise.all(
        cases.map(async ({ label, client: c, broken }) => {
          clients.push(c);
          await c.pull.start(c.portal.config(c.userId, c.mode, { breakSignature: broken }) as never).then(
            () => assert.fail(`${label}: start() should fail`),
            () => undefined,
          );
          // The second request comes after the SDK's second back-off step (15-18 s).
          await eventually(() => c.requests().filter((r) => r.doneAt !== null).length >= 2, 25_000, `${label}: a retry`);
          const [first, second] = c.requests();
          for (const r of [first, second] as HttpRecord[]) {
            assert.equal(r.method, 'GET');
            assert.ok(r.url.startsWith(`${c.portal.subUrl}/bitrix/sub/?`), r.url);
            assert.equal(r.status, 400, `${label}: ${r.url}`);
            assert.equal(typeof r.body === 'string' ? r.body : Buffer.from(r.body ?? new Uint8Array()).toString('utf8'), '4010: Wrong Channel Id.', label);
            assert.equal(r.headers['access-control-allow-origin'], '*', label);
            assert.equal(r.headers['access-control-expose-headers'], 'Last-Message-Id', label);
          }
          const gap = (second as HttpRecord).startedAt - ((first as HttpRecord).doneAt as number);
          assert.ok(gap >= 14_000 && gap <= 19_000, `${label}: retried ${gap} ms later (the SDK's back-off), not at once`);
          assert.ok(!c.restCalls.includes('pull.config.get'), `${label}: a long-poll 4010 does not reload the config`);
          assert.equal(c.pull.isConnected(), false, label);
          assert.ok(!c.statuses.includes('online'), `${label}: never online`);
        }),
      );
    } finally {
      await short.stop();
    }
  });

  it('checklist 12 with the official client: back-to-back publishes and a two-message binary request reach a WebSocket client once each, in order', async () => {
    await eachMode(WS_MODES, async (mode) => {
      const c = await client(mode);
      const priv = portal.channels(c.userId).priv;
      // Two separate portal requests, the second sent as soon as the first is answered.
      await portal.publish([priv], 'test', 'p1', {});
      await portal.publish([priv], 'test', 'p2', {});
      // One protocol-4 request holding two messages (as PHP batches them).
      const message = (command: string): Record<string, unknown> => ({ receivers: [{ id: Buffer.from(priv, 'hex'), isPrivate: true }], body: JSON.stringify({ module_id: 'test', command, params: {} }), expiry: 60, type: `test_${command}` });
      const res = await fetch(`${portal.pubUrl}/bitrix/pub/?binaryMode=true`, { method: 'POST', body: encodeRequestBatch({ requests: [{ incomingMessages: { messages: [message('b1'), message('b2')] } }] }) });
      assert.equal(res.status, 200);
      await c.waitForCommands(['p1', 'p2', 'b1', 'b2']);
      await sleep(500);
      assert.deepEqual(c.commands(), ['p1', 'p2', 'b1', 'b2'], `${mode.name}: the SDK handed over each once, in order`);
      assert.deepEqual(wireCommands(c), ['p1', 'p2', 'b1', 'b2'], `${mode.name}: each once on the wire`);
      const frames = c.wireMessages().filter((m) => m.moduleId === 'test');
      const frameOf = (cmd: string): string | undefined => frames.find((m) => m.command === cmd)?.frame;
      // The two messages of one request reach the listener together and leave in one frame: the
      // client really had to split a shared frame (protobuf batch / concatenated text frames).
      assert.equal(frameOf('b1'), frameOf('b2'), `${mode.name}: b1 and b2 shared a frame`);
      assert.ok(frames.every((m) => m.binary === (mode.version === 4)), `${mode.name}: ${mode.version === 4 ? 'protobuf' : 'text'} frames`);
    });
  });

  it('client-to-client: a message sent with sendMessage() to another user reaches that user, sender CLIENT with the public id', async () => {
    await eachMode(V4_MODES, async (mode) => {
      const sender = await client(mode);
      const target = await client(mode);
      await sender.pull.sendMessage([target.userId], 'test', 'hello-client', { from: sender.userId });
      await eventually(() => target.client.length > 0, 10_000, `${mode.name} client message`);
      const m = target.client[0];
      assert.equal(m?.command, 'hello-client');
      assert.deepEqual(m?.params, { from: sender.userId });
      const from = m?.extra['sender'] as { type?: number; id?: string } | undefined;
      assert.equal(from?.type, 1, `${mode.name}: sender type CLIENT`);
      assert.equal(from?.id, portal.channels(sender.userId).pub, `${mode.name}: sender public id`);
      assert.ok(sender.restCalls.includes('pull.channel.public.list'), `${mode.name}: public ids came from the portal`);
      await sleep(200);
      assert.equal(sender.client.length, 0, 'the sender does not receive its own message');
      assert.equal(target.client.length, 1, 'exactly once');
      // The route the SDK took: a binary frame on its own socket in WebSocket mode, a POST to the
      // publish URL (/bitrix/rest/) in long-poll mode, never both.
      const posts = sender.requests().filter((r) => r.method === 'POST');
      const frames = sender.sockets().flatMap((s) => s.sent);
      let sent: Uint8Array | null;
      if (mode.websocket) {
        assert.deepEqual(posts, [], `${mode.name}: no HTTP publish`);
        assert.equal(frames.length, 1, `${mode.name}: one frame sent`);
        assert.equal(frames[0]?.binary, true, `${mode.name}: a binary frame`);
        sent = frames[0]?.data ?? null;
      } else {
        assert.equal(sender.sockets().length, 0, `${mode.name}: no WebSocket at all`);
        assert.equal(posts.length, 1, `${mode.name}: one POST`);
        const post = posts[0] as HttpRecord;
        const url = new URL(post.url);
        assert.equal(`${url.origin}${url.pathname}`, `${portal.pubUrl}/bitrix/rest/`, `${mode.name}: POST /bitrix/rest/ on the publisher`);
        assert.equal(url.searchParams.get('CHANNEL_ID')?.split('/')[0], portal.signedPrivate(sender.userId, 4), `${mode.name}: CHANNEL_ID names the sender's priv:pub`);
        await eventually(() => post.status !== null, 5000, 'the POST answered');
        assert.equal(post.status, 200, `${mode.name}: accepted`);
        sent = post.requestBody;
      }
      // Either way the payload is a RequestBatch addressed to the target's public id.
      assert.ok(sent !== null, `${mode.name}: a payload`);
      const batch = V4Types.RequestBatch.toObject(V4Types.RequestBatch.decode(sent), { oneofs: true }) as { requests: Array<{ incomingMessages?: { messages: Array<{ receivers: Array<{ id: Uint8Array; isPrivate?: boolean }> }> } }> };
      const receivers = batch.requests[0]?.incomingMessages?.messages[0]?.receivers ?? [];
      assert.deepEqual(receivers.map((r) => [bytesToHex(r.id), r.isPrivate === true]), [[portal.channels(target.userId).pub, false]], `${mode.name}: receiver`);
    });
  });
});
