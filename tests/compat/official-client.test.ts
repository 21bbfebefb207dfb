import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MODES, Portal, SdkClient, type Mode } from './sdk-harness.js';
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
let nextUser = 1;

async function eachMode<T>(modes: readonly Mode[], run: (mode: Mode) => Promise<T>): Promise<T[]> {
  return Promise.all(modes.map(run));
}

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
    const connectsBefore = cs.map((c) => c.statuses.filter((s) => s === 'online').length);
    // A replacement process binds the same port first (uWS listens with SO_REUSEPORT), so the
    // client's first reconnect attempt (0.5 s after the close) finds a listener, as behind a balancer.
    const replacement = await startApp('listener', { ...env(redis), PUSH_PORT: String(listener.port) });
    await listener.stop();
    listener = replacement;
    // Published while the clients are disconnected: only a reconnect with `mid` can bring these.
    for (const c of cs) for (const cmd of ['gap1', 'gap2']) await portal.publish([portal.channels(c.userId).priv], 'test', cmd, {});
    await Promise.all(cs.map((c) => c.waitForCommands(['gap1', 'gap2'], 20_000)));
    for (const c of cs) await portal.publish([portal.channels(c.userId).priv], 'test', 'after', {});
    await Promise.all(cs.map((c) => c.waitForCommands(['after'])));
    await sleep(300);
    cs.forEach((c, i) => {
      assert.deepEqual(c.commands(), ['before', 'gap1', 'gap2', 'after'], `${c.mode.name}: nothing lost, nothing twice`);
      assert.match(c.connectionPath(), /[?&]mid=[0-9]{26}/, `${c.mode.name}: reconnected with mid`);
      if (c.mode.websocket) assert.ok(c.statuses.filter((s) => s === 'online').length > (connectsBefore[i] ?? 0), `${c.mode.name}: went through a reconnect`);
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
      await c.connected(10_000);
      await portal.publish([portal.channels(c.userId).priv], 'test', 'after-reload', {});
      await c.waitForCommands(['after-reload']);
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
    });
  });
});
