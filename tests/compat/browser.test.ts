import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { ROOT, startApp, type AppProcess } from '../helpers/apps.js';
import { freePort } from '../helpers/ports.js';
import { MODES, Portal, type Mode } from './sdk-harness.js';

/**
 * The official client's browser bundle (UMD, `B24Js.B24PullClientManager`) in headless Chromium,
 * on a page served from another origin than the push server: real browser WebSocket, XHR and CORS.
 * Long polling works only if 200 bodies are readable cross-origin and `Last-Message-Id` is exposed.
 */

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><script src="/sdk.js"></script></head><body>
<script>
  // A fake portal REST API, as in the Node harness: configs come from the test through window.configs.
  window.clients = {};
  window.startClient = async (name, userId, config) => {
    const received = [];
    const b24 = {
      actions: { v2: { call: { make: async () => ({ getData: () => ({ result: { ...config, serverTime: new Date().toISOString() } }) }) } } },
      callMethod: async () => ({ getData: () => ({ result: {} }) }),
    };
    const pull = new B24Js.B24PullClientManager({ b24, userId, siteId: 's1', serverEnabled: true, skipStorageInit: true, skipCheckRevision: true, configTimestamp: 0 });
    pull.subscribe({ type: 'server', moduleId: 'test', callback: (data) => received.push(data.command) });
    window.clients[name] = { pull, received };
    await pull.start(config);
  };
  window.rawPoll = (url) => new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open('GET', url);
    xhr.onloadend = () => resolve({ status: xhr.status, lastMessageId: xhr.getResponseHeader('Last-Message-Id'), expires: xhr.getResponseHeader('Expires'), body: xhr.responseText });
    xhr.send();
  });
