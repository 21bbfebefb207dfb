import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { ROOT, TEST_KEY, startApp, type AppProcess } from '../helpers/apps.js';
import { WsClient, channelId, longPoll, signed } from '../helpers/clients.js';
import { sleep } from '../helpers/ports.js';
import { runPhp } from './php.js';

/** /metrics is an admin page (trusted networks or this bearer token); these publishers trust no network. */
const ADMIN_TOKEN = 'php-client-test-admin-token';

/**
 * Runs the PHP client's own test scripts (packages/php-client/tests/) and the README's portal
 * example with php-cli against a real publisher, then checks on the server side what they
 * published. php-cli is installed by the test setup (SETUP_PACKAGES in scripts/test.sh).
 */
const php = (script: string, env: Record<string, string>, phpArgs: string[] = []): ReturnType<typeof runPhp> => runPhp([...phpArgs, script], env);

/** Without sodium's signing function, as on a PHP built without ext-sodium (HMAC-only portals). */
const NO_SODIUM = ['-d', 'disable_functions=sodium_crypto_sign_detached,sodium_crypto_sign_seed_keypair,sodium_crypto_sign_keypair'];

describe('running php', () => {
  it('a php that cannot be started is a clear failure, not a hang', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'no-php-'));
    try {
      await assert.rejects(() => runPhp(['-v'], { PATH: empty }), /cannot start php \(spawn php ENOENT\): these tests need php-cli 8\.1\+ on PATH; npm test installs it/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});

describe('PHP client against a running publisher', () => {
  let redis: RedisServer;
  let pub: AppProcess;
  let lis: AppProcess;
  let dir: string;
  const keyFiles: Record<string, string> = {};
  let pubKeys = '';

  before(async () => {
    // Fails the suite at once with runPhp's message when php-cli is missing.
    const version = await runPhp(['-r', 'echo PHP_VERSION;']);
    assert.equal(version.code, 0, version.out);
    assert.ok(/^8\.([1-9]|\d\d)\./.test(version.out), `PHP 8.1+ needed, got ${version.out}`);
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
    pubKeys = entries.join(',');
    const env = { REDIS_URL: redis.url, PUSH_PUBLISH_KEYS: pubKeys, PUSH_PUBLISH_TRUSTED_NETWORKS: 'none' };
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

  it('without sodium: HMAC signing works (vectors and live), Ed25519 fails at once with a clear message', async () => {
    const ch = channelId();
    const r = await php(join(ROOT, 'packages/php-client/tests/no-sodium.php'), {
      PUSH_TEST_URL: pub.url,
      PUSH_TEST_ED_KEY: keyFiles['ed'] as string,
      PUSH_TEST_HMAC_KEY: keyFiles['hmac'] as string,
      PUSH_TEST_CHANNEL: ch,
    }, NO_SODIUM);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /^ok - sodium signing is unavailable in this run$/m);
    assert.match(r.out, /^ok - Ed25519 without sodium: a clear error from an Ed25519 key file$/m);
    assert.match(r.out, /^ok - live: HMAC publish without sodium$/m);
    assert.doesNotMatch(r.out, /not ok/);
    const poll = await longPoll(lis.url, [signed(ch)], `&mid=${'0'.repeat(26)}`);
    assert.deepEqual(poll.messages.map((m) => (m.text as { command: string }).command), ['no-sodium']);
    // The same script with sodium present must notice that it is (the first check is not vacuous).
    const withSodium = await php(join(ROOT, 'packages/php-client/tests/no-sodium.php'), {});
    assert.equal(withSodium.code, 1);
    assert.match(withSodium.out, /^not ok - sodium signing is unavailable in this run$/m);
  });

  it('a publish whose outcome is unknown (Redis paused past PUSH_PUBLISH_TIMEOUT_MS, 504 4134) is resent unchanged and stored once', async () => {
    const slow = await startApp('publisher', { REDIS_URL: redis.url, PUSH_PUBLISH_KEYS: pubKeys, PUSH_PUBLISH_TRUSTED_NETWORKS: 'none', PUSH_PUBLISH_TIMEOUT_MS: '700', PUSH_ADMIN_TOKEN: ADMIN_TOKEN });
    const c = redis.client();
    try {
      const ch = channelId();
      const work = mkdtempSync(join(tmpdir(), 'php-retry-'));
      const script = join(work, 'retry.php');
      writeFileSync(
        script,
        `<?php\nrequire ${JSON.stringify(join(ROOT, 'packages/php-client/autoload.php'))};\n` +
          `$push = new PushServer\\PushClient(getenv('URL'), PushServer\\Signer::fromKeyFile(getenv('KEY')));\n` +
          `$push->publish([getenv('CH')], ['module_id' => 'php', 'command' => 'retried', 'params' => []], 600);\necho "published\\n";\n`,
      );
      // Paused for about two attempts: the first ones are answered 504 while Redis holds the script.
      await c.client('PAUSE', 1500, 'WRITE');
      const r = await runPhp([script], { URL: slow.url, KEY: keyFiles['ed'] as string, CH: ch });
      rmSync(work, { recursive: true, force: true });
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /^published$/m);
      const unknown = /^push_publish_requests_total\{[^}]*result="unknown"[^}]*\} (\d+)$/m.exec(await (await fetch(`${slow.url}/metrics`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })).text());
      assert.ok(unknown !== null && Number(unknown[1]) >= 1, 'at least one attempt was answered 504 (and resent)');
      assert.equal(await c.llen(`push:h:{${ch}}`), 1, 'stored once, though sent more than once');
      // The nonce (the request's identity) holds the publish's outcome, not a plain claim.
      const outcomes = await Promise.all((await c.keys('push:n:php-ed:*')).map((k) => c.get(k)));
      const [mid] = await c.lrange(`push:h:{${ch}}`, 0, 0);
      assert.ok(outcomes.some((v) => v !== null && new RegExp(`^[0-9a-f]{32} ${mid} 1$`).test(v)), 'outcome recorded under the nonce');
    } finally {
      await c.client('UNPAUSE');
      await slow.stop();
    }
  });

  it("the README's copy-paste portal example runs as written against the publisher", async () => {
    const readme = readFileSync(join(ROOT, 'packages/php-client/README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Copy-paste portal example'));
    const example = /```php\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(example !== undefined, 'the README has a php block under "Copy-paste portal example"');
    // The only edits: where the publisher is and where the key file lives. Each must be there once.
    const url = "'http://push.internal:9010'";
    const keyPath = "'/etc/portal/push-key.json'";
    const requireLine = "require __DIR__ . '/vendor/autoload.php';";
    for (const literal of [url, keyPath, requireLine]) assert.equal(example.split(literal).length, 2, `${literal} once in the example`);
    const work = mkdtempSync(join(tmpdir(), 'php-portal-'));
    try {
      // What Composer would generate: vendor/autoload.php loading the package.
      mkdirSync(join(work, 'vendor'));
      writeFileSync(join(work, 'vendor/autoload.php'), `<?php\nrequire ${JSON.stringify(join(ROOT, 'packages/php-client/autoload.php'))};\n`);
      const code = example.replace(url, `'${pub.url}'`).replace(keyPath, `'${keyFiles['ed'] as string}'`);
      // Appended after the example, untouched: report what it produced so the server side can be checked.
      writeFileSync(join(work, 'portal.php'), `${code}\necho json_encode(['id' => $id, 'config' => $config, 'online' => $online]);\n`);
      const r = await runPhp([join(work, 'portal.php')], { PUSH_SIGNATURE_KEY: TEST_KEY }, work);
      assert.equal(r.code, 0, r.out);
      assert.doesNotMatch(r.out, /push failed|Warning|Fatal|Deprecated|Notice/, r.out);
      const out = JSON.parse(r.out) as { id: string; config: { channels: { private: { id: string } } }; online: string[] };
      assert.match(out.id, /^[0-9a-f]{32}$/);
      assert.equal(out.config.channels.private.id, signed(out.id), 'the signed id the browser gets is what the listener accepts');
      assert.deepEqual(out.online, []);
      const poll = await longPoll(lis.url, [out.config.channels.private.id], `&mid=${'0'.repeat(26)}`);
      assert.equal(poll.status, 200, poll.body);
      assert.deepEqual(poll.messages.map((m) => (m.text as { command: string }).command), ['message', 'typing', 'read']);
      assert.deepEqual((poll.messages[0]?.text as { params: unknown }).params, { text: 'Hello' });
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
