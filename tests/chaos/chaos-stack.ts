import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { signChannel } from '@push/protocol';
import { ROOT } from '../helpers/apps.js';
import { eventually } from '../helpers/ports.js';
import { script, stackPorts, type ScriptResult } from '../ops/stack-helpers.js';

export type ProcessName = `listener-${number}` | `publisher-${number}` | 'redis';

/**
 * The stack `npm start` brings up (private Redis with AOF, publishers, listeners, nginx in front),
 * in a temporary run directory on free loopback ports, driven through the project's own scripts:
 * `start.sh` brings back whatever a fault took down (it starts only what is missing, as a
 * supervisor would), `restart.sh` is the rolling restart.
 */
export class ChaosStack {
  private redisClient: Redis | null = null;

  private constructor(
    readonly runDir: string,
    readonly env: Record<string, string>,
    readonly front: string,
    readonly listenerPorts: readonly number[],
    readonly redisPort: number,
    private readonly key: string,
  ) {}

  static async start(opts: { listeners: number; publishers: number; appEnv: Record<string, string> }): Promise<ChaosStack> {
    const runDir = mkdtempSync(join(tmpdir(), 'push-chaos-'));
    const ports = await stackPorts(runDir, opts.publishers, opts.listeners);
    const key = randomBytes(32).toString('hex');
    const env = {
      ...ports.env,
      PUSH_LISTENERS: String(opts.listeners),
      PUSH_PUBLISHERS: String(opts.publishers),
      PUSH_SIGNATURE_KEY: key,
      REDIS_URL: '',
      PUSH_SKIP_SETUP: '1',
      PUSH_LOG_LEVEL: 'warn',
      PUSH_PUBLISH_TRUSTED_NETWORKS: '',
      PUSH_PUB_ALLOW: '',
      ...opts.appEnv,
    };
    const listenerBase = Number(ports.env['PUSH_LISTENER_PORT']);
    const stack = new ChaosStack(
      runDir,
      env,
      `http://127.0.0.1:${ports.frontPort}`,
      Array.from({ length: opts.listeners }, (_, i) => listenerBase + i),
      Number(ports.env['PUSH_REDIS_PORT']),
      key,
    );
    await stack.ensureUp();
    return stack;
  }

  /** `start.sh`: starts whatever is not running and waits until the whole stack is ready. */
  async ensureUp(): Promise<void> {
    const r = await script('start', this.env, 120_000);
    if (r.code !== 0) throw new Error(`start.sh failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
  }

  /** `restart.sh`: one process at a time, each drained and ready again before the next. */
  rollingRestart(): Promise<ScriptResult> {
    return script('restart', this.env, 180_000);
  }

  pid(name: ProcessName): number {
    return Number(readFileSync(join(this.runDir, 'pids', `${name}.pid`), 'utf8').trim());
  }

  /** Sends a signal to one process of the stack; resolves once it has exited. */
  async signal(name: ProcessName, sig: NodeJS.Signals, timeoutMs = 30_000): Promise<void> {
    const pid = this.pid(name);
    process.kill(pid, sig);
    await eventually(() => !alive(pid), timeoutMs, `${name} (pid ${pid}) to exit after ${sig}`);
  }

  /**
   * Stops an app for good (`npm start` runs each under a supervisor that would start it again):
   * SIGTERM to its supervisor, which passes it on and exits without a restart, as `npm stop`
   * does. `start.sh` brings it back under a new supervisor.
   */
  async stopSupervised(name: `listener-${number}` | `publisher-${number}`, timeoutMs = 30_000): Promise<void> {
    const app = this.pid(name);
    const supFile = join(this.runDir, 'supervise', `${name}.pid`);
    const sup = existsSync(supFile) ? Number(readFileSync(supFile, 'utf8').trim()) : NaN;
    process.kill(Number.isInteger(sup) && alive(sup) ? sup : app, 'SIGTERM');
    await eventually(() => !alive(app) && !(Number.isInteger(sup) && alive(sup)), timeoutMs, `${name} (pid ${app}) and its supervisor to exit`);
  }

  /** A command connection to the stack's Redis (for CLIENT KILL, CLIENT PAUSE). */
  redis(): Redis {
    if (this.redisClient === null) {
      this.redisClient = new Redis({ port: this.redisPort, host: '127.0.0.1', maxRetriesPerRequest: 1 });
      this.redisClient.on('error', () => {});
    }
    return this.redisClient;
  }

  sign(ch: string): string {
    return signChannel(ch, { key: this.key, algorithm: 'sha1' });
  }

  /**
   * A listener started by hand on listener `index`'s port (that one must be stopped first, with
   * `stopSupervised`: the port is opened with SO_REUSEPORT, so a listener its supervisor brought
   * back would share it and take part of the requests meant for this one) with
   * the stack's settings but its own REDIS_URL: the silent-stall fault puts a proxy there.
   */
  async startListenerVia(index: number, redisUrl: string): Promise<{ proc: ChildProcess; logLines: () => Array<Record<string, unknown>> }> {
    const port = this.listenerPorts[index] as number;
    const appEnv = Object.fromEntries(Object.entries(this.env).filter(([k]) => !/^PUSH_(RUN_DIR|LISTENERS|PUBLISHERS|FRONT_PORT|PUBLISHER_PORT|LISTENER_PORT|REDIS_PORT|SKIP_SETUP|PUB_ALLOW|PUBLISH_TRUSTED_NETWORKS)$|^REDIS_URL$/.test(k)));
    // Trusting this host as npm start does lets the harness read the replacement's /metrics (an admin page).
    const proc = spawn(process.execPath, [join(ROOT, 'apps/listener/dist/main.js')], {
      cwd: ROOT,
      env: { PATH: process.env['PATH'] ?? '', ...appEnv, PUSH_PORT: String(port), PUSH_HOST: '127.0.0.1', REDIS_URL: redisUrl, PUSH_TRUSTED_PROXIES: '127.0.0.1/32,::1/128', PUSH_PUBLISH_TRUSTED_NETWORKS: '127.0.0.1/32,::1/128' },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    // Its log (pino JSON lines, warn and above): the stall lines carry the listener's own time of detection.
    const lines: Array<Record<string, unknown>> = [];
    let rest = '';
    proc.stdout?.on('data', (d: Buffer) => {
      const parts = (rest + d.toString('utf8')).split('\n');
      rest = parts.pop() ?? '';
      for (const l of parts) {
        try {
          lines.push(JSON.parse(l) as Record<string, unknown>);
        } catch {
          // not a log line
        }
      }
    });
    await eventually(async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.status === 200, 20_000, `listener on ${port} via ${redisUrl}`);
    return { proc, logLines: () => lines };
  }

  async stop(): Promise<void> {
    this.redisClient?.disconnect();
    const r = await script('stop', this.env, 120_000);
    if (r.code !== 0) process.stderr.write(`stop.sh: ${r.stdout}${r.stderr}\n`);
    rmSync(this.runDir, { recursive: true, force: true });
  }
}

/** Whether a process still runs (a zombie waiting for its parent to reap it does not). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
