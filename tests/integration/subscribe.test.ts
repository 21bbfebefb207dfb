import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { signChannelPair, signPublicChannel, signature } from '@push/protocol';
import type { AppProcess } from '../helpers/apps.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { SECRET, WsClient, channelId, longPoll, publish, signed } from '../helpers/clients.js';
import { sleep } from '../helpers/ports.js';
import { snapshotChanges, takeSnapshot } from '../helpers/redis-snapshot.js';

const EXPIRES = 'Thu, 01 Jan 1973 11:11:01 GMT';
const cmd = (m: { text: unknown }) => (m.text as { command: string }).command;

describe('subscribe API (long poll and WebSocket)', () => {
  let stack: Stack;
  let pub: AppProcess;
  let sub: AppProcess;
  before(async () => {
    stack = await startStack({ env: { PUSH_LONGPOLL_TIMEOUT_S: '1' } });
    ({ pub, sub } = stack);
  });
  after(() => stack?.stop());

  it('checklist 5: WS with a correct signature opens; wrong or missing signature -> close 4010', async () => {
    const ch = channelId();
    const good = await WsClient.connect(sub.url, [signed(ch)]);
    for (const bad of [`${ch}.${'0'.repeat(40)}`, ch, '']) {
      const c = new WsClient(`${sub.url.replace('http', 'ws')}/bitrix/subws/?CHANNEL_ID=${bad}`);
      await c.closed;
      assert.equal(c.closeCode, 4010, bad);
      assert.equal(c.closeReason, '4010: Wrong Channel Id.');
    }
    await publish(pub.url, [ch], { module_id: 't', command: 'still-open' });
    await good.waitFor(1);
    good.close();
  });

  it('checklist 6: priv:pub.sig only when the HMAC covers priv:pub; a bare public id is not a subscription', async () => {
    const priv = channelId();
    const pubId = channelId();
    const ws = await WsClient.connect(sub.url, [signChannelPair(priv, pubId, SECRET)]);
    await publish(pub.url, [priv], { module_id: 't', command: 'to-priv' });
    await ws.waitFor(1);
    ws.close();
    const wrong = await longPoll(sub.url, [`${priv}:${pubId}.${signature(priv, SECRET)}`]);
    assert.equal(wrong.status, 400);
    assert.equal(wrong.body, '4010: Wrong Channel Id.');
    const bare = await longPoll(sub.url, [signPublicChannel(pubId, SECRET)]);
    assert.equal(bare.status, 400);
    assert.equal(bare.body, '4010: Wrong Channel Id.');
    assert.equal(bare.headers.get('access-control-allow-origin'), '*');
    assert.equal(bare.headers.get('access-control-expose-headers'), 'Last-Message-Id');
  });

  it('checklist 8: unknown query parameters are ignored', async () => {
    const ch = channelId();
    const extra = `&tag=207&time=${encodeURIComponent('Sat, 21 Nov 2026 11:40:29 GMT')}&revision=19&clientId=abc&testKey=1`;
    const ws = await WsClient.connect(sub.url, [signed(ch)], extra);
    const poll = longPoll(sub.url, [signed(ch)], extra);
    await sleep(100);
    await publish(pub.url, [ch], { module_id: 't', command: 'x' });
    await ws.waitFor(1);
    assert.equal((await poll).status, 200);
    ws.close();
  });

  it('checklist 9: text frame shape; text is the published JSON verbatim; id = mid counter', async () => {
    const ch = channelId();
    const ws = await WsClient.connect(sub.url, [signed(ch)]);
    const body = '{"module_id":"im","command":"message","params":{"s":"ü \\u00e9 \\"q\\"","n":1.50},"extra":{"server_time_unix":1700000000.5}}';
    await publish(pub.url, [ch], body);
    await ws.waitFor(1);
    const frame = ws.frames[0] as string;
    assert.match(frame, /^#!NGINXNMS!#\{"id":\d+,"mid":"\d{26}","channel":"-","tag":"\d{1,3}","time":"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT","text":/);
    assert.ok(frame.endsWith(`"text":${body}}#!NGINXNME!#`), 'body spliced verbatim (1.50 and escapes kept)');
    const m = ws.messages[0];
    assert.equal(m?.id, Number(m?.mid.slice(10)));
    ws.close();
  });

  it('checklist 12: messages published back to back may share a frame and all arrive', async () => {
    const ch = channelId();
    const ws = await WsClient.connect(sub.url, [signed(ch)]);
    await fetch(`${pub.url}/pub/batch`, { method: 'POST', body: JSON.stringify({ messages: [1, 2, 3, 4, 5].map((n) => ({ channels: [ch], body: { module_id: 't', command: `m${n}` } })) }) });
    await ws.waitFor(5);
    assert.deepEqual(ws.messages.map(cmd), ['m1', 'm2', 'm3', 'm4', 'm5']);
    assert.ok(ws.frames.length < 5, `coalesced into ${ws.frames.length} frame(s)`);
    ws.close();
  });

  it('checklist 13: an idle long poll ends with 304, Expires, Last-Message-Id and CORS headers', async () => {
    const ch = channelId();
    const empty = await longPoll(sub.url, [signed(ch)]);
    assert.equal(empty.status, 304);
    assert.equal(empty.headers.get('expires'), EXPIRES);
    // Push servers 1.0/2.0 send an empty Last-Message-Id here; a poll coming back without a mid then
    // misses what was published between the two polls. Ours sends the newest issued id instead.
    const floor = empty.headers.get('last-message-id') as string;
    assert.match(floor, /^\d{26}$/, 'a cursor, not an empty header');
    assert.equal(empty.headers.get('access-control-allow-origin'), '*');
    assert.equal(empty.headers.get('access-control-expose-headers'), 'Last-Message-Id');
    await publish(pub.url, [ch], { module_id: 't', command: 'x' });
    const between = await longPoll(sub.url, [signed(ch)], `&mid=${floor}`);
    assert.equal(between.status, 200, 'the message published after the 304 is found from its cursor');
    const newest = await longPoll(sub.url, [signed(ch)]);
    assert.equal(newest.status, 304, 'no mid: only live messages count');
    const mid = newest.headers.get('last-message-id') as string;
    assert.match(mid, /^\d{26}$/, 'newest stored id');
    const withMid = await longPoll(sub.url, [signed(ch)], `&mid=${mid}`);
    assert.equal(withMid.status, 304);
    assert.equal(withMid.headers.get('last-message-id'), mid, 'the request mid comes back');
  });

  it('checklist 14: mid=M with newer stored messages -> immediate 200 with all of them in order', async () => {
    const ch = channelId();
    const other = channelId();
    await publish(pub.url, [ch], { module_id: 't', command: 'old' });
    const first = await longPoll(sub.url, [signed(ch)]);
    const m0 = first.headers.get('last-message-id') as string;
    for (const c of ['a', 'b', 'c']) await publish(pub.url, [ch], { module_id: 't', command: c });
    await publish(pub.url, [other], { module_id: 't', command: 'elsewhere' });
    const t0 = Date.now();
    const res = await longPoll(sub.url, [signed(ch)], `&mid=${m0}`);
    assert.ok(Date.now() - t0 < 500, 'immediate');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    assert.deepEqual(res.messages.map(cmd), ['a', 'b', 'c']);
  });

  it('checklist 15: WS with mid gets the backlog first, then live messages, no gap or duplicate', async () => {
    const ch = channelId();
    await publish(pub.url, [ch], { module_id: 't', command: 'before' });
    const lp = await longPoll(sub.url, [signed(ch)]);
    const m0 = lp.headers.get('last-message-id') as string;
    await publish(pub.url, [ch], { module_id: 't', command: 'missed1' });
    await publish(pub.url, [ch], { module_id: 't', command: 'missed2' });
    const ws = await WsClient.connect(sub.url, [signed(ch)], `&mid=${m0}`);
    await publish(pub.url, [ch], { module_id: 't', command: 'live' });
    await ws.waitFor(3);
    await sleep(100);
    assert.deepEqual(ws.messages.map(cmd), ['missed1', 'missed2', 'live']);
    ws.close();
  });

  it('checklist 17: OPTIONS preflight answers with the CORS headers', async () => {
    for (const path of ['/bitrix/sub/', '/sub']) {
      const res = await fetch(`${sub.url}${path}`, { method: 'OPTIONS' });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('access-control-allow-origin'), '*');
      assert.equal(res.headers.get('access-control-allow-methods'), 'POST, GET, DELETE, OPTIONS');
      assert.equal(res.headers.get('access-control-allow-headers'), 'If-Modified-Since, If-None-Match');
    }
  });

  it('checklist 30: long poll and WebSocket both work on /bitrix/sub/, /bitrix/subws/, /sub and /ws', async () => {
    for (const path of ['/bitrix/sub/', '/bitrix/subws/', '/sub', '/ws']) {
      const ch = channelId();
      const ws = await WsClient.connect(sub.url, [signed(ch)], '', path);
      const poll = longPoll(sub.url, [signed(ch)], '', path);
      await sleep(100);
      await publish(pub.url, [ch], { module_id: 't', command: path });
      await ws.waitFor(1);
      const res = await poll;
      assert.equal(res.status, 200, path);
      assert.equal(cmd(res.messages[0] as { text: unknown }), path);
      ws.close();
    }
  });

  it('checklist 32: a mid that is not 26 digits is ignored, never an error', async () => {
    const ch = channelId();
    for (const mid of ['123', 'x'.repeat(26), '1'.repeat(27), '']) {
      const res = await longPoll(sub.url, [signed(ch)], `&mid=${mid}`);
      assert.equal(res.status, 304, mid);
    }
  });

  it('checklist 33: the same id listed twice works and gets each live message once', async () => {
    const priv = channelId();
    const shared = channelId();
    const ws = await WsClient.connect(sub.url, [signed(priv), signed(priv), signed(shared)]);
    await publish(pub.url, [priv], { module_id: 't', command: 'p' });
    await publish(pub.url, [shared, priv], { module_id: 't', command: 's' });
    await ws.waitFor(2);
    await sleep(150);
    assert.deepEqual(ws.messages.map(cmd), ['p', 's']);
    ws.close();
  });

  it('4010 rejections (long poll 400, WebSocket close) leave Redis unchanged; over the channel limit too, with the exact Bitrix reason', async () => {
    const rc = stack.redis.client();
    const ch = channelId();
    const tooMany = Array.from({ length: 101 }, () => channelId()).join('/');
    const bad: Array<[string, string]> = [
      ['wrong signature', `${ch}.${'0'.repeat(40)}`],
      ['unsigned', ch],
      ['missing', ''],
      ['signature of another id', `${ch}.${signature(channelId(), SECRET)}`],
      ['more than PUSH_MAX_CHANNELS (100), checked before any signature', tooMany],
    ];
    const before = await takeSnapshot(rc);
    for (const [name, raw] of bad) {
      const lp = await fetch(`${sub.url}/bitrix/sub/?CHANNEL_ID=${encodeURIComponent(raw)}&mid=${'0'.repeat(26)}`);
      assert.equal(lp.status, 400, name);
      assert.equal(await lp.text(), '4010: Wrong Channel Id.', name);
      const ws = new WsClient(`${sub.url.replace('http', 'ws')}/bitrix/subws/?CHANNEL_ID=${encodeURIComponent(raw)}`);
      await ws.closed;
      assert.equal(ws.closeCode, 4010, name);
      assert.equal(ws.closeReason, '4010: Wrong Channel Id.', name);
    }
    await sleep(200);
    assert.deepEqual(snapshotChanges(before, await takeSnapshot(rc)), [], 'Redis unchanged');
  });

  it('checklist 35: close reasons are "<code>: <reason>" strings', async () => {
    const c = new WsClient(`${sub.url.replace('http', 'ws')}/bitrix/subws/?CHANNEL_ID=${'a'.repeat(32)}.${'b'.repeat(40)}`);
    await c.closed;
    assert.match(c.closeReason, /^\d{4}: .+/);
  });

  it('unknown listener path -> 404 with CORS; health endpoints answer', async () => {
    const res = await fetch(`${sub.url}/elsewhere`);
    assert.equal(res.status, 404);
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    assert.equal((await fetch(`${sub.url}/healthz`)).status, 200);
    assert.equal((await fetch(`${sub.url}/readyz`)).status, 200);
  });
});
