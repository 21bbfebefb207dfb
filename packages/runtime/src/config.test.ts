import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONFIG_VARS, ConfigError, MAX_WS_IDLE_TIMEOUT_S, loadConfig, parseEnvFile, redactUrl, wsPingIntervalS } from './config.js';

const KEY = { PUSH_SIGNATURE_KEY: 'k'.repeat(32) };

describe('config', () => {
  it('defaults, frozen', () => {
    const c = loadConfig(KEY, { port: 8010 });
    assert.equal(c.port, 8010);
    assert.equal(c.redisUrl, 'redis://127.0.0.1:6379');
    assert.equal(c.longPollTimeoutMs, 40_000);
    assert.equal(c.maxBodyBytes, 1024 * 1024);
    assert.equal(c.signatureAlgorithm, 'sha1');
    assert.equal(c.maxConnPerChannel, 100);
    assert.equal(c.onlineTtlS, 130);
    assert.equal(c.wsIdleTimeoutS, 120);
    assert.equal(c.testUwsAbi, '');
    assert.ok(Object.isFrozen(c));
    assert.throws(() => ((c as { port: number }).port = 1));
  });

  it('lists every problem at once', () => {
    try {
      loadConfig({ PUSH_PORT: 'abc', PUSH_SIGNATURE_ALGO: 'crc32', REDIS_URL: 'http://x', PUSH_TTL_TABLE: 'a=1', PUSH_MODE: 'maybe' }, { port: 1 });
      assert.fail('should throw');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      const text = err.problems.join('\n');
      for (const v of ['PUSH_PORT', 'PUSH_SIGNATURE_KEY', 'PUSH_SIGNATURE_ALGO', 'REDIS_URL', 'PUSH_TTL_TABLE', 'PUSH_MODE']) assert.match(text, new RegExp(v));
      assert.equal(err.problems.length, 6);
    }
  });

  it('reads PUSH_CONFIG_FILE; the environment wins over the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'push-cfg-'));
    const file = join(dir, 'config.env');
    writeFileSync(file, `# generated\nPUSH_SIGNATURE_KEY="${'f'.repeat(40)}"\nPUSH_HISTORY_LIMIT=7\nPUSH_MAX_CHANNELS=5\n`);
    const c = loadConfig({ PUSH_CONFIG_FILE: file, PUSH_MAX_CHANNELS: '9', PUSH_SIGNATURE_KEY: '' }, { port: 1 });
    assert.equal(c.signatureKey, 'f'.repeat(40), 'an empty variable does not hide the file');
    assert.equal(c.historyLimit, 7);
    assert.equal(c.maxChannels, 9);
  });

  it('PUSH_ALLOWED_ORIGINS: off by default, parsed once, a malformed origin is a start-up error naming it', () => {
    assert.deepEqual(loadConfig(KEY, { port: 1 }).allowedOrigins, []);
    const c = loadConfig({ ...KEY, PUSH_ALLOWED_ORIGINS: 'https://portal.example.com, https://*.example.org' }, { port: 1 });
    assert.deepEqual(c.allowedOrigins.map((o) => `${o.scheme}://${o.wildcard ? '*.' : ''}${o.host}`), ['https://portal.example.com', 'https://*.example.org']);
    assert.throws(() => loadConfig({ ...KEY, PUSH_ALLOWED_ORIGINS: 'https://portal.example.com/app' }, { port: 1 }), (err: Error) => err instanceof ConfigError && /PUSH_ALLOWED_ORIGINS: not an origin.*"https:\/\/portal\.example\.com\/app"/.test(err.message));
  });

  it('a missing config file is reported, not ignored', () => {
    assert.throws(() => loadConfig({ ...KEY, PUSH_CONFIG_FILE: '/nonexistent/push.env' }, { port: 1 }), /PUSH_CONFIG_FILE: cannot read/);
  });

  it('parseEnvFile handles comments, quotes and blank lines', () => {
    assert.deepEqual(parseEnvFile("# c\n\nA=1\nB='two words'\n C = \"3\" \nbad line\n"), { A: '1', B: 'two words', C: '3' });
  });

  it('README documents every variable and no others', () => {
    const documented = readmeRows(appTable());
    assert.deepEqual(documented.sort(), CONFIG_VARS.map((v) => v.name).sort());
  });

  it('README documents every variable the start/stop scripts read, apart from the app table', () => {
    const scriptsDir = new URL('../../../scripts/', import.meta.url);
    const sources = [...readdirSync(scriptsDir).filter((f) => f.endsWith('.sh')).map((f) => `${f}`), ...readdirSync(new URL('lib/', scriptsDir)).filter((f) => f.endsWith('.sh')).map((f) => `lib/${f}`)];
    const read = new Set<string>();
    for (const f of sources) for (const m of readFileSync(new URL(f, scriptsDir), 'utf8').matchAll(/\$\{?(PUSH_[A-Z_]+)/g)) read.add(m[1] as string);
    const scriptRows = readmeRows(scriptsTable());
    const appRows = new Set(CONFIG_VARS.map((v) => v.name));
    for (const v of read) assert.ok(appRows.has(v) || scriptRows.includes(v), `${v} is read by scripts/ but not in a README table`);
    for (const v of scriptRows) {
      assert.ok(read.has(v), `${v} is in the scripts table but no script reads it`);
      assert.ok(!appRows.has(v), `${v} belongs to one table only`);
    }
  });

  it('the default WebSocket idle timeout pings at most every 120 s; other values are checked', () => {
    const c = loadConfig(KEY, { port: 1 });
    assert.ok(wsPingIntervalS(c.wsIdleTimeoutS) <= 120, `ping every ${wsPingIntervalS(c.wsIdleTimeoutS)} s`);
    // Every accepted value keeps pings within 120 s; uWS needs 8 or more and warns unless a multiple of 4.
    for (let v = 8; v <= MAX_WS_IDLE_TIMEOUT_S; v += 4) {
      assert.equal(loadConfig({ ...KEY, PUSH_WS_IDLE_TIMEOUT_S: String(v) }, { port: 1 }).wsIdleTimeoutS, v);
      assert.ok(wsPingIntervalS(v) <= 120 && wsPingIntervalS(v) > 0, `${v}: ping every ${wsPingIntervalS(v)} s`);
    }
    assert.ok(wsPingIntervalS(MAX_WS_IDLE_TIMEOUT_S + 4) > 120, 'the limit is the largest value that keeps pings within 120 s');
    for (const bad of ['4', '7', '10', '122', String(MAX_WS_IDLE_TIMEOUT_S + 4), '960', '0', 'x']) {
      assert.throws(() => loadConfig({ ...KEY, PUSH_WS_IDLE_TIMEOUT_S: bad }, { port: 1 }), /PUSH_WS_IDLE_TIMEOUT_S: expected a multiple of 4 from 8 to 132/, bad);
    }
  });

  it('client publishing limit: 50 receivers/s with bursts of 500 by default, 0 turns it off, nonsense is refused', () => {
    const d = loadConfig(KEY, { port: 1 });
    assert.deepEqual([d.clientRate, d.clientBurst], [50, 500]);
    const off = loadConfig({ ...KEY, PUSH_CLIENT_RATE: '0', PUSH_CLIENT_BURST: '1' }, { port: 1 });
    assert.deepEqual([off.clientRate, off.clientBurst], [0, 1]);
    const bad: Array<[Record<string, string>, RegExp]> = [
      [{ PUSH_CLIENT_RATE: '-1' }, /PUSH_CLIENT_RATE: expected a whole number from 0 to 1000000, got "-1"/],
      [{ PUSH_CLIENT_RATE: '2.5' }, /PUSH_CLIENT_RATE: expected a whole number/],
      [{ PUSH_CLIENT_BURST: '0' }, /PUSH_CLIENT_BURST: expected a whole number from 1 to 1000000, got "0"/],
      [{ PUSH_CLIENT_BURST: '1000001' }, /PUSH_CLIENT_BURST: expected a whole number from 1/],
    ];
    for (const [env, re] of bad) assert.throws(() => loadConfig({ ...KEY, ...env }, { port: 1 }), re);
  });

  it('shared mode: personal by default; PUSH_MODE=shared with its per-portal limits; nonsense is refused', () => {
    const d = loadConfig(KEY, { port: 1 });
    assert.deepEqual([d.mode, d.clientMaxConnections, d.clientPublishRate], ['personal', 100000, 2000]);
    const s = loadConfig({ ...KEY, PUSH_MODE: 'shared', PUSH_CLIENT_MAX_CONNECTIONS: '0', PUSH_CLIENT_PUBLISH_RATE: '10' }, { port: 1 });
    assert.deepEqual([s.mode, s.clientMaxConnections, s.clientPublishRate], ['shared', 0, 10]);
    const bad: Array<[Record<string, string>, RegExp]> = [
      [{ PUSH_MODE: 'cloud' }, /PUSH_MODE: personal or shared, got "cloud"/],
      [{ PUSH_MODE: 'Shared' }, /PUSH_MODE: personal or shared/],
      [{ PUSH_CLIENT_MAX_CONNECTIONS: '-1' }, /PUSH_CLIENT_MAX_CONNECTIONS: expected a whole number/],
      [{ PUSH_CLIENT_PUBLISH_RATE: 'x' }, /PUSH_CLIENT_PUBLISH_RATE: expected a whole number/],
    ];
    for (const [env, re] of bad) assert.throws(() => loadConfig({ ...KEY, ...env }, { port: 1 }), re);
  });

  it('configuration errors never repeat a secret', () => {
    const secret = 'Pa55w0rd-Redis-Secret';
    const hmac = 'h'.repeat(20) + 'TopSecretHmacMaterial';
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ REDIS_URL: `http://:${secret}@redis.example:6379` }, /REDIS_URL: .*"http:\/\/\*\*\*@redis\.example:6379"/],
      [{ REDIS_URL: `tcp://user:${secret}@redis.example:6379/0?password=${secret}` }, /REDIS_URL: .*"tcp:\/\/\*\*\*@redis\.example:6379\/0\?password=\*\*\*"/],
      // A bare secret, a secret in the id or algorithm place, a too-short secret.
      [{ PUSH_PUBLISH_KEYS: `${hmac}` }, /PUSH_PUBLISH_KEYS: entry 1 is not <keyId>:<algorithm>:<key>/],
      [{ PUSH_PUBLISH_KEYS: `k1:${hmac}` }, /PUSH_PUBLISH_KEYS: entry 1 is not/],
      [{ PUSH_PUBLISH_KEYS: `ok:hmac-sha256:${'s'.repeat(32)},${hmac}!:hmac-sha256:${hmac}` }, /entry 2: the key id must be/],
      [{ PUSH_PUBLISH_KEYS: `k1:${hmac}:${hmac}` }, /key k1: algorithm must be ed25519 or hmac-sha256$/m],
      [{ PUSH_PUBLISH_KEYS: `k1:hmac-sha256:${hmac.slice(0, 31)}` }, /key k1: an HMAC secret needs at least 32/],
      [{ PUSH_PUBLISH_KEYS: `k1:ed25519:${hmac}` }, /key k1: an Ed25519 public key is 32 bytes/],
    ];
    for (const [env, expected] of cases) {
      try {
        loadConfig({ ...KEY, ...env }, { port: 1 });
        assert.fail(`accepted ${Object.keys(env).join()}`);
      } catch (err) {
        assert.ok(err instanceof ConfigError, String(err));
        assert.match(err.message, expected);
        for (const s of [secret, hmac, hmac.slice(0, 20), hmac.slice(-20)]) assert.ok(!err.message.includes(s), `${err.message} repeats a secret`);
      }
    }
    assert.equal(redactUrl('redis://127.0.0.1:6379/2'), 'redis://127.0.0.1:6379/2', 'nothing to hide, nothing changed');
  });
});

function readme(): string {
  return readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
}
/** The app configuration table: from "## Configuration" up to the scripts table. */
function appTable(): string {
  const text = readme();
  const start = text.indexOf('## Configuration');
  return text.slice(start, text.indexOf('### Start and stop scripts', start));
}
function scriptsTable(): string {
  const text = readme();
  const start = text.indexOf('### Start and stop scripts');
  assert.ok(start > 0, 'README has the scripts table');
  return text.slice(start, text.indexOf('\n## ', start));
}
function readmeRows(section: string): string[] {
  return [...section.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1] as string);
}
