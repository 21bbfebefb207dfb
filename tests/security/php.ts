import { spawn } from 'node:child_process';

export interface PhpRun {
  readonly code: number | null;
  /** stdout and stderr together, in arrival order. */
  readonly out: string;
}

/**
 * Runs php-cli. Rejects with a message saying what is missing when php cannot be started at all
 * (instead of waiting for an exit that never comes); npm test installs php-cli (SETUP_PACKAGES in
 * scripts/test.sh), a bare `node --test` run may not have it.
 */
export function runPhp(args: readonly string[], env: Record<string, string> = {}, cwd?: string): Promise<PhpRun> {
  return new Promise((resolve, reject) => {
    const p = spawn('php', [...args], { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'], ...(cwd === undefined ? {} : { cwd }) });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.once('error', (err) => reject(new Error(`cannot start php (${err.message}): these tests need php-cli 8.1+ on PATH; npm test installs it (Debian package php-cli)`)));
    p.once('close', (code) => resolve({ code, out }));
  });
}
