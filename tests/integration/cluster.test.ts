import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startRedisCluster, type RedisClusterHandle } from '../helpers/redis-cluster.js';
import { startApp, type AppProcess } from '../helpers/apps.js';
import { channelId, longPoll, publish, signed, type Frame } from '../helpers/clients.js';
import { eventually, sleep } from '../helpers/ports.js';
import { ResumingClient, publishStreamAcrossFault } from '../helpers/publish-stream.js';
import { channelSlot } from '../../packages/backend/src/redis-cluster-backend.js';

/** `perMaster` fresh channel ids on each master of the cluster, as [channel, master port] pairs. */
async function spread(cluster: RedisClusterHandle, perMaster: number): Promise<Array<[string, number]>> {
  const masters = (await cluster.topology()).filter((n) => n.role === 'master' && n.slots.length > 0);
  const portOf = (slot: number): number => masters.find((m) => m.slots.some(([a, b]) => slot >= a && slot <= b))?.port ?? -1;
  const out: Array<[string, number]> = [];
  const count = new Map<number, number>();
  while (out.length < perMaster * masters.length) {
    const c = channelId();
    const port = portOf(channelSlot(c));
    if ((count.get(port) ?? 0) >= perMaster) continue;
    count.set(port, (count.get(port) ?? 0) + 1);
    out.push([c, port]);
  }
  return out;
}

const keyOf = (f: Frame): string => {
  const p = (f.text as { params: { c: number | string; n: number } }).params;
  return `${p.c}#${p.n}`;
};

