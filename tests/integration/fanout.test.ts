import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { AppProcess } from '../helpers/apps.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { WsClient, channelId, longPoll, publish, signed } from '../helpers/clients.js';
import { sleep } from '../helpers/ports.js';

describe('one publisher, two listeners, one Redis', () => {
  let stack: Stack;
  let pub: AppProcess;
  let l1: AppProcess;
  let l2: AppProcess;
  before(async () => {
    stack = await startStack({ listeners: 2, env: { PUSH_LONGPOLL_TIMEOUT_S: '2', PUSH_UNSUBSCRIBE_DELAY_MS: '200' } });
    ({ pub } = stack);
    [l1, l2] = stack.listeners as [AppProcess, AppProcess];
  });
  after(() => stack?.stop());

  it('a publish reaches a long poll on one listener and a WebSocket on the other, exactly once', async () => {
    const ch = channelId();
    const ws = await WsClient.connect(l2.url, [signed(ch)]);
    const poll = longPoll(l1.url, [signed(ch)]);
    await sleep(150);
    const body = { module_id: 'test', command: 'hello', params: { n: 1 } };
    const res = await publish(pub.url, [ch], body, { 'Message-Expiry': '60' });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), '');
    const lp = await poll;
    assert.equal(lp.status, 200);
    assert.equal(lp.headers.get('access-control-allow-origin'), '*');
    assert.equal(lp.messages.length, 1);
    assert.deepEqual(lp.messages[0]?.text, body);
    const got = await ws.waitFor(1);
    await sleep(200);
    assert.equal(got.length, 1, 'exactly one copy on the WebSocket');
    assert.equal(got[0]?.mid, lp.messages[0]?.mid);
    ws.close();
  });
});

describe('targeted subscriptions', () => {
  let stack: Stack;
  let pub: AppProcess;
  let l1: AppProcess;
  let l2: AppProcess;
  before(async () => {
    stack = await startStack({ listeners: 2, env: { PUSH_STATS_INTERVAL_S: '1', PUSH_UNSUBSCRIBE_DELAY_MS: '100' } });
    ({ pub } = stack);
    [l1, l2] = stack.listeners as [AppProcess, AppProcess];
  });
  after(() => stack?.stop());

  const received = async (p: AppProcess): Promise<number> => {
    const list = (await (await fetch(`${pub.url}/server-stat/`)).json()) as Array<{ pid: number; date: number; messages?: { received: number } }>;
    return list.find((s) => s.pid === p.proc.pid)?.messages?.received ?? -1;
  };

  it('a listener receives from Redis only messages for channels its sockets hold', async () => {
    const mine = channelId();
    const ws = await WsClient.connect(l1.url, [signed(mine)]);
    for (let i = 0; i < 20; i++) await publish(pub.url, [channelId()], { module_id: 't', command: 'elsewhere' });
    await publish(pub.url, [mine], { module_id: 't', command: 'mine' });
    await ws.waitFor(1);
    await sleep(2200); // two stats intervals
    assert.equal(await received(l1), 1, 'l1 got only its one message');
    assert.equal(await received(l2), 0, 'l2 has no sockets and got nothing');
    ws.close();
    await sleep(300); // past the unsubscribe delay
    await publish(pub.url, [mine], { module_id: 't', command: 'after-leaving' });
    await sleep(2200);
    assert.equal(await received(l1), 1, 'unsubscribed after its last socket left');
  });
});

describe('the widest publish the fan-out limit allows', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ listeners: 1 });
  });
  after(() => stack?.stop());

  it('16 MiB to subscribers at once (PUSH_MAX_FANOUT_BYTES default) keeps the listener subscribed: a live-only message right after it still arrives', async () => {
    // The publish script runs atomically, so Redis buffers all 100 copies for the listener's
    // subscription connection before sending any. Past Redis's pub/sub buffer limit (32 MB by
    // default) Redis would drop that connection: stored messages come back from history, but
    // live-only ones (typing notices) of every channel on the listener are lost.
    const wide = Array.from({ length: 100 }, () => channelId());
    const other = channelId();
    const wideClient = await WsClient.connect(stack.sub.url, wide.map((c) => signed(c)));
    const otherClient = await WsClient.connect(stack.sub.url, [signed(other)]);
    await sleep(200);
    const body = JSON.stringify({ module_id: 'test', command: 'wide', params: { pad: 'x'.repeat(167_000) } });
    assert.ok(Buffer.byteLength(body) * wide.length <= 16 * 1024 * 1024 && Buffer.byteLength(body) * wide.length > 16_500_000);
    const res = await publish(stack.pub.url, wide, body, { 'Message-Expiry': '60' });
    assert.equal(res.status, 200, await res.text());
    const live = await publish(stack.pub.url, [other], { module_id: 'im', command: 'startWriting', params: {} }, { 'Message-Expiry': '0' });
    assert.equal(live.status, 200);
    await otherClient.waitFor(1, 10_000);
    await wideClient.waitFor(1, 10_000);
    await sleep(300);
    assert.equal(wideClient.messages.length, 1, 'one copy per connection, however many of its channels the publish named');
    assert.doesNotMatch(stack.sub.output(), /resubscribed after reconnect/, 'the subscription connection was never dropped');
    wideClient.close();
    otherClient.close();
  });
});
