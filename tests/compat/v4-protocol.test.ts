import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { bytesToHex, decodeResponseBatch, encodeRequestBatch, signChannelPair } from '@push/protocol';
import { BinWs, hex, incoming, publicSig, type OutMsg } from '../helpers/bin-ws.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { storedState } from '../helpers/redis-snapshot.js';
import { startApp, type AppProcess } from '../helpers/apps.js';
import { channelId, signed, SECRET } from '../helpers/clients.js';
import { eventually, sleep } from '../helpers/ports.js';

/** Black-box protocol-4 checks against real publisher + listener processes and a real Redis. */


/** Grows `pad` until `build(pad)` is exactly `size` bytes (protobuf length prefixes move with it). */
function exactSize(size: number, build: (pad: string) => Uint8Array | string): Uint8Array | string {
  let n = Math.max(0, size - Buffer.byteLength(build('')));
  for (let i = 0; i < 10; i++) {
    const out = build('x'.repeat(n));
    const len = typeof out === 'string' ? Buffer.byteLength(out) : out.byteLength;
    if (len === size) return out;
    n += size - len;
  }
  throw new Error(`cannot build exactly ${size} bytes`);
}

const binPublish = (pubUrl: string, requests: unknown[], path = '/bitrix/pub/?binaryMode=true'): Promise<Response> =>
  fetch(`${pubUrl}${path}`, { method: 'POST', body: encodeRequestBatch({ requests: requests as Array<Record<string, unknown>> }) });

