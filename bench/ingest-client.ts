import { Agent, request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { authHeaders, canonicalString, ed25519PrivateKey, ed25519SignHex, hmacSignHex, sha256Hex } from '@push/protocol';

/**
 * Load generator for the ingest scenario (a separate process from the server). Pre-signs enough
 * requests for the run, then keeps BENCH_CONNECTIONS keep-alive connections busy for
 * BENCH_SECONDS and prints one JSON line with throughput and latency percentiles.
 */
const env = process.env;
const url = new URL(env['BENCH_URL'] as string);
const seconds = Number(env['BENCH_SECONDS']);
const connections = Number(env['BENCH_CONNECTIONS']);
const algo = env['BENCH_ALGO'];
const channelCount = Number(env['BENCH_CHANNELS']);
const bodyBytes = Number(env['BENCH_BODY_BYTES']);
const secret = env['BENCH_SECRET'] as string;

const channels = Array.from({ length: channelCount }, () => randomBytes(16).toString('hex'));
const edKey = algo === 'ed25519' ? ed25519PrivateKey(Buffer.from(secret, 'base64')) : null;
const sign = (c: string): string => (edKey !== null ? ed25519SignHex(edKey, c) : hmacSignHex(Buffer.from(secret, 'utf8'), c));

interface Prepared {
  path: string;
  headers: Record<string, string>;
  body: Buffer;
}

function prepare(i: number): Prepared {
  const path = `/pub/?CHANNEL_ID=${channels[i % channels.length]}`;
  const pad = 'x'.repeat(Math.max(0, bodyBytes - 80));
  const body = Buffer.from(`{"module_id":"bench","command":"ingest","params":{"i":${i},"pad":"${pad}"}}`);
  const ts = Math.floor(Date.now() / 1000);
  const nonce = randomBytes(12).toString('base64url');
  const canonical = canonicalString({ method: 'POST', target: path, timestamp: ts, nonce, keyId: 'bench', bodySha256: sha256Hex(body) });
  return { path, body, headers: { ...authHeaders('bench', ts, nonce, sign(canonical)), 'Message-Expiry': '60', 'Content-Length': String(body.length) } };
}

// Enough for the run at a generous 15,000/s; signing happens before the clock starts.
const total = Math.ceil(seconds * 15_000);
const prepared: Prepared[] = [];
for (let i = 0; i < total; i++) prepared.push(prepare(i));

const agent = new Agent({ keepAlive: true, maxSockets: connections });
const latencies: number[] = [];
let next = 0;
let ok = 0;
let errors = 0;
const firstError: string[] = [];

function send(p: Prepared): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: url.hostname, port: url.port, method: 'POST', path: p.path, headers: p.headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', (e) => {
      if (firstError.length === 0) firstError.push(e.message);
      resolve(0);
    });
    req.end(p.body);
  });
}

// Tells the parent that signing is done and the measured phase begins (it samples server CPU now).
process.stdout.write('START\n');
const start = performance.now();
const cpuStart = process.cpuUsage();
const deadline = start + seconds * 1000;
async function worker(): Promise<void> {
  while (performance.now() < deadline && next < prepared.length) {
    const p = prepared[next++] as Prepared;
    const t = performance.now();
    const status = await send(p);
    latencies.push(performance.now() - t);
    if (status === 200) ok++;
    else {
      errors++;
      if (firstError.length === 0) firstError.push(`HTTP ${status}`);
    }
  }
}
await Promise.all(Array.from({ length: connections }, () => worker()));
const elapsed = (performance.now() - start) / 1000;
const cpu = process.cpuUsage(cpuStart);
const clientCpu = Number(((cpu.user + cpu.system) / 1e6 / elapsed).toFixed(2));
agent.destroy();
latencies.sort((a, b) => a - b);
const pct = (q: number): number => Number((latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0).toFixed(2));
if (firstError.length > 0) process.stderr.write(`first error: ${firstError[0]}\n`);
if (next >= prepared.length) process.stderr.write('warning: ran out of pre-signed requests; raise the factor in ingest-client.ts\n');
process.stdout.write(
  `${JSON.stringify({ seconds: Number(elapsed.toFixed(2)), requests: latencies.length, ok, errors, rps: Math.round(ok / elapsed), p50: pct(0.5), p90: pct(0.9), p99: pct(0.99), max: pct(1), clientCpu })}\n`,
);
