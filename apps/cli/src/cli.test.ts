import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { signChannel } from '@push/protocol';
import { EXIT, HELP } from './cli.js';
import { startRedis, type RedisServer } from '../../../tests/helpers/redis.js';
import { ROOT, TEST_KEY, startApp, type AppProcess } from '../../../tests/helpers/apps.js';
import { WsClient, channelId, signed } from '../../../tests/helpers/clients.js';
import { freePort, sleep } from '../../../tests/helpers/ports.js';

interface Run {
  code: number | null;
  out: string;
  err: string;
}

/** Runs a command from the repository root; resolves when it exits, rejects if it cannot start. */
function runCommand(command: string, args: string[], stdin = '', env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    // This node first on PATH, so `#!/usr/bin/env node` and npm pick the node running the tests.
    const PATH = [dirname(process.execPath), process.env['PATH'] ?? ''].join(delimiter);
    const p = spawn(command, args, { cwd: ROOT, env: { PATH, HOME: process.env['HOME'] ?? ROOT, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', (e) => reject(new Error(`cannot run ${command}: ${e.message}`)));
    p.on('close', (code) => resolve({ code, out, err }));
    p.stdin.end(stdin);
  });
}

/** Runs the real `pushctl` launcher as a process, the way an operator does. */
const ADMIN_TOKEN = 'cli-test-admin-token-0123456789';

function pushctl(args: string[], stdin = '', env: Record<string, string> = {}): Promise<Run> {
  return runCommand(process.execPath, [join(ROOT, 'apps/cli/bin/pushctl.js'), ...args], stdin, env);
}

describe('pushctl as installed in the workspace', () => {
  it('node_modules/.bin/pushctl help (what `npx pushctl` runs) prints the help and exits 0', async () => {
    const r = await runCommand(join(ROOT, 'node_modules/.bin/pushctl'), ['help']);
    assert.equal(r.code, EXIT.OK, r.err);
    assert.equal(r.out, HELP);
    assert.equal(r.err, '');
  });

  it('npm run -s pushctl -- help prints the help and exits 0', async () => {
    const r = await runCommand('npm', ['run', '-s', 'pushctl', '--', 'help']);
    assert.equal(r.code, EXIT.OK, r.err);
    assert.equal(r.out, HELP);
  });

  it('npx --no pushctl help resolves the workspace bin without installing anything', async () => {
    const r = await runCommand('npx', ['--no', 'pushctl', 'help']);
    assert.equal(r.code, EXIT.OK, r.err);
    assert.equal(r.out, HELP);
  });

  it('an unknown command through the bin link exits 2 with the help on stderr', async () => {
    const r = await runCommand(join(ROOT, 'node_modules/.bin/pushctl'), ['frobnicate']);
    assert.equal(r.code, EXIT.USAGE);
    assert.match(r.err, /unknown command "frobnicate"/);
  });
});

describe('pushctl against something that is not a publisher', () => {
  /** X-Push-Request-Id of every publish the server saw ('' when absent). */
  const requestIds: string[] = [];
  let server: Server;
  let url: string;
  let dir: string;
  let keyFile: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pushctl-odd-'));
    keyFile = join(dir, 'k.json');
    assert.equal((await pushctl(['keygen', '--key-id', 'odd', '--out', keyFile])).code, 0);
    // Answers 200 with an HTML page to everything, like a misconfigured proxy or a web server.
    server = createServer((req, res) => {
      if (req.method === 'POST' && req.url?.startsWith('/pub/')) requestIds.push(String(req.headers['x-push-request-id'] ?? ''));
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end('<html><body>It works!</body></html>');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const addr = server.address();
    url = `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}`;
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('every publish carries a fresh, well-formed X-Push-Request-Id (docs/reliability.md)', async () => {
    for (let i = 0; i < 2; i++) await pushctl(['publish', '--url', url, '--key', keyFile, '--channel', channelId()], '{"module_id":"cli","command":"id"}');
    assert.equal(requestIds.length, 2);
    for (const id of requestIds) assert.match(id, /^[A-Za-z0-9._:-]{8,64}$/);
    assert.notEqual(requestIds[0], requestIds[1]);
  });

  it('a non-JSON 200 reply is exit 4 "unexpected reply", not 3 "unreachable"', async () => {
    for (const args of [['stats', '--url', url], ['mint', '--url', url, '--key', keyFile], ['online', '--url', url, '--key', keyFile, '--channel', channelId()]]) {
      const r = await pushctl(args);
      assert.equal(r.code, EXIT.UNEXPECTED, `${args[0]}: ${r.err}`);
      assert.equal(EXIT.UNEXPECTED, 4);
      assert.match(r.err, /unexpected reply \(HTTP 200, .*\): "<html><body>It works!<\/body><\/html>"; is --url a publisher\?/);
      assert.doesNotMatch(r.err, /cannot reach/);
      assert.equal(r.out, '');
    }
  });

  it('the help documents every exit code', () => {
    assert.match(HELP, /0 done, 1 refused by the server, 2 usage error, 3 server unreachable or file error,\s+4 unexpected failure/);
  });
});

describe('pushctl', () => {
  let redis: RedisServer;
  let pub: AppProcess;
  let lis: AppProcess;
  let dir: string;
  let keyFile: string;
  let hmacFile: string;
  let strangerFile: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pushctl-'));
    keyFile = join(dir, 'ed.json');
    hmacFile = join(dir, 'hmac.json');
    strangerFile = join(dir, 'stranger.json');
    const ed = await pushctl(['keygen', '--key-id', 'portal-a', '--out', keyFile]);
    const mac = await pushctl(['keygen', '--key-id', 'portal-b', '--hmac', '--out', hmacFile]);
    await pushctl(['keygen', '--key-id', 'stranger', '--out', strangerFile]);
    assert.equal(ed.code, 0, ed.err);
    assert.equal(mac.code, 0, mac.err);
    redis = await startRedis();
    const env = { REDIS_URL: redis.url, PUSH_PUBLISH_KEYS: `${ed.out.trim()} ${mac.out.trim()}`, PUSH_PUBLISH_TRUSTED_NETWORKS: 'none', PUSH_STATS_INTERVAL_S: '1', PUSH_ADMIN_TOKEN: ADMIN_TOKEN };
    [pub, lis] = await Promise.all([startApp('publisher', env), startApp('listener', env)]);
  });
  after(async () => {
    await Promise.all([pub?.stop(), lis?.stop()]);
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keygen writes a private key file and prints the server key-ring entry', () => {
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const file = JSON.parse(readFileSync(keyFile, 'utf8')) as { keyId: string; algorithm: string; publicKey: string; secretKey: string };
    assert.equal(file.keyId, 'portal-a');
    assert.equal(file.algorithm, 'ed25519');
    assert.equal(Buffer.from(file.secretKey, 'base64').length, 64);
    assert.equal(Buffer.from(file.publicKey, 'base64').length, 32);
  });

  it('publish from stdin (Ed25519) and from a file (HMAC) reaches a subscriber', async () => {
    const ch = channelId();
    const ws = await WsClient.connect(lis.url, [signed(ch)]);
    const a = await pushctl(['publish', '--url', pub.url, '--key', keyFile, '--channel', ch, '--expiry', '60'], '{"module_id":"cli","command":"stdin","params":{}}');
    assert.equal(a.code, 0, a.err);
    assert.match(a.out, /published to 1 channel/);
    const msgFile = join(dir, 'm.json');
    writeFileSync(msgFile, '{"module_id":"cli","command":"file","params":{}}');
    const b = await pushctl(['publish', '--url', pub.url, '--key', hmacFile, '--channel', ch, '--file', msgFile]);
    assert.equal(b.code, 0, b.err);
    const got = await ws.waitFor(2);
    assert.deepEqual(got.map((m) => (m.text as { command: string }).command), ['stdin', 'file']);
    ws.close();
  });

  it('online status and server stats', async () => {
    const ch = channelId();
    const off = channelId();
    const ws = await WsClient.connect(lis.url, [signed(ch)]);
    await sleep(150);
    const r = await pushctl(['online', '--url', pub.url, '--key', keyFile, '--channel', `${ch}/${off}`]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `${ch} online\n${off} offline\n`);
    ws.close();
    await sleep(1200);
    // /server-stat/ is an admin page and nobody is trusted by address here: the token opens it.
    const closed = await pushctl(['stats', '--url', pub.url]);
    assert.equal(closed.code, EXIT.REFUSED, closed.err);
    assert.match(closed.err, /4128: /);
    const wrong = await pushctl(['stats', '--url', pub.url], '', { PUSH_ADMIN_TOKEN: 'not-the-admin-token-000' });
    assert.equal(wrong.code, EXIT.REFUSED, wrong.err);
    assert.match(wrong.err, /4129: /);
    const s = await pushctl(['stats', '--url', pub.url], '', { PUSH_ADMIN_TOKEN: ADMIN_TOKEN });
    assert.equal(s.code, 0, s.err);
    const list = JSON.parse(s.out) as Array<{ type: string }>;
    assert.deepEqual(list.map((p) => p.type).sort(), ['listener', 'publisher']);
  });

  it('mint on the server (creation recorded) and locally (with the channel signature key)', async () => {
    const server = await pushctl(['mint', '--count', '2', '--url', pub.url, '--key', keyFile]);
    assert.equal(server.code, 0, server.err);
    const out = JSON.parse(server.out) as { channels: Array<{ id: string; signed: string }> };
    assert.equal(out.channels.length, 2);
    for (const c of out.channels) assert.ok((await redis.client().get(`push:ch:{${c.id}}`)) !== null);
    const local = await pushctl(['mint', '--count', '3'], '', { PUSH_SIGNATURE_KEY: TEST_KEY });
    assert.equal(local.code, 0, local.err);
    const minted = (JSON.parse(local.out) as { channels: Array<{ id: string; signed: string }> }).channels;
    assert.equal(minted.length, 3);
    for (const c of minted) {
      assert.match(c.id, /^[a-f0-9]{32}$/);
      assert.equal(c.signed, signChannel(c.id, { key: TEST_KEY, algorithm: 'sha1' }));
    }
  });

  it('mint --signature-key-file reads the key from the config file npm start writes; a listener accepts the ids', async () => {
    const envFile = join(dir, 'config.env');
    // The exact shape scripts/start.sh generates: comment lines, then the key.
    writeFileSync(envFile, `# Push server settings read by every process (PUSH_CONFIG_FILE); the environment wins.\n# Generated by scripts/start.sh. Keep it secret: the portal needs PUSH_SIGNATURE_KEY as its signature key.\nPUSH_SIGNATURE_KEY=${TEST_KEY}\n`, { mode: 0o600 });
    const bareFile = join(dir, 'bare.key');
    writeFileSync(bareFile, `${TEST_KEY}\n`, { mode: 0o600 });
    for (const file of [envFile, bareFile]) {
      const r = await pushctl(['mint', '--signature-key-file', file]);
      assert.equal(r.code, 0, r.err);
      const [c] = (JSON.parse(r.out) as { channels: Array<{ id: string; signed: string }> }).channels;
      assert.ok(c);
      assert.equal(c.signed, signChannel(c.id, { key: TEST_KEY, algorithm: 'sha1' }), file);
      // The listener (signed with the same key) takes the minted id and delivers to it: no 4010.
      const ws = await WsClient.connect(lis.url, [c.signed]);
      const sent = await pushctl(['publish', '--url', pub.url, '--key', keyFile, '--channel', c.id], '{"module_id":"cli","command":"minted","params":{}}');
      assert.equal(sent.code, 0, sent.err);
      const got = await ws.waitFor(1);
      assert.equal((got[0]?.text as { command: string }).command, 'minted');
      assert.equal(ws.closeCode, null);
      ws.close();
    }
  });

  it('mint --signature-key-file refuses a file that is neither a bare key nor a settings file with the key (exit 2, nothing printed)', async () => {
    const cases: Array<[string, RegExp]> = [
      [`# my key\n${TEST_KEY}\n`, /is neither a file holding only the key \(one line\) nor a KEY=VALUE settings file with PUSH_SIGNATURE_KEY=/],
      ['# settings\nREDIS_URL=redis://127.0.0.1:6379\n', /without a PUSH_SIGNATURE_KEY line/],
      ['short\n', /shorter than 16 characters/],
      [`PUSH_SIGNATURE_KEY=${TEST_KEY}\nPUSH_SIGNATURE_ALGO=rot13\n`, /PUSH_SIGNATURE_ALGO in .* must be one of/],
    ];
    for (const [text, reason] of cases) {
      const file = join(dir, 'odd.env');
      writeFileSync(file, text);
      const r = await pushctl(['mint', '--signature-key-file', file]);
      assert.equal(r.code, EXIT.USAGE, r.err);
      assert.match(r.err, reason);
      assert.equal(r.out, '');
    }
  });

  it('exit 1 with the server reason when refused', async () => {
    const r = await pushctl(['publish', '--url', pub.url, '--key', strangerFile, '--channel', channelId()], '{"module_id":"x","command":"y"}');
    assert.equal(r.code, 1);
    assert.match(r.err, /HTTP 401\): 4122: /);
    const bad = await pushctl(['publish', '--url', pub.url, '--key', keyFile, '--channel', channelId(), '--type', 'no spaces allowed'], '{"module_id":"x","command":"y"}');
    assert.equal(bad.code, 1);
    assert.match(bad.err, /HTTP 400\): 4105: /);
  });

  it('exit 2 on usage errors, exit 3 when the server is unreachable or a file is missing', async () => {
    const cases: Array<[string[], string, number, RegExp]> = [
      [[], '', 2, /pushctl - push server/],
      [['frobnicate'], '', 2, /unknown command "frobnicate"/],
      [['publish', '--bogus'], '', 2, /Unknown option '--bogus'/],
      [['publish', '--url', pub.url, '--key', keyFile], '{}', 2, /--channel is required/],
      [['publish', '--url', pub.url, '--key', keyFile, '--channel', 'XYZ'], '{}', 2, /bad: XYZ/],
      [['publish', '--url', pub.url, '--key', keyFile, '--channel', channelId()], '', 2, /message is empty/],
      [['publish', '--url', 'ftp://x', '--key', keyFile, '--channel', channelId()], '{}', 2, /--url must be/],
      [['publish', '--url', pub.url, '--key', join(dir, 'missing.json'), '--channel', channelId()], '{}', 3, /cannot read key file/],
      [['mint', '--count', '0', '--url', pub.url, '--key', keyFile], '', 2, /--count must be 1..100/],
      [['mint'], '', 2, /needs the channel signature key/],
      [['keygen', '--key-id', 'no spaces allowed'], '', 2, /--key-id must be/],
    ];
    for (const [args, stdin, code, re] of cases) {
      const r = await pushctl(args, stdin);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.err}`);
      assert.match(r.err, re);
    }
    const port = await freePort();
    const down = await pushctl(['publish', '--url', `http://127.0.0.1:${port}`, '--key', keyFile, '--channel', channelId()], '{}');
    assert.equal(down.code, 3);
    assert.match(down.err, /cannot reach/);
    const statsDown = await pushctl(['stats', '--url', `http://127.0.0.1:${port}`]);
    assert.equal(statsDown.code, 3);
    assert.match(statsDown.err, /cannot reach/);
    writeFileSync(join(dir, 'broken.json'), '{"keyId":"x"}');
    const broken = await pushctl(['online', '--url', pub.url, '--key', join(dir, 'broken.json'), '--channel', channelId()]);
    assert.equal(broken.code, 2);
    assert.match(broken.err, /key file .*broken.json: expected/);
  });
});

