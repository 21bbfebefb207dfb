import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signChannel, type ChannelSecret } from '@push/protocol';
import { parseEnvFile } from '@push/runtime';
import { ROOT } from '../helpers/apps.js';
import { channelId, publish } from '../helpers/clients.js';
import { eventually, sleep } from '../helpers/ports.js';
import { ResumingPoll, ResumingWs, run, script, stackPorts } from './stack-helpers.js';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The supervisor loop on its own, with stand-in commands: restart policy, back-off, stop. */
describe('scripts/lib/supervise.sh', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'push-supervise-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const start = (name: string, command: string) => {
    const pidfile = join(dir, `${name}.pid`);
    const log = join(dir, `${name}.log`);
    const p = spawn('bash', [join(ROOT, 'scripts/lib/supervise.sh'), name, pidfile, log, 'bash', '-c', command], { stdio: 'ignore' });
    const exited = new Promise<number | null>((resolve) => p.once('exit', (code) => resolve(code)));
    return { p, pidfile, log: () => (existsSync(log) ? readFileSync(log, 'utf8') : ''), exited };
  };

  it('a process that keeps crashing is started again at once, then after 1 s, 2 s, ... (no spinning)', async () => {
    const s = start('crasher', 'echo started; exit 3');
    try {
      await eventually(() => s.log().includes('starting it again in 2s'), 8000, 'third restart');
      const delays = [...s.log().matchAll(/exited with status 3; starting it again in (\d+)s/g)].map((m) => Number(m[1]));
      assert.deepEqual(delays.slice(0, 3), [0, 1, 2]);
      assert.ok(s.log().split('\n').filter((l) => l === 'started').length <= 4, 'about one start per back-off step');
    } finally {
      s.p.kill('SIGTERM');
      assert.equal(await s.exited, 0, 'TERM during a back-off ends the supervisor');
    }
  });

  it('status 2 (bad configuration) is not restarted', async () => {
    const s = start('badconf', 'exit 2');
    assert.equal(await s.exited, 2);
    assert.match(s.log(), /badconf \(pid \d+\) exited with status 2 \(bad configuration\): not restarted/);
    assert.equal(s.log().match(/exited with status/g)?.length, 1);
  });

  it('TERM to the supervisor reaches the process, which may finish its drain; nothing is restarted', async () => {
    const s = start('drainer', 'trap "echo draining; sleep 0.5; echo drained; exit 0" TERM; echo up; while :; do sleep 0.1; done');
    await eventually(() => s.log().includes('up'), 5000, 'child up');
    const child = Number(readFileSync(s.pidfile, 'utf8'));
    assert.ok(alive(child));
    s.p.kill('SIGTERM');
    assert.equal(await s.exited, 0);
    assert.equal(alive(child), false);
    assert.match(s.log(), /^up\ndraining\ndrained\n$/);
  });

  it('a clean exit (a drain the supervisor did not ask for) is started again at once', async () => {
    const s = start('cycler', 'echo up; sleep 0.3; exit 0');
    try {
      await eventually(() => (s.log().match(/^up$/gm)?.length ?? 0) >= 3, 5000, 'three runs');
      assert.match(s.log(), /exited with status 0; starting it again in 0s/);
      assert.doesNotMatch(s.log(), /again in [1-9]/);
    } finally {
      s.p.kill('SIGTERM');
      await s.exited;
    }
  });
});

