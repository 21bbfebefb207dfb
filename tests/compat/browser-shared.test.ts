import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { ROOT, startApp, type AppProcess } from '../helpers/apps.js';
import { freePort } from '../helpers/ports.js';
import { PortalV5 } from './sdk-v5.js';
import { Portal } from './sdk-harness.js';
import { CHROMIUM, FLAGS, PAGE, type Win } from './browser-page.js';

/**
 * The official client's browser bundle in shared mode (PUSH_MODE=shared) in headless Chromium, on a
 * page of another origin: two portals registered on one installation, their clients side by side in
 * one page with the same user ids, in protocol 5 (WebSocket and long poll) and protocol 4.
 */
const ADMIN = 'browser-shared-admin-token-0123456789';
const A_ID = 'f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1';
const B_ID = 'f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2';

describe('official client bundle in shared mode in headless Chromium, cross-origin', () => {
  let redis: RedisServer;
  let pub: AppProcess;
  let listener: AppProcess;
  let web: Server;
  let browser: Browser;
  let page: Page;
  const key: Record<string, string> = {};

  before(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, PUSH_MODE: 'shared', PUSH_ADMIN_TOKEN: ADMIN, PUSH_LONGPOLL_TIMEOUT_S: '40', PUSH_UNSUBSCRIBE_DELAY_MS: '200' };
    [pub, listener] = await Promise.all([startApp('publisher', env), startApp('listener', env)]);
    for (const id of [A_ID, B_ID]) {
      const res = await fetch(`${pub.url}/register-client/`, { method: 'POST', headers: { Authorization: `Bearer ${ADMIN}` }, body: `verificationQuery=${encodeURIComponent(`BX_LICENCE=${id}&BX_TYPE=CP`)}` });
      assert.equal(res.status, 200);
      key[id] = ((await res.json()) as { securityKey: string }).securityKey;
    }
    const sdk = readFileSync(`${ROOT}node_modules/@bitrix24/b24jssdk/dist/umd/index.min.js`);
    web = createServer((req, res) => {
      if (req.url === '/sdk.js') res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(sdk);
      else res.writeHead(200, { 'Content-Type': 'text/html' }).end(PAGE);
    });
    const port = await freePort();
    await new Promise<void>((resolve) => web.listen(port, '127.0.0.1', () => resolve()));
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
    page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${port}/`);
  });
  after(async () => {
    await browser?.close();
    await new Promise((resolve) => web?.close(resolve));
    await Promise.all([pub?.stop(), listener?.stop()]);
    await redis?.stop();
  });

  const start = (name: string, userId: number, config: Record<string, unknown>): Promise<void> => page.evaluate(([n, u, c]) => (globalThis as unknown as Win).startClient(n, u, c), [name, userId, config] as const);
  const connected = (names: string[]): Promise<unknown> => page.waitForFunction((ns) => ns.every((n) => (globalThis as unknown as Win).clients[n]?.pull['isConnected']?.()), names, { timeout: 15_000 });
  const received = (name: string): Promise<unknown> => page.evaluate((n) => (globalThis as unknown as Win).clients[n]?.received, name);

  it('each portal clients receive only their portal messages, with the same user ids and channel ids, in protocols 5 and 4', async () => {
    const a5 = new PortalV5(pub.url, listener.url, key[A_ID] as string, A_ID);
    const b5 = new PortalV5(pub.url, listener.url, key[B_ID] as string, B_ID);
    (b5 as { shared: string }).shared = a5.shared;
    await start('a-ws', 901, a5.config(901));
    await start('a-lp', 902, a5.config(902, { websocket: false }));
    await start('b-ws', 901, b5.config(901));
    const a4 = new Portal(pub.url, listener.url, { key: key[A_ID] as string, algorithm: 'sha1' }, A_ID);
    const b4 = new Portal(pub.url, listener.url, { key: key[B_ID] as string, algorithm: 'sha1' }, B_ID);
    (b4 as { shared: string }).shared = a4.shared;
    const v4 = { name: 'WS protobuf (v4)', version: 4, websocket: true } as const;
    await start('a-v4', 905, a4.config(905, v4));
    await start('b-v4', 905, b4.config(905, v4));
    await connected(['a-ws', 'a-lp', 'b-ws', 'a-v4', 'b-v4']);
    await a5.publish({ users: [901, 902] }, 'test', 'a-users', {});
    await b5.publish({ users: [901] }, 'test', 'b-user', {});
    await a5.publish({ channels: [a5.shared] }, 'test', 'a-shared', {});
    await a4.publish([a4.shared], 'test', 'a4-shared', {});
    await b4.publish([b4.channels(905).priv], 'test', 'b4-private', {});
    // Plain data and no named helpers inside the page function (the test runner's transform would
    // add a helper the page does not have).
    const expected: Array<[string, string[]]> = [
      ['a-ws', ['a-users', 'a-shared']],
      ['a-lp', ['a-users', 'a-shared']],
      ['b-ws', ['b-user']],
      ['a-v4', ['a4-shared']],
      ['b-v4', ['b4-private']],
    ];
    await page.waitForFunction((exp) => exp.every(([n, cmds]) => cmds.every((x) => (globalThis as unknown as Win).clients[n]?.received.includes(x))), expected, { timeout: 15_000 });
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await received('a-ws'), ['a-users', 'a-shared']);
    assert.deepEqual(await received('a-lp'), ['a-users', 'a-shared']);
    assert.deepEqual(await received('b-ws'), ['b-user'], 'B user 901 hears nothing of A user 901 or A shared channel');
    assert.deepEqual(await received('a-v4'), ['a4-shared']);
    assert.deepEqual(await received('b-v4'), ['b4-private'], 'B hears nothing of A on the same shared channel id');
    // Client to client from the browser within portal A only.
    await page.evaluate(() => (globalThis as unknown as Win).clients['a-ws']?.pull['sendMessage']?.([902], 'test', 'hi', {}));
    await page.waitForFunction(() => ((globalThis as unknown as Win).clients['a-lp']?.fromClients.length ?? 0) === 1, undefined, { timeout: 10_000 });
    assert.deepEqual(await page.evaluate(() => (globalThis as unknown as Win).clients['b-ws']?.fromClients), []);
    for (const n of ['a-ws', 'a-lp', 'b-ws', 'a-v4', 'b-v4']) await page.evaluate((name) => (globalThis as unknown as Win).clients[name]?.pull['destroy']?.(), n);
  });
});
