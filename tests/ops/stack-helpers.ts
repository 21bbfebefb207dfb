import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request as httpRequestRaw } from 'node:http';
import { createServer } from 'node:net';
import WebSocket from 'ws';
import { decodeTextFrames } from '@push/protocol';
import { ROOT } from '../helpers/apps.js';
import { sleep } from '../helpers/ports.js';

export interface ScriptResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command in the checkout with extra environment; resolves when it exits. */
export function run(cmd: string, args: string[], env: Record<string, string>, timeoutMs = 90_000): Promise<ScriptResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} timed out\n${stdout}\n${stderr}`));
    }, timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

export const script = (name: string, env: Record<string, string>, timeoutMs?: number): Promise<ScriptResult> =>
  run('bash', [`scripts/${name}.sh`], env, timeoutMs);

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * A base port such that base..base+count-1 were all free a moment ago: random, below the kernel's
 * ephemeral range (32768 and up), so an outgoing connection of another test cannot take it between
 * this check and the process binding it.
 */
export async function freePortRange(count: number): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20000 + Math.floor(Math.random() * (32768 - 20000 - count));
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = await portFree(base + i);
    if (ok) return base;
  }
  throw new Error('no free port range');
}

/**
 * The part of a test stack's environment every stack test needs: its own run directory, config
 * file and free ports (front, publishers, listeners, Redis), so stacks never collide.
 */
export async function stackPorts(runDir: string, publishers: number, listeners: number): Promise<{ env: Record<string, string>; frontPort: number }> {
  const frontPort = await freePortRange(1);
  const pubBase = await freePortRange(publishers);
  const subBase = await freePortRange(listeners);
  const redisPort = await freePortRange(1);
  return {
    frontPort,
    env: {
      PUSH_RUN_DIR: runDir,
      PUSH_CONFIG_FILE: join(runDir, 'conf', 'config.env'),
      PUSH_FRONT_PORT: String(frontPort),
      PUSH_PUBLISHER_PORT: String(pubBase),
      PUSH_LISTENER_PORT: String(subBase),
      PUSH_REDIS_PORT: String(redisPort),
    },
  };
}

export interface PromFamily {
  type: string;
  help: string;
  samples: Array<{ name: string; labels: Record<string, string>; value: number }>;
}

/**
 * Strict parser for the Prometheus text exposition format (0.0.4): every line is a HELP, a TYPE
 * or a sample; every sample belongs to a family declared by TYPE; label values are quoted with
 * the allowed escapes; values are floats or +Inf/-Inf/NaN. Throws naming the first bad line.
 * NaN/Inf are matched without case, as Prometheus's own parser does (Go's ParseFloat): prom-client
 * writes an empty event-loop histogram's mean as "Nan".
 */
export function parsePrometheus(text: string): Map<string, PromFamily> {
  const families = new Map<string, PromFamily>();
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const helpRe = new RegExp(`^# HELP (${NAME}) (.*)$`);
  const typeRe = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
  const sampleRe = new RegExp(`^(${NAME})(?:\\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*",?)*)\\})? (-?[0-9.eE+-]+|[+-][Ii][Nn][Ff]|[Nn][Aa][Nn])(?: -?[0-9]+)?$`);
  const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"/g;
  if (!text.endsWith('\n')) throw new Error('exposition must end with a newline');
  const lines = text.split('\n').slice(0, -1);
  lines.forEach((line, i) => {
    if (line === '') return;
    let m = helpRe.exec(line);
    if (m) {
      const f = families.get(m[1] as string) ?? { type: '', help: '', samples: [] };
      f.help = m[2] as string;
      families.set(m[1] as string, f);
      return;
    }
    m = typeRe.exec(line);
    if (m) {
      const f = families.get(m[1] as string) ?? { type: '', help: '', samples: [] };
      if (f.type !== '') throw new Error(`line ${i + 1}: second TYPE for ${m[1]}`);
      f.type = m[2] as string;
      families.set(m[1] as string, f);
      return;
    }
    if (line.startsWith('#')) throw new Error(`line ${i + 1}: malformed comment: ${line}`);
    m = sampleRe.exec(line);
    if (!m) throw new Error(`line ${i + 1}: malformed sample: ${line}`);
    const name = m[1] as string;
    const raw = (m[3] as string).toLowerCase();
    const value = raw === '+inf' ? Infinity : raw === '-inf' ? -Infinity : raw === 'nan' ? Number.NaN : Number(raw);
    if (raw !== 'nan' && Number.isNaN(value)) throw new Error(`line ${i + 1}: bad value ${m[3]}`);
    const family = families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, ''));
    if (family === undefined || family.type === '') throw new Error(`line ${i + 1}: sample ${name} has no TYPE`);
    if (name !== [...families.entries()].find(([, f]) => f === family)?.[0] && !['histogram', 'summary'].includes(family.type)) {
      throw new Error(`line ${i + 1}: suffixed sample ${name} in a ${family.type}`);
    }
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(labelRe)) labels[l[1] as string] = l[2] as string;
    family.samples.push({ name, labels, value });
  });
  return families;
}

/**
 * Sum of the samples called `name` (optionally only those whose labels match). A histogram's
 * `_count`, `_sum` and `_bucket` samples are found in their family.
 */
export function sampleSum(f: Map<string, PromFamily>, name: string, labels: Record<string, string> = {}): number {
  const fam = f.get(name) ?? f.get(name.replace(/_(bucket|sum|count)$/, ''));
  if (fam === undefined) throw new Error(`no metric ${name}`);
  return fam.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}

