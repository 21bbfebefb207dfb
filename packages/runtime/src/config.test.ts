import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONFIG_VARS, ConfigError, loadConfig, parseEnvFile } from './config.js';

const KEY = { PUSH_SIGNATURE_KEY: 'k'.repeat(32) };

describe('config', () => {
  it('defaults, frozen', () => {
    const c = loadConfig(KEY, { port: 8010 });
    assert.equal(c.port, 8010);
    assert.equal(c.redisUrl, 'redis://127.0.0.1:6379');
    assert.equal(c.longPollTimeoutMs, 40_000);
    assert.equal(c.maxBodyBytes, 1024 * 1024);
    assert.equal(c.signatureAlgorithm, 'sha1');
    assert.ok(Object.isFrozen(c));
    assert.throws(() => ((c as { port: number }).port = 1));
  });

  it('lists every problem at once', () => {
    try {
      loadConfig({ PUSH_PORT: 'abc', PUSH_SIGNATURE_ALGO: 'crc32', REDIS_URL: 'http://x', PUSH_TTL_TABLE: 'a=1', PUSH_ALLOW_UWS_FALLBACK: 'maybe' }, { port: 1 });
      assert.fail('should throw');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      const text = err.problems.join('\n');
      for (const v of ['PUSH_PORT', 'PUSH_SIGNATURE_KEY', 'PUSH_SIGNATURE_ALGO', 'REDIS_URL', 'PUSH_TTL_TABLE', 'PUSH_ALLOW_UWS_FALLBACK']) assert.match(text, new RegExp(v));
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

  it('a missing config file is reported, not ignored', () => {
    assert.throws(() => loadConfig({ ...KEY, PUSH_CONFIG_FILE: '/nonexistent/push.env' }, { port: 1 }), /PUSH_CONFIG_FILE: cannot read/);
  });

  it('parseEnvFile handles comments, quotes and blank lines', () => {
    assert.deepEqual(parseEnvFile("# c\n\nA=1\nB='two words'\n C = \"3\" \nbad line\n"), { A: '1', B: 'two words', C: '3' });
  });

  it('README documents every variable and no others', () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## Configuration'));
    const documented = [...section.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
    assert.deepEqual(documented.sort(), CONFIG_VARS.map((v) => v.name).sort());
  });
});
