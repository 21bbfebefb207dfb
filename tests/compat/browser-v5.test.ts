import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { ROOT, startApp, type AppProcess } from '../helpers/apps.js';
import { freePort } from '../helpers/ports.js';
import { PortalV5 } from './sdk-v5.js';
import { CHROMIUM, FLAGS, PAGE, type PageClient, type Win } from './browser-page.js';

/**
 * The official client's browser bundle in protocol 5 (JSON-RPC, token subscriptions) in headless
 * Chromium, on a page of another origin: the browser's own WebSocket and XHR.
 */

describe('official client bundle in protocol 5 in headless Chromium, cross-origin', () => {
  let redis: RedisServer;
  let pub: AppProcess;
  let listener: AppProcess;
  let web: Server;
  let browser: Browser;
  let page: Page;
  let portal: PortalV5;

  before(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, PUSH_LONGPOLL_TIMEOUT_S: '40', PUSH_UNSUBSCRIBE_DELAY_MS: '200' };
    [pub, listener] = await Promise.all([startApp('publisher', env), startApp('listener', env)]);
    portal = new PortalV5(pub.url, listener.url);
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

  it('WebSocket and long-poll clients receive, publish to each other, watch status and ask last seen', async () => {
    await start('ws', 901, portal.config(901));
    await start('lp', 902, portal.config(902, { websocket: false }));
    await connected(['ws', 'lp']);
    const info = (await page.evaluate(() => (globalThis as unknown as Win).clients['ws']?.pull['getDebugInfo']?.())) as Record<string, unknown>;
    assert.equal(info['WebSocket mode'], 'json-rpc');
    await portal.publish({ users: [901, 902] }, 'test', 'to-users', {});
    await portal.publish({ channels: [portal.shared] }, 'test', 'to-shared', {});
    await page.waitForFunction(() => ['ws', 'lp'].every((n) => ['to-users', 'to-shared'].every((c) => (globalThis as unknown as Win).clients[n]?.received.includes(c))), undefined, { timeout: 15_000 });
    assert.deepEqual(await page.evaluate(() => (globalThis as unknown as Win).clients['ws']?.received), ['to-users', 'to-shared']);
    assert.deepEqual(await page.evaluate(() => (globalThis as unknown as Win).clients['lp']?.received), ['to-users', 'to-shared']);
    // Client to client, from the browser's WebSocket to the long-polling user.
    await page.evaluate(() => (globalThis as unknown as Win).clients['ws']?.pull['sendMessage']?.([902], 'test', 'hi', {}));
    await page.waitForFunction(() => ((globalThis as unknown as Win).clients['lp']?.fromClients.length ?? 0) === 1, undefined, { timeout: 10_000 });
    assert.deepEqual(await page.evaluate(() => (globalThis as unknown as Win).clients['lp']?.fromClients), [{ command: 'hi', sender: { type: 1, id: '901' } }]);
    // Status: the WebSocket client watches user 903, who then connects.
    await page.evaluate(() => {
      const c = (globalThis as unknown as Win).clients['ws'] as PageClient;
      return c.pull['subscribeUserStatusChange']?.(903, (e: unknown) => c.status.push(e));
    });
    await start('late', 903, portal.config(903));
    await page.waitForFunction(() => ((globalThis as unknown as Win).clients['ws']?.status.length ?? 0) >= 1, undefined, { timeout: 10_000 });
    assert.deepEqual(await page.evaluate(() => (globalThis as unknown as Win).clients['ws']?.status[0]), { userId: 903, isOnline: true });
    // Last seen: every user asked about is known to the server, so the client asks the portal nothing.
    await page.evaluate(() => (globalThis as unknown as Win).clients['ws']?.pull['getUsersLastSeen']?.([902, 903]));
    assert.deepEqual(await page.evaluate(() => (globalThis as unknown as Win).clients['ws']?.rest.filter((m) => m === 'pull.api.user.getLastSeen')), []);
    for (const n of ['ws', 'lp', 'late']) await page.evaluate((name) => (globalThis as unknown as Win).clients[name]?.pull['destroy']?.(), n);
  });
});
