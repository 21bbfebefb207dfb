import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers/apps.js';

const json = (path: string): Record<string, unknown> => JSON.parse(readFileSync(join(ROOT, path), 'utf8')) as Record<string, unknown>;

/** The release metadata a package and its users rely on: one version everywhere, a license, a changelog entry. */
describe('release metadata', () => {
  const root = json('package.json');
  const version = String(root['version']);
  const workspaces = ['apps', 'packages', 'tools'].flatMap((d) =>
    readdirSync(join(ROOT, d))
      .filter((w) => existsSync(join(ROOT, d, w, 'package.json')))
      .map((w) => `${d}/${w}`),
  );

  it('the version is a release (semver, not 0.x) and every workspace and the lock file carry it', () => {
    assert.match(version, /^[1-9][0-9]*\.[0-9]+\.[0-9]+$/);
    assert.ok(workspaces.length >= 7, workspaces.join(' '));
    for (const w of workspaces) assert.equal(json(`${w}/package.json`)['version'], version, w);
    const lock = json('package-lock.json') as { version: string; packages: Record<string, { version?: string }> };
    assert.equal(lock.version, version);
    for (const w of workspaces) assert.equal(lock.packages[w]?.version, version, `package-lock.json ${w}`);
  });

  it('LICENSE is the MIT license package.json names, for the project authors', () => {
    assert.equal(root['license'], 'MIT');
    const text = readFileSync(join(ROOT, 'LICENSE'), 'utf8');
    assert.match(text, /^MIT License\n\nCopyright \(c\) \d{4} the push-server authors\n/);
    assert.match(text, /THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND/);
  });

  it('CHANGELOG.md starts with an entry for this version', () => {
    const text = readFileSync(join(ROOT, 'CHANGELOG.md'), 'utf8');
    const first = /^## \[([^\]]+)\] - (\d{4}-\d{2}-\d{2})$/m.exec(text);
    assert.ok(first, 'a "## [version] - date" heading');
    assert.equal(first[1], version);
  });
});
