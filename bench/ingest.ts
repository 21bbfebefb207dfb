import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import nacl from 'tweetnacl';
import { startRedis } from '../tests/helpers/redis.js';
import { startApp } from '../tests/helpers/apps.js';

/**
 * Ingest: signed single-message publishes into ONE publisher process (issue: >= 5,000/s).
 * The load generator (ingest-client.ts) is a separate process with keep-alive connections; it
 * signs every request (fresh nonce each, so the replay cache is exercised) before the clock
 * starts, so the figure is the server's cost: verify + nonce claim + atomic store per request.
 */
export async function runIngest(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string', default: '5' },
      connections: { type: 'string', default: '32' },
      algo: { type: 'string', default: 'ed25519' },
      channels: { type: 'string', default: '1000' },
      'body-bytes': { type: 'string', default: '256' },
    },
  });
  const algo = values.algo === 'hmac' ? 'hmac' : 'ed25519';
  const kp = nacl.sign.keyPair();
  const hmacSecret = Buffer.from(nacl.randomBytes(32)).toString('base64url');
  const ring = algo === 'ed25519' ? `bench:ed25519:${Buffer.from(kp.publicKey).toString('base64')}` : `bench:hmac-sha256:${hmacSecret}`;
  const redis = await startRedis();
  // No trusted networks: every request must carry a valid signature.
  const pub = await startApp('publisher', { REDIS_URL: redis.url, PUSH_PUBLISH_KEYS: ring, PUSH_PUBLISH_TRUSTED_NETWORKS: '' }).catch(async (err: unknown) => {
    await redis.stop();
    throw err;
  });
  const pid = pub.proc.pid as number;
  try {
    let cpuBefore = 0;
    let started = 0;
    const client = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./ingest-client.ts', import.meta.url))], {
      env: {
        ...process.env,
        BENCH_URL: pub.url,
        BENCH_SECONDS: values.seconds,
        BENCH_CONNECTIONS: values.connections,
        BENCH_ALGO: algo,
        BENCH_CHANNELS: values.channels,
        BENCH_BODY_BYTES: values['body-bytes'],
        BENCH_SECRET: algo === 'ed25519' ? Buffer.from(kp.secretKey).toString('base64') : hmacSecret,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    client.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (started === 0 && out.includes('START\n')) {
        cpuBefore = cpuTicks(pid);
        started = Date.now();
      }
    });
    const code = await new Promise<number | null>((resolve) => client.on('exit', resolve));
    if (code !== 0) throw new Error(`load client exited with ${code}`);
    const result = JSON.parse(out.trim().split('\n').pop() as string) as Record<string, number>;
    const wall = (Date.now() - started) / 1000;
    const cpu = (cpuTicks(pid) - cpuBefore) / 100; // clock ticks (USER_HZ = 100) -> seconds
    const stored = Number(await redis.client().get('push:id:counter'));
    const report = {
      scenario: 'ingest',
      algo,
      connections: Number(values.connections),
      seconds: result['seconds'],
      requests: result['requests'],
      ok: result['ok'],
      errors: result['errors'],
      storedMessages: stored,
      reqPerSec: result['rps'],
      latencyMs: { p50: result['p50'], p90: result['p90'], p99: result['p99'], max: result['max'] },
      // CPU seconds used per wall-clock second of the measured phase (1.0 = one core busy).
      publisherCpu: Number((cpu / wall).toFixed(2)),
      loadClientCpu: result['clientCpu'],
      cores: cpus().length,
      node: process.version,
    };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    if (result['ok'] !== stored) process.stderr.write(`warning: ${result['ok']} accepted but ${stored} stored\n`);
  } finally {
    await pub.stop();
    await redis.stop();
  }
}

function cpuTicks(pid: number): number {
  // /proc/<pid>/stat fields 14 and 15: utime and stime in clock ticks (after the ")" of the name).
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(')').pop()?.trim().split(' ') ?? [];
  return Number(fields[11]) + Number(fields[12]);
}