describe('pushctl client (shared mode)', () => {
  let redis: RedisServer;
  let pub: AppProcess;
  const ID = 'e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5';
  before(async () => {
    redis = await startRedis();
    pub = await startApp('publisher', { REDIS_URL: redis.url, PUSH_MODE: 'shared', PUSH_PUBLISH_TRUSTED_NETWORKS: 'none', PUSH_ADMIN_TOKEN: ADMIN_TOKEN });
  });
  after(async () => {
    await pub?.stop();
    await redis?.stop();
  });

  it('add prints the portal key (the same key when added again), list shows it without the key, remove takes it away; refusals exit 1, bad ids exit 2', async () => {
    const admin = { PUSH_ADMIN_TOKEN: ADMIN_TOKEN };
    const closed = await pushctl(['client', 'add', '--url', pub.url, '--id', ID]);
    assert.equal(closed.code, EXIT.REFUSED, 'without the admin token');
    assert.match(closed.err, /4128/);
    const added = await pushctl(['client', 'add', '--url', pub.url, '--id', ID], '', admin);
    assert.equal(added.code, EXIT.OK, added.err);
    const key = /^key ([0-9a-f]{64})$/m.exec(added.out)?.[1];
    assert.ok(key !== undefined, added.out);
    assert.equal(await redis.client().hexists('push:clients', ID), 1);
    const again = await pushctl(['client', 'add', '--url', pub.url, '--id', ID], '', admin);
    assert.ok(again.out.includes(`key ${key}`), 'adding again keeps the key');
    const listed = await pushctl(['client', 'list', '--url', pub.url], '', admin);
    assert.equal(listed.code, EXIT.OK, listed.err);
    assert.match(listed.out, new RegExp(`^${ID} \\d{4}-`, 'm'));
    assert.ok(!listed.out.includes(key as string), 'list never shows keys');
    const bad = await pushctl(['client', 'add', '--url', pub.url, '--id', 'SHORT'], '', admin);
    assert.equal(bad.code, EXIT.USAGE);
    const noKey = await pushctl(['client', 'remove', '--url', pub.url, '--id', ID], '', admin);
    assert.equal(noKey.code, EXIT.USAGE, 'remove needs the installation key');
    const wrongKey = await pushctl(['client', 'remove', '--url', pub.url, '--id', ID], '', { ...admin, PUSH_SIGNATURE_KEY: 'not-the-installation-key' });
    assert.equal(wrongKey.code, EXIT.REFUSED);
    assert.match(wrongKey.err, /4026: Wrong request signature\./);
    assert.equal(await redis.client().hexists('push:clients', ID), 1, 'a refused removal removes nothing');
    const removed = await pushctl(['client', 'remove', '--url', pub.url, '--id', ID], '', { ...admin, PUSH_SIGNATURE_KEY: TEST_KEY });
    assert.equal(removed.code, EXIT.OK, removed.err);
    assert.equal(await redis.client().hexists('push:clients', ID), 0);
    const missing = await pushctl(['client', 'remove', '--url', pub.url, '--id', ID], '', { ...admin, PUSH_SIGNATURE_KEY: TEST_KEY });
    assert.equal(missing.code, EXIT.REFUSED);
    assert.match(missing.err, /Client not found\./);
    const empty = await pushctl(['client', 'list', '--url', pub.url], '', admin);
    assert.equal(empty.out, '(no clients)\n');
  });
});
