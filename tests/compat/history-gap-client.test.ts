import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MODES, Portal, SdkClient, eachMode, wireCommands, type Mode } from './sdk-harness.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startApp, type AppProcess } from '../helpers/apps.js';
import { eventually, sleep } from '../helpers/ports.js';

/**
 * The loss signal (`pull`/`history_gap`, docs/reliability.md) against the official client
 * (@bitrix24/b24jssdk, unmodified) in its four modes, with real publisher, listener and Redis:
 * the client must ignore the notice safely and keep working.
 */

let nextUser = 1;


describe('official client and the history_gap notice', () => {
  let redis: RedisServer;
  let pub: AppProcess;
  let listener: AppProcess;
  let portal: Portal;
  let env: Record<string, string>;
  const clients: SdkClient[] = [];
  const client = async (mode: Mode): Promise<SdkClient> => {
    const c = new SdkClient(portal, nextUser++, mode);
    clients.push(c);
    await c.start();
    return c;
  };

  before(async () => {
    redis = await startRedis();
    env = { REDIS_URL: redis.url, PUSH_UNSUBSCRIBE_DELAY_MS: '200', PUSH_LONGPOLL_TIMEOUT_S: '40' };
    [pub, listener] = await Promise.all([startApp('publisher', env), startApp('listener', env)]);
    portal = new Portal(pub.url, listener.url);
  });
  after(async () => {
    for (const c of clients) c.destroy();
    await Promise.all([pub?.stop(), listener?.stop()]);
    await redis?.stop();
  });

  it('a resume past the kept history (150 published while away, 100 kept): the client ignores the pull/history_gap notice and goes on normally', async () => {
    // The notice is a `pull` system command the client does not know. The SDK dispatches `pull`
    // commands on CHANNEL_EXPIRE, CONFIG_EXPIRE and SERVER_RESTART only (the legacy BX.PullClient
    // has the same switch, with an empty default); anything else is dropped without a reconnect,
    // a config reload or a callback. Shown here in all four modes, text (protocol 3) and protobuf.
    const cs = await eachMode(MODES, (mode) => client(mode));
    for (const c of cs) await portal.publish([portal.channels(c.userId).priv], 'test', 'before', {});
    await Promise.all(cs.map((c) => c.waitForCommands(['before'])));
    // Away: no listener runs while the 150 are published (as in the listener-restart test of
    // official-client.test.ts); the clients come back with their mid on their own retry.
    const port = listener.port;
    await listener.stop();
    await eventually(() => cs.every((c) => !c.pull.isConnected()), 10_000, 'every client away');
    const awayAt = Date.now();
    const gone = Array.from({ length: 150 }, (_, i) => `g${i}`);
    for (const c of cs) {
      const messages = gone.map((command) => ({ channels: [portal.channels(c.userId).priv], body: { module_id: 'test', command, params: {}, extra: { server_time_unix: Date.now() / 1000 } } }));
      const res = await fetch(`${portal.pubUrl}/bitrix/pub/batch`, { method: 'POST', body: JSON.stringify({ messages }) });
      assert.equal(res.status, 200);
    }
    for (const c of cs) assert.deepEqual(c.commands(), ['before'], `${c.mode.name}: nothing while away`);
    const restartedAt = Date.now();
    listener = await startApp('listener', { ...env, PUSH_PORT: String(port) });
    // The SDK retries 0.5 s after losing the connection, then 15-18 s later.
    await Promise.all(cs.map((c) => c.waitForCommands(['g149'], 45_000)));
    for (const c of cs) await portal.publish([portal.channels(c.userId).priv], 'test', 'after', {});
    await Promise.all(cs.map((c) => c.waitForCommands(['after'])));
    await sleep(300);
    for (const c of cs) {
      const name = c.mode.name;
      const kept = gone.slice(50);
      assert.deepEqual(c.commands(), ['before', ...kept, 'after'], `${name}: the kept 100 once each, in order, then live again`);
      assert.deepEqual(wireCommands(c), ['before', ...kept, 'after'], `${name}: on the wire too`);
      const notices = c.wireMessages().filter((m) => m.moduleId === 'pull');
      assert.deepEqual(notices.map((m) => m.command), ['history_gap'], `${name}: told once, on the wire`);
      const g50 = c.wireMessages().find((m) => m.command === 'g50');
      assert.equal(notices[0]?.frame, g50?.frame, `${name}: in the same frame as the first kept message, before it`);
      assert.ok((notices[0]?.at ?? 0) > awayAt);
      // Its cursor moved on past the notice to the last message, and nothing else happened.
      const after = c.wireMessages().find((m) => m.command === 'after');
      assert.equal((c.pull as unknown as { session: { mid: string } }).session.mid, after?.mid, `${name}: resume cursor = the last message`);
      assert.ok(c.pull.isConnected(), `${name}: still connected`);
      assert.ok(!c.restCalls.includes('pull.config.get'), `${name}: no config reload`);
      const backAt = notices[0]?.at ?? 0;
      if (c.mode.websocket) {
        // The socket that brought the notice stays open: no reconnect because of it.
        const carrying = c.sockets().filter((s) => s.openedAt !== null && s.openedAt <= backAt && (s.closedAt === null || s.closedAt > backAt));
        assert.equal(carrying.length, 1, `${name}: one socket carried the notice`);
        assert.equal(carrying[0]?.closedAt, null, `${name}: and it is still open`);
      } else {
        // Every poll the replacement listener answered (the old one answered its last polls while draining).
        const polls = c.requests().filter((r) => r.method === 'GET' && (r.doneAt ?? 0) >= restartedAt && r.status !== null && r.status !== 0);
        assert.ok(polls.every((r) => r.status === 200 || r.status === 304), `${name}: every poll since answered normally: ${JSON.stringify(polls.map((r) => [r.status, r.startedAt - backAt, r.url.slice(-40)]))}`);
        const told = polls.filter((r) => r.headers['x-push-history-gap'] !== undefined);
        assert.equal(told.length, 1, `${name}: the header on exactly one poll`);
      }
    }
  });
});
