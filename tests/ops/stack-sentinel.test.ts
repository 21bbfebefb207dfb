import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEnvFile } from '@push/runtime';
import { signChannel } from '@push/protocol';
import { channelId, longPoll, publish } from '../helpers/clients.js';
import { eventually } from '../helpers/ports.js';
import { nodeCall } from '../helpers/redis-node.js';
import { freePortRange, run, script, stackPorts } from './stack-helpers.js';

/** `npm start` with PUSH_REDIS_SENTINEL=1: a private Sentinel group to try failover with. */
describe('npm start with a private Sentinel group (PUSH_REDIS_SENTINEL=1)', () => {
  let runDir: string;
  let env: Record<string, string>;
  let front: string;
  let redisPort: number;
  before(async () => {
    runDir = mkdtempSync(join(tmpdir(), 'push-sentinel-stack-'));
    const ports = await stackPorts(runDir, 1, 1);
    redisPort = await freePortRange(5);
    env = {
      ...ports.env,
      PUSH_REDIS_PORT: String(redisPort),
      PUSH_REDIS_SENTINEL: '1',
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

  it('starts master, replica and three sentinels, the apps follow a SENTINEL FAILOVER, npm stop stops all of them', async () => {
    const r = await script('start', env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const url = `redis+sentinel://127.0.0.1:${redisPort + 2},127.0.0.1:${redisPort + 3},127.0.0.1:${redisPort + 4}/push`;
    assert.ok(r.stdout.includes(`redis ${url})`), r.stdout);
    const st = await script('status', env);
    assert.equal(st.code, 0, st.stdout + st.stderr);
    for (const [name, port] of [['redis-replica', redisPort + 1], ['sentinel-1', redisPort + 2], ['sentinel-2', redisPort + 3], ['sentinel-3', redisPort + 4]] as const) {
      assert.match(st.stdout, new RegExp(`^${name} +[0-9]+ +${port} +running +yes$`, 'm'), st.stdout);
    }
    const key = parseEnvFile(readFileSync(env['PUSH_CONFIG_FILE'] as string, 'utf8'))['PUSH_SIGNATURE_KEY'] ?? '';
    const ch = channelId();
    const first = await publish(front, [ch], { module_id: 't', command: 'before' });
    assert.equal(first.status, 200, await first.text());
    // The replica must be attached for a replicated publish; then fail over to it.
    // Every sentinel knows the replica once npm start is ready (it waits for that).
    for (const port of [redisPort + 2, redisPort + 3, redisPort + 4]) {
      const replicas = (await nodeCall(port, 'SENTINEL', 'REPLICAS', 'push')) as string[][];
      assert.equal(replicas.length, 1, `sentinel on ${port} knows the replica`);
    }
    await nodeCall(redisPort + 2, 'SENTINEL', 'FAILOVER', 'push');
    await eventually(async () => ((await nodeCall(redisPort + 2, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', 'push')) as string[])[1] === String(redisPort + 1), 20_000, 'the replica promoted');
    // Replicated: the demoted master must first resynchronise as the new master's replica.
    await eventually(async () => (await publish(front, [ch], { module_id: 't', command: 'after' })).status === 200, 40_000, 'publishing on the new master');
    const poll = await longPoll(front, [signChannel(ch, { key, algorithm: 'sha1' })], `&mid=${'0'.repeat(26)}`);
    assert.deepEqual(poll.messages.map((m) => (m.text as { command: string }).command).filter((c, i, a) => a.indexOf(c) === i), ['before', 'after'], 'history from both masters');
    const pids = ['redis', 'redis-replica', 'sentinel-1', 'sentinel-2', 'sentinel-3'].map((n) => Number(readFileSync(join(runDir, 'pids', `${n}.pid`), 'utf8')));
    const stop = await script('stop', env);
    assert.equal(stop.code, 0, stop.stdout + stop.stderr);
    for (const n of ['redis-replica', 'sentinel-1', 'sentinel-2', 'sentinel-3']) assert.match(stop.stdout, new RegExp(`stopping ${n} \\(pid`));
    for (const pid of pids) assert.equal((await run('kill', ['-0', String(pid)], {})).code === 0, false, `pid ${pid} stopped`);
    assert.equal(existsSync(join(runDir, 'pids', 'sentinel-1.pid')), false);
  });
});