describe('a publisher and a listener on a Redis Cluster (REDIS_URL=redis+cluster://..., 3 masters, 3 replicas)', () => {
  let cluster: RedisClusterHandle;
  let pub: AppProcess;
  let sub: AppProcess;
  /** A second listener: a client may resume on any listener. */
  let sub2: AppProcess;
  before(async () => {
    cluster = await startRedisCluster();
    const env = { REDIS_URL: cluster.url, PUSH_PUBLISH_DURABILITY: 'replicated', PUSH_HISTORY_LIMIT: '1000', PUSH_LONGPOLL_TIMEOUT_S: '1' };
    [pub, sub, sub2] = await Promise.all([startApp('publisher', env), startApp('listener', env), startApp('listener', env)]);
  });
  after(async () => {
    await Promise.all([pub?.stop(), sub?.stop(), sub2?.stop()]);
    await cluster?.stop();
  });

  it('channels on every shard, single and multi-shard publishes: a WebSocket gets each message once, in id order; long poll resumes from one mid across shards', async () => {
    const pairs = await spread(cluster, 2);
    const chans = pairs.map(([c]) => c);
    assert.equal(new Set(pairs.map(([, port]) => port)).size, 3, 'channels on all three masters');
    const client = new ResumingClient(sub.url, chans);
    await client.open();
    // Per channel sequence numbers; every fifth publish goes to every channel at once (one request
    // carried out shard by shard), counted under its own sequence "all".
    const expected: string[] = [];
    const seq = chans.map(() => 0);
    let all = 0;
    for (let i = 0; i < 60; i++) {
      const multi = i % 5 === 4;
      const c = i % chans.length;
      const body = multi ? { module_id: 't', command: 'seq', params: { c: 'all', n: ++all } } : { module_id: 't', command: 'seq', params: { c, n: ++seq[c]! } };
      const res = await publish(pub.url, multi ? chans : [chans[c] as string], body);
      assert.equal(res.status, 200, await res.text());
      expected.push(`${body.params.c}#${body.params.n}`);
    }
    await eventually(() => client.got.length >= expected.length, 15_000, 'every message delivered');
    await sleep(300); // anything extra (a duplicate part) would arrive by now
    client.close();
    const got = client.got.map((g) => keyOf(g.frame));
    assert.equal(got.length, expected.length, `each message once (${got.length} delivered for ${expected.length} published)`);
    assert.deepEqual([...got].sort(), [...expected].sort(), 'nothing lost, nothing twice');
    const mids = client.got.map((g) => g.frame.mid);
    assert.deepEqual(mids, [...mids].sort(), 'delivered in id order');
    for (const m of mids) assert.match(m, /^[0-9]{10}0[0-9]{15}$/, 'the Cluster id form S 0 U L Q');
    for (const g of client.got) assert.ok(Number.isSafeInteger(Number(g.frame.mid.slice(10))), 'numeric id below 2^53');
    // Per channel (and for the multi-shard sequence) in order.
    for (const k of ['all', ...chans.map((_, i) => String(i))]) {
      const ns = got.filter((x) => x.startsWith(`${k}#`)).map((x) => Number(x.split('#')[1]));
      assert.deepEqual(ns, [...ns].sort((a, b) => a - b), `sequence ${k} in order`);
    }
    // Resume from a single mid in the middle: exactly what came after it, once, in order.
    for (const cut of [0, 17, 33, 58]) {
      for (const listener of [sub, sub2]) {
        const h = await longPoll(listener.url, chans.map((c) => signed(c)), `&mid=${mids[cut]}`);
        assert.equal(h.status, 200);
        assert.deepEqual(h.messages.map(keyOf), got.slice(cut + 1), `long poll after message ${cut} on ${listener === sub ? 'the same' : 'another'} listener`);
      }
    }
    // A connection with only some of the channels gets the multi-shard messages once too.
    const some = [chans[1] as string, chans[4] as string];
    const h = await longPoll(sub.url, some.map((c) => signed(c)), `&mid=${'0'.repeat(26)}`);
    assert.equal(h.messages.filter((f) => keyOf(f).startsWith('all#')).length, all, 'each multi-shard message once on a two-shard subset');
  });

  it('redis-cli --cluster reshard under a publish stream: the moved channels follow their slots, a WebSocket gets every acknowledged message once, in order', async () => {
    const masters = (await cluster.topology()).filter((n) => n.role === 'master' && n.slots.length > 0);
    const from = masters[0] as (typeof masters)[number];
    const to = masters[1] as (typeof masters)[number];
    const firstSlot = (from.slots[0] as readonly [number, number])[0];
    const moved = 40;
    const inMoved: string[] = [];
    while (inMoved.length < 3) {
      const c = channelId();
      const slot = channelSlot(c);
      if (slot >= firstSlot && slot < firstSlot + moved) inMoved.push(c);
    }
    const others = (await spread(cluster, 1)).filter(([, port]) => port !== from.port).map(([c]) => c);
    const chans = [...inMoved, ...others];
    const client = new ResumingClient(sub.url, chans);
    await client.open();
    const r = await publishStreamAcrossFault(pub.url, client, chans, () => cluster.reshard(from.port, to.port, moved), { before: 30, after: 60, timeoutMs: 60_000 });
    client.close();
    const figures = `${r.acked} acknowledged, ${r.refused} refused, ${r.unknown} resent after 504, ${r.reconnects} reconnects`;
    console.log(`cluster reshard through the apps: ${figures}`);
    for (const c of inMoved) assert.equal((await cluster.masterOf(channelSlot(c))).port, to.port, 'the slot moved');
    assert.deepEqual(r.lost, [], `acknowledged, never delivered (${figures})`);
    assert.equal(r.duplicated, 0, 'nothing delivered twice');
    assert.equal(r.outOfOrder, 0, 'each channel in order');
    const mids = client.got.map((g) => g.frame.mid);
    assert.deepEqual(mids, [...mids].sort(), 'mids increase across the reshard');
  });

  it('kill -9 of a master under a publish stream (replicated durability): nothing acknowledged lost, nothing twice, delivery resumes', async () => {
    const pairs = await spread(cluster, 1);
    const chans = pairs.map(([c]) => c);
    const client = new ResumingClient(sub.url, chans);
    await client.open();
    const victimPort = (pairs[0] as [string, number])[1];
    const victim = cluster.nodes.find((n) => n.port === victimPort);
    assert.ok(victim !== undefined);
    // Once the replica took over, the killed node comes back and rejoins as its replica, so
    // replicated publishes on that shard are confirmed again (until then they are answered 504
    // and resent with the same request id, as a portal does).
    let rejoined: Promise<void> = Promise.resolve();
    let killedAt = 0;
    let promotedAt = 0;
    const fault = async (): Promise<void> => {
      killedAt = Date.now();
      await victim.kill(true);
      rejoined = (async () => {
        // Healthy = every slot served by a running master again: the replica was promoted (seen
        // within the 25 ms poll of the check).
        await cluster.healthy(30_000);
        promotedAt = Date.now();
        await victim.start();
      })();
    };
    const r = await publishStreamAcrossFault(pub.url, client, chans, fault, { before: 30, after: 60, timeoutMs: 60_000 });
    await rejoined;
    client.close();
    const figures = `${r.acked} acknowledged, ${r.refused} refused, ${r.unknown} resent after 504, ${r.reconnects} reconnects, resumed ${r.resumedMs} ms after the kill, ${r.resumedMs - (promotedAt - killedAt)} ms after the promotion was seen (${promotedAt - killedAt} ms after the kill)`;
    console.log(`cluster kill -9 of a master through the apps: ${figures}`);
    assert.ok(r.ackedAfterFault >= 60, `publishing resumed on every shard after the failover (${figures})`);
    assert.deepEqual(r.lost, [], `acknowledged, never delivered (${figures})`);
    assert.equal(r.duplicated, 0, 'nothing delivered twice');
    assert.equal(r.outOfOrder, 0, 'each channel in order');
    assert.ok(r.resumedMs >= 0, 'delivery resumed');
    const mids = client.got.map((g) => g.frame.mid);
    assert.deepEqual(mids, [...mids].sort(), 'mids increase across the failover');
    const h = await longPoll(sub.url, chans.map((c) => signed(c)), `&mid=${mids[0]}`);
    assert.equal(h.status, 200);
    assert.deepEqual(h.messages.map((m) => m.mid), mids.slice(1), 'long poll replays everything after the first mid, once, in order');
  });
  it('/readyz during a failover: kill -9 of a master makes the publisher and a subscribed listener answer 503 naming what is down, ready again after the promotion, and publishing resumes on that shard', async () => {
    await cluster.healthy(30_000);
    const pairs = await spread(cluster, 1);
    const client = new ResumingClient(sub.url, pairs.map(([c]) => c));
    await client.open();
    const victimPort = (pairs[0] as [string, number])[1];
    const onVictim = (pairs[0] as [string, number])[0];
    const victim = cluster.nodes.find((n) => n.port === victimPort);
    assert.ok(victim !== undefined);
    for (const app of [pub, sub]) assert.equal((await fetch(`${app.url}/readyz`)).status, 200, `${app === pub ? 'publisher' : 'listener'} ready before the fault`);
    // Poll both every 50 ms from the kill until both are ready again after the promotion.
    const seen = { pub: [] as Array<{ at: number; status: number; body: string }>, sub: [] as Array<{ at: number; status: number; body: string }> };
    let polling = true;
    const poll = (async () => {
      while (polling) {
        for (const [name, app] of [['pub', pub], ['sub', sub]] as const) {
          const r = await fetch(`${app.url}/readyz`).catch(() => null);
          if (r !== null) seen[name].push({ at: Date.now(), status: r.status, body: await r.text() });
        }
        await sleep(50);
      }
    })();
    const killedAt = Date.now();
    await victim.kill(true);
    try {
      await cluster.healthy(30_000);
      const promotedAt = Date.now();
      await eventually(async () => (await fetch(`${pub.url}/readyz`)).status === 200 && (await fetch(`${sub.url}/readyz`)).status === 200, 20_000, 'publisher and listener ready again after the promotion');
      const readyAt = Date.now();
      polling = false;
      await poll;
      for (const name of ['pub', 'sub'] as const) {
        const down = seen[name].filter((x) => x.status === 503);
        assert.ok(down.length > 0, `${name}: not ready while the master was down (${seen[name].length} polls)`);
        // 4109 (a connection to a master does not answer) or 4136 (a subscription is not back yet).
        for (const d of down) assert.match(d.body, /^(4109|4136)/, `${name}: ${d.body}`);
        assert.ok(down.some((d) => d.body.startsWith('4136') || d.body.includes(String(victimPort)) || /did not answer|is down|knows no master/.test(d.body)), `${name}: the reason names what is down: ${down.map((d) => d.body).join(' | ')}`);
      }
      console.log(`cluster /readyz across kill -9 of a master: publisher first 503 ${(seen.pub.find((x) => x.status === 503)?.at ?? 0) - killedAt} ms after the kill, listener ${(seen.sub.find((x) => x.status === 503)?.at ?? 0) - killedAt} ms; promotion seen ${promotedAt - killedAt} ms after the kill; both ready ${readyAt - killedAt} ms after it`);
      // Publishing resumes on the shard that failed over, and the subscribed client gets it once.
      // With replicated durability the promoted master needs a replica again: the killed node
      // rejoins as one; until it has synced, a publish is answered 504 4170 and resent with the
      // same request id, as a portal does.
      await victim.start();
      let last = '';
      await eventually(
        async () => {
          const res = await publish(pub.url, [onVictim], { module_id: 't', command: 'after-failover', params: { c: 0, n: 1 } }, { 'X-Push-Request-Id': 'readyz-after-failover' });
          last = `${res.status} ${await res.text()}`;
          return res.status === 200;
        },
        30_000,
        'a publish on the failed-over shard accepted',
      ).catch((err: Error) => assert.fail(`${err.message}: last answer ${last}`));
      await eventually(() => client.got.some((g) => (g.frame.text as { command?: string }).command === 'after-failover'), 15_000, 'the publish after the failover delivered');
      await sleep(300);
      assert.equal(client.got.filter((g) => (g.frame.text as { command?: string }).command === 'after-failover').length, 1, 'delivered once');
    } finally {
      polling = false;
      await poll;
      client.close();
      // Back as a replica of the promoted node, so the cluster is whole for whatever follows.
      if (!victim.running) await victim.start();
      await cluster.healthy(30_000);
    }
  });
});
