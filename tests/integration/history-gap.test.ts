import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { bytesToHex } from '@push/protocol';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startApp, type AppProcess } from '../helpers/apps.js';
import { WsClient, channelId, longPoll, publish, signed, type Frame } from '../helpers/clients.js';
import { BinWs } from '../helpers/bin-ws.js';
import { eventually, sleep } from '../helpers/ports.js';

/**
 * The loss signal end to end (real Redis, publisher and listener): a client that resumes with a
 * cursor older than what its channel still keeps is told so, on every transport, once; a client
 * whose cursor is inside what is kept is not.
 */

interface GapParams {
  after: string;
  up_to: string;
  channels: Array<{ id: string; up_to: string; cause: string; public?: boolean }>;
}
const textOf = (f: Frame) => f.text as { module_id?: string; command?: string; params?: unknown };
const isGap = (t: { module_id?: string; command?: string }): boolean => t.module_id === 'pull' && t.command === 'history_gap';
const seq = (t: { params?: unknown }): number => (t.params as { n: number }).n;

/** Publishes `count` messages (params.n = from, from+1, ...) to `ch` in one batch. */
async function publishMany(pubUrl: string, ch: string, count: number, from = 0, expiry?: number): Promise<void> {
  const messages = Array.from({ length: count }, (_, i) => ({ channels: [ch], body: { module_id: 'seq', command: 'n', params: { n: from + i } }, ...(expiry === undefined ? {} : { expiry }) }));
  const res = await fetch(`${pubUrl}/pub/batch`, { method: 'POST', body: JSON.stringify({ messages }) });
  assert.equal(res.status, 200, await res.clone().text());
}

