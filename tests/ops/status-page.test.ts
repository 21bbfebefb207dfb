import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { signChannel } from '@push/protocol';
import { parseEnvFile } from '@push/runtime';
import { ROOT } from '../helpers/apps.js';
import { WsClient, channelId, publish } from '../helpers/clients.js';
import { sleep } from '../helpers/ports.js';
import { script, stackPorts } from './stack-helpers.js';

interface StatusData {
  generatedAt: number;
  totals: { websockets: number; publishRate: number; deliveryRate: number; latencyP50: number | null; latencyP99: number | null };
  processes: Array<{ type: string; ageMs: number; latencyP99: number | null }>;
  history: Array<{ t: number; publishRate: number; deliveryRate: number; websockets: number; latencyP99: number | null }>;
}

/**
 * The status page an operator keeps open, under live load through nginx: current figures (process
 * reports at most 2 s old), charts of the last minutes drawn by the chart library the publisher
 * serves itself, the per-process table, and an icon. Checked in headless Chromium; the screenshot
 * is kept in test-artifacts/.
 */
describe('status page under live load', () => {
  const SOCKETS = 20;
  let runDir: string;
  let env: Record<string, string>;
  let front: string;
  let key: string;

  before(async () => {
    runDir = mkdtempSync(join(tmpdir(), 'push-status-'));
    const ports = await stackPorts(runDir, 1, 2);
    env = { ...ports.env, PUSH_LISTENERS: '2', PUSH_PUBLISHERS: '1', PUSH_NGINX_WORKERS: '1', PUSH_SIGNATURE_KEY: '', REDIS_URL: '', PUSH_SKIP_SETUP: '1', PUSH_PUBLISH_TRUSTED_NETWORKS: '', PUSH_PUB_ALLOW: '', PUSH_STATS_INTERVAL_S: '' };
    front = `http://127.0.0.1:${ports.frontPort}`;
    const r = await script('start', env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    key = parseEnvFile(readFileSync(env['PUSH_CONFIG_FILE'] as string, 'utf8'))['PUSH_SIGNATURE_KEY'] ?? '';
  });
  after(async () => {
    await script('stop', env);
    rmSync(runDir, { recursive: true, force: true });
  });

  it('/favicon.ico through nginx is an icon, not a 404', async () => {
    const res = await fetch(`${front}/favicon.ico`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'image/x-icon');
    const body = Buffer.from(await res.arrayBuffer());
    assert.deepEqual([...body.subarray(0, 4)], [0, 0, 1, 0]);
  });

  it('shows current figures and charts while 20 WebSockets receive a steady publish stream (screenshot kept)', async () => {
    const channels = Array.from({ length: 5 }, () => channelId());
    const sockets = await Promise.all(Array.from({ length: SOCKETS }, (_, i) => WsClient.connect(front, [signChannel(channels[i % channels.length] as string, { key, algorithm: 'sha1' })])));
    let publishing = true;
    let published = 0;
    const load = (async () => {
      for (let n = 0; publishing; n++) {
        if ((await publish(front, [channels[n % channels.length] as string], { module_id: 'status', command: 'load', params: { n } }, { 'Message-Expiry': '0' })).status === 200) published++;
        await sleep(8);
      }
    })();
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
      const notFound: string[] = [];
      page.on('response', (r) => void (r.status() >= 400 && notFound.push(`${r.status()} ${r.url()}`)));
      await page.goto(`${front}/status`);
      await page.waitForSelector('body[data-loaded="yes"]', { timeout: 10_000 });
      // Current figures: every socket counted, traffic flowing, latency measured.
      await page.waitForFunction(`document.getElementById('ws')?.textContent === '${SOCKETS}'`, undefined, { timeout: 10_000 });
      await page.waitForFunction(`Number(document.getElementById('pubrate')?.textContent) > 0 && Number(document.getElementById('delrate')?.textContent) > 0 && / ms$/.test(document.getElementById('latency')?.textContent ?? '')`, undefined, { timeout: 10_000 });
      // Charts: a few seconds of points, drawn on the chart library's canvases.
      await page.waitForFunction(`Number(document.body.dataset.points) >= 5`, undefined, { timeout: 15_000 });
      assert.equal(await page.textContent('#error'), '');
      assert.equal(await page.locator('.uplot').count(), 4, 'four charts');
      const painted = (await page.evaluate(`[...document.querySelectorAll('.uplot canvas')].map((c) => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) n++;
        return n;
      })`)) as number[];
      assert.equal(painted.length, 4);
      for (const n of painted) assert.ok(n > 500, `a chart has lines and axes drawn (${painted.join(', ')} painted pixels)`);
      assert.equal(await page.locator('#rows tr[data-type="listener"]').count(), 2);
      assert.equal(await page.locator('#rows tr[data-type="publisher"]').count(), 1);
      const dir = join(ROOT, 'test-artifacts');
      mkdirSync(dir, { recursive: true });
      await page.screenshot({ path: join(dir, 'status-page-live.png'), fullPage: true });
      assert.ok(statSync(join(dir, 'status-page-live.png')).size > 20_000);
      assert.deepEqual(notFound, [], 'every asset and the icon loaded');

      // The data behind it: each process's report at most 2 s old, the series current.
      const ages: number[] = [];
      for (let i = 0; i < 5; i++) {
        const d = (await (await fetch(`${front}/status/data`)).json()) as StatusData;
        ages.push(Math.max(...d.processes.map((p) => p.ageMs)));
        const last = d.history[d.history.length - 1];
        assert.ok(last !== undefined && d.generatedAt - last.t <= 2000, 'the newest chart point is at most 2 s old');
        assert.equal(d.totals.websockets, SOCKETS);
        assert.ok(d.processes.filter((p) => p.type === 'listener').some((p) => p.latencyP99 !== null));
        await sleep(300);
      }
      const sorted = [...ages].sort((a, b) => a - b);
      assert.ok((sorted[2] as number) <= 2000, `process reports at most 2 s old (ages ${ages.join(', ')} ms)`);
      const d = (await (await fetch(`${front}/status/data`)).json()) as StatusData;
      assert.ok(d.history.filter((p) => p.websockets === SOCKETS && p.deliveryRate > 0).length >= 3, 'the series show the load');
      process.stdout.write(`# status page: ${published} publishes during the check, report ages ${ages.join('/')} ms, ${d.history.length} chart points\n`);
    } finally {
      publishing = false;
      await load;
      await browser.close();
      for (const s of sockets) s.close();
    }
  });
});
