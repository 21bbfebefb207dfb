import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEnvFile } from '@push/runtime';
import { signChannel } from '@push/protocol';
import { channelId, longPoll, publish } from '../helpers/clients.js';
import { nodeCall } from '../helpers/redis-node.js';
import { freePortRange, run, script, stackPorts } from './stack-helpers.js';

/** `npm start` with PUSH_REDIS_CLUSTER=1: a private six-node Redis Cluster to try sharding with. */
describe('npm start with a private Redis Cluster (PUSH_REDIS_CLUSTER=1)', () => {
  let runDir: string;
  let env: Record<string, string>;
  let front: string;
  let redisPort: number;
  before(async () => {
    runDir = mkdtempSync(join(tmpdir(), 'push-cluster-stack-'));
    const ports = await stackPorts(runDir, 1, 1);
    redisPort = await freePortRange(6);
    env = {
      ...ports.env,
      PUSH_REDIS_PORT: String(redisPort),
      PUSH_REDIS_CLUSTER: '1',
      PUSH_PUBLISHERS: '1',
      PUSH_LISTENERS: '1',
      PUSH_SIGNATURE_KEY: '',
      REDIS_URL: '',
      PUSH_PUBLISH_DURABILITY: 'replicated',
      PUSH_SHUTDOWN_GRACE_S: '1',
      PUSH_LOG_LEVEL: 'warn',
      PUSH_SKIP_SETUP: '1',
    };
    front = `http://127.0.0.1:${ports.frontPort}`;
  });
  after(async () => {
    await script('stop', env);
    rmSync(runDir, { recursive: true, force: true });
  });

  it('starts six nodes as three masters with a replica each, serves publishes across shards, npm stop stops all of them', async () => {
    const r = await script('start', env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const url = `redis+cluster://${[0, 1, 2, 3, 4, 5].map((k) => `127.0.0.1:${redisPort + k}`).join(',')}`;
    assert.ok(r.stdout.includes(`redis ${url})`), r.stdout);
    const st = await script('status', env);
    assert.equal(st.code, 0, st.stdout + st.stderr);
    for (let k = 1; k < 6; k++) assert.match(st.stdout, new RegExp(`^redis-cluster-${k + 1} +[0-9]+ +${redisPort + k} +running +yes$`, 'm'), st.stdout);
    const info = String(await nodeCall(redisPort, 'CLUSTER', 'INFO'));
    assert.match(info, /cluster_state:ok/);
    assert.match(info, /cluster_size:3/, 'three masters serve the slots');
    const key = parseEnvFile(readFileSync(env['PUSH_CONFIG_FILE'] as string, 'utf8'))['PUSH_SIGNATURE_KEY'] ?? '';
    // Enough channels that they land on several shards; one publish to all of them, then one each.
    const chans = Array.from({ length: 6 }, () => channelId());
    const all = await publish(front, chans, { module_id: 't', command: 'all' });
    assert.equal(all.status, 200, await all.text());
    for (const c of chans) assert.equal((await publish(front, [c], { module_id: 't', command: `one-${c}` })).status, 200);
    const poll = await longPoll(front, chans.map((c) => signChannel(c, { key, algorithm: 'sha1' })), `&mid=${'0'.repeat(26)}`);
    assert.equal(poll.status, 200);
    const commands = poll.messages.map((m) => (m.text as { command: string }).command);
    assert.deepEqual(commands, ['all', ...chans.map((c) => `one-${c}`)], 'the multi-shard message once, then each channel’s own, in id order');
    const names = ['redis', 'redis-cluster-2', 'redis-cluster-3', 'redis-cluster-4', 'redis-cluster-5', 'redis-cluster-6'];
    const pids = names.map((n) => Number(readFileSync(join(runDir, 'pids', `${n}.pid`), 'utf8')));
    const stop = await script('stop', env);
    assert.equal(stop.code, 0, stop.stdout + stop.stderr);
    for (const n of names.slice(1)) assert.match(stop.stdout, new RegExp(`stopping ${n} \\(pid`));
    for (const pid of pids) assert.equal((await run('kill', ['-0', String(pid)], {})).code === 0, false, `pid ${pid} stopped`);
    assert.equal(existsSync(join(runDir, 'pids', 'redis-cluster-2.pid')), false);
  });
});
