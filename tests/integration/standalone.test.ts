import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { ROOT, TEST_KEY, startApp, type AppProcess } from '../helpers/apps.js';
import { WsClient, channelId, longPoll, publish, signed } from '../helpers/clients.js';
import { eventually, freePort } from '../helpers/ports.js';

describe('single-process mode (memory backend, no Redis)', () => {
  let app: AppProcess;
  let pubUrl: string;
  before(async () => {
    const pubPort = await freePort();
    // No REDIS_URL points anywhere: a Redis dependency would make start-up fail.
    app = await startApp('standalone', { PUSH_STANDALONE_PUBLISHER_PORT: String(pubPort), REDIS_URL: 'redis://127.0.0.1:1', PUSH_LONGPOLL_TIMEOUT_S: '1' });
    pubUrl = `http://127.0.0.1:${pubPort}`;
  });
  after(() => app?.stop());

  it('publishes, delivers live and replays after mid in one process', async () => {
    const ch = channelId();
    const ws = await WsClient.connect(app.url, [signed(ch)]);
    assert.equal((await publish(pubUrl, [ch], { module_id: 't', command: 'one' })).status, 200);
    assert.equal((await publish(pubUrl, [ch], { module_id: 't', command: 'two' })).status, 200);
    const got = await ws.waitFor(2);
    const lp = await longPoll(app.url, [signed(ch)], `&mid=${got[0]?.mid}`);
    assert.deepEqual(lp.messages.map((m) => m.mid), [got[1]?.mid]);
    assert.match(app.output(), /memory backend, nothing is persisted/);
    ws.close();
  });
});

/** `npm run standalone` as a new user runs it: no key in the environment, the README's unsigned publish. */
describe('npm run standalone (scripts/standalone.sh)', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'push-standalone-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function run(env: Record<string, string>): Promise<{ url: string; pubUrl: string; output: () => string; stop: () => Promise<void> }> {
    const [port, pubPort] = [await freePort(), await freePort()];
    // Its own process group, so stopping it reaches node behind npm and bash.
    const proc = spawn('npm', ['run', '-s', 'standalone'], {
      cwd: ROOT,
      detached: true,
      env: { PATH: [dirname(process.execPath), process.env['PATH'] ?? ''].join(delimiter), HOME: process.env['HOME'] ?? dir, PUSH_SKIP_SETUP: '1', PUSH_PORT: String(port), PUSH_STANDALONE_PUBLISHER_PORT: String(pubPort), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    const stop = async (): Promise<void> => {
      if (proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined) process.kill(-proc.pid, 'SIGTERM');
      await exited;
    };
    try {
      await eventually(() => out.includes('"standalone ready"') || proc.exitCode !== null, 20_000, 'standalone start');
      assert.ok(out.includes('"standalone ready"'), out);
    } catch (err) {
      await stop();
      throw err;
    }
    return { url: `http://127.0.0.1:${port}`, pubUrl: `http://127.0.0.1:${pubPort}`, output: () => out, stop };
  }

  it('generates the config file key, takes the unsigned localhost publish, delivers it, and reports no Redis', async () => {
    const configFile = join(dir, 'config.env');
    const app = await run({ PUSH_CONFIG_FILE: configFile });
    try {
      const key = /^PUSH_SIGNATURE_KEY=(\S{16,})$/m.exec(readFileSync(configFile, 'utf8'))?.[1];
      assert.ok(key, 'a key was written to the config file');
      assert.match(app.output(), /unsigned publish: allowed from this host/);
      const ch = channelId();
      const ws = await WsClient.connect(app.url, [signed(ch, { key, algorithm: 'sha1' })]);
      // The README's curl: unsigned, from this host.
      const res = await fetch(`${app.pubUrl}/bitrix/pub/?CHANNEL_ID=${ch}`, { method: 'POST', headers: { 'Message-Expiry': '3600' }, body: '{"module_id":"im","command":"hello","params":{}}' });
      assert.equal(res.status, 200, await res.text());
      const got = await ws.waitFor(1);
      assert.equal((got[0]?.text as { command: string }).command, 'hello');
      assert.equal(ws.closeCode, null, 'the id signed with the file key was accepted');
      ws.close();
      const data = (await (await fetch(`${app.pubUrl}/status/data`)).json()) as { backend: string };
      assert.equal(data.backend, 'memory');
      const page = await (await fetch(`${app.pubUrl}/status`)).text();
      assert.match(page, /none \(memory backend\)/);
    } finally {
      await app.stop();
    }
  });

  it('a second run keeps the key, and the config file can turn unsigned publishing off (4120)', async () => {
    const configFile = join(dir, 'strict.env');
    writeFileSync(configFile, `# strict\nPUSH_SIGNATURE_KEY=${TEST_KEY}\nPUSH_PUBLISH_TRUSTED_NETWORKS=none\n`);
    const app = await run({ PUSH_CONFIG_FILE: configFile });
    try {
      assert.equal(readFileSync(configFile, 'utf8'), `# strict\nPUSH_SIGNATURE_KEY=${TEST_KEY}\nPUSH_PUBLISH_TRUSTED_NETWORKS=none\n`, 'file untouched');
      assert.doesNotMatch(app.output(), /unsigned publish: allowed/);
      const res = await fetch(`${app.pubUrl}/bitrix/pub/?CHANNEL_ID=${channelId()}`, { method: 'POST', body: '{"module_id":"im","command":"hello","params":{}}' });
      assert.equal(res.status, 401);
      assert.match(await res.text(), /^4120: /);
    } finally {
      await app.stop();
    }
  });
});