describe('resume past the retained history (PUSH_HISTORY_LIMIT 100)', () => {
  let redis: RedisServer;
  let pub: AppProcess;
  let sub: AppProcess;

  before(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, PUSH_LONGPOLL_TIMEOUT_S: '1' };
    [pub, sub] = await Promise.all([startApp('publisher', env), startApp('listener', env)]);
  });
  after(async () => {
    await Promise.all([pub?.stop(), sub?.stop()]);
    await redis?.stop();
  });

  /**
   * A channel with one message the client saw (its cursor), then 150 published while it was away.
   * Returns once the listener has handed out all 150 live (to another subscriber): otherwise a
   * resume right after the publish answer can find some of them still on their way through the
   * listener, and those arrive as live messages older than the gap's bound (a loaded machine).
   */
  async function away(): Promise<{ ch: string; cursor: string }> {
    const ch = channelId();
    const ws = await WsClient.connect(sub.url, [signed(ch)]);
    await publish(pub.url, [ch], { module_id: 'seq', command: 'first', params: { n: -1 } });
    const [first] = await ws.waitFor(1);
    ws.close();
    await ws.closed;
    const watcher = await WsClient.connect(sub.url, [signed(ch)], `&mid=${(first as Frame).mid}`);
    await publishMany(pub.url, ch, 150);
    await watcher.waitFor(150);
    watcher.close();
    await watcher.closed;
    return { ch, cursor: (first as Frame).mid };
  }

  it('WebSocket (text): one pull/history_gap message first, then the last 100 once and in order, then live', async () => {
    const { ch, cursor } = await away();
    const ws = await WsClient.connect(sub.url, [signed(ch)], `&mid=${cursor}`);
    await ws.waitFor(101);
    const texts = ws.messages.map(textOf);
    assert.ok(isGap(texts[0] as never), 'the notice comes first');
    const params = texts[0]?.params as GapParams;
    assert.equal(params.after, cursor);
    assert.deepEqual(params.channels.map((c) => [c.id, c.cause]), [[ch, 'limit']]);
    assert.equal(params.channels[0]?.up_to, params.up_to);
    assert.equal(ws.messages[0]?.mid, params.up_to, 'its mid is the bound of the gap');
    // The 50 oldest of the 150 are gone, and the notice bounds them: every kept message is newer.
    assert.deepEqual(texts.slice(1).map(seq), Array.from({ length: 100 }, (_, i) => 50 + i));
    assert.ok(ws.messages.slice(1).every((f) => f.mid > params.up_to));
    assert.ok(params.up_to > cursor);
    await publish(pub.url, [ch], { module_id: 'seq', command: 'n', params: { n: 150 } });
    await ws.waitFor(102);
    await sleep(100);
    assert.deepEqual(ws.messages.map(textOf).filter(isGap).length, 1, 'told once');
    assert.equal(seq(textOf(ws.messages[101] as Frame)), 150);
    ws.close();
  });

  it('WebSocket (protocol 4): the same notice as an OutgoingMessage with sender BACKEND, before the kept messages', async () => {
    const { ch, cursor } = await away();
    const bin = await BinWs.open(sub.url, [signed(ch)], `&binaryMode=true&mid=${cursor}`);
    await eventually(() => bin.messages.length >= 101, 5000, '101 protobuf messages');
    const first = bin.messages[0];
    const body = JSON.parse(first?.body ?? '{}') as { module_id: string; command: string; params: GapParams };
    assert.deepEqual([body.module_id, body.command], ['pull', 'history_gap']);
    assert.equal(bytesToHex(first?.id as Uint8Array), body.params.up_to);
    assert.equal(first?.sender?.type, 2);
    assert.equal(body.params.after, cursor);
    assert.deepEqual(bin.messages.slice(1).map((m) => (JSON.parse(m.body) as { params: { n: number } }).params.n), Array.from({ length: 100 }, (_, i) => 50 + i));
    bin.ws.close();
  });

  it('long poll: X-Push-History-Gap names the channel and the bound, the body carries the notice; the next poll is clean', async () => {
    const { ch, cursor } = await away();
    const r = await longPoll(sub.url, [signed(ch)], `&mid=${cursor}`);
    assert.equal(r.status, 200);
    const header = r.headers.get('x-push-history-gap') ?? '';
    const params = textOf(r.messages[0] as Frame).params as GapParams;
    assert.equal(header, `${ch}; after=${cursor}; up-to=${params.up_to}; cause=limit`);
    assert.equal(r.headers.get('access-control-expose-headers'), 'Last-Message-Id, X-Push-History-Gap', 'readable by cross-origin scripts');
    assert.deepEqual(r.messages.slice(1).map((f) => seq(textOf(f))), Array.from({ length: 100 }, (_, i) => 50 + i));
    const next = await longPoll(sub.url, [signed(ch)], `&mid=${(r.messages[r.messages.length - 1] as Frame).mid}`);
    assert.equal(next.status, 304);
    assert.equal(next.headers.get('x-push-history-gap'), null);
    // A cursor inside the kept history: no signal.
    const inside = await longPoll(sub.url, [signed(ch)], `&mid=${(r.messages[10] as Frame).mid}`);
    assert.equal(inside.status, 200);
    assert.equal(inside.headers.get('x-push-history-gap'), null);
    assert.equal(inside.messages.filter((f) => isGap(textOf(f))).length, 0);
  });

  it('records whose TTL ended after the cursor are a gap too (cause expired)', async () => {
    const ch = channelId();
    const ws = await WsClient.connect(sub.url, [signed(ch)]);
    await publish(pub.url, [ch], { module_id: 'seq', command: 'first', params: { n: -1 } });
    const [first] = await ws.waitFor(1);
    ws.close();
    await publishMany(pub.url, ch, 3, 0, 1);
    await publishMany(pub.url, ch, 2, 3, 3600);
    await sleep(1300);
    const r = await longPoll(sub.url, [signed(ch)], `&mid=${(first as Frame).mid}`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('x-push-history-gap') ?? '', new RegExp(`^${ch}; after=${(first as Frame).mid}; up-to=\\d{26}; cause=expired$`));
    assert.deepEqual(r.messages.map((f) => (isGap(textOf(f)) ? 'gap' : seq(textOf(f)))), ['gap', 3, 4]);
  });

  it('counts truncated resumes', async () => {
    const metrics = await (await fetch(`${sub.url}/metrics`)).text();
    const m = /^push_resume_truncated_total\{[^}]*\} (\d+)$/m.exec(metrics);
    assert.equal(Number(m?.[1]), 4, 'the four resumes above that were told (not the clean ones)');
  });
});
