import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { loadConfig } from '@push/runtime';
import { startRedis } from '../helpers/redis.js';
import { TEST_KEY } from '../helpers/apps.js';
import { freePort } from '../helpers/ports.js';
import { script } from './stack-helpers.js';

/** Bad settings get exit 2 and a message naming the variable, and nothing is started or written. */
describe('scripts: bad settings and nothing running', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'push-scripts-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const bad: Array<[string, Record<string, string>, RegExp]> = [
    ['no listeners', { PUSH_LISTENERS: '0' }, /PUSH_LISTENERS must be a whole number from 1 to 256, got '0'/],
    ['publisher count not a number', { PUSH_PUBLISHERS: 'two' }, /PUSH_PUBLISHERS must be a whole number/],
    ['front port out of range', { PUSH_FRONT_PORT: '70000' }, /PUSH_FRONT_PORT must be a whole number from 1 to 65535/],
    ['overlapping port ranges', { PUSH_PUBLISHER_PORT: '9000', PUSH_PUBLISHERS: '2', PUSH_LISTENER_PORT: '9001', PUSH_LISTENERS: '2' }, /publisher ports 9000-9001 overlap listener ports 9001-9002/],
    ['unknown access-log value', { PUSH_NGINX_ACCESS_LOG: 'yes' }, /PUSH_NGINX_ACCESS_LOG must be on or off/],
    ['nginx workers not a number', { PUSH_NGINX_WORKERS: 'lots' }, /PUSH_NGINX_WORKERS must be auto or a number/],
    ['file limit too low', { PUSH_NOFILE: '10' }, /PUSH_NOFILE must be a whole number from 1024/],
    ['cluster flag not 0 or 1', { PUSH_REDIS_CLUSTER: 'yes' }, /PUSH_REDIS_CLUSTER must be 0 or 1, got 'yes'/],
    ['Sentinel and Cluster together', { PUSH_REDIS_CLUSTER: '1', PUSH_REDIS_SENTINEL: '1' }, /PUSH_REDIS_SENTINEL=1 and PUSH_REDIS_CLUSTER=1 exclude each other/],
    ['cluster bus ports above 65535', { PUSH_REDIS_CLUSTER: '1', PUSH_REDIS_PORT: '60000' }, /PUSH_REDIS_PORT must be a whole number from 1 to 55530/],
  ];
  for (const [name, env, message] of bad) {
    it(`start.sh refuses: ${name}`, async () => {
      const runDir = join(dir, name.replace(/\W+/g, '-'));
      const r = await script('start', { PUSH_RUN_DIR: runDir, PUSH_SKIP_SETUP: '1', ...env });
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, message);
      assert.equal(existsSync(runDir), false, 'nothing written');
    });
  }

  it('start.sh refuses a private Redis port another redis-server answers on (a second checkout must not share it), and writes nothing', async () => {
    const other = await startRedis();
    try {
      const pid = Number(/process_id:(\d+)/.exec(await other.client().info('server'))?.[1]);
      assert.ok(pid > 0);
      const runDir = join(dir, 'redis-port-taken');
      const r = await script('start', { PUSH_RUN_DIR: runDir, PUSH_SKIP_SETUP: '1', PUSH_REDIS_PORT: String(other.port), REDIS_URL: '', PUSH_FRONT_PORT: String(await freePort()) });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${other.port} \\(PUSH_REDIS_PORT\\) is already in use by another process \\(a redis-server, pid ${pid}\\)`));
      assert.match(r.stderr, /Nothing was started\./);
      assert.equal(existsSync(runDir), false, 'nothing written');
      assert.equal(await other.client().dbsize(), 0, 'the other Redis was not touched');
    } finally {
      await other.stop();
    }
  });

  it('start.sh refuses a private Redis port taken by something that is not Redis', async () => {
    const srv = createServer((sock) => sock.destroy());
    const port = await new Promise<number>((resolve) => srv.listen(0, '127.0.0.1', () => resolve((srv.address() as { port: number }).port)));
    try {
      const runDir = join(dir, 'redis-port-busy');
      const r = await script('start', { PUSH_RUN_DIR: runDir, PUSH_SKIP_SETUP: '1', PUSH_REDIS_PORT: String(port), REDIS_URL: '' });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${port} \\(PUSH_REDIS_PORT\\) is already in use by another process, perhaps another stack`));
      assert.equal(existsSync(runDir), false, 'nothing written');
    } finally {
      srv.close();
    }
  });

  it('status.sh says not running (exit 3), stop.sh is a harmless no-op, restart.sh refuses (exit 3)', async () => {
    const env = { PUSH_RUN_DIR: join(dir, 'never-started') };
    const s = await script('status', env);
    assert.equal(s.code, 3);
    assert.match(s.stdout, /not running/);
    const st = await script('stop', env);
    assert.equal(st.code, 0);
    assert.match(st.stdout, /nothing to stop/);
    const r = await script('restart', { ...env, PUSH_SKIP_SETUP: '1' });
    assert.equal(r.code, 3);
    assert.match(r.stderr, /not running/);
  });
});

/** `none` is the explicit "no unsigned publishing" that an empty value (= not set) cannot express. */
describe('PUSH_PUBLISH_TRUSTED_NETWORKS=none', () => {
  const base = { PUSH_SIGNATURE_KEY: TEST_KEY, PUSH_PORT: '9010' };
  for (const v of ['none', 'NONE', ' none ']) {
    it(`${JSON.stringify(v)} means no trusted network`, () => {
      assert.deepEqual(loadConfig({ ...base, PUSH_PUBLISH_TRUSTED_NETWORKS: v }, { port: 9010 }).publishTrustedNetworks, []);
    });
  }
  it('wins over a list in the config file; an empty variable does not', () => {
    const d = mkdtempSync(join(tmpdir(), 'push-trust-'));
    try {
      const file = join(d, 'config.env');
      writeFileSync(file, 'PUSH_PUBLISH_TRUSTED_NETWORKS=10.0.0.0/8\n');
      assert.deepEqual(loadConfig({ ...base, PUSH_CONFIG_FILE: file, PUSH_PUBLISH_TRUSTED_NETWORKS: 'none' }, { port: 9010 }).publishTrustedNetworks, []);
      assert.equal(loadConfig({ ...base, PUSH_CONFIG_FILE: file, PUSH_PUBLISH_TRUSTED_NETWORKS: '' }, { port: 9010 }).publishTrustedNetworks.length, 1);
      writeFileSync(file, 'PUSH_PUBLISH_TRUSTED_NETWORKS=none\n');
      assert.deepEqual(loadConfig({ ...base, PUSH_CONFIG_FILE: file }, { port: 9010 }).publishTrustedNetworks, []);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
  it('is a whole value: "none" inside a list is refused like any other non-address', () => {
    assert.throws(() => loadConfig({ ...base, PUSH_PUBLISH_TRUSTED_NETWORKS: '10.0.0.0/8,none' }, { port: 9010 }), /PUSH_PUBLISH_TRUSTED_NETWORKS: not an address or CIDR block: "none"/);
  });
});