interface Seen {
  /** seq numbers received, in order (duplicates kept, to be counted). */
  readonly seqs: number[];
  reconnects: number;
}

const seqOf = (text: unknown): number | null => {
  const p = (text as { params?: { seq?: unknown } } | null)?.params;
  return typeof p?.seq === 'number' ? p.seq : null;
};

/** Called with every message a resuming client receives (its decoded text), when it arrives. */
export type OnText = (text: unknown) => void;

/**
 * A WebSocket subscriber that behaves like the official client: on any close it reconnects after
 * a short random delay, resuming with the mid of the last message it got.
 */
export class ResumingWs implements Seen {
  readonly seqs: number[] = [];
  /** The mid of each entry of `seqs`, in the same order. */
  readonly mids: string[] = [];
  reconnects = 0;
  closeCodes: number[] = [];
  private mid = '';
  private stopped = false;
  private ws: WebSocket | null = null;
  constructor(
    private readonly url: () => string,
    private readonly onText?: OnText,
  ) {}
  /** The current socket (a slow-consumer test stops reading from it). */
  get socket(): WebSocket | null {
    return this.ws;
  }
  start(): Promise<void> {
    return new Promise((resolve) => this.connect(resolve));
  }
  private connect(onOpen?: () => void): void {
    if (this.stopped) return;
    const ws = new WebSocket(`${this.url()}${this.mid ? `&mid=${this.mid}` : ''}`);
    this.ws = ws;
    ws.on('open', () => onOpen?.());
    ws.on('message', (data) => {
      for (const m of decodeTextFrames(data.toString())) {
        this.mid = m.mid;
        const s = seqOf(m.text);
        if (s !== null) {
          this.seqs.push(s);
          this.mids.push(m.mid);
        }
        this.onText?.(m.text);
      }
    });
    ws.on('error', () => {});
    ws.on('close', (code) => {
      this.closeCodes.push(code);
      if (this.stopped) return;
      this.reconnects++;
      setTimeout(() => this.connect(onOpen), 50 + Math.random() * 200);
    });
  }
  stop(): void {
    this.stopped = true;
    this.ws?.terminate();
  }
}

/** A long-poll loop like the official client: resumes with the last mid or the 304 Last-Message-Id. */
export class ResumingPoll implements Seen {
  readonly seqs: number[] = [];
  reconnects = 0;
  statuses = new Map<number, number>();
  private mid = '';
  private stopped = false;
  private readonly abort = new AbortController();
  private loop: Promise<void> | null = null;
  constructor(
    private readonly url: () => string,
    private readonly onText?: OnText,
  ) {}
  start(): void {
    this.loop = this.run();
  }
  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        const res = await fetch(`${this.url()}${this.mid ? `&mid=${this.mid}` : ''}`, { signal: this.abort.signal });
        const body = await res.text();
        this.statuses.set(res.status, (this.statuses.get(res.status) ?? 0) + 1);
        if (res.status === 200) {
          for (const m of decodeTextFrames(body)) {
            this.mid = m.mid;
            const s = seqOf(m.text);
            if (s !== null) this.seqs.push(s);
            this.onText?.(m.text);
          }
        } else if (res.status === 304) {
          const last = res.headers.get('last-message-id');
          if (last && res.headers.get('expires') === 'Thu, 01 Jan 1973 11:11:01 GMT') this.mid = last;
        } else {
          this.reconnects++;
          await sleep(100 + Math.random() * 200);
        }
      } catch {
        if (this.stopped) return;
        this.reconnects++;
        await sleep(100 + Math.random() * 200);
      }
    }
  }
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    await this.loop?.catch(() => {});
  }
}

export interface RawHttpResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/**
 * One HTTP request from a chosen source address (fetch cannot bind one): loopback aliases such as
 * 127.0.0.2 play a second client machine for nginx's allow lists and per-IP limits.
 */
export function httpRequest(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string | Uint8Array; localAddress?: string } = {}): Promise<RawHttpResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequestRaw(url, { method: opts.method ?? 'GET', headers: opts.headers ?? {}, localAddress: opts.localAddress, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.setTimeout(15_000, () => req.destroy(new Error(`${url}: no answer`)));
    req.end(opts.body);
  });
}

/** A WebSocket handshake: resolves with the open socket, or with the HTTP status that refused it. */
export function wsHandshake(url: string, localAddress?: string): Promise<{ ws: WebSocket | null; status: number }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, localAddress === undefined ? {} : { localAddress });
    ws.once('open', () => resolve({ ws, status: 101 }));
    ws.once('unexpected-response', (_req, res) => {
      resolve({ ws: null, status: res.statusCode ?? 0 });
      res.resume();
      ws.terminate();
    });
    ws.once('error', (err) => reject(err));
  });
}

/** Soft and hard "Max open files" of a running process. */
export function openFilesLimit(pid: number): { soft: number; hard: number } {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(line ?? '');
  if (m === null) throw new Error(`no open-file limit for pid ${pid}`);
  const n = (v: string | undefined): number => (v === 'unlimited' ? Infinity : Number(v));
  return { soft: n(m[1]), hard: n(m[2]) };
}

/** The worker processes of an nginx master, sorted (a reload replaces them all). */
export function childPids(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number).sort((a, b) => a - b);
}
