import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { signChannel } from '@push/protocol';
import { parseEnvFile } from '@push/runtime';
import { ROOT } from '../helpers/apps.js';
import { WsClient, channelId, longPoll } from '../helpers/clients.js';
import { eventually, freePort } from '../helpers/ports.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { parseUnit } from './unit-file.js';

const sh = (cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) => {
  const r = spawnSync(cmd, args, { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, encoding: 'utf8', timeout: 600_000 });
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
};
const installed = (): boolean => sh('dpkg-query', ['-W', '-f=${Status}', 'push-server']).out.includes('install ok installed');
// The package depends on a Node 20 `nodejs` Debian package (docs/operations.md): where node came
// from elsewhere, apt-get could not satisfy it and the install steps cannot run.
const nodeDeb = sh('dpkg-query', ['-W', '-f=${Version}', 'nodejs']).out;
const canInstall = process.getuid?.() === 0 && sh('apt-get', ['--version']).code === 0 && /^20\./.test(nodeDeb);
const APT = ['-o', 'DPkg::Lock::Timeout=600', '-y', '-q'];

/**
 * `npm run package` builds the .deb; installed with apt-get it serves (processes started the way
 * their systemd units would, since no systemd runs here), and `dpkg -P` leaves nothing behind.
 */
describe('Debian package', { skip: canInstall ? false : `needs root, apt-get and a Node 20 nodejs package (nodejs: ${nodeDeb || 'not a Debian package'})` }, () => {
  let out: string;
  let deb: string;
  let redis: RedisServer;
  const procs: ChildProcess[] = [];
  let filesOfPackage: string[] = [];

  before(async () => {
    out = mkdtempSync(join(tmpdir(), 'push-deb-'));
    // A previous run that died half-way must not make this one pass or fail.
    if (installed()) sh('dpkg', ['-P', 'push-server']);
    redis = await startRedis();
  });
  after(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await redis?.stop();
    if (installed()) sh('dpkg', ['-P', 'push-server']);
    rmSync(out, { recursive: true, force: true });
  });

  it('npm run package builds push-server_<version>_amd64.deb with the product and nothing of the development tree', () => {
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    const r = sh('npm', ['run', '-s', 'package'], { env: { PUSH_SKIP_SETUP: '1', PUSH_PACKAGE_OUT: out } });
    assert.equal(r.code, 0, r.out);
    deb = join(out, `push-server_${version}_amd64.deb`);
    assert.ok(existsSync(deb), r.out);
    const info = sh('dpkg-deb', ['-f', deb, 'Package', 'Version', 'Architecture', 'Depends']).out;
    assert.match(info, new RegExp(`^Package: push-server\\nVersion: ${version.replaceAll('.', '\\.')}\\nArchitecture: amd64\\nDepends: nodejs \\(>= 20\\), nodejs \\(<< 21\\), redis-server`, 'm'));
    const list = sh('dpkg-deb', ['-c', deb]).out.split('\n').map((l) => l.replace(/^.* \.\//, '/').replace(/ -> .*$/, ''));
    for (const f of [
      '/usr/lib/push-server/apps/publisher/dist/main.js',
      '/usr/lib/push-server/apps/listener/dist/main.js',
      '/usr/lib/push-server/apps/cli/bin/pushctl.js',
      '/usr/lib/push-server/node_modules/ioredis/package.json',
      '/usr/lib/push-server/node_modules/@btc-vision/uwebsockets.js/uws_linux_x64_115.node',
      '/usr/lib/push-server/packages/runtime/uws-compat/uws_linux_x64_115.node',
      '/usr/lib/push-server/packages/runtime/uws-compat/libisoc23-compat.so',
      '/usr/lib/push-server/node_modules/@push/protocol',
      '/usr/bin/pushctl',
      '/lib/systemd/system/push-server-publisher@.service',
      '/lib/systemd/system/push-server-listener@.service',
      '/lib/systemd/system/push-server-nginx.service',
      '/lib/systemd/system/push-server.target',
      '/etc/push-server/nginx.conf',
      '/etc/logrotate.d/push-server',
      '/usr/share/push-server/push-server.env',
      '/usr/share/doc/push-server/copyright',
      '/usr/share/doc/push-server/CHANGELOG.md',
    ]) {
      assert.ok(list.includes(f), `${f} in the package`);
    }
    // Our own code only as built JavaScript; dependencies as published, without development tools.
    const unwanted = list.filter((f) => /^\/usr\/lib\/push-server\/(apps|packages)\/.*(\.ts|\/src\/.*)$|loadgen|standalone|^\/usr\/lib\/push-server\/node_modules\/(typescript|tsx|playwright-core|ws|@types)\/|uws_(?!linux_x64_115)/.test(f));
    assert.deepEqual(unwanted, [], 'no sources, tests, dev tools or foreign bindings');
    assert.match(sh('dpkg-deb', ['-f', deb, 'Conffiles']).out + readFileSync(join(ROOT, 'scripts/package.sh'), 'utf8'), /\/etc\/push-server\/nginx\.conf/);
  });

  it('apt-get install ./push-server_*.deb: user, settings with a key of its own, pushctl on the PATH', () => {
    const r = sh('apt-get', [...APT, 'install', '--no-install-recommends', `./${deb.split('/').pop()}`], { cwd: out, env: { DEBIAN_FRONTEND: 'noninteractive' } });
    assert.equal(r.code, 0, r.out);
    assert.ok(installed());
    filesOfPackage = sh('dpkg', ['-L', 'push-server']).out.split('\n').filter((f) => f.startsWith('/'));
    assert.equal(sh('getent', ['passwd', 'push-server']).code, 0, 'system user');
    const env = '/etc/push-server/push-server.env';
    assert.match(readFileSync(env, 'utf8'), /^PUSH_SIGNATURE_KEY=[0-9a-f]{64}$/m);
    assert.equal(statSync(env).mode & 0o777, 0o640);
    assert.equal(sh('stat', ['-c', '%U:%G', env]).out.trim(), 'root:push-server');
    const help = sh('pushctl', ['help']);
    assert.equal(help.code, 0, help.out);
    assert.match(help.out, /pushctl - push server command line/);
    assert.equal(sh('stat', ['-c', '%U', '/var/log/push-server']).out.trim(), 'push-server');
  });

  it('the installed units serve: a publish through the package\'s nginx reaches a WebSocket and a long poll', async () => {
    const key = parseEnvFile(readFileSync('/etc/push-server/push-server.env', 'utf8'))['PUSH_SIGNATURE_KEY'] ?? '';
    const [pubPort, subPort, frontPort] = [await freePort(), await freePort(), await freePort()];
    // Each process as its unit starts it: the unit's user, environment (instance = port) and
    // command, output appended to the unit's log file. Only Redis is this test's own.
    for (const [kind, port] of [['publisher', pubPort], ['listener', subPort]] as const) {
      const unit = parseUnit(readFileSync(`/lib/systemd/system/push-server-${kind}@.service`, 'utf8'));
      const env: Record<string, string> = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', REDIS_URL: redis.url };
      for (const e of unit.get('Service.Environment') ?? []) {
        const [k, ...v] = e.replaceAll('%i', String(port)).split('=');
        env[k as string] = v.join('=');
      }
      const logPath = (unit.get('Service.StandardOutput')?.[0] ?? '').replace(/^append:/, '').replaceAll('%i', String(port));
      assert.ok(logPath.startsWith('/var/log/push-server/'), logPath);
      const fd = openSync(logPath, 'a');
      const user = unit.get('Service.User')?.[0] ?? '';
      const [cmd, ...args] = (unit.get('Service.ExecStart')?.[0] ?? '').split(' ');
      procs.push(spawn('setpriv', [`--reuid=${user}`, `--regid=${unit.get('Service.Group')?.[0]}`, '--init-groups', cmd as string, ...args], { env, stdio: ['ignore', fd, fd] }));
      closeSync(fd);
    }
    // nginx from its unit, with the installed config on this test's ports.
    const nginxUnit = parseUnit(readFileSync('/lib/systemd/system/push-server-nginx.service', 'utf8'));
    const conf = readFileSync('/etc/push-server/nginx.conf', 'utf8')
      .replace(/server 127\.0\.0\.1:9010\b[^;]*;/, `server 127.0.0.1:${pubPort};`)
      .replace(/\n\s*server 127\.0\.0\.1:9011\b[^;]*;/, '')
      .replace(/server 127\.0\.0\.1:8010\b[^;]*;/, `server 127.0.0.1:${subPort};`)
      .replace(/\n\s*server 127\.0\.0\.1:8011\b[^;]*;/, '')
      .replace('listen 0.0.0.0:8080', `listen 127.0.0.1:${frontPort}`);
    assert.ok(conf.includes(`127.0.0.1:${frontPort}`) && conf.includes(`127.0.0.1:${subPort}`));
    const confPath = join(out, 'nginx.conf');
    writeFileSync(confPath, conf);
    const withConf = (line: string): string[] => line.replace('/etc/push-server/nginx.conf', confPath).split(' ');
    const [pre, ...preArgs] = withConf(nginxUnit.get('Service.ExecStartPre')?.[0] ?? '');
    const check = sh(pre as string, preArgs);
    assert.equal(check.code, 0, check.out);
    const [bin, ...binArgs] = withConf(nginxUnit.get('Service.ExecStart')?.[0] ?? '');
    const started = sh(bin as string, binArgs);
    assert.equal(started.code, 0, started.out);
    try {
      const front = `http://127.0.0.1:${frontPort}`;
      // Every process ready (the front's /readyz asks a publisher only).
      for (const url of [`http://127.0.0.1:${pubPort}/readyz`, `http://127.0.0.1:${subPort}/readyz`, `${front}/readyz`]) {
        await eventually(async () => (await fetch(url).catch(() => null))?.status === 200, 20_000, `${url} ready`);
      }
      const ch = channelId();
      const ws = await WsClient.connect(front, [signChannel(ch, { key, algorithm: 'sha1' })]);
      // The README's unsigned publish from this host.
      const res = await fetch(`${front}/bitrix/pub/?CHANNEL_ID=${ch}`, { method: 'POST', headers: { 'Message-Expiry': '3600' }, body: '{"module_id":"deb","command":"hello","params":{}}' });
      assert.equal(res.status, 200, await res.text());
      const got = await ws.waitFor(1);
      assert.equal((got[0]?.text as { command: string }).command, 'hello');
      ws.close();
      // pushctl (installed) mints with the installed settings file; the listener takes the id.
      const mint = sh('pushctl', ['mint', '--signature-key-file', '/etc/push-server/push-server.env']);
      assert.equal(mint.code, 0, mint.out);
      const minted = (JSON.parse(mint.out) as { channels: Array<{ id: string; signed: string }> }).channels[0];
      assert.ok(minted);
      await fetch(`${front}/bitrix/pub/?CHANNEL_ID=${minted.id}`, { method: 'POST', headers: { 'Message-Expiry': '3600' }, body: '{"module_id":"deb","command":"minted","params":{}}' });
      const poll = await longPoll(front, [minted.signed], '&mid=00000000000000000000000000');
      assert.equal(poll.status, 200);
      assert.equal((poll.messages[0]?.text as { command: string }).command, 'minted');
      const listenerLog = readFileSync(`/var/log/push-server/listener-${subPort}.log`, 'utf8');
      assert.match(listenerLog, /"listener ready"/);
      // The packaged binding: uWebSockets.js 20.57.0, on glibc before 2.38 the packaged copy.
      const glibc = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime ?? '';
      const [major = 0, minor = 0] = glibc.split('.').map(Number);
      const copy = major === 2 && minor < 38 ? ', copy for glibc before 2\\.38' : '';
      assert.match(listenerLog, new RegExp(`"detail":"uws_linux_x64_115\\.node from uWebSockets\\.js 20\\.57\\.0 \\(@btc-vision/uwebsockets\\.js${copy}\\)".*"uWebSockets\\.js loaded"`));
      // Its parser answers a control character in a header at once, on the process itself.
      const refused = await new Promise<string>((resolve, reject) => {
        let got = '';
        const s = connect(subPort, '127.0.0.1', () => s.write('GET /readyz HTTP/1.1\r\nHost: push\r\nMessage-Type: a\x01b\r\n\r\n'));
        s.on('data', (d: Buffer) => (got += d.toString('latin1')));
        s.on('close', () => resolve(got));
        s.on('error', reject);
        s.setTimeout(30_000, () => s.destroy());
      });
      assert.match(refused, /^HTTP\/1\.1 400 /, JSON.stringify(refused));
      // The installed rotation rules work on the live logs.
      const rot = sh('logrotate', ['-f', '-s', join(out, 'logrotate.state'), '/etc/logrotate.d/push-server']);
      assert.equal(rot.code, 0, rot.out);
      assert.ok(existsSync(`/var/log/push-server/listener-${subPort}.log.1`));
      assert.ok(existsSync('/var/log/push-server/nginx-error.log.1'));
    } finally {
      sh('/usr/sbin/nginx', ['-s', 'quit', '-c', confPath]);
      for (const p of procs) p.kill('SIGTERM');
      await Promise.all(procs.map((p) => (p.exitCode !== null || p.signalCode !== null ? null : new Promise((r) => p.once('exit', r)))));
      await eventually(() => !existsSync('/var/lib/push-server/nginx/nginx.pid'), 20_000, 'nginx stopped');
    }
  });

  it('dpkg -P removes it and leaves nothing: files, settings, logs, state, user', () => {
    assert.ok(filesOfPackage.length > 100);
    const r = sh('dpkg', ['-P', 'push-server']);
    assert.equal(r.code, 0, r.out);
    assert.equal(installed(), false);
    for (const p of ['/usr/lib/push-server', '/etc/push-server', '/var/log/push-server', '/var/lib/push-server', '/usr/share/push-server', '/usr/share/doc/push-server', '/usr/bin/pushctl', '/etc/logrotate.d/push-server']) {
      assert.equal(existsSync(p), false, `${p} left behind`);
    }
    const left = filesOfPackage.filter((f) => existsSync(f) && !statSync(f).isDirectory());
    assert.deepEqual(left, [], 'no file of the package left');
    assert.notEqual(sh('getent', ['passwd', 'push-server']).code, 0, 'user removed');
    assert.notEqual(sh('getent', ['group', 'push-server']).code, 0, 'group removed');
  });
});
