import { it } from 'node:test';
import assert from 'node:assert/strict';
import { loadUws } from './uws.js';

it('loads the native uWebSockets.js binding on this machine', () => {
  const loaded = loadUws(false);
  assert.equal(loaded.binding, 'native');
  assert.equal(loaded.detail, `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);
  assert.equal(loadUws(false, '').detail, loaded.detail, "'' means this Node's ABI");
  assert.equal(typeof loaded.uws.App, 'function');
});

it('refuses the pure-JS fallback with a clear error unless allowed', () => {
  assert.throws(() => loadUws(false, '1'), /native binding uws_.*_1\.node did not load.*PUSH_ALLOW_UWS_FALLBACK=true/s);
  const fallback = loadUws(true, '1');
  assert.equal(fallback.binding, 'fallback');
  assert.match(fallback.detail, /^uws_.*_1\.node did not load \(/, 'names the binding that failed');
  assert.equal(typeof fallback.uws.App, 'function');
});
