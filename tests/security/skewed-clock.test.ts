import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import type { Redis } from 'ioredis';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startApp, type AppProcess } from '../helpers/apps.js';
import { WsClient, channelId, longPoll, publish, signed, type Frame } from '../helpers/clients.js';
import { eventually, sleep } from '../helpers/ports.js';

/**
 * "Server time from one clock": listeners and a publisher whose own clocks are six hours off (in
 * both directions, through libfaketime preloaded into the real processes) still apply the channel
 * lifecycle by Redis time. A process that judged channel age by its own clock would, running ahead,
 * treat a fresh channel as past its read window (refusing subscribers) and, running behind, never
 * see the write window end (no channel_expire) nor the read window (admitting late subscribers).
 * Needs Debian's faketime package, which `npm test` installs (SETUP_PACKAGES in scripts/test.sh).
 */
const SKEW_H = 6;
const WRITE_S = 3;
const READ_S = 8;

const run = (cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> =>
  new Promise((resolve, reject) =>
    execFile(cmd, args, { env: { PATH: process.env['PATH'] ?? '', ...env } }, (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );

/** The preload settings `faketime` itself uses, read from it so no library path is written here. */
async function faketimeEnv(offset: string): Promise<Record<string, string>> {
  let preload: string;
  try {
    preload = await run('faketime', ['-f', '+0', 'sh', '-c', 'printf %s "$LD_PRELOAD"']);
  } catch (err) {
    throw new Error(`this test needs the faketime command (Debian package faketime; npm test installs it): ${(err as Error).message}`);
  }
  assert.ok(preload.includes('faketime'), `unexpected LD_PRELOAD from faketime: ${preload}`);
  // Timers (libuv, uWS) use the monotonic clock: leave it alone so only the wall clock is skewed.
  return { LD_PRELOAD: preload, FAKETIME: offset, FAKETIME_DONT_FAKE_MONOTONIC: '1', FAKETIME_NO_CACHE: '1' };
}

const isExpireNotice = (f: Frame | undefined, ch: string): boolean => {
  const t = f?.text as { module_id?: string; command?: string; params?: { channel?: { id?: string } } } | undefined;
  return t?.module_id === 'pull' && t.command === 'channel_expire' && t.params?.channel?.id === signed(ch);
};
const numbers = (frames: Frame[]): unknown[] => frames.map((f) => (f.text as { params?: { n?: number } }).params?.n);

describe(`channel lifecycle with process clocks ${SKEW_H} h off (faketime)`, () => {
  let redis: RedisServer;
  let r: Redis;
  let pub: AppProcess;
  let ahead: AppProcess;
  let behind: AppProcess;

  before(async () => {
    redis = await startRedis();
    r = redis.client();
    const env = { REDIS_URL: redis.url, PUSH_CHANNEL_WRITE_S: String(WRITE_S), PUSH_CHANNEL_READ_S: String(READ_S), PUSH_ONLINE_TTL_S: '10', PUSH_STATS_INTERVAL_S: '1', PUSH_LONGPOLL_TIMEOUT_S: '2' };
    [pub, ahead, behind] = await Promise.all([
      startApp('publisher', { ...env, ...(await faketimeEnv(`+${SKEW_H}h`)) }),
      startApp('listener', { ...env, ...(await faketimeEnv(`+${SKEW_H}h`)) }),
      startApp('listener', { ...env, ...(await faketimeEnv(`-${SKEW_H}h`)) }),
    ]);
  });
  after(async () => {
    await Promise.all([pub?.stop(), ahead?.stop(), behind?.stop()]);
    await redis?.stop();
  });

  it('the processes really run with skewed clocks (their stats reports carry their own time)', async () => {
    const skewOf = async (app: AppProcess): Promise<number> => {
      let skew = NaN;
      await eventually(async () => {
        const [sec, usec] = await r.time();
        const redisMs = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
        for (const json of Object.values(await r.hgetall('push:stats'))) {
          const s = JSON.parse(json) as { port: number; date: number };
          if (s.port === app.port) skew = s.date - redisMs;
        }
        return !Number.isNaN(skew);
      }, 5000, `stats report of port ${app.port}`);
      return skew;
    };
    const hourMs = 3600_000;
    for (const [app, sign] of [[pub, 1], [ahead, 1], [behind, -1]] as const) {
      const skew = await skewOf(app);
      assert.ok(Math.abs(skew - sign * SKEW_H * hourMs) < 60_000, `port ${app.port}: skew ${skew} ms`);
    }
  });

  it('writable, readable, channel_expire and the read window all follow Redis time', async () => {
    const ch = channelId();
    // Created by the first publish, at Redis time; the publisher's own clock is 6 h ahead.
    const [sec] = await r.time();
    const t0 = Date.now();
    for (const n of [1, 2]) assert.equal((await publish(pub.url, [ch], { module_id: 'test', command: 'm', params: { n } }, { 'Message-Expiry': '60' })).status, 200);
    const created = Number(await r.get(`push:ch:{${ch}}`));
    assert.ok(Math.abs(created - Number(sec) * 1000) < 5000, `creation recorded by Redis time: ${created}`);

    // Inside the write window: both listeners serve the backlog and no notice; the connections stay open.
    const early = await Promise.all([ahead, behind].map((l) => WsClient.connect(l.url, [signed(ch)], `&mid=${'0'.repeat(26)}`)));
    for (const ws of early) assert.deepEqual(numbers(await ws.waitFor(2)), [1, 2]);
    await sleep(500);
    for (const ws of early) {
      assert.equal(ws.messages.length, 2, `no channel_expire inside the write window: ${JSON.stringify(ws.messages.at(-1))}`);
      assert.equal(ws.closeCode, null);
    }
    assert.ok(Date.now() - t0 < WRITE_S * 1000, 'still inside the write window when checked');

    // The write window ends (by Redis time): the open connections get the notice, writes are refused.
    const notices = await Promise.all(early.map((ws) => ws.waitFor(3, WRITE_S * 1000 + 4000)));
    for (const msgs of notices) assert.ok(isExpireNotice(msgs[2], ch), JSON.stringify(msgs[2]));
    const refused = await publish(pub.url, [ch], { module_id: 'test', command: 'm', params: { n: 3 } }, { 'Message-Expiry': '60' });
    assert.equal(refused.status, 410);
    assert.ok((await refused.text()).startsWith('4126: '));
    // A subscriber arriving now gets the backlog and then the notice, on either listener.
    for (const l of [ahead, behind]) {
      const lp = await longPoll(l.url, [signed(ch)], `&mid=${'0'.repeat(26)}`);
      assert.equal(lp.status, 200, lp.body);
      assert.deepEqual(numbers(lp.messages.slice(0, 2)), [1, 2]);
      assert.ok(isExpireNotice(lp.messages[2], ch), lp.body);
    }
    for (const ws of early) ws.close();

    // The read window ends (by Redis time): subscribing is refused like an invalid channel on both.
    await sleep(Math.max(0, t0 + READ_S * 1000 + 300 - Date.now()));
    for (const l of [ahead, behind]) {
      const gone = await longPoll(l.url, [signed(ch)]);
      assert.equal(gone.status, 400, `port ${l.port}: ${gone.body}`);
      assert.equal(gone.body, '4010: Wrong Channel Id.');
    }
  });
});
