import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createCreationCache } from '../src/creation-cache.js';

const H = 3600_000;

describe('channel creation cache', () => {
  const cases: Array<{ name: string; created: number; now: number; want: number | undefined }> = [
    { name: 'just created', created: 0, now: 1, want: 0 },
    { name: 'past the write window, key still alive: remembered (the script refuses it)', created: 0, now: 13 * H, want: 0 },
    { name: 'one ms before the margin', created: 0, now: 48 * H - 60_000 - 1, want: 0 },
    { name: 'inside the margin before the key expires: forgotten', created: 0, now: 48 * H - 60_000, want: undefined },
    { name: 'after the key expired: forgotten', created: 0, now: 49 * H, want: undefined },
  ];
  for (const c of cases)
    it(c.name, () => {
      const cache = createCreationCache({ max: 10, retentionMs: 48 * H, marginMs: 60_000 });
      cache.set('a', c.created);
      assert.equal(cache.get('a', c.now), c.want);
    });

  it('a forgotten entry stays forgotten', () => {
    const cache = createCreationCache({ max: 10, retentionMs: 48 * H, marginMs: 60_000 });
    cache.set('a', 0);
    assert.equal(cache.get('a', 49 * H), undefined);
    assert.equal(cache.get('a', 1), undefined);
    assert.equal(cache.size, 0);
  });

  it('keeps the first value written (creation times never change)', () => {
    const cache = createCreationCache({ max: 10, retentionMs: 48 * H, marginMs: 0 });
    cache.set('a', 5);
    cache.set('a', 9);
    assert.equal(cache.get('a', 10), 5);
  });

  it('is bounded: the older generation goes when the younger fills; what was read moves to the younger', () => {
    const cache = createCreationCache({ max: 4, retentionMs: 48 * H, marginMs: 0 });
    cache.set('a', 1);
    cache.set('b', 2); // young {a, b} is full
    cache.set('c', 3); // old {a, b}, young {c}
    assert.equal(cache.get('a', 10), 1); // carried into young {c, a}
    cache.set('d', 4); // old {c, a}, young {d}: b dropped
    assert.equal(cache.get('b', 10), undefined);
    assert.equal(cache.get('a', 10), 1);
    assert.equal(cache.get('c', 10), 3);
    assert.ok(cache.size <= 4, `size ${cache.size}`);
    for (let i = 0; i < 100; i++) cache.set(`x${i}`, i);
    assert.ok(cache.size <= 4, `size ${cache.size} after many`);
  });
});