describe('protocol 4 over the real stack', () => {
  let redis: RedisServer;
  let pub: AppProcess;
  let l1: AppProcess;
  let l2: AppProcess;

  before(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, PUSH_LONGPOLL_TIMEOUT_S: '2', PUSH_UNSUBSCRIBE_DELAY_MS: '200', PUSH_MAX_CONN_PER_CHANNEL: '3', PUSH_STATS_INTERVAL_S: '1' };
    [pub, l1, l2] = await Promise.all([startApp('publisher', env), startApp('listener', env), startApp('listener', env)]);
  });
  after(async () => {
    await Promise.all([pub?.stop(), l1?.stop(), l2?.stop()]);
    await redis?.stop();
  });

  it('binaryMode=true WebSocket gets ResponseBatch frames: 13-byte ids = mid, sender BACKEND; text client gets the same mid', async () => {
    const ch = channelId();
    const bin = await BinWs.open(l1.url, [signed(ch)]);
    const txt = await BinWs.open(l2.url, [signed(ch)], '');
    const body = { module_id: 'test', command: 'hello', params: { n: 1 } };
    const res = await binPublish(pub.url, [incoming([{ id: hex(ch), isPrivate: true }], body)]);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), '');
    await eventually(() => bin.messages.length === 1 && txt.textFrames.length === 1, 5000, 'both delivered');
    const m = bin.messages[0] as OutMsg;
    assert.equal(m.id.byteLength, 13);
    assert.match(bytesToHex(m.id), /^[0-9]{26}$/);
    assert.deepEqual(JSON.parse(m.body), body);
    assert.equal(m.sender?.type, 2);
    assert.equal(m.expiry, 60);
    assert.ok(Math.abs(m.created - Date.now() / 1000) < 30);
    assert.ok((txt.textFrames[0] as string).includes(`"mid":"${bytesToHex(m.id)}"`));
    // The short route takes binary publishes too.
    const short = await binPublish(pub.url, [incoming([{ id: hex(ch), isPrivate: true }], { module_id: 'test', command: 'short' })], '/pub?binaryMode=true');
    assert.equal(short.status, 200);
    await eventually(() => bin.messages.length === 2, 5000, 'publish via /pub?binaryMode=true');
    assert.equal(JSON.parse((bin.messages[1] as OutMsg).body).command, 'short');
    bin.ws.close();
    txt.ws.close();
  });

  it('binaryMode=true long poll answers application/octet-stream ResponseBatch with the history since mid, in order', async () => {
    const ch = channelId();
    const first = await binPublish(pub.url, [incoming([{ id: hex(ch), isPrivate: true }], { module_id: 'test', command: 'a' })]);
    assert.equal(first.status, 200);
    const cursorPoll = await fetch(`${l1.url}/bitrix/sub/?CHANNEL_ID=${signed(ch)}&binaryMode=true&mid=${'0'.repeat(26)}`);
    assert.equal(cursorPoll.status, 200);
    assert.equal(cursorPoll.headers.get('content-type'), 'application/octet-stream');
    assert.equal(cursorPoll.headers.get('access-control-allow-origin'), '*');
    const got1 = decodeResponseBatch(new Uint8Array(await cursorPoll.arrayBuffer())).responses[0]?.outgoingMessages?.messages ?? [];
    assert.equal(got1.length, 1);
    const mid1 = bytesToHex((got1[0] as OutMsg).id);
    for (const cmd of ['b', 'c']) await binPublish(pub.url, [incoming([{ id: hex(ch), isPrivate: true }], { module_id: 'test', command: cmd })]);
    const poll = await fetch(`${l2.url}/bitrix/sub/?CHANNEL_ID=${signed(ch)}&binaryMode=true&mid=${mid1}`);
    const got = decodeResponseBatch(new Uint8Array(await poll.arrayBuffer())).responses[0]?.outgoingMessages?.messages ?? [];
    assert.deepEqual(got.map((m) => JSON.parse(m.body).command), ['b', 'c']);
    assert.ok(bytesToHex((got[0] as OutMsg).id) > mid1 && bytesToHex((got[1] as OutMsg).id) > bytesToHex((got[0] as OutMsg).id));
  });

  it('binary publish errors: 4016, 4017, 4018, 4019, 4013, 4015 as "<code>: <reason>" text/plain, nothing delivered', async () => {
    const ch = channelId();
    const watcher = await BinWs.open(l1.url, [signed(ch)]);
    const r = { id: hex(ch), isPrivate: true };
    const many = { incomingMessages: { messages: Array.from({ length: 101 }, () => ({ receivers: [r], body: '{"module_id":"x","command":"y"}', expiry: 5 })) } };
    const cases: Array<[unknown[] | Uint8Array, string]> = [
      [[many], '4016: Request exceeded the maximum number of messages.'],
      [[incoming([], { module_id: 'x', command: 'y' })], '4017: No channels found.'],
      [[incoming(Array.from({ length: 101 }, () => r), { module_id: 'x', command: 'y' })], '4018: Request exceeded the maximum number of channels.'],
      [[incoming([{ id: Buffer.alloc(15, 1), isPrivate: true }], { module_id: 'x', command: 'y' })], '4019: Request has an invalid channel id.'],
      [Buffer.from([0xff, 0xff, 0xff, 0x01]), '4013: Wrong Request Data.'],
      [[{ registration: { host: 'h' } }], '4015: Wrong Request Command.'],
    ];
    for (const [reqs, text] of cases) {
      const res = Array.isArray(reqs) ? await binPublish(pub.url, reqs) : await fetch(`${pub.url}/bitrix/pub/?binaryMode=true`, { method: 'POST', body: reqs });
      assert.equal(res.status, 400, text);
      assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
      assert.equal(res.headers.get('access-control-allow-origin'), '*');
      assert.equal(await res.text(), text);
    }
    await sleep(200);
    assert.equal(watcher.messages.length, 0);
    watcher.ws.close();
  });

  it('an empty incomingMessages list is a no-op: 200 from the portal route and /bitrix/rest/, no close on a WebSocket, nothing stored or delivered', async () => {
    const [priv, pubId, privB, pubB] = [channelId(), channelId(), channelId(), channelId()];
    const watcher = await BinWs.open(l1.url, [signChannelPair(privB, pubB, SECRET)]);
    const sender = await BinWs.open(l2.url, [signChannelPair(priv, pubId, SECRET)]);
    await sleep(150);
    const before = await storedState(redis.client());
    const empty = encodeRequestBatch({ requests: [{ incomingMessages: { messages: [] } }] });
    const portalRes = await binPublish(pub.url, [{ incomingMessages: { messages: [] } }]);
    assert.equal(portalRes.status, 200);
    assert.equal(await portalRes.text(), '');
    assert.equal(portalRes.headers.get('access-control-allow-origin'), '*');
    const restRes = await fetch(`${pub.url}/bitrix/rest/?CHANNEL_ID=${encodeURIComponent(signChannelPair(priv, pubId, SECRET))}`, { method: 'POST', body: empty });
    assert.equal(restRes.status, 200);
    assert.equal(await restRes.text(), '');
    sender.ws.send(empty);
    await sleep(300);
    assert.equal(sender.closeCode, null, 'the WebSocket stays open');
    assert.equal(sender.batches.length, 0, 'and gets no answer');
    assert.equal(await storedState(redis.client()), before, 'Redis unchanged: no message, no id used');
    assert.equal(watcher.messages.length + watcher.textFrames.length, 0, 'nothing delivered');
    // The same connections still publish normally afterwards.
    sender.ws.send(encodeRequestBatch({ requests: [incoming([{ id: hex(pubB), isPrivate: false, signature: publicSig(pubB) }], { module_id: 'test', command: 'real' }, 0)] }));
    await eventually(() => watcher.messages.length === 1, 5000, 'a real message after the empty ones');
    watcher.ws.close();
    sender.ws.close();
  });

  it('expiry 0 in a binary publish is live only: delivered to the connected client, never replayed by mid', async () => {
    const ch = channelId();
    const ws = await BinWs.open(l1.url, [signed(ch)]);
    for (const [cmd, expiry] of [['kept', 60], ['live', 0]] as const) {
      const res = await binPublish(pub.url, [incoming([{ id: hex(ch), isPrivate: true }], { module_id: 'test', command: cmd }, expiry)]);
      assert.equal(res.status, 200);
    }
    await eventually(() => ws.messages.length === 2, 5000, 'both live');
    assert.deepEqual(ws.messages.map((m) => [JSON.parse(m.body).command, m.expiry]), [['kept', 60], ['live', 0]]);
    const poll = await fetch(`${l2.url}/bitrix/sub/?CHANNEL_ID=${signed(ch)}&binaryMode=true&mid=${'0'.repeat(26)}`);
    assert.equal(poll.status, 200);
    const replay = decodeResponseBatch(new Uint8Array(await poll.arrayBuffer())).responses[0]?.outgoingMessages?.messages ?? [];
    assert.deepEqual(replay.map((m) => JSON.parse(m.body).command), ['kept'], 'only the stored one comes back');
    ws.ws.close();
  });

  it('a body over 1,048,576 bytes gets 413 "4101: ..." on every publish route (text, binary, /bitrix/rest/), storing nothing; exactly 1,048,576 is accepted', async () => {
    const LIMIT = 1024 * 1024;
    const [ch, privA, pubA, privB, pubB] = [channelId(), channelId(), channelId(), channelId(), channelId()];
    const watcher = await BinWs.open(l1.url, [signed(ch), signChannelPair(privB, pubB, SECRET)]);
    await sleep(150);
    const restUrl = `${pub.url}/bitrix/rest/?CHANNEL_ID=${encodeURIComponent(signChannelPair(privA, pubA, SECRET))}`;
    const routes: Array<{ name: string; url: string; build: (pad: string) => Uint8Array | string }> = [
      { name: 'text publish', url: `${pub.url}/bitrix/pub/?CHANNEL_ID=${ch}`, build: (pad) => JSON.stringify({ module_id: 'test', command: 'text', params: { pad } }) },
      { name: 'binary publish', url: `${pub.url}/bitrix/pub/?binaryMode=true`, build: (pad) => encodeRequestBatch({ requests: [incoming([{ id: hex(ch), isPrivate: true }], { module_id: 'test', command: 'binary', params: { pad } })] }) },
      { name: '/bitrix/rest/', url: restUrl, build: (pad) => encodeRequestBatch({ requests: [incoming([{ id: hex(pubB), isPrivate: false, signature: publicSig(pubB) }], { module_id: 'test', command: 'rest', params: { pad } })] }) },
    ];
    for (const r of routes) {
      const before = await storedState(redis.client());
      const over = await fetch(r.url, { method: 'POST', headers: { 'Message-Expiry': '60' }, body: exactSize(LIMIT + 1, r.build) });
      assert.equal(over.status, 413, `${r.name}: one byte over`);
      assert.match(await over.text(), /^4101: \S/);
      assert.equal(over.headers.get('access-control-allow-origin'), '*');
      await sleep(100);
      assert.equal(await storedState(redis.client()), before, `${r.name}: nothing stored`);
      const atLimit = await fetch(r.url, { method: 'POST', headers: { 'Message-Expiry': '60' }, body: exactSize(LIMIT, r.build) });
      assert.equal(atLimit.status, 200, `${r.name}: exactly the limit is accepted`);
    }
    await eventually(() => watcher.messages.length === 3, 10_000, 'the three at-limit messages');
    await sleep(200);
    assert.deepEqual(watcher.messages.map((m) => JSON.parse(m.body).command), ['text', 'binary', 'rest'], 'only the accepted bodies were delivered');
    watcher.ws.close();
  });

  it('a fan-out over PUSH_MAX_FANOUT_BYTES gets 413 "4112: ..." on the binary publish route and /bitrix/rest/, storing nothing', async () => {
    // 170,000 body bytes x 100 receivers = 17 MB at once to subscribers, over the 16 MiB default.
    const body = { module_id: 'test', command: 'wide', params: { pad: 'x'.repeat(170_000) } };
    const privs = Array.from({ length: 100 }, () => ({ id: hex(channelId()), isPrivate: true }));
    const pubs = Array.from({ length: 100 }, () => channelId()).map((p) => ({ id: hex(p), isPrivate: false, signature: publicSig(p) }));
    const restUrl = `${pub.url}/bitrix/rest/?CHANNEL_ID=${encodeURIComponent(signChannelPair(channelId(), channelId(), SECRET))}`;
    for (const [name, url, receivers] of [
      ['binary publish', `${pub.url}/bitrix/pub/?binaryMode=true`, privs],
      ['/bitrix/rest/', restUrl, pubs],
    ] as const) {
      const before = await storedState(redis.client());
      const res = await fetch(url, { method: 'POST', body: encodeRequestBatch({ requests: [incoming([...receivers], body)] }) });
      assert.equal(res.status, 413, name);
      assert.match(await res.text(), /^4112: \S/, name);
      await sleep(100);
      assert.equal(await storedState(redis.client()), before, `${name}: nothing stored`);
    }
    // A client publishing over its WebSocket gets the same refusal as a close code.
    const before = await storedState(redis.client());
    const c = await BinWs.open(l1.url, [signChannelPair(channelId(), channelId(), SECRET)]);
    c.ws.send(encodeRequestBatch({ requests: [incoming([...pubs], body)] }));
    await c.closed;
    assert.equal(c.closeCode, 4112);
    assert.match(c.closeReason, /^4112: \S/);
    assert.equal(await storedState(redis.client()), before, 'WebSocket: nothing stored');
  });

  it('binary channelStats answers one entry per id with isOnline from presence; serverStats answers the process list', async () => {
    const online = channelId();
    const offline = channelId();
    const ws = await BinWs.open(l2.url, [signed(online)]);
    await sleep(100);
    const res = await binPublish(pub.url, [{ channelStats: { channels: [{ id: hex(online), isPrivate: true }, { id: hex(offline), isPrivate: true }] } }]);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/octet-stream');
    const stats = decodeResponseBatch(new Uint8Array(await res.arrayBuffer())).responses[0]?.channelStats?.channels ?? [];
    assert.deepEqual(stats.map((c) => [bytesToHex(c.id), c.isPrivate, c.isOnline]), [
      [online, true, true],
      [offline, true, false],
    ]);
    const srv = await eventually(async () => {
      const r = await binPublish(pub.url, [{ serverStats: {} }]);
      const list = JSON.parse(decodeResponseBatch(new Uint8Array(await r.arrayBuffer())).responses[0]?.serverStats?.json ?? '[]') as Array<Record<string, unknown>>;
      return list.some((p) => p['type'] === 'listener' && Number(p['websockets']) >= 1) ? list : undefined;
    }, 5000, 'server stats with a listener');
    assert.ok(srv !== undefined);
    for (const p of srv) for (const k of ['pid', 'date', 'processUniqueId', 'websockets', 'pollings', 'channels']) assert.ok(k in p, k);
    ws.ws.close();
  });

  it('client publishing over a WebSocket binary frame reaches the target on another listener with sender CLIENT + public id', async () => {
    const [privA, pubA, privB, pubB] = [channelId(), channelId(), channelId(), channelId()];
    const a = await BinWs.open(l1.url, [signChannelPair(privA, pubA, SECRET)]);
    const bText = await BinWs.open(l2.url, [signChannelPair(privB, pubB, SECRET)], '');
    const bBin = await BinWs.open(l2.url, [signChannelPair(privB, pubB, SECRET)]);
    const bOther = await BinWs.open(l1.url, [signChannelPair(privB, pubB, SECRET)]);
    await sleep(100);
    const body = { module_id: 'im', command: 'typing', params: { from: 'a' } };
    a.ws.send(encodeRequestBatch({ requests: [incoming([{ id: hex(pubB), isPrivate: false, signature: publicSig(pubB) }], body, 0)] }));
    await eventually(() => bBin.messages.length === 1 && bOther.messages.length === 1 && bText.textFrames.length === 1, 5000, 'client message on every connection of B');
    const m = bBin.messages[0] as OutMsg;
    assert.deepEqual(JSON.parse(m.body), body);
    assert.equal(m.sender?.type, 1);
    assert.equal(bytesToHex(m.sender?.id ?? new Uint8Array()), pubA);
    await sleep(200);
    assert.equal(a.messages.length, 0, 'the sender does not get its own message');
    assert.equal(a.closeCode, null, 'the sender stays connected');
    for (const c of [a, bText, bBin, bOther]) c.ws.close();
  });

  it('client publishing errors close the WebSocket: 4012 without public id, 4020 private receiver, 4021 bad signature, 4014 serverStats, 4013 garbage', async () => {
    const pubB = channelId();
    const cases: Array<[string[], Uint8Array, number, string]> = [
      [[signed(channelId())], encodeRequestBatch({ requests: [incoming([{ id: hex(pubB), isPrivate: false, signature: publicSig(pubB) }], { module_id: 'x', command: 'y' })] }), 4012, '4012: Public Channel Id is Required.'],
      [[signChannelPair(channelId(), channelId(), SECRET)], encodeRequestBatch({ requests: [incoming([{ id: hex(pubB), isPrivate: true, signature: publicSig(pubB) }], { module_id: 'x', command: 'y' })] }), 4020, '4020: Private channel is not allowed.'],
      [[signChannelPair(channelId(), channelId(), SECRET)], encodeRequestBatch({ requests: [incoming([{ id: hex(pubB), isPrivate: false, signature: Buffer.alloc(20) }], { module_id: 'x', command: 'y' })] }), 4021, '4021: Channel has an invalid signature.'],
      [[signChannelPair(channelId(), channelId(), SECRET)], encodeRequestBatch({ requests: [{ serverStats: {} }] }), 4014, '4014: Request command is not allowed.'],
      [[signChannelPair(channelId(), channelId(), SECRET)], Buffer.from([0x0a, 0xff]), 4013, '4013: Wrong Request Data.'],
    ];
    for (const [chs, frame, code, reason] of cases) {
      const c = await BinWs.open(l1.url, chs);
      c.ws.send(frame);
      await c.closed;
      assert.equal(c.closeCode, code);
      assert.equal(c.closeReason, reason);
    }
  });

  it('client publishing via POST /bitrix/rest/ delivers; errors are HTTP 400 "<code>: <reason>"', async () => {
    const [privA, pubA, privB, pubB, shared] = [channelId(), channelId(), channelId(), channelId(), channelId()];
    const b = await BinWs.open(l2.url, [signChannelPair(privB, pubB, SECRET)]);
    await sleep(100);
    const restUrl = `${pub.url}/bitrix/rest/?CHANNEL_ID=${encodeURIComponent(`${signChannelPair(privA, pubA, SECRET)}/${signed(shared)}`)}`;
    const ok = await fetch(restUrl, { method: 'POST', body: encodeRequestBatch({ requests: [incoming([{ id: hex(pubB), isPrivate: false, signature: publicSig(pubB) }], { module_id: 'im', command: 'rest' }, 60)] }) });
    assert.equal(ok.status, 200);
    await eventually(() => b.messages.length === 1, 5000, 'REST client message');
    assert.equal(b.messages[0]?.sender?.type, 1);
    assert.equal(bytesToHex(b.messages[0]?.sender?.id ?? new Uint8Array()), pubA);
    // Stored with its expiry: B's owner catches up by mid on the public channel's history.
    const poll = await fetch(`${l1.url}/bitrix/sub/?CHANNEL_ID=${signChannelPair(privB, pubB, SECRET)}&binaryMode=true&mid=${'0'.repeat(26)}`);
    const replay = decodeResponseBatch(new Uint8Array(await poll.arrayBuffer())).responses[0]?.outgoingMessages?.messages ?? [];
    assert.equal(replay.length, 1);
    assert.equal(replay[0]?.sender?.type, 1);
    const errs: Array<[string, Uint8Array, string]> = [
      [`${pub.url}/bitrix/rest/?CHANNEL_ID=${signed(privA)}`, encodeRequestBatch({ requests: [incoming([{ id: hex(pubB), isPrivate: false, signature: publicSig(pubB) }], { module_id: 'x', command: 'y' })] }), '4012: Public Channel Id is Required.'],
      // As in Bitrix 2.0, a list that does not check out names no public id: 4012, signed wrongly or not at all.
      [`${pub.url}/bitrix/rest/?CHANNEL_ID=${privA}:${pubA}.${'0'.repeat(40)}`, encodeRequestBatch({ requests: [{ serverStats: {} }] }), '4012: Public Channel Id is Required.'],
      [`${pub.url}/bitrix/rest/?CHANNEL_ID=${privA}:${pubA}`, encodeRequestBatch({ requests: [incoming([{ id: hex(pubB), isPrivate: false, signature: publicSig(pubB) }], { module_id: 'x', command: 'y' })] }), '4012: Public Channel Id is Required.'],
      [restUrl, encodeRequestBatch({ requests: [{ serverStats: {} }] }), '4014: Request command is not allowed.'],
      [restUrl, encodeRequestBatch({ requests: [incoming([{ id: hex(privB), isPrivate: true }], { module_id: 'x', command: 'y' })] }), '4020: Private channel is not allowed.'],
      [restUrl, encodeRequestBatch({ requests: [incoming([{ id: hex(pubB), isPrivate: false, signature: publicSig(privB) }], { module_id: 'x', command: 'y' })] }), '4021: Channel has an invalid signature.'],
    ];
    for (const [url, body, text] of errs) {
      const res = await fetch(url, { method: 'POST', body });
      assert.equal(res.status, 400, text);
      assert.equal(await res.text(), text);
    }
    const preflight = await fetch(restUrl, { method: 'OPTIONS' });
    assert.equal(preflight.status, 200);
    assert.equal(preflight.headers.get('access-control-allow-origin'), '*');
    const tooBig = await fetch(restUrl, { method: 'POST', body: new Uint8Array(1024 * 1024 + 1) });
    assert.equal(tooBig.status, 413);
    assert.match(await tooBig.text(), /^4101: /);
    await sleep(200);
    assert.equal(b.messages.length, 1, 'rejected requests delivered nothing');
    b.ws.close();
  });

  it('the connection after PUSH_MAX_CONN_PER_CHANNEL on one priv:pub closes the oldest with 4029; shared channels are not limited', async () => {
    const [priv, pubId, shared] = [channelId(), channelId(), channelId()];
    const ids = [signChannelPair(priv, pubId, SECRET), signed(shared)];
    const conns: BinWs[] = [];
    for (let i = 0; i < 3; i++) {
      conns.push(await BinWs.open(l1.url, ids));
      await sleep(30);
    }
    const sharedOnly = [];
    for (let i = 0; i < 4; i++) sharedOnly.push(await BinWs.open(l1.url, [signed(shared)]));
    await sleep(200);
    assert.ok(conns.every((c) => c.closeCode === null) && sharedOnly.every((c) => c.closeCode === null));
    const fourth = await BinWs.open(l1.url, ids);
    await conns[0]?.closed;
    assert.equal(conns[0]?.closeCode, 4029);
    assert.equal(conns[0]?.closeReason, '4029: Too many connections');
    await sleep(200);
    assert.ok([conns[1], conns[2], fourth, ...sharedOnly].every((c) => c?.closeCode === null), 'only the oldest was closed');
    for (const c of [...conns, fourth, ...sharedOnly]) c.ws.close();
  });

  it('a parked long poll that is the oldest connection on its priv:pub is answered 429 "4029: Too many connections"', async () => {
    const pair = signChannelPair(channelId(), channelId(), SECRET);
    const poll = fetch(`${l2.url}/bitrix/sub/?CHANNEL_ID=${encodeURIComponent(pair)}&binaryMode=true`);
    await sleep(150);
    const ws: BinWs[] = [];
    for (let i = 0; i < 3; i++) ws.push(await BinWs.open(l2.url, [pair]));
    const res = await poll;
    assert.equal(res.status, 429);
    assert.equal(await res.text(), '4029: Too many connections');
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    await sleep(100);
    assert.ok(ws.every((c) => c.closeCode === null), 'the WebSockets stay');
    for (const c of ws) c.ws.close();
  });
});
