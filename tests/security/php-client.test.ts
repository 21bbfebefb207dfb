import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { ROOT, startApp, type AppProcess } from '../helpers/apps.js';
import { WsClient, channelId, signed } from '../helpers/clients.js';
import { sleep } from '../helpers/ports.js';

/**
 * Runs the PHP client's own test script (packages/php-client/tests/run.php) with php-cli against a
 * real publisher, then checks on the server side what it published. php-cli is installed by the
 * test setup (SETUP_PACKAGES in scripts/test.sh).
 */
function php(script: string, env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn('php', [script], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('exit', (code) => resolve({ code, out }));
  });
}

describe('PHP client against a running publisher', () => {
  let redis: RedisServer;
  let pub: AppProcess;
  let lis: AppProcess;
  let dir: string;
  const keyFiles: Record<string, string> = {};

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'php-client-'));
    const entries: string[] = [];
    for (const name of ['ed', 'stranger']) {
      const kp = nacl.sign.keyPair();
      const file = { keyId: `php-${name}`, algorithm: 'ed25519', publicKey: Buffer.from(kp.publicKey).toString('base64'), secretKey: Buffer.from(kp.secretKey).toString('base64') };
      keyFiles[name] = join(dir, `${name}.json`);
      writeFileSync(keyFiles[name] as string, JSON.stringify(file));
      if (name !== 'stranger') entries.push(`${file.keyId}:ed25519:${file.publicKey}`);
    }
    const secret = Buffer.from(nacl.randomBytes(32)).toString('base64url');
    keyFiles['hmac'] = join(dir, 'hmac.json');
    writeFileSync(keyFiles['hmac'], JSON.stringify({ keyId: 'php-hmac', algorithm: 'hmac-sha256', secret }));
    entries.push(`php-hmac:hmac-sha256:${secret}`);
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, PUSH_PUBLISH_KEYS: entries.join(','), PUSH_PUBLISH_TRUSTED_NETWORKS: '' };
    [pub, lis] = await Promise.all([startApp('publisher', env), startApp('listener', env)]);
  });
  after(async () => {
    await Promise.all([pub?.stop(), lis?.stop()]);
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('php tests/run.php passes (shared vectors and live calls) and its messages arrive', async () => {
    const ch = channelId();
    const expired = channelId();
    // A channel first created 13 hours ago by the server clock: past its 12 h write window.
    const [sec] = await redis.client().time();
    await redis.client().set(`push:ch:{${expired}}`, String(Number(sec) * 1000 - 13 * 3600_000));
    const ws = await WsClient.connect(lis.url, [signed(ch)]);
    await sleep(150);
    const r = await php(join(ROOT, 'packages/php-client/tests/run.php'), {
      PUSH_TEST_URL: pub.url,
      PUSH_TEST_ED_KEY: keyFiles['ed'] as string,
      PUSH_TEST_HMAC_KEY: keyFiles['hmac'] as string,
      PUSH_TEST_STRANGER_KEY: keyFiles['stranger'] as string,
      PUSH_TEST_CHANNEL: ch,
      PUSH_TEST_EXPIRED_CHANNEL: expired,
    });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /ok - live: batch publish/);
    assert.match(r.out, /ok - vectors: single publish: ed25519 signature/);
    assert.doesNotMatch(r.out, /not ok/);
    const got = await ws.waitFor(4);
    await sleep(150);
    assert.deepEqual(
      ws.messages.map((m) => (m.text as { command: string }).command),
      ['ed25519', 'hmac', 'batch1', 'batch2'],
    );
    assert.deepEqual((got[0]?.text as { params: unknown }).params, { text: 'Привет' });
    assert.equal(await redis.client().exists(`push:h:{${expired}}`), 0, 'nothing stored for the expired channel');
    ws.close();
  });
});