/** A stack whose apps cannot start at all: start.sh stops waiting as soon as their supervisors give up. */
describe('npm start: apps with a bad configuration', () => {
  let runDir: string;
  let env: Record<string, string>;
  before(async () => {
    runDir = mkdtempSync(join(tmpdir(), 'push-badconf-'));
    const ports = await stackPorts(runDir, 1, 1);
    env = { ...ports.env, PUSH_LISTENERS: '1', PUSH_PUBLISHERS: '1', PUSH_NGINX_WORKERS: '1', PUSH_SIGNATURE_KEY: '', REDIS_URL: '', PUSH_SKIP_SETUP: '1', PUSH_MAX_CHANNELS: 'lots', PUSH_START_TIMEOUT_S: '120' };
  });
  after(async () => {
    await script('stop', env);
    rmSync(runDir, { recursive: true, force: true });
  });

  it('exit 2 is not restarted; start fails early with the reason from the log', async () => {
    const started = Date.now();
    const r = await script('start', env, 150_000);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.ok(Date.now() - started < 60_000, 'gave up when the supervisors did, not after PUSH_START_TIMEOUT_S');
    // Whichever app's supervisor gave up first ended the wait; its log tail names the setting.
    assert.match(r.stderr, /(listener|publisher)-1 is not running or was restarted; last lines of/);
    assert.match(r.stderr, /PUSH_MAX_CHANNELS: expected a whole number/);
    assert.match(r.stderr, /the stack did not become ready \(waited at most 120s/);
    for (const name of ['listener-1', 'publisher-1']) {
      await eventually(() => /exited with status 2 \(bad configuration\): not restarted/.test(readFileSync(join(runDir, 'log', `${name}.log`), 'utf8')), 10_000, `${name} not restarted`);
    }
  });
});

/**
 * The npm start stack without systemd: a listener and a publisher killed with SIGKILL under load are
 * back and serving within 5 s, and clients that resume by mid miss nothing (per-channel sequences).
 */
describe('npm start: supervised processes', () => {
  let runDir: string;
  let env: Record<string, string>;
  let front: string;
  let secret: ChannelSecret;
  let listenerPort: number;
  let publisherPort: number;
  const pidOf = (name: string): number => Number(readFileSync(join(runDir, 'pids', `${name}.pid`), 'utf8'));
  const readyz = async (port: number): Promise<number> => {
    try {
      return (await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(1000) })).status;
    } catch {
      return 0;
    }
  };

  before(async () => {
    runDir = mkdtempSync(join(tmpdir(), 'push-supervised-'));
    const ports = await stackPorts(runDir, 2, 2);
    env = { ...ports.env, PUSH_LISTENERS: '2', PUSH_PUBLISHERS: '2', PUSH_NGINX_WORKERS: '1', PUSH_SIGNATURE_KEY: '', REDIS_URL: '', PUSH_SHUTDOWN_GRACE_S: '3', PUSH_SKIP_SETUP: '1', PUSH_PUBLISH_TRUSTED_NETWORKS: '', PUSH_PUB_ALLOW: '' };
    front = `http://127.0.0.1:${ports.frontPort}`;
    listenerPort = Number(ports.env['PUSH_LISTENER_PORT']);
    publisherPort = Number(ports.env['PUSH_PUBLISHER_PORT']);
    const r = await script('start', env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    secret = { key: parseEnvFile(readFileSync(env['PUSH_CONFIG_FILE'] as string, 'utf8'))['PUSH_SIGNATURE_KEY'] ?? '', algorithm: 'sha1' };
  });
  after(async () => {
    await script('stop', env);
    rmSync(runDir, { recursive: true, force: true });
  });

  it('kill -9 of a listener and of a publisher under load: each back within 5 s, nothing lost', async () => {
    const channels = [channelId(), channelId()];
    const clients = channels.flatMap((ch) => {
      const url = (path: string) => () => `${path}?CHANNEL_ID=${encodeURIComponent(signChannel(ch, secret))}`;
      return [
        { ch, c: new ResumingWs(url(`${front.replace('http', 'ws')}/bitrix/subws/`)) },
        { ch, c: new ResumingWs(url(`${front.replace('http', 'ws')}/bitrix/subws/`)) },
        { ch, c: new ResumingPoll(url(`${front}/bitrix/sub/`)) },
      ];
    });
    await Promise.all(clients.map(({ c }) => (c instanceof ResumingWs ? c.start() : c.start())));
    await sleep(300);
    const accepted = new Map<string, number[]>(channels.map((ch) => [ch, []]));
    const failed: string[] = [];
    let publishing = true;
    const load = (async () => {
      for (let seq = 1; publishing; seq++) {
        await Promise.all(
          // Each publish carries an identity, as a portal's should: nginx hands a request that a killed
          // publisher read but never answered to the other one, which must then not store it twice.
          channels.map(async (ch) => {
            try {
              const r = await publish(front, [ch], { module_id: 'test', command: 'seq', params: { seq } }, { 'Message-Expiry': '600', 'X-Push-Request-Id': `sup-${ch.slice(0, 8)}-${seq}` });
              if (r.status === 200) accepted.get(ch)?.push(seq);
              else failed.push(`${seq}: HTTP ${r.status}`);
            } catch (err) {
              failed.push(`${seq}: ${(err as Error).message}`);
            }
          }),
        );
        await sleep(10);
      }
    })();
    try {
      for (const [name, port] of [['listener-1', listenerPort], ['publisher-1', publisherPort]] as const) {
        await sleep(1000);
        const old = pidOf(name);
        process.kill(old, 'SIGKILL');
        const killedAt = Date.now();
        // Back: a new process of that name answers ready on the same port.
        await eventually(async () => existsSync(join(runDir, 'pids', `${name}.pid`)) && pidOf(name) !== old && alive(pidOf(name)) && (await readyz(port)) === 200, 5000, `${name} back within 5 s`);
        process.stdout.write(`# ${name}: back and ready ${Date.now() - killedAt} ms after kill -9\n`);
        assert.match(readFileSync(join(runDir, 'log', `${name}.log`), 'utf8'), new RegExp(`${name} \\(pid ${old}\\) was killed by signal 9; starting it again in 0s`));
      }
      await sleep(1000);
    } finally {
      publishing = false;
      await load;
    }
    try {
      for (const ch of channels) assert.ok((accepted.get(ch)?.length ?? 0) > 50, `published under load (${accepted.get(ch)?.length})`);
      await eventually(() => clients.every(({ ch, c }) => (accepted.get(ch) ?? []).every((s) => c.seqs.includes(s))), 20_000, 'every client has every accepted message of its channel');
      for (const { c } of clients) {
        assert.equal(new Set(c.seqs).size, c.seqs.length, 'no message twice');
        assert.deepEqual([...c.seqs].sort((a, b) => a - b), c.seqs, 'in order');
      }
      const status = await script('status', env);
      assert.equal(status.code, 0, status.stdout);
      process.stdout.write(`# supervision: ${[...accepted.values()].map((a) => a.length).join('+')} accepted, ${failed.length} publishes failed while a process was killed, ${clients.length} clients, 0 lost\n`);
    } catch (err) {
      const missing = clients.map(({ ch, c }) => (accepted.get(ch) ?? []).filter((s) => !c.seqs.includes(s)).length);
      throw new Error(`${(err as Error).message}; missing per client: ${missing.join(', ')}; failed publishes: ${failed.slice(0, 5).join('; ')}`);
    } finally {
      for (const { c } of clients) await c.stop();
    }
  });

  it('npm stop ends the supervisors with their processes; nothing comes back', async () => {
    const names = ['listener-1', 'listener-2', 'publisher-1', 'publisher-2'];
    const apps = names.map(pidOf);
    const sups = names.map((n) => Number(readFileSync(join(runDir, 'supervise', `${n}.pid`), 'utf8')));
    const r = await run('npm', ['stop', '--silent'], env);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    for (const pid of [...apps, ...sups]) assert.equal(alive(pid), false, `pid ${pid} gone`);
    await sleep(1500);
    for (const port of [listenerPort, publisherPort]) assert.equal(await readyz(port), 0, `nothing listens on ${port} again`);
    assert.equal((await script('status', env)).code, 3);
  });
});
