import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT } from '../helpers/apps.js';
import { parseUnit } from './unit-file.js';

const DIR = join(ROOT, 'packaging/systemd');
const KINDS = ['publisher', 'listener'] as const;

describe('systemd units (packaging/systemd)', () => {
  it('one templated unit per process kind (instance = port), restarted on failure, with limits and hardening', () => {
    assert.deepEqual(readdirSync(DIR).sort(), ['push-server-listener@.service', 'push-server-nginx.service', 'push-server-publisher@.service', 'push-server.target']);
    for (const kind of KINDS) {
      const u = parseUnit(readFileSync(join(DIR, `push-server-${kind}@.service`), 'utf8'));
      const one = (k: string): string | undefined => u.get(k)?.at(-1);
      assert.equal(one('Service.ExecStart'), `/usr/bin/node /usr/lib/push-server/apps/${kind}/dist/main.js`);
      assert.ok(u.get('Service.Environment')?.includes('PUSH_PORT=%i'), 'the instance is the port');
      assert.ok(u.get('Service.Environment')?.includes('PUSH_CONFIG_FILE=/etc/push-server/push-server.env'));
      assert.equal(one('Service.Restart'), 'always');
      assert.ok(Number(one('Service.RestartSec')) <= 2, 'restarted within seconds');
      assert.equal(one('Service.RestartPreventExitStatus'), '2', 'a configuration error is not retried');
      assert.equal(one('Service.KillSignal'), 'SIGTERM', 'SIGTERM drains');
      assert.ok(Number(one('Service.TimeoutStopSec')) > 10, 'longer than the default drain grace');
      assert.equal(one('Service.LimitNOFILE'), '1048576');
      assert.equal(one('Service.User'), 'push-server');
      for (const [k, v] of [['NoNewPrivileges', 'yes'], ['ProtectSystem', 'strict'], ['ProtectHome', 'yes'], ['PrivateTmp', 'yes'], ['CapabilityBoundingSet', ''], ['RestrictAddressFamilies', 'AF_INET AF_INET6 AF_UNIX']] as const) {
        assert.equal(one(`Service.${k}`), v, `${kind}: ${k}`);
      }
      assert.equal(one('Service.StandardOutput'), `append:/var/log/push-server/${kind}-%i.log`);
      assert.ok(u.get('Service.ReadWritePaths')?.includes('/var/log/push-server'));
      assert.equal(one('Unit.PartOf'), 'push-server.target');
      assert.equal(one('Install.WantedBy'), 'push-server.target');
    }
  });

  it('systemd-analyze verify accepts the units (instantiated on their default ports)', (t) => {
    if (spawnSync('systemd-analyze', ['--version']).status !== 0) {
      t.skip('systemd-analyze is not installed');
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'push-units-'));
    try {
      copyFileSync(join(DIR, 'push-server.target'), join(dir, 'push-server.target'));
      copyFileSync(join(DIR, 'push-server-nginx.service'), join(dir, 'push-server-nginx.service'));
      const units = ['push-server.target', 'push-server-nginx.service'];
      for (const [kind, port] of [['publisher', 9010], ['listener', 8010]] as const) {
        copyFileSync(join(DIR, `push-server-${kind}@.service`), join(dir, `push-server-${kind}@.service`));
        copyFileSync(join(DIR, `push-server-${kind}@.service`), join(dir, `push-server-${kind}@${port}.service`));
        units.push(`push-server-${kind}@${port}.service`);
      }
      const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...units], { cwd: dir, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stdout + r.stderr);
      assert.equal(r.stderr.trim(), '', 'no warnings');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
