import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import type { Redis } from 'ioredis';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { redisSnapshot } from '../helpers/redis-snapshot.js';
import { ROOT, startApp, type AppProcess } from '../helpers/apps.js';
import { channelId } from '../helpers/clients.js';

/**
 * The key rotation procedure of docs/security.md, end to end with the real CLI and publisher
 * processes: two Ed25519 keys active at once, then a restart with only the new one, after which the
 * old key is refused as unknown (401 4122) and changes nothing in Redis.
 */
function pushctl(args: string[], stdin = ''): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const PATH = [dirname(process.execPath), process.env['PATH'] ?? ''].join(delimiter);
    const p = spawn(process.execPath, [join(ROOT, 'apps/cli/bin/pushctl.js'), ...args], { env: { PATH }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, out, err }));
    p.stdin.end(stdin);
  });
}

describe('publish key rotation (docs/security.md)', () => {
  let redis: RedisServer;
  let r: Redis;
  let dir: string;
  let pub: AppProcess | undefined;
  const files = { old: '', new: '' };
  const entries = { old: '', new: '' };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'rotation-'));
    for (const which of ['old', 'new'] as const) {
      files[which] = join(dir, `${which}.json`);
      // Step 1: a key pair per key id; the printed line is the server's key-ring entry.
      const k = await pushctl(['keygen', '--key-id', which === 'old' ? 'portal-2026-01' : 'portal-2026-02', '--out', files[which]]);
      assert.equal(k.code, 0, k.err);
      entries[which] = k.out.trim();
      assert.match(entries[which], /^portal-2026-0[12]:ed25519:[A-Za-z0-9+/]{43}=$/);
    }
    redis = await startRedis();
    r = redis.client();
  });
  after(async () => {
    await pub?.stop();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const startPublisher = async (ring: string[]): Promise<AppProcess> =>
    startApp('publisher', { REDIS_URL: redis.url, PUSH_PUBLISH_KEYS: ring.join(','), PUSH_PUBLISH_TRUSTED_NETWORKS: 'none' });
  const publish = (key: string, ch: string, n: number): ReturnType<typeof pushctl> =>
    pushctl(['publish', '--url', (pub as AppProcess).url, '--key', key, '--channel', ch, '--expiry', '600'], JSON.stringify({ module_id: 'rot', command: 'm', params: { n } }));

  it('old only -> old and new side by side -> new only', async () => {
    const ch = channelId();
    // Before the rotation: only the old key is known; the new one is refused as unknown.
    pub = await startPublisher([entries.old]);
    assert.equal((await publish(files.old, ch, 1)).code, 0);
    const early = await pushctl(['online', '--url', pub.url, '--key', files.new, '--channel', ch]);
    assert.equal(early.code, 1, 'the documented check fails while the publisher lacks the new key');
    assert.match(early.err, /HTTP 401\): 4122: /);

    // Step 2: both entries, publisher restarted; requests signed with either key are accepted.
    await pub.stop();
    pub = await startPublisher([entries.old, entries.new]);
    const check = await pushctl(['online', '--url', pub.url, '--key', files.new, '--channel', ch]);
    assert.equal(check.code, 0, check.err);
    assert.equal((await publish(files.old, ch, 2)).code, 0);
    assert.equal((await publish(files.new, ch, 3)).code, 0);
    assert.equal(await r.llen(`push:h:{${ch}}`), 3);

    // Step 4: the old entry removed, publisher restarted.
    await pub.stop();
    pub = await startPublisher([entries.new]);
    const before = await redisSnapshot(r);
    const refused = await publish(files.old, ch, 4);
    assert.equal(refused.code, 1);
    assert.match(refused.err, /HTTP 401\): 4122: Unknown signing key id/);
    assert.ok(refused.err.includes('portal-2026-01'), refused.err);
    const mint = await pushctl(['mint', '--url', pub.url, '--key', files.old]);
    assert.equal(mint.code, 1);
    assert.match(mint.err, /HTTP 401\): 4122: /);
    assert.equal(await redisSnapshot(r), before, 'requests signed with the removed key changed nothing');

    const accepted = await publish(files.new, ch, 5);
    assert.equal(accepted.code, 0, accepted.err);
    const bodies = (await r.lrange(`push:h:{${ch}}`, 0, -1)).length;
    assert.equal(bodies, 4);
  });
});
