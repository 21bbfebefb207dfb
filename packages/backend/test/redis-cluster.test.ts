import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { BACKEND_SENDER, Errors, PushError, type NewMessage } from '@push/protocol';
import { createRedisBackend, type Backend } from '../src/index.js';
import { channelSlot } from '../src/redis-cluster-backend.js';
import { startRedisCluster, type ClusterNodeInfo, type RedisClusterHandle } from '../../../tests/helpers/redis-cluster.js';
import { nodeCall, type RedisNode } from '../../../tests/helpers/redis-node.js';
import { CONFORMANCE_OPTIONS, backendConformance, ch } from './conformance.js';
import { publishAcrossFault } from './failover-stream.js';
import { startTcpProxy, type TcpProxy } from '../../../tests/helpers/tcp-proxy.js';

const log = pino({ level: 'silent' });

// The same contract as one Redis, through REDIS_URL=redis+cluster://... on a real 3-master /
// 3-replica Cluster started here.
backendConformance('redis cluster', async () => {
  const cluster = await startRedisCluster();
  const backend = createRedisBackend({ ...CONFORMANCE_OPTIONS, url: cluster.url, keyPrefix: 't:', log });
  return { backend, cleanup: () => cluster.stop() };
});

describe('Redis Cluster specifics (3 masters, 3 replicas)', () => {
  let cluster: RedisClusterHandle;
  let backend: Backend;
  /** Fresh channels, one per master, with the master serving each. */
  let onMasters: () => Promise<Array<{ channel: string; master: RedisNode }>>;
  before(async () => {
    cluster = await startRedisCluster();
    backend = createRedisBackend({ ...CONFORMANCE_OPTIONS, historyLimit: 1000, url: cluster.url, keyPrefix: 'push:', log });
    onMasters = async () => {
      const out: Array<{ channel: string; master: RedisNode }> = [];
      while (out.length < 3) {
        const channel = ch() + String(out.length) + String(Math.random()).slice(2, 8);
        const master = await cluster.masterOf(channelSlot(channel));
        if (!out.some((o) => o.master === master)) out.push({ channel, master });
      }
      return out;
    };
  });
  after(async () => {
    await backend?.close();
    await cluster?.stop();
  });
  const zero = '0'.repeat(26);
  const msg = (channels: string[], n: number): NewMessage => ({ channels, body: JSON.stringify({ n }), type: 't', ttl: 60 });

  it('a publish to three shards is stored part by part: one id per part, in the Cluster form, each above the earlier parts; read back once from any cursor', async () => {
    const three = await onMasters();
    const chans = three.map((t) => t.channel);
    const ids = await backend.store.publish([msg(chans, 1)], BACKEND_SENDER);
    const parts = ids.parts?.[0];
    assert.ok(parts !== undefined, 'parts are reported');
    const partIds = chans.map((c) => parts[c] as string);
    assert.equal(ids[0], partIds[0], 'the message id is its first part id');
    assert.deepEqual(partIds, [...partIds].sort(), 'parts in order');
    assert.equal(new Set(partIds).size, 3, 'one id per part');
    for (const [k, mid] of partIds.entries()) {
      assert.match(mid, /^[0-9]{10}0[0-9]{15}$/);
      assert.equal(Number(mid.slice(17, 22)), channelSlot(chans[k] as string), 'the slot is in the id');
      assert.ok(Number(mid.slice(10)) < 2 ** 53, 'numeric id below 2^53');
    }
    // Once, under the smallest id of the parts the reader asks for.
    assert.deepEqual((await backend.store.history(chans, zero)).messages.map((m) => m.mid), [partIds[0]]);
    assert.deepEqual((await backend.store.history([chans[1] as string, chans[2] as string], zero)).messages.map((m) => m.mid), [partIds[1]]);
    assert.deepEqual((await backend.store.history([chans[2] as string], zero)).messages.map((m) => m.mid), [partIds[2]]);
    // A reader whose cursor is the first part has the message: the later parts are not replayed.
    assert.deepEqual((await backend.store.history(chans, partIds[0] as string)).messages, []);
    // Per channel, ids keep increasing across publishes.
    const next = await backend.store.publish([msg([chans[2] as string], 2)], BACKEND_SENDER);
    assert.ok((next[0] as string) > (partIds[2] as string));
  });

  it('a part refused after another was stored answers "outcome unknown"; the retry with the same identity stores only the missing part', async () => {
    const [x, y] = await onMasters();
    const a = (x as { channel: string }).channel;
    const b = (y as { channel: string; master: RedisNode }).channel;
    const yPort = (y as { master: RedisNode }).master.port;
    // The request's identity is claimed first, on the node of its own key's slot: the hash tag puts
    // it beside channel a (not on the master made to refuse writes, or the claim itself is refused).
    const rid = { scope: 'b', requestId: `partial-{${a}}`, windowS: 60 };
    await nodeCall(yPort, 'CONFIG', 'SET', 'maxmemory', '1');
    let err: unknown = null;
    try {
      await backend.store.publish([msg([a, b], 1)], BACKEND_SENDER, rid);
    } catch (e) {
      err = e;
    } finally {
      await nodeCall(yPort, 'CONFIG', 'SET', 'maxmemory', '0');
    }
    assert.ok(err instanceof PushError && err.spec === Errors.OUTCOME_UNKNOWN, String(err));
    assert.equal((await backend.store.history([a], zero)).messages.length, 1, 'the first part is stored');
    assert.equal((await backend.store.history([b], zero)).messages.length, 0, 'the refused part is not');
    const first = (await backend.store.history([a], zero)).messages[0]?.mid;
    const retry = await backend.store.publish([msg([a, b], 1)], BACKEND_SENDER, rid);
    assert.equal(retry[0], first, 'the stored part keeps its id');
    assert.equal((await backend.store.history([a], zero)).messages.length, 1, 'not stored twice');
    assert.equal((await backend.store.history([b], zero)).messages.length, 1, 'the missing part is stored now');
    assert.deepEqual((await backend.store.history([a, b], zero)).messages.map((m) => m.mid), [first], 'one message for a reader of both');
    const again = await backend.store.publish([msg([a, b], 1)], BACKEND_SENDER, rid);
    assert.equal(again.replayed, true);
    assert.deepEqual([...again], [...retry]);
  });

  it('a channel past its write window on one shard refuses the whole request before any shard stores its part', async () => {
    const short = createRedisBackend({ ...CONFORMANCE_OPTIONS, channelWriteMs: 1000, url: cluster.url, keyPrefix: 'push:', log });
    try {
      const [x, y] = await onMasters();
      const fresh = (x as { channel: string }).channel;
      const old = (y as { channel: string }).channel;
      await short.channels.create([old]);
      await new Promise((r) => setTimeout(r, 1100));
      await assert.rejects(short.store.publish([msg([fresh, old], 1)], BACKEND_SENDER, { scope: 'b', requestId: `exp-${fresh}`, windowS: 60 }), (err: unknown) => err instanceof PushError && err.spec === Errors.CHANNEL_EXPIRED && err.message.includes(old));
      assert.deepEqual((await short.store.history([fresh, old], zero)).messages, [], 'nothing stored on either shard');
      // The identity was left unused: a corrected request may take it.
      const ok = await short.store.publish([msg([fresh], 2)], BACKEND_SENDER, { scope: 'b', requestId: `exp-${fresh}`, windowS: 60 });
      assert.equal(ok.replayed, undefined);
    } finally {
      await short.close();
    }
  });

  it('the broker hands messages from every shard over in id order (two publishers at once)', async () => {
    const chans = [...(await onMasters()), ...(await onMasters())].map((t) => t.channel);
    const other = createRedisBackend({ ...CONFORMANCE_OPTIONS, url: cluster.url, keyPrefix: 'push:', log });
    const broker = backend.createBroker();
    const got: string[] = [];
    broker.setHandler((_c, m) => got.push(m.mid));
    try {
      await broker.subscribe(chans);
      const sent: string[] = [];
      const run = async (b: Backend, k: number): Promise<void> => {
        for (let i = 0; i < 150; i++) {
          const c = chans[(i * 7 + k) % chans.length] as string;
          sent.push(...(await b.store.publish([msg([c], i)], BACKEND_SENDER)));
        }
      };
      await Promise.all([run(backend, 0), run(other, 3)]);
      const deadline = Date.now() + 10_000;
      while (got.length < sent.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.equal(got.length, sent.length, 'every message delivered once');
      assert.deepEqual(got, [...got].sort(), 'in id order across shards');
      assert.deepEqual([...got].sort(), [...sent].sort());
    } finally {
      await broker.close();
      await other.close();
    }
  });

  it('redis-cli --cluster reshard under a publish stream: the moved channels follow their slots; nothing lost, nothing twice, in order', async () => {
    const t = await cluster.topology();
    const masters = t.filter((n) => n.role === 'master' && n.slots.length > 0).sort((a, b) => (a.slots[0]?.[0] ?? 0) - (b.slots[0]?.[0] ?? 0));
    const from = masters[0] as ClusterNodeInfo;
    const to = masters[1] as ClusterNodeInfo;
    const moved = 40;
    const firstSlot = (from.slots[0] as readonly [number, number])[0];
    // Channels in the slots the reshard moves (the source's lowest), and one on each other master.
    const inMoved: string[] = [];
    for (let i = 0; inMoved.length < 4; i++) {
      const c = `${ch()}r${i}`;
      const slot = channelSlot(c);
      if (slot >= firstSlot && slot < firstSlot + moved) inMoved.push(c);
    }
    const others = (await onMasters()).filter((o) => o.master.port !== from.port).map((o) => o.channel);
    const chans = [...inMoved, ...others];
    const stream = createRedisBackend({ ...CONFORMANCE_OPTIONS, historyLimit: 1000, url: cluster.url, keyPrefix: 'push:', log, durability: 'replicated' });
    try {
      const report = await publishAcrossFault(stream, chans, () => cluster.reshard(from.port, to.port, moved), { afterFault: 100 });
      for (const c of inMoved) assert.equal((await cluster.masterOf(channelSlot(c))).port, to.port, 'the slot moved');
      assert.deepEqual(report.lost, [], `acknowledged but never delivered (${report.acked} acknowledged, ${report.failed} failed: ${report.errors.join(' | ')})`);
      assert.equal(report.duplicated, 0);
      assert.equal(report.outOfOrder, 0);
      assert.ok(report.resumedMs >= 0, 'delivery went on after the reshard');
      const h = await stream.store.history(chans, '0'.repeat(26));
      assert.ok(h.messages.length >= report.acked, `history holds every acknowledged message (${h.messages.length} of ${report.acked})`);
      console.log(`cluster reshard of ${moved} slots under a stream: ${report.acked} acknowledged, ${report.failed} refused (${report.errors.join(' | ')})`);
    } finally {
      await stream.close();
    }
  });

  it('the subscription connections killed on every master (CLIENT KILL TYPE pubsub) under a stream: lost, resubscribed, refilled; nothing lost or twice', async () => {
    const chans = [...(await onMasters()), ...(await onMasters())].map((o) => o.channel);
    const stream = createRedisBackend({ ...CONFORMANCE_OPTIONS, historyLimit: 1000, url: cluster.url, keyPrefix: 'push:', log });
    try {
      const kill = async (): Promise<void> => {
        const masters = (await cluster.topology()).filter((n) => n.role === 'master' && n.slots.length > 0);
        const killed = await Promise.all(masters.map((m) => nodeCall(m.port, 'CLIENT', 'KILL', 'TYPE', 'pubsub')));
        assert.ok(killed.every((n) => Number(n) >= 1), `a subscription connection on every master (${killed.join(', ')})`);
      };
      const report = await publishAcrossFault(stream, chans, kill, { afterFault: 100 });
      assert.deepEqual(report.lost, [], `acknowledged but never delivered (${report.acked} acknowledged, ${report.failed} failed: ${report.errors.join(' | ')})`);
      assert.equal(report.duplicated, 0);
      assert.equal(report.outOfOrder, 0);
      assert.ok(report.resumedMs >= 0, 'delivery resumed');
    } finally {
      await stream.close();
    }
  });
});

/**
 * The command and publish connections of a Cluster are probed per node, as on one Redis: one
 * master is reached through a proxy (natMap) that stalls that process's connections to it without
 * closing them. The stall is found within the budget and named, what was on the connection fails at
 * once with a true answer (504 4134 for a publish part, never the 20 s wait), readiness names the
 * node while it lasts, the other masters keep working, and everything works again once the path does.
 */
describe('Redis Cluster: a node connection that stalls silently (3 masters, 3 replicas)', () => {
  const BUDGET_MS = 1000;
  let cluster: RedisClusterHandle;
  let proxy: TcpProxy;
  let backend: Backend;
  let onStalled: string;
  let onOther: string;
  let stalledPort: number;
  before(async () => {
    cluster = await startRedisCluster();
    const masters = (await cluster.topology()).filter((n) => n.role === 'master' && n.slots.length > 0);
    stalledPort = (masters[0] as ClusterNodeInfo).port;
    proxy = await startTcpProxy(stalledPort);
    backend = createRedisBackend({
      ...CONFORMANCE_OPTIONS,
      url: cluster.url,
      keyPrefix: 'push:',
      log,
      pubsubStallMs: BUDGET_MS,
      publishTimeoutMs: 20_000,
      natMap: { [`127.0.0.1:${stalledPort}`]: { host: '127.0.0.1', port: proxy.port } },
    });
    const pick = async (want: (port: number) => boolean): Promise<string> => {
      for (;;) {
        const c = `${ch()}${String(Math.random()).slice(2, 8)}`;
        if (want((await cluster.masterOf(channelSlot(c))).port)) return c;
      }
    };
    onStalled = await pick((port) => port === stalledPort);
    onOther = await pick((port) => port !== stalledPort);
  });
  after(async () => {
    await backend?.close();
    await proxy?.close();
    await cluster?.stop();
  });
  const publishTo = (channel: string, body: string) => backend.store.publish([{ channels: [channel], body, type: 't', ttl: 60 }], BACKEND_SENDER, { scope: 'b', requestId: `s-${body}-${Date.now()}`, windowS: 60 });
  const readyWithin = async (ms: number): Promise<void> => {
    const deadline = Date.now() + ms;
    for (;;) {
      if (await backend.store.ping().then(() => true, () => false)) return;
      if (Date.now() > deadline) throw new Error('not ready again');
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  it('the publish connection to one master: a part on it answers 504 4134 within the budget, the stall is counted and named, the other masters keep publishing; ready again once the path is', async () => {
    await readyWithin(10_000);
    await publishTo(onStalled, 'warm');
    await backend.store.history([onStalled], null);
    assert.deepEqual(backend.connectionStalls(), { 'push-cmd': 0, 'push-pub': 0, 'push-sub': 0 });
    proxy.stall('push-pub');
    const started = Date.now();
    const err = await publishTo(onStalled, 'stalled').then(
      () => null,
      (e: unknown) => e,
    );
    const tookMs = Date.now() - started;
    assert.ok(err instanceof PushError, `rejected with a catalogue error (${String(err)})`);
    assert.equal(err.spec.code, 4134, `outcome unknown: it was written (${err.message})`);
    assert.match(err.message, /push-pub/, 'the answer names the connection');
    assert.ok(tookMs <= BUDGET_MS + 1500, `answered after ${tookMs} ms`);
    assert.equal(backend.connectionStalls()['push-pub'], 1);
    assert.equal(backend.connectionStalls()['push-cmd'], 0, 'the command connections were not touched');
    // While the path stays silent: not ready, naming the publish connection and the node.
    const readyErr = await backend.store.ping().then(() => null, (e: unknown) => e as Error);
    assert.ok(readyErr !== null, 'not ready while the publish connection to that master carries nothing');
    assert.match(readyErr.message, new RegExp(`push-pub.*${proxy.port}`), readyErr.message);
    // The other masters are not held up.
    assert.equal((await publishTo(onOther, 'elsewhere')).length, 1);
    proxy.resume();
    await readyWithin(15_000);
    assert.equal((await publishTo(onStalled, 'after')).length, 1, 'publishes go through a new connection');
  });

  it('the command connection to one master: readiness answers within the budget naming it, the stall is counted, and reads work again after', async () => {
    const before = backend.connectionStalls();
    await backend.store.history([onStalled], null);
    proxy.stall('push-cmd');
    const started = Date.now();
    const err = await backend.store.ping().then(() => null, (e: unknown) => e as Error);
    const tookMs = Date.now() - started;
    assert.ok(err !== null, 'not ready');
    assert.match(err.message, /push-cmd/, `names the command connection: ${err.message}`);
    assert.ok(tookMs <= BUDGET_MS + 750, `answered after ${tookMs} ms`);
    const deadline = Date.now() + BUDGET_MS + 3000;
    while ((backend.connectionStalls()['push-cmd'] ?? 0) < (before['push-cmd'] ?? 0) + 1) {
      if (Date.now() > deadline) throw new Error('the command connection was not found stalled');
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(backend.connectionStalls()['push-pub'], before['push-pub'], 'the publish connections were not touched');
    proxy.resume();
    await readyWithin(15_000);
    await backend.store.history([onStalled], null);
  });

  it('a history read of several slot groups never hands out a cursor past a message a slower group has not seen', async () => {
    await readyWithin(15_000);
    // A cursor on both channels, then the slow master's read held back by its proxy (less than the
    // probe's budget, so the connection is kept): the other group is read at once.
    const [cursor] = await publishTo(onOther, 'cursor');
    proxy.stall('push-cmd');
    let reading: Promise<Awaited<ReturnType<Backend['store']['history']>>>;
    let fast: string;
    let slow: string;
    try {
      reading = backend.store.history([onStalled, onOther], cursor as string);
      await new Promise((r) => setTimeout(r, 150));
      // Stored after the quick group's read, then one on the held master, before its read runs.
      [fast] = (await publishTo(onOther, 'after-the-quick-read')) as [string];
      [slow] = (await publishTo(onStalled, 'before-the-slow-read')) as [string];
    } finally {
      proxy.resume();
    }
    const h = await reading;
    assert.ok(fast < slow, `ids follow the publish order across shards (${fast} < ${slow})`);
    const got = new Set(h.messages.map((m) => m.mid));
    // Whatever the reader is told it has read up to, it has: nothing at or below the cursor it takes away is missing.
    const upTo = h.newestMid ?? h.floorMid ?? '';
    for (const mid of [fast, slow]) if (mid <= upTo) assert.ok(got.has(mid), `${mid} is at or below the cursor ${upTo} but was not returned (got ${[...got].join(', ')})`);
    for (const m of h.messages) assert.ok(m.mid <= upTo, `a returned message ${m.mid} is above the cursor ${upTo}`);
    // And what this read left out comes with the next one.
    const next = await backend.store.history([onStalled, onOther], upTo);
    const all = new Set([...got, ...next.messages.map((m) => m.mid)]);
    assert.ok(all.has(fast) && all.has(slow), 'both messages are read by the next read at the latest');
  });

  it('Redis holding the writes on that master (CLIENT PAUSE WRITE, 4 budgets): no connection is taken for stalled, the publish waits and is stored once', async () => {
    const before = backend.connectionStalls();
    await publishTo(onStalled, 'before-pause');
    await nodeCall(stalledPort, 'CLIENT', 'PAUSE', String(BUDGET_MS * 4), 'WRITE');
    const started = Date.now();
    const ids = await publishTo(onStalled, 'held');
    const tookMs = Date.now() - started;
    assert.equal(ids.length, 1);
    assert.ok(tookMs >= BUDGET_MS * 3, `the publish really waited for the pause (${tookMs} ms)`);
    assert.deepEqual(backend.connectionStalls(), before, 'held by Redis is not a stall');
  });
});
