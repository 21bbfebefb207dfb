import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startApp, type AppProcess } from '../helpers/apps.js';
import { WsClient, channelId, longPoll, publish, signed } from '../helpers/clients.js';
import { freePort } from '../helpers/ports.js';

describe('single-process mode (memory backend, no Redis)', () => {
  let app: AppProcess;
  let pubUrl: string;
  before(async () => {
    const pubPort = await freePort();
    // No REDIS_URL points anywhere: a Redis dependency would make start-up fail.
    app = await startApp('standalone', { PUSH_STANDALONE_PUBLISHER_PORT: String(pubPort), REDIS_URL: 'redis://127.0.0.1:1', PUSH_LONGPOLL_TIMEOUT_S: '1' });
    pubUrl = `http://127.0.0.1:${pubPort}`;
  });
  after(() => app?.stop());

  it('publishes, delivers live and replays after mid in one process', async () => {
    const ch = channelId();
    const ws = await WsClient.connect(app.url, [signed(ch)]);
    assert.equal((await publish(pubUrl, [ch], { module_id: 't', command: 'one' })).status, 200);
    assert.equal((await publish(pubUrl, [ch], { module_id: 't', command: 'two' })).status, 200);
    const got = await ws.waitFor(2);
    const lp = await longPoll(app.url, [signed(ch)], `&mid=${got[0]?.mid}`);
    assert.deepEqual(lp.messages.map((m) => m.mid), [got[1]?.mid]);
    assert.match(app.output(), /memory backend, nothing is persisted/);
    ws.close();
  });
});
