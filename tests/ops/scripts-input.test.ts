import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { script } from './stack-helpers.js';

/** Bad settings get exit 2 and a message naming the variable, and nothing is started or written. */
describe('scripts: bad settings and nothing running', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'push-scripts-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const bad: Array<[string, Record<string, string>, RegExp]> = [
    ['no listeners', { PUSH_LISTENERS: '0' }, /PUSH_LISTENERS must be a whole number from 1 to 256, got '0'/],
    ['publisher count not a number', { PUSH_PUBLISHERS: 'two' }, /PUSH_PUBLISHERS must be a whole number/],
    ['front port out of range', { PUSH_FRONT_PORT: '70000' }, /PUSH_FRONT_PORT must be a whole number from 1 to 65535/],
    ['overlapping port ranges', { PUSH_PUBLISHER_PORT: '9000', PUSH_PUBLISHERS: '2', PUSH_LISTENER_PORT: '9001', PUSH_LISTENERS: '2' }, /publisher ports 9000-9001 overlap listener ports 9001-9002/],
    ['unknown access-log value', { PUSH_NGINX_ACCESS_LOG: 'yes' }, /PUSH_NGINX_ACCESS_LOG must be on or off/],
    ['nginx workers not a number', { PUSH_NGINX_WORKERS: 'lots' }, /PUSH_NGINX_WORKERS must be auto or a number/],
    ['file limit too low', { PUSH_NOFILE: '10' }, /PUSH_NOFILE must be a whole number from 1024/],
  ];
  for (const [name, env, message] of bad) {
    it(`start.sh refuses: ${name}`, async () => {
      const runDir = join(dir, name.replace(/\W+/g, '-'));
      const r = await script('start', { PUSH_RUN_DIR: runDir, PUSH_SKIP_SETUP: '1', ...env });
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, message);
      assert.equal(existsSync(runDir), false, 'nothing written');
    });
  }

  it('status.sh says not running (exit 3), stop.sh is a harmless no-op, restart.sh refuses (exit 3)', async () => {
    const env = { PUSH_RUN_DIR: join(dir, 'never-started') };
    const s = await script('status', env);
    assert.equal(s.code, 3);
    assert.match(s.stdout, /not running/);
    const st = await script('stop', env);
    assert.equal(st.code, 0);
    assert.match(st.stdout, /nothing to stop/);
    const r = await script('restart', { ...env, PUSH_SKIP_SETUP: '1' });
    assert.equal(r.code, 3);
    assert.match(r.stderr, /not running/);
  });
});
