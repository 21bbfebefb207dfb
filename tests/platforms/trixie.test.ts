import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/apps.js';

/** Exit status of scripts/test-platforms.sh when this machine cannot build or enter the root. */
const CANNOT_RUN = 77;

interface Run {
  readonly code: number | null;
  readonly output: string;
}

function platformTests(major: string): Promise<Run> {
  return new Promise((resolve) => {
    const p = spawn('bash', [join(ROOT, 'scripts/test-platforms.sh'), major], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (d: Buffer): void => {
      output += d.toString();
      process.stderr.write(d);
    };
    p.stdout.on('data', keep);
    p.stderr.on('data', keep);
    p.on('exit', (code) => resolve({ code, output }));
  });
}

/** The summary counters of a node --test TAP log. */
function summary(tap: string): Record<'tests' | 'pass' | 'fail' | 'cancelled' | 'skipped', number> {
  const n = (k: string): number => Number(new RegExp(`^# ${k} (\\d+)$`, 'm').exec(tap)?.[1] ?? NaN);
  return { tests: n('tests'), pass: n('pass'), fail: n('fail'), cancelled: n('cancelled'), skipped: n('skipped') };
}

/**
 * Node 22 and 24 on Debian 13: the stack's protocol and fault tests, run inside a debootstrapped
 * trixie root by scripts/test-platforms.sh (the root is cached, so only the first run builds it).
 */
describe('Debian 13 (trixie) root: Node 22 and 24 with uWebSockets.js 20.57', () => {
  for (const major of ['22', '24']) {
    it(`Node ${major}: stack, protocol and fault tests pass, on the 20.57 binding`, { timeout: 25 * 60_000 }, async (t) => {
      const run = await platformTests(major);
      if (run.code === CANNOT_RUN) {
        t.skip(/SKIP: (.*)/.exec(run.output)?.[1] ?? 'this machine cannot build the root');
        return;
      }
      const tap = readFileSync(join(ROOT, `test-artifacts/platforms/trixie-node${major}.tap`), 'utf8');
      const s = summary(tap);
      assert.equal(run.code, 0, run.output);
      assert.equal(s.fail, 0);
      assert.equal(s.cancelled, 0);
      assert.ok(s.pass >= 80, `ran the whole set, not a handful: ${JSON.stringify(s)}`);
      assert.equal(s.skipped, 1, 'only the Chromium status-page test is skipped');
      // The processes really ran on Node 22/24 with the 20.57 binding, not on the host's Node 20.
      assert.match(run.output, new RegExp(`Node ${major}\\.\\d+\\.\\d+: tests \\d+`));
      assert.match(tap, new RegExp(`uws_linux_x64_${major === '22' ? 127 : 137}\\.node from uWebSockets\\.js 20\\.57\\.0`));
    });
  }
});
