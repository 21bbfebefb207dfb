import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { startApp, type AppProcess } from '../helpers/apps.js';
import { freePort } from '../helpers/ports.js';
import { channelId, publish, signed } from '../helpers/clients.js';

/**
 * PUSH_ALLOWED_ORIGINS in headless Chromium: the same page served from an allowed origin
 * (http://127.0.0.1:<port>) and from another one (http://127.0.0.2:<port>, another loopback
 * address) opens a real browser WebSocket and a long-poll XHR to the listener. The browser sets
 * Origin itself, so this shows the check works on what browsers really send.
 */

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const PAGE = `<!doctype html><html><head><meta charset="utf-8"></head><body><script>
  // Opens a WebSocket and reports whether it opened, its first text message, or how it closed.
  window.tryWs = (url) => new Promise((resolve) => {
    const ws = new WebSocket(url);
    let opened = false;
    ws.onopen = () => { opened = true; window.openWs = ws; resolve({ opened: true }); };
    ws.onmessage = (e) => { (window.wsMessages ??= []).push(String(e.data)); };
    ws.onclose = (e) => { if (!opened) resolve({ opened: false, code: e.code }); };
  });
  window.poll = (url) => new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open('GET', url);
    xhr.onloadend = () => resolve({ status: xhr.status, body: xhr.responseText });
    xhr.send();
  });
</script></body></html>`;

interface WsResult {
  readonly opened: boolean;
  readonly code?: number;
}
interface PollResult {
  readonly status: number;
  readonly body: string;
}
type PageGlobals = { tryWs(u: string): Promise<WsResult>; poll(u: string): Promise<PollResult>; wsMessages?: string[] };

describe('PUSH_ALLOWED_ORIGINS in headless Chromium', () => {
  let redis: RedisServer;
  let pub: AppProcess;
  let listener: AppProcess;
  const webs: Server[] = [];
  let browser: Browser;
  let allowedPage: Page;
  let foreignPage: Page;

  before(async () => {
    const port = await freePort();
    for (const host of ['127.0.0.1', '127.0.0.2']) {
      const web = createServer((_req, res) => res.writeHead(200, { 'Content-Type': 'text/html' }).end(PAGE));
      await new Promise<void>((resolve) => web.listen(port, host, () => resolve()));
      webs.push(web);
    }
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, PUSH_LONGPOLL_TIMEOUT_S: '2', PUSH_ALLOWED_ORIGINS: `http://127.0.0.1:${port}` };
    [pub, listener] = await Promise.all([startApp('publisher', env), startApp('listener', env)]);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
    allowedPage = await browser.newPage();
    await allowedPage.goto(`http://127.0.0.1:${port}/`);
    foreignPage = await browser.newPage();
    await foreignPage.goto(`http://127.0.0.2:${port}/`);
  });
  after(async () => {
    await browser?.close();
    for (const web of webs) await new Promise((resolve) => web.close(resolve));
    await Promise.all([pub?.stop(), listener?.stop()]);
    await redis?.stop();
  });

  it('a page from the allowed origin opens a WebSocket and receives; one from another origin is refused before the upgrade', async () => {
    const ch = channelId();
    const wsUrl = `${listener.url.replace(/^http/, 'ws')}/bitrix/subws/?CHANNEL_ID=${encodeURIComponent(signed(ch))}`;
    const refused = await foreignPage.evaluate((u) => (globalThis as unknown as PageGlobals).tryWs(u), wsUrl);
    // A refused handshake is a failed connection to the page: close code 1006, never opened.
    assert.deepEqual(refused, { opened: false, code: 1006 });
    const ok = await allowedPage.evaluate((u) => (globalThis as unknown as PageGlobals).tryWs(u), wsUrl);
    assert.deepEqual(ok, { opened: true });
    assert.equal((await publish(pub.url, [ch], { module_id: 'test', command: 'to-allowed-page' })).status, 200);
    await allowedPage.waitForFunction(() => ((globalThis as unknown as PageGlobals).wsMessages ?? []).some((m) => m.includes('to-allowed-page')), undefined, { timeout: 10_000 });
    assert.equal(await foreignPage.evaluate(() => (globalThis as unknown as PageGlobals).wsMessages?.length ?? 0), 0, 'the foreign page got nothing');
  });

  it('long poll: the allowed page reads messages, the other page gets 403 with the reason', async () => {
    const ch = channelId();
    assert.equal((await publish(pub.url, [ch], { module_id: 'test', command: 'stored' })).status, 200);
    const url = `${listener.url}/bitrix/sub/?CHANNEL_ID=${encodeURIComponent(signed(ch))}&mid=${'0'.repeat(26)}`;
    const foreign = await foreignPage.evaluate((u) => (globalThis as unknown as PageGlobals).poll(u), url);
    assert.equal(foreign.status, 403);
    assert.match(foreign.body, /^4114: Origin not allowed: .*\(Origin: "http:\/\/127\.0\.0\.2:\d+"\)$/);
    const allowed = await allowedPage.evaluate((u) => (globalThis as unknown as PageGlobals).poll(u), url);
    assert.equal(allowed.status, 200);
    assert.match(allowed.body, /"command":"stored"/);
  });
});
