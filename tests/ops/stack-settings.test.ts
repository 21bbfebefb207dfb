import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEnvFile } from '@push/runtime';
import { signChannel, type ChannelSecret } from '@push/protocol';
import { channelId, longPoll } from '../helpers/clients.js';
import { eventually } from '../helpers/ports.js';
import { ed25519Key, signatureHeaders } from '../security/signing.js';
import { httpRequest, openFilesLimit, run, script, stackPorts, wsHandshake } from './stack-helpers.js';

const ZERO_MID = '0'.repeat(26);
/** A second client machine, as nginx sees it: a loopback alias as the source address. */
const OTHER_HOST = '127.0.0.2';
const ADMIN_TOKEN = 'settings-admin-token-0123456789';

/**
 * The stack with the operator settings the main stack test leaves at their defaults: unsigned
 * publishing off (PUSH_PUBLISH_TRUSTED_NETWORKS=none), publishing only from PUSH_PUB_ALLOW, one
 * subscriber connection per address, the default listener count and log directory; then a full
 * stop/start keeping messages (AOF), and a stop that has to kill a stuck process.
 */
describe('npm start with operator settings', () => {
  let runDir: string;
  let env: Record<string, string>;
  let front: string;
  let secret: ChannelSecret;
  const key = ed25519Key('ops-settings');
  const pidOf = (name: string): number => Number(readFileSync(join(runDir, 'pids', `${name}.pid`), 'utf8'));
  /** A publisher request from `from`, signed with the portal key or not. */
  const send = (method: 'POST' | 'GET', target: string, body: string, from: string, signed: boolean, extra: Record<string, string> = {}) =>
    httpRequest(`${front}${target}`, { method, ...(method === 'POST' ? { body } : {}), localAddress: from, headers: { ...(signed ? signatureHeaders(key, method, target, body) : {}), ...extra } });

  before(async () => {
    runDir = mkdtempSync(join(tmpdir(), 'push-settings-'));
    const ports = await stackPorts(runDir, 1, availableParallelism());
    const frontPort = ports.frontPort;
    env = {
      ...ports.env,
      PUSH_PUBLISHERS: '1',
      // Defaults under test: listeners = cores, logs in the run directory, the open-file limit.
      PUSH_LISTENERS: '',
      PUSH_LOG_DIR: '',
      PUSH_NOFILE: '',
      PUSH_SIGNATURE_KEY: '',
      REDIS_URL: '',
      PUSH_PUBLISH_TRUSTED_NETWORKS: 'none',
      PUSH_PUBLISH_KEYS: key.ringEntry,
      PUSH_PUB_ALLOW: OTHER_HOST,
      PUSH_ADMIN_TOKEN: ADMIN_TOKEN,
      PUSH_SUB_CONN_PER_IP: '1',
      PUSH_SHUTDOWN_GRACE_S: '1',
      PUSH_LONGPOLL_TIMEOUT_S: '5',
      PUSH_LOG_LEVEL: 'warn',
      PUSH_SKIP_SETUP: '1',
    };
    front = `http://127.0.0.1:${frontPort}`;
  });
  after(async () => {
    await script('stop', env);
    rmSync(runDir, { recursive: true, force: true });
  });

  it('starts one listener per core, logs per process in the run directory, raises the open-file limit, and says unsigned publishing is off', async () => {
    const r = await run('bash', ['-c', 'ulimit -Sn 1024 && exec bash scripts/start.sh'], env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const cores = availableParallelism();
    assert.match(r.stdout, new RegExp(`push start: ready \\(1 publishers, ${cores} listeners,`));
    const pids = readdirSync(join(runDir, 'pids')).sort();
    assert.deepEqual(pids, [...Array.from({ length: cores }, (_, i) => `listener-${i + 1}.pid`), 'publisher-1.pid', 'redis.pid'].sort());
    assert.match(r.stdout, /^ {2}unsigned publish: off: every publish, online-status query and mint must be signed \(PUSH_PUBLISH_TRUSTED_NETWORKS=none, environment\)$/m);
    assert.match(r.stdout, /^ {2}admin pages: {2}\/status, \/server-stat\/, \/metrics from no address, or anywhere with Authorization: Bearer <PUSH_ADMIN_TOKEN>$/m);
    for (const f of ['publisher-1.log', 'listener-1.log', `listener-${cores}.log`, 'redis.log', 'nginx-error.log']) assert.ok(existsSync(join(runDir, 'log', f)), `${f} in the default log directory`);
    const key64 = parseEnvFile(readFileSync(env['PUSH_CONFIG_FILE'] as string, 'utf8'))['PUSH_SIGNATURE_KEY'] ?? '';
    assert.match(key64, /^[0-9a-f]{64}$/);
    secret = { key: key64, algorithm: 'sha1' };
    // Default PUSH_NOFILE 65536, from a shell that had 1024. Without the privilege to raise the
    // hard limit (an ordinary user, or root in a container) the scripts go as far as it allows.
    const hard = openFilesLimit(process.pid).hard;
    for (const name of ['listener-1', 'publisher-1']) {
      const { soft } = openFilesLimit(pidOf(name));
      assert.ok(soft === 65536 || soft === Math.min(65536, hard), `${name}: open-file limit ${soft}, expected 65536 or the hard limit ${hard}`);
    }
  });

  it('PUSH_PUBLISH_TRUSTED_NETWORKS=none: unsigned requests are refused even from an allowed host; signed ones pass', async () => {
    const ch = channelId();
    const target = `/bitrix/pub/?CHANNEL_ID=${ch}`;
    const body = JSON.stringify({ module_id: 't', command: 'signed_only', params: {} });
    const unsigned = await send('POST', target, body, OTHER_HOST, false, { 'Message-Expiry': '600' });
    assert.equal(unsigned.status, 401, unsigned.body);
    assert.match(unsigned.body, /^4120: /);
    // (PUSH_PUB_ALLOW is that host, so without `none` the stack would trust it for unsigned publishing.)
    const ok = await send('POST', target, body, OTHER_HOST, true, { 'Message-Expiry': '600' });
    assert.equal(ok.status, 200, ok.body);
    const poll = await longPoll(front, [signChannel(ch, secret)], `&mid=${ZERO_MID}`);
    assert.deepEqual(poll.messages.map((m) => (m.text as { command: string }).command), ['signed_only'], 'only the signed message was stored');
    // Minting, the same rules.
    assert.equal((await send('POST', '/channels?count=1', '', OTHER_HOST, false)).status, 401);
    const minted = await send('POST', '/channels?count=1', '', OTHER_HOST, true);
    assert.equal(minted.status, 200, minted.body);
  });

  it('PUSH_PUB_ALLOW: publishing, minting and the cluster views through nginx only from allowed addresses (403 otherwise); subscribing from anywhere', async () => {
    const ch = channelId();
    const target = `/bitrix/pub/?CHANNEL_ID=${ch}`;
    const body = JSON.stringify({ module_id: 't', command: 'x', params: {} });
    // Signed, so the publisher would accept it: the 403 is nginx's allow list.
    for (const [method, path, b] of [['POST', target, body], ['POST', '/pub?CHANNEL_ID=' + ch, body], ['POST', '/channels?count=1', ''], ['GET', '/server-stat/', ''], ['GET', '/status', ''], ['GET', `/bitrix/pub/?CHANNEL_ID=${ch}`, '']] as const) {
      const res = await send(method, path, b, '127.0.0.1', true);
      assert.equal(res.status, 403, `${method} ${path} from a host not in PUSH_PUB_ALLOW`);
    }
    // Past nginx, /server-stat/ is an admin page: nobody is trusted by address here (none), so it
    // takes the admin token.
    const closed = await send('GET', '/server-stat/', '', OTHER_HOST, false);
    assert.equal(closed.status, 401, closed.body);
    assert.match(closed.body, /^4128: /);
    assert.equal((await send('GET', '/server-stat/', '', OTHER_HOST, false, { Authorization: `Bearer ${ADMIN_TOKEN}` })).status, 200);
    const poll = await longPoll(front, [signChannel(ch, secret)], `&mid=${ZERO_MID}`);
    assert.equal(poll.status, 304, 'nothing was published by the refused requests');
  });

  it('PUSH_SUB_CONN_PER_IP=1: a second subscriber connection from the same address gets 429; another address is not affected', async () => {
    const ch = signChannel(channelId(), secret);
    const wsUrl = `${front.replace('http', 'ws')}/bitrix/subws/?CHANNEL_ID=${ch}`;
    const first = await wsHandshake(wsUrl);
    assert.equal(first.status, 101);
    try {
      assert.equal((await wsHandshake(wsUrl)).status, 429, 'second WebSocket from the same address');
      assert.equal((await httpRequest(`${front}/bitrix/sub/?CHANNEL_ID=${ch}`)).status, 429, 'a long poll counts too');
      const other = await wsHandshake(wsUrl, OTHER_HOST);
      assert.equal(other.status, 101, 'another client address has its own allowance');
      other.ws?.close();
    } finally {
      first.ws?.close();
    }
    // The slot is free again once the connection is gone.
    await eventually(async () => {
      const again = await wsHandshake(wsUrl);
      again.ws?.close();
      return again.status === 101;
    }, 5000, 'the connection slot back');
  });

  it('a full npm stop / npm start keeps undelivered messages (private Redis with AOF)', async () => {
    const ch = channelId();
    const target = `/bitrix/pub/?CHANNEL_ID=${ch}`;
    const body = JSON.stringify({ module_id: 't', command: 'kept', params: { n: 1 } });
    const res = await send('POST', target, body, OTHER_HOST, true, { 'Message-Expiry': '3600' });
    assert.equal(res.status, 200, res.body);
    const stop = await script('stop', env);
    assert.equal(stop.code, 0, stop.stdout + stop.stderr);
    assert.equal(existsSync(join(runDir, 'state.env')), false);
    const start = await script('start', env);
    assert.equal(start.code, 0, start.stdout + start.stderr);
    assert.match(start.stdout, /redis-server starting/);
    const poll = await longPoll(front, [signChannel(ch, secret)], `&mid=${ZERO_MID}`);
    assert.equal(poll.status, 200);
    assert.deepEqual(poll.messages.map((m) => m.text), [JSON.parse(body)]);
  });

  it('stop.sh exits 1 when it had to kill a process that would not stop, and still stops everything', async () => {
    const stuck = pidOf('listener-1');
    const others = [pidOf('publisher-1'), pidOf('redis'), Number(readFileSync(join(runDir, 'nginx', 'nginx.pid'), 'utf8'))];
    // A stopped process keeps SIGTERM pending and never exits by itself.
    process.kill(stuck, 'SIGSTOP');
    const r = await script('stop', env);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`pid ${stuck} did not exit within 6s; killing it`));
    assert.match(r.stderr, /stopped, but not cleanly/);
    for (const pid of [stuck, ...others]) assert.throws(() => process.kill(pid, 0), /ESRCH/, `pid ${pid} gone`);
    const s = await script('status', env);
    assert.equal(s.code, 3);
  });
});
