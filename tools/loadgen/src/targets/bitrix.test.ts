import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { bitrixConfig, bitrixEntry } from './bitrix.js';

describe('Bitrix push server 1.0 configuration written by the bench', () => {
  const cases: Array<{ role: 'sub' | 'pub'; routes: Record<string, string>; publishMode: boolean }> = [
    { role: 'sub', routes: { sub: '/bitrix/subws/' }, publishMode: false },
    { role: 'pub', routes: { pub: '/bitrix/pub/', stat: '/server-stat/' }, publishMode: true },
  ];
  for (const c of cases) {
    it(`${c.role}: cluster mode on the private Redis, its own port and logs, no debug addresses`, () => {
      const conf = bitrixConfig({ role: c.role, port: 18010, redisPort: 16379, key: 'k', logDir: '/scratch/logs' }) as Record<string, any>;
      assert.deepEqual(conf['servers'], [{ name: `${c.role}-18010`, port: 18010, hostname: '127.0.0.1', backlog: 1024, routes: c.routes }]);
      assert.equal(conf['clusterMode'], true);
      assert.equal(conf['publishMode'] === true, c.publishMode);
      assert.equal(conf['processUniqueId'], `${c.role}-18010`);
      assert.deepEqual(conf['storage'], { type: 'redis', host: '127.0.0.1', port: 16379, messageTLL: 86400, channelTLL: 86400, onlineTLL: 120, onlineDelta: 10 });
      assert.deepEqual(conf['security'], { key: 'k' });
      assert.deepEqual(conf['debug'], { ip: [], folderName: '/scratch/logs' });
    });
  }
});

describe('--bitrix-dir', () => {
  const root = mkdtempSync(join(tmpdir(), 'bench-bitrix-dir-'));
  const make = (dir: string, deps: boolean): void => {
    mkdirSync(join(dir, deps ? 'node_modules/ws' : '.'), { recursive: true });
    writeFileSync(join(dir, 'server.js'), '');
  };
  make(join(root, 'installed'), true);
  make(join(root, 'checkout', 'opt', 'push-server'), true);
  make(join(root, 'bare'), false);
  mkdirSync(join(root, 'empty'));
  const cases: Array<{ name: string; dir: string; want: string | RegExp }> = [
    { name: 'the directory of server.js', dir: 'installed', want: join(root, 'installed', 'server.js') },
    { name: 'a checkout of the repository', dir: 'checkout', want: join(root, 'checkout', 'opt', 'push-server', 'server.js') },
    { name: 'without its dependencies installed', dir: 'bare', want: /has no node_modules \(run npm install there first; the bench never installs it\)/ },
    { name: 'no server.js', dir: 'empty', want: /no server\.js in/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      if (typeof c.want === 'string') assert.equal(bitrixEntry(join(root, c.dir)).serverJs, c.want);
      else assert.throws(() => bitrixEntry(join(root, c.dir)), c.want);
    });
  }
  it('cleans up', () => rmSync(root, { recursive: true, force: true }));
});
