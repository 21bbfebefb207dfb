import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { signChannelPair, type ChannelSecret } from '@push/protocol';
import { TEST_KEY } from '../helpers/apps.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { WsClient, channelId, longPoll, publish } from '../helpers/clients.js';

const SHA256: ChannelSecret = { key: TEST_KEY, algorithm: 'sha256' };

/**
 * The longest subscribe request a client may send: PUSH_MAX_CHANNELS ids, each a private:public
 * pair with a SHA-256 signature, URL-encoded. uWebSockets.js 20.57 answers 431 to a request head
 * over UWS_HTTP_MAX_HEADERS_SIZE (4 KiB unless set), so the processes size it from the config.
 */
for (const maxChannels of [100, 300]) {
  describe(`subscribe URLs as long as PUSH_MAX_CHANNELS=${maxChannels} allows`, () => {
    let stack: Stack;
    before(async () => {
      stack = await startStack({ env: { PUSH_SIGNATURE_ALGO: 'sha256', PUSH_MAX_CHANNELS: String(maxChannels), PUSH_LONGPOLL_TIMEOUT_S: '1' } });
    });
    after(() => stack?.stop());

    it(`${maxChannels} signed private:public pairs open a WebSocket and a long poll, and both receive`, async () => {
      const privs = Array.from({ length: maxChannels }, () => channelId());
      const ids = privs.map((p) => signChannelPair(p, channelId(), SHA256));
      const url = `/bitrix/sub/?CHANNEL_ID=${encodeURIComponent(ids.join('/'))}`;
      assert.ok(url.length > maxChannels * 130, `really long: ${url.length} characters`);
      const ws = await WsClient.connect(stack.sub.url, ids);
      const last = privs[privs.length - 1] as string;
      assert.equal((await publish(stack.pub.url, [last], { module_id: 't', command: 'far' })).status, 200);
      await ws.waitFor(1);
      assert.equal((ws.messages[0]?.text as { command: string }).command, 'far');
      const poll = await longPoll(stack.sub.url, ids, `&mid=${'0'.repeat(26)}`);
      assert.equal(poll.status, 200, poll.body);
      assert.deepEqual(poll.messages.map((m) => (m.text as { command: string }).command), ['far']);
      ws.close();
    });
  });
}
