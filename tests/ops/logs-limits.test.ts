import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from '../helpers/ports.js';
import { run, script, stackPorts } from './stack-helpers.js';

/**
 * Logs and limits of the npm start stack: what start.sh could not raise is printed with what to do,
 * and the logrotate rules it writes rotate every log while the processes keep writing to the new
 * files. Started with an open-file hard limit of 4096 that cannot be raised (as root the capability
 * to raise it is dropped), so the outcome does not depend on the machine's own limits.
 */
describe('npm start: limits it could not raise, log rotation', () => {
  let runDir: string;
  let env: Record<string, string>;
  let front: string;
  let start: { code: number | null; stdout: string; stderr: string };
  const log = (name: string): string => join(runDir, 'log', name);
  const read = (name: string): string => (existsSync(log(name)) ? readFileSync(log(name), 'utf8') : '');

  before(async () => {
    runDir = mkdtempSync(join(tmpdir(), 'push-logs-'));
    const ports = await stackPorts(runDir, 1, 1);
    env = {
      ...ports.env,
      PUSH_LISTENERS: '1',
      PUSH_PUBLISHERS: '1',
      PUSH_NGINX_WORKERS: '1',
      PUSH_SIGNATURE_KEY: '',
      REDIS_URL: '',
      PUSH_SHUTDOWN_GRACE_S: '2',
      PUSH_NGINX_ACCESS_LOG: 'on',
      PUSH_NOFILE: '65536',
      PUSH_SKIP_SETUP: '1',
    };
    front = `http://127.0.0.1:${ports.frontPort}`;
    const limited = 'ulimit -n 4096 && exec bash scripts/start.sh';
    const root = process.getuid?.() === 0;
    start = root ? await run('setpriv', ['--bounding-set=-sys_resource', 'bash', '-c', limited], env) : await run('bash', ['-c', limited], env);
  });
  after(async () => {
    await script('stop', env);
    rmSync(runDir, { recursive: true, force: true });
  });

  it('prints the open-file limit it could not raise and nginx\'s setrlimit alert, each with what to do', () => {
    assert.equal(start.code, 0, start.stdout + start.stderr);
    assert.match(start.stderr, /limit: open files is 4096, not PUSH_NOFILE=65536: the hard limit 4096 could not be raised .*Raise the hard limit \(LimitNOFILE= in a systemd unit, \/etc\/security\/limits\.d\/ for the user, or the container's --ulimit nofile\)/);
    assert.match(start.stderr, /limit: nginx: setrlimit\(RLIMIT_NOFILE, 65536\) failed \(1: Operation not permitted\)\. nginx workers run with the inherited open-file limit \(4096\).*set PUSH_NOFILE to at most 4096/);
    assert.equal(start.stderr.match(/limit: nginx: setrlimit/g)?.length, 1, 'one line, not one per worker or per start');
    assert.match(start.stdout, /push start: ready/);
  });

  it('logrotate -f with the rules start.sh wrote: every log rotated, the same processes write to the new files', async () => {
    const rules = join(runDir, 'logrotate.conf');
    assert.ok(existsSync(rules));
    assert.ok(start.stdout.includes(`rotate: logrotate -s ${runDir}/logrotate.state ${rules}`), start.stdout);
    assert.equal((await fetch(`${front}/server-stat/?before-rotation`)).status, 200);
    await eventually(() => read('nginx-access.log').includes('before-rotation'), 5000, 'access log line');
    const before = { listener: read('listener-1.log'), access: read('nginx-access.log'), redis: read('redis.log') };
    assert.match(before.listener, /"listener ready"/);

    const r = await run('logrotate', ['-f', '-s', join(runDir, 'logrotate.state'), rules], {});
    assert.equal(r.code, 0, r.stdout + r.stderr);
    for (const name of ['publisher-1.log', 'listener-1.log', 'nginx-error.log', 'nginx-access.log', 'redis.log']) {
      assert.ok(existsSync(log(`${name}.1`)), `${name}.1`);
    }
    assert.equal(readFileSync(log('listener-1.log.1'), 'utf8'), before.listener, 'the listener log moved whole');
    assert.equal(readFileSync(log('nginx-access.log.1'), 'utf8'), before.access);

    // nginx reopened its logs (SIGUSR1): new requests go to the new file only.
    assert.equal((await fetch(`${front}/server-stat/?after-rotation`)).status, 200);
    await eventually(() => read('nginx-access.log').includes('after-rotation'), 5000, 'new access log written');
    assert.doesNotMatch(readFileSync(log('nginx-access.log.1'), 'utf8'), /after-rotation/);
    // redis-server writes its next lines to a new redis.log.
    const redisPort = env['PUSH_REDIS_PORT'] as string;
    assert.equal((await run('redis-cli', ['-p', redisPort, 'BGREWRITEAOF'], {})).code, 0);
    await eventually(() => /rewrit/i.test(read('redis.log')), 5000, 'redis log line in the new file');
    // The listener that was running during the rotation writes on in the truncated file from its
    // start (append mode: no hole of NUL bytes where the old content was), then its successor.
    const pid = readFileSync(join(runDir, 'pids', 'listener-1.pid'), 'utf8').trim();
    const restart = await script('restart', { ...env, PUSH_RESTART_ONLY: 'listeners' }, 60_000);
    assert.equal(restart.code, 0, restart.stdout + restart.stderr);
    const now = read('listener-1.log');
    assert.ok(now.startsWith('{'), `the new file starts with a log line, not ${JSON.stringify(now.slice(0, 20))}`);
    assert.ok(!now.includes('\0'));
    assert.match(now, new RegExp(`"pid":${pid},.*"shutting down"`), 'the old process wrote to the new file');
    assert.match(now, /"listener ready"/);
    assert.ok(!now.includes(before.listener.split('\n')[0] as string), 'nothing of the rotated content');
  });
});
