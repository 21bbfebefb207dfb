import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BUCKETS, Histogram, bucketOf, bucketValue } from './histogram.js';

describe('latency histogram', () => {
  it('is exact below 128 us and within 1.6 % above', () => {
    for (const v of [0, 1, 5, 127]) assert.equal(bucketValue(bucketOf(v)), v);
    for (const v of [128, 200, 1_000, 12_345, 999_999, 40_000_000]) {
      const mid = bucketValue(bucketOf(v));
      assert.ok(Math.abs(mid - v) / v <= 0.016, `${v} -> ${mid}`);
    }
  });

  it('buckets are monotonic and the largest values stay in range', () => {
    let prev = -1;
    for (let v = 0; v < 5_000_000; v = Math.floor(v * 1.01) + 1) {
      const b = bucketOf(v);
      assert.ok(b >= prev, `bucket of ${v} went down`);
      prev = b;
    }
    assert.equal(bucketOf(-5), 0);
    assert.ok(bucketOf(2 ** 40) < BUCKETS);
  });

  it('quantiles, merge and the sparse IPC form', () => {
    const a = new Histogram();
    const b = new Histogram();
    for (let i = 1; i <= 900; i++) a.record(1000); // 1 ms
    for (let i = 1; i <= 100; i++) b.record(50_000); // 50 ms
    a.add(b.toJSON());
    assert.equal(a.count, 1000);
    assert.ok(Math.abs(a.quantile(0.5) - 1000) <= 16);
    assert.ok(Math.abs(a.quantile(0.95) - 50_000) <= 800);
    assert.equal(a.quantile(1), 50_000);
    const s = a.summaryMs();
    assert.equal(s.count, 1000);
    assert.equal(s.max, 50);
    a.reset();
    assert.equal(a.quantile(0.5), 0);
  });
});
