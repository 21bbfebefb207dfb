import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startRedisSentinel, type RedisSentinelHandle } from '../helpers/redis-sentinel.js';
import { startApp, type AppProcess } from '../helpers/apps.js';
import { WsClient, channelId, longPoll, publish, signed, type Frame } from '../helpers/clients.js';
import { eventually, sleep } from '../helpers/ports.js';

/**
 * A WebSocket client that does what the Bitrix clients do when the server closes its socket:
 * reconnects with the newest mid it got. Collects every message it was given.
 */
class ResumingClient {
  readonly got: Frame[] = [];
  private ws: WsClient | null = null;
  private closed = false;
  reconnects = 0;
  constructor(
    private readonly base: string,
    private readonly channels: string[],
  ) {}
  async open(): Promise<void> {
    const last = this.got[this.got.length - 1]?.mid;
    const ws = await WsClient.connect(this.base, this.channels.map((c) => signed(c)), last === undefined ? '' : `&mid=${last}`);
    this.ws = ws;
    ws.ws.on('message', () => {
      this.got.push(...ws.messages.splice(0));
    });
    void ws.closed.then(async () => {
      if (this.closed) return;
      this.reconnects++;
      for (;;) {
        try {
          await sleep(200);
          await this.open();
          return;
        } catch {
          /* the listener refuses while Redis is away; try again */
        }
      }
    });
  }
  close(): void {
    this.closed = true;
    this.ws?.close();
  }
}

describe('a publisher and a listener on a Sentinel group (REDIS_URL=redis+sentinel://...)', () => {
  let group: RedisSentinelHandle;
  let pub: AppProcess;
  let sub: AppProcess;
  before(async () => {
    group = await startRedisSentinel({ replicas: 2 });
    const env = { REDIS_URL: group.url, PUSH_PUBLISH_DURABILITY: 'replicated', PUSH_HISTORY_LIMIT: '1000', PUSH_LONGPOLL_TIMEOUT_S: '1' };
    [pub, sub] = await Promise.all([startApp('publisher', env), startApp('listener', env)]);
  });
  after(async () => {
    await Promise.all([pub?.stop(), sub?.stop()]);
    await group?.stop();
  });

  it('kill -9 of the master under a publish stream: a WebSocket gets every acknowledged message once, in order; long poll resumes across it', async () => {
    const chans = [channelId(), channelId(), channelId()];
    const client = new ResumingClient(sub.url, chans);
    await client.open();
    const seq = [0, 0, 0];
    const acked: string[] = [];
    let refused = 0;
    let killedAt = 0;
    let ackedAfter = 0;
    const old = await group.master();
    const started = Date.now();
    while (ackedAfter < 30 && Date.now() - started < 40_000) {
      if (killedAt === 0 && acked.length >= 30) {
        await old.kill(true);
        killedAt = Date.now();
      }
      const i = (seq[0]! + seq[1]! + seq[2]!) % 3;
      const n = ++seq[i]!;
      const res = await publish(pub.url, [chans[i] as string], { module_id: 't', command: 'seq', params: { ch: i, n } }).catch(() => null);
      if (res?.status === 200) {
        acked.push(`${i}#${n}`);
        if (killedAt > 0) ackedAfter++;
      } else {
        refused++;
        assert.ok(res === null || res.status === 503, `a refused publish is 503, got ${res?.status}`);
        await sleep(50);
      }
    }
    assert.ok(ackedAfter >= 30, `publishing resumed after the failover (${ackedAfter} acknowledged after it, ${refused} refused)`);
    const key = (f: Frame): string => {
      const p = (f.text as { params: { ch: number; n: number } }).params;
      return `${p.ch}#${p.n}`;
    };
    await eventually(() => acked.every((k) => client.got.some((f) => key(f) === k)), 15_000, 'every acknowledged message delivered').catch(() => {});
    client.close();
    const got = client.got.map(key);
    const lost = acked.filter((k) => !got.includes(k));
    assert.deepEqual(lost, [], `acknowledged, never delivered (${acked.length} acknowledged, ${refused} refused, ${client.reconnects} reconnects)`);
    assert.equal(new Set(got).size, got.length, 'nothing delivered twice');
    for (let i = 0; i < 3; i++) {
      const ns = got.filter((k) => k.startsWith(`${i}#`)).map((k) => Number(k.split('#')[1]));
      assert.deepEqual(ns, [...ns].sort((a, b) => a - b), `channel ${i} in order`);
    }
    const mids = client.got.map((f) => f.mid);
    assert.deepEqual(mids, [...mids].sort(), 'mids increase across the failover');
    // A long-poll client that was away for the whole failover resumes from the first mid.
    const first = client.got[0]?.mid as string;
    const h = await longPoll(sub.url, chans.map((c) => signed(c)), `&mid=${first}`);
    const replayed = new Set(h.messages.map(key));
    for (const k of acked.slice(1)) assert.ok(replayed.has(k), `long poll replays ${k}`);
  });
});
