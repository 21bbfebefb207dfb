import { it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadUws, UWS_DISTRIBUTIONS, type UwsDistribution } from './uws.js';

const file = (abi: string): string => `uws_${process.platform}_${process.arch}_${abi}.node`;

it('loads a native uWebSockets.js binding on this machine and names the distribution it came from', (t) => {
  const loaded = loadUws(false);
  t.diagnostic(`Node ${process.versions.node}: ${loaded.detail}`);
  assert.equal(loaded.binding, 'native');
  const from = UWS_DISTRIBUTIONS.find((d) => loaded.detail === `${file(process.versions.modules)} from ${d.label}`);
  assert.ok(from !== undefined, loaded.detail);
  assert.equal(loadUws(false, '').detail, loaded.detail, "'' means this Node's ABI");
  assert.equal(typeof loaded.uws.App, 'function');
  // Every distribution preferred to the one that loaded is listed with its reason.
  assert.equal(loaded.skipped.length, UWS_DISTRIBUTIONS.indexOf(from));
  for (const [i, why] of loaded.skipped.entries()) assert.ok(why.startsWith(`${UWS_DISTRIBUTIONS[i]?.label}: `), why);
});

it('takes the first distribution whose binding loads, skipping one that is missing or broken with its reason', () => {
  const loadsAlone = (d: UwsDistribution): boolean => {
    try {
      return loadUws(false, '', { distributions: [d] }).binding === 'native';
    } catch {
      return false;
    }
  };
  const real = UWS_DISTRIBUTIONS.find(loadsAlone) as UwsDistribution;
  const missing: UwsDistribution = { label: 'missing 1.0', directory: () => join(real.directory(), 'no-such-dir') };
  const unresolvable: UwsDistribution = {
    label: 'not installed 2.0',
    directory: () => {
      throw new Error("Cannot find module 'not-installed'\nRequire stack: ...");
    },
  };
  const loaded = loadUws(false, '', { distributions: [missing, unresolvable, real] });
  assert.equal(loaded.binding, 'native');
  assert.equal(loaded.detail, `${file(process.versions.modules)} from ${real.label}`);
  assert.equal(loaded.skipped.length, 2);
  assert.match(loaded.skipped[0] ?? '', /^missing 1\.0: Cannot find module .*no-such-dir/);
  assert.equal(loaded.skipped[1], "not installed 2.0: Cannot find module 'not-installed'", 'first line of the error only');
});

it('refuses the pure-JS fallback with a clear error naming every distribution tried, unless allowed', () => {
  assert.throws(() => loadUws(false, '1'), /native binding uws_.*_1\.node did not load.*PUSH_ALLOW_UWS_FALLBACK=true/s);
  assert.throws(() => loadUws(false, '1'), (err: Error) => UWS_DISTRIBUTIONS.every((d) => err.message.includes(`${d.label}: `)));
  assert.throws(() => loadUws(false, '1', { distributions: [] }), /native binding uws_.*_1\.node did not load/, 'no distribution at all');
  const fallback = loadUws(true, '1');
  assert.equal(fallback.binding, 'fallback');
  assert.match(fallback.detail, /^uws_.*_1\.node did not load \(/, 'names the binding that failed');
  assert.equal(typeof fallback.uws.App, 'function');
});
