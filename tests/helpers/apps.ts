import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { eventually, freePort } from './ports.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The reference test key (bitrix-protocol.md section 2); the test vectors are signed with it. */
export const TEST_KEY = 'u9kqCo7qhKIQ8RML9xUGNmcZLVWmS8OsR2UN9jsZuaCY3aqPKGENRWmA36f9r47FHnqXlKuMvgsl0hnft7qCAN8iXHw94nHS4D6dxA07BX1lUjwuMJ0t73Z9wJY25Mpu';

export type AppName = 'publisher' | 'listener' | 'standalone';

/** Loopback, the trusted publishing network of the test setup (see startApp). */
export const TRUSTED_LOOPBACK = '127.0.0.1/32,::1/128';

export interface AppProcess {
  readonly name: AppName;
  readonly port: number;
  readonly url: string;
  readonly proc: ChildProcess;
  readonly output: () => string;
  /** Sends a signal and waits for exit; resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts the built app (`apps/<name>/dist/main.js`) as a real process on a free port; with `netns`,
 * inside that network namespace (a "host" of netns.ts; set PUSH_HOST to the host's address).
 */
export async function startApp(name: AppName, env: Record<string, string>, where: { netns?: string } = {}): Promise<AppProcess> {
  const port = env['PUSH_PORT'] !== undefined ? Number(env['PUSH_PORT']) : await freePort();
  const main = `${ROOT}apps/${name}/dist/main.js`;
  // `ip netns exec` execs node itself, so signals reach the app.
  const [cmd, args] = where.netns === undefined ? [process.execPath, [main]] : ['ip', ['netns', 'exec', where.netns, process.execPath, main]];
  const proc = spawn(cmd, args, {
    // Tests publish unsigned from loopback the way Bitrix portals do, so loopback is a trusted
    // publishing network here unless a test sets the variable itself (the server default is none;
    // tests/security covers signed publishing and refusals).
    env: { PATH: process.env['PATH'] ?? '', PUSH_SIGNATURE_KEY: TEST_KEY, PUSH_LOG_LEVEL: 'info', PUSH_PUBLISH_TRUSTED_NETWORKS: TRUSTED_LOOPBACK, ...env, PUSH_PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  await Promise.race([
    eventually(() => out.includes(`"${name} ready"`), 15_000, `${name} start`),
    exited.then((code) => {
      throw new Error(`${name} exited with ${code}:\n${out}`);
    }),
  ]);
  return {
    name,
    port,
    url: `http://${env['PUSH_HOST'] ?? '127.0.0.1'}:${port}`,
    proc,
    output: () => out,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill(signal);
      return exited;
    },
  };
}