</script></body></html>`;

describe('official client bundle in headless Chromium, cross-origin', () => {
  let redis: RedisServer;
  let pub: AppProcess;
  let listener: AppProcess;
  let web: Server;
  let browser: Browser;
  let page: Page;
  let portal: Portal;
  let pageOrigin: string;

  before(async () => {
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, PUSH_LONGPOLL_TIMEOUT_S: '2' };
    [pub, listener] = await Promise.all([startApp('publisher', env), startApp('listener', env)]);
    portal = new Portal(pub.url, listener.url);
    const sdk = readFileSync(`${ROOT}node_modules/@bitrix24/b24jssdk/dist/umd/index.min.js`);
    web = createServer((req, res) => {
      if (req.url === '/sdk.js') res.writeHead(200, { 'Content-Type': 'text/javascript' }).end(sdk);
      else res.writeHead(200, { 'Content-Type': 'text/html' }).end(PAGE);
    });
    const port = await freePort();
    await new Promise<void>((resolve) => web.listen(port, '127.0.0.1', () => resolve()));
    // Another port is another origin: every request to the push server is cross-origin.
    pageOrigin = `http://127.0.0.1:${port}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
    page = await browser.newPage();
    await page.goto(`${pageOrigin}/`);
  });
  after(async () => {
    await browser?.close();
    await new Promise((resolve) => web?.close(resolve));
    await Promise.all([pub?.stop(), listener?.stop()]);
    await redis?.stop();
  });

  const received = (name: string): Promise<string[]> => page.evaluate((n) => (globalThis as unknown as { clients: Record<string, { received: string[] }> }).clients[n]?.received ?? [], name);
  const waitReceived = async (name: string, cmds: string[]): Promise<void> => {
    await page.waitForFunction(({ n, c }) => c.every((x) => (globalThis as unknown as { clients: Record<string, { received: string[] }> }).clients[n]?.received.includes(x)), { n: name, c: cmds }, { timeout: 15_000 });
  };

  it('long poll and WebSocket clients on another origin receive messages (text and protobuf)', async () => {
    assert.notEqual(new URL(pageOrigin).port, new URL(listener.url).port);
    const modes: readonly Mode[] = MODES;
    let user = 100;
    for (const mode of modes) await page.evaluate(([n, u, cfg]) => (globalThis as unknown as { startClient: (a: unknown, b: unknown, c: unknown) => Promise<void> }).startClient(n, u, cfg), [mode.name, user, portal.config(user++, mode)] as const);
    await page.waitForFunction((names) => names.every((n) => (globalThis as unknown as { clients: Record<string, { pull: { isConnected(): boolean } }> }).clients[n]?.pull.isConnected()), modes.map((m) => m.name), { timeout: 15_000 });
    // One message to each private channel, then one to the shared channel every client listens on.
    user = 100;
    for (const mode of modes) await portal.publish([portal.channels(user++).priv], 'test', 'private', {});
    await portal.publish([portal.shared], 'test', 'shared', {});
    for (const mode of modes) await waitReceived(mode.name, ['private', 'shared']);
    await new Promise((r) => setTimeout(r, 300));
    for (const mode of modes) assert.deepEqual(await received(mode.name), ['private', 'shared'], mode.name);
    for (const mode of modes) {
      const info = await page.evaluate((n) => (globalThis as unknown as { clients: Record<string, { pull: { getDebugInfo(): Record<string, unknown> } }> }).clients[n]?.pull.getDebugInfo(), mode.name);
      assert.equal(info?.['WebSocket connected'], mode.websocket ? 'Y' : 'N', `${mode.name}: transport`);
      assert.equal(String(info?.['Path']).includes('binaryMode=true'), mode.version === 4, `${mode.name}: framing`);
    }
  });

  it('a script on another origin reads long-poll 200 bodies and Last-Message-Id on a 304, and the long-polling client takes its cursor from it', async () => {
    const mode = MODES.find((m) => !m.websocket && m.version === 4) as Mode;
    const user = 200;
    const priv = portal.channels(user).priv;
    await portal.publish([priv], 'test', 'stored-before-start', {});
    // Raw XHR from the page, resuming from mid 0: an immediate 200 whose body the script can read
    // (a cross-origin body is readable only when the response allows the page's origin).
    const full = await page.evaluate((url) => (globalThis as unknown as { rawPoll: (u: string) => Promise<{ status: number; body: string }> }).rawPoll(url), `${listener.url}/bitrix/sub/?CHANNEL_ID=${encodeURIComponent(portal.signedPrivate(user, 4))}&mid=${'0'.repeat(26)}`);
    assert.equal(full.status, 200);
    assert.match(full.body, /^#!NGINXNMS!#\{.*"command":"stored-before-start".*\}#!NGINXNME!#$/, 'the 200 body reached the script');
    // Raw XHR from the page: a 304 after the 2 s hold, with the newest stored id exposed to script.
    const raw = await page.evaluate((url) => (globalThis as unknown as { rawPoll: (u: string) => Promise<{ status: number; lastMessageId: string | null; expires: string | null }> }).rawPoll(url), `${listener.url}/bitrix/sub/?CHANNEL_ID=${encodeURIComponent(portal.signedPrivate(user, 4))}`);
    assert.equal(raw.status, 304);
    assert.equal(raw.expires, 'Thu, 01 Jan 1973 11:11:01 GMT');
    assert.match(raw.lastMessageId ?? '', /^[0-9]{26}$/, 'Last-Message-Id visible to cross-origin script');
    // The SDK, started without a mid, adopts that cursor from its own 304.
    await page.evaluate(([n, u, cfg]) => (globalThis as unknown as { startClient: (a: unknown, b: unknown, c: unknown) => Promise<void> }).startClient(n, u, cfg), ['cursor', user, portal.config(user, mode)] as const);
    await page.waitForFunction((mid) => (globalThis as unknown as { clients: Record<string, { pull: { getDebugInfo(): Record<string, unknown> } }> }).clients['cursor']?.pull.getDebugInfo()['Last message'] === mid, raw.lastMessageId, { timeout: 10_000 });
    assert.deepEqual(await received('cursor'), [], 'the stored message is older than the cursor: not replayed');
    await portal.publish([priv], 'test', 'after-cursor', {});
    await waitReceived('cursor', ['after-cursor']);
  });
});
