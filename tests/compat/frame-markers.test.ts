import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { signChannel } from '@push/protocol';
import { MODES, Portal, SdkClient, eachMode, wireCommands, type Mode } from './sdk-harness.js';
import { longPoll, SECRET, WsClient } from '../helpers/clients.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startApp, type AppProcess } from '../helpers/apps.js';
import { eventually } from '../helpers/ports.js';

/**
 * Message bodies holding the text-frame markers (`#!NGINXNMS!#`, `#!NGINXNME!#`) inside JSON
 * strings, through the official client (@bitrix24/b24jssdk, unmodified) against real publisher and
 * listener processes and a real Redis, in its four modes. Clients cut text frames at the first end
 * marker; the server writes a marker-starting `#` as `\u0023` so the frame stays whole and
 * JSON.parse yields the published value (docs/security.md, "Frame markers in message bodies").
 */

const V4_MODES = MODES.filter((m) => m.version === 4);
let nextUser = 1;


const tricky = { text: 'a #!NGINXNME!# b #!NGINXNMS!# c #!NGINXNME!#!NGINXNME!# d', nested: ['#!NGINXNMS!#{"x":1}#!NGINXNME!#'], '#!NGINXNME!#': '\\#!NGINXNME!#' };

describe('frame markers inside message bodies, with the official client', () => {
  let redis: RedisServer;
  let pub: AppProcess;
  let listener: AppProcess;
  let portal: Portal;
  const clients: SdkClient[] = [];

  const client = async (mode: Mode): Promise<SdkClient> => {
    const c = new SdkClient(portal, nextUser++, mode);
    clients.push(c);
    await c.start();
    return c;
  };

  before(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, PUSH_UNSUBSCRIBE_DELAY_MS: '200' };
    [pub, listener] = await Promise.all([startApp('publisher', env), startApp('listener', env)]);
    portal = new Portal(pub.url, listener.url);
  });
  after(async () => {
    for (const c of clients) c.destroy();
    await Promise.all([pub?.stop(), listener?.stop()]);
    await redis?.stop();
  });

  it('a body holding both frame markers arrives whole and equal in every mode, live and replayed from the store', async () => {
    // Unescaped, this message would split into fragments that fail to parse and be lost (the next
    // one must still arrive as well).
    await eachMode(MODES, async (mode) => {
      const c = await client(mode);
      const priv = portal.channels(c.userId).priv;
      await portal.publish([priv], 'test', 'markers', tricky);
      await portal.publish([priv], 'test', 'after', {});
      await c.waitForCommands(['markers', 'after']);
      assert.deepEqual(c.commands(), ['markers', 'after'], `${mode.name}: both, in order`);
      assert.deepEqual(c.server[0]?.params, tricky, `${mode.name}: the params as published`);
      assert.deepEqual(wireCommands(c), ['markers', 'after'], `${mode.name}: each once on the wire`);
      if (mode.version === 3) {
        // The text on the wire holds the markers only as frame boundaries.
        const texts = [...c.sockets().flatMap((s) => s.received.map((f) => f.data)), ...c.requests().map((r) => r.body)].filter((d): d is string => typeof d === 'string');
        const all = texts.join('');
        assert.equal(all.split('#!NGINXNMS!#').length, all.split('#!NGINXNME!#').length, `${mode.name}: balanced markers`);
        assert.ok(texts.some((t) => t.includes('\\u0023!NGINXNME!#')), `${mode.name}: the body's marker went out escaped`);
      }
      // The stored record replayed to a long poll resuming from before both (the per-connection
      // replay path) decodes the same way.
      const replay = await longPoll(listener.url, [signChannel(priv, SECRET)], `&mid=${'0'.repeat(26)}`);
      assert.equal(replay.status, 200);
      assert.deepEqual(replay.messages.map((m) => (m.text as { command: string }).command), ['markers', 'after'], `${mode.name}: replayed whole`);
      assert.deepEqual((replay.messages[0]?.text as { params: unknown }).params, tricky);
    });
  });

  it('a client publish holding both frame markers arrives whole: to the official client (protobuf) and to a text-frame socket', async () => {
    // A client's own publish (WebSocket binary frame, or POST /bitrix/rest/ when long-polling),
    // received by the official client (protobuf) and by a text-frame socket on the same channels.
    await eachMode(V4_MODES, async (mode) => {
      const sender = await client(mode);
      const target = await client(mode);
      const textSocket = await WsClient.connect(listener.url, [portal.signedPrivate(target.userId, 4)]);
      await sender.pull.sendMessage([target.userId], 'test', 'client-markers', tricky);
      await eventually(() => target.client.length > 0, 10_000, `${mode.name} client message`);
      assert.deepEqual(target.client[0]?.params, tricky, `${mode.name}: client publish arrives whole`);
      const [frame] = await textSocket.waitFor(1);
      assert.deepEqual((frame?.text as { params: unknown }).params, tricky, `${mode.name}: client publish arrives whole in a text frame`);
      textSocket.close();
    });
  });
});
