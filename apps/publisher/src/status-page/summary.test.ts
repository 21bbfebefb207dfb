import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RateMeter } from '@push/runtime';
import { summarize } from './summary.js';

describe('status page summary', () => {
  const now = 1_700_000_010_000;
  const stats = [
    { type: 'listener', pid: 11, processUniqueId: 'b', port: 8011, websockets: 5, pollings: 2, channels: 4, date: now - 1000, rates: { delivered: 10.5 }, latency: { count: 30, p50: 2, p99: 9 } },
    { type: 'publisher', pid: 20, processUniqueId: 'p', port: 9010, websockets: 0, pollings: 0, channels: 0, date: now - 500, rates: { published: 3 } },
    { type: 'listener', pid: 10, processUniqueId: 'a', port: 8010, websockets: 1, pollings: 0, channels: 1, date: now, rates: { delivered: 1 }, draining: true, latency: { count: 10, p50: 6, p99: 20 } },
  ];

  it('totals connections, channels and rates by process type; publishers first, then by port', () => {
    const s = summarize(stats, { up: true, latencyMs: 0.4 }, now);
    // Latency: p50 weighted by messages ((2*30 + 6*10) / 40 = 3), p99 of the worst listener.
    assert.deepEqual(s.totals, { publishers: 1, listeners: 2, websockets: 6, pollings: 2, channels: 5, publishRate: 3, deliveryRate: 11.5, latencyP50: 3, latencyP99: 20 });
    assert.deepEqual(s.processes.map((p) => p.latencyP99), [null, 20, 9]);
    assert.deepEqual(s.processes.map((p) => p.port), [9010, 8010, 8011]);
    assert.equal(s.processes[1]?.draining, true);
    assert.equal(s.processes[2]?.ageMs, 1000);
    assert.deepEqual(s.redis, { up: true, latencyMs: 0.4 });
    assert.equal(s.backend, 'redis');
    assert.equal(summarize(stats, { up: true, latencyMs: 0.1 }, now, 'memory').backend, 'memory');
  });

  const odd: Array<[string, Record<string, unknown>]> = [
    ['missing fields', { processUniqueId: 'x' }],
    ['negative and non-numeric counts', { type: 'listener', websockets: -3, pollings: '7', channels: Number.NaN, rates: { delivered: 'fast' } }],
    ['rates not an object', { type: 'publisher', rates: 5, date: now + 5000 }],
    ['latency with bad numbers', { type: 'listener', latency: { count: 'many', p50: -1, p99: Number.POSITIVE_INFINITY } }],
  ];
  for (const [name, snap] of odd) {
    it(`reads a malformed snapshot as zeros: ${name}`, () => {
      const s = summarize([snap], { up: false, latencyMs: null }, now);
      const p = s.processes[0];
      assert.ok(p);
      assert.equal(p.websockets + p.pollings + p.channels + p.rate + p.pid + p.port + p.latencyCount, 0);
      assert.equal(p.latencyP99, null);
      assert.equal(s.totals.latencyP50, null);
      assert.ok(p.ageMs >= 0);
    });
  }
});

describe('RateMeter', () => {
  const cases: Array<[string, Array<[number, number]>, number[]]> = [
    ['first reading has no rate', [[100, 0]], [0]],
    ['per second over the interval', [[0, 0], [50, 5000], [80, 6000]], [0, 10, 30]],
    ['a counter reset (process restart) reads 0, not negative', [[500, 0], [20, 1000]], [0, 0]],
    ['same timestamp twice reads 0', [[1, 1000], [5, 1000]], [0, 0]],
  ];
  for (const [name, readings, expected] of cases) {
    it(name, () => {
      const m = new RateMeter();
      assert.deepEqual(readings.map(([v, t]) => m.rate(v, t)), expected);
    });
  }
});
