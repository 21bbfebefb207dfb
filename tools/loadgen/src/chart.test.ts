import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { logTicks, niceTicks, segments, shortNumber, timelinePng, timelineSvg } from './chart.js';
import type { Fleet } from './fleet.js';
import { Histogram } from './histogram.js';
import { Timeline, pointOf, type TimelinePoint } from './timeline.js';

const pt = (t: number, step: string, rate: number, p50: number, p99: number): TimelinePoint => ({ t, step, deliveriesPerSec: rate, p50Ms: p50, p99Ms: p99 });

describe('chart axes', () => {
  const nice: Array<[number, number, number[]]> = [
    [0, 5, [0, 1]],
    [7, 5, [0, 2, 4, 6, 8]],
    [10, 5, [0, 2, 4, 6, 8, 10]],
    [150_000, 5, [0, 50_000, 100_000, 150_000]],
    [123_456, 5, [0, 50_000, 100_000, 150_000]],
    [46.3, 8, [0, 10, 20, 30, 40, 50]],
    [0.7, 5, [0, 0.2, 0.4, 0.6, 0.8]],
  ];
  for (const [max, count, want] of nice) it(`niceTicks(${max}, ${count})`, () => assert.deepEqual(niceTicks(max, count), want));

  const logs: Array<[number, number, number[]]> = [
    [0.5, 1500, [0.1, 1, 10, 100, 1000, 10_000]],
    [1, 10, [1, 10]],
    [3, 3, [1, 10]],
    [0, 0, [0.001, 0.01]],
  ];
  for (const [min, max, want] of logs) it(`logTicks(${min}, ${max})`, () => assert.deepEqual(logTicks(min, max), want));

  const short: Array<[number, string]> = [
    [0, '0'],
    [0.5, '0.5'],
    [12, '12'],
    [1500, '1.5k'],
    [80_000, '80k'],
    [1_250_000, '1.3M'],
  ];
  for (const [v, want] of short) it(`shortNumber(${v})`, () => assert.equal(shortNumber(v), want));
});

describe('timeline chart', () => {
  const points = [pt(0.5, 'a', 100, 2, 5), pt(1, 'a', 200, 3, 8), pt(3, 'b', 50_000, 40, 900), pt(3.5, 'b', 0, 0, 0), pt(4, 'a', 10, 1, 1)];

  it('splits points into runs of one step, a step seen again starting a new run', () => {
    assert.deepEqual(
      segments(points).map((s) => s.map((p) => p.t)),
      [[0.5, 1], [3, 3.5], [4]],
    );
  });

  it('draws one rate line per run and skips latency where nothing arrived', () => {
    const svg = timelineSvg('private <x> & "y"\nsecond line', points);
    const polylines = [...svg.matchAll(/<polyline [^>]*stroke="(#[0-9a-f]+)"[^>]*points="([^"]*)"/g)].map((m) => [m[1], (m[2] as string).split(' ').length]);
    assert.deepEqual(polylines, [
      ['#2ca02c', 2], ['#1f77b4', 2], ['#d62728', 2],
      ['#2ca02c', 2], ['#1f77b4', 1], ['#d62728', 1],
      ['#2ca02c', 1], ['#1f77b4', 1], ['#d62728', 1],
    ]);
    assert.match(svg, /private &lt;x&gt; &amp; &quot;y&quot;/);
    assert.match(svg, />second line</);
    assert.equal(svg.match(/stroke-dasharray/g)?.length, 3, 'one boundary per run');
  });

  it('keeps every point inside its panel', () => {
    const svg = timelineSvg('t', points);
    for (const m of svg.matchAll(/points="([^"]*)"/g)) {
      for (const xy of (m[1] as string).split(' ')) {
        const [x, y] = xy.split(',').map(Number) as [number, number];
        assert.ok(x >= 80 && x <= 936, `x ${x}`);
        assert.ok((y >= 70 && y <= 300) || (y >= 350 && y <= 550), `y ${y}`);
      }
    }
  });

  it('renders a PNG of the chart size', () => {
    const png = timelinePng('t', points);
    assert.deepEqual([...png.subarray(1, 4)].map((c) => String.fromCharCode(c)).join(''), 'PNG');
    assert.equal(png.readUInt32BE(16), 960);
    assert.equal(png.readUInt32BE(20), 600);
  });
});

describe('timeline sampling', () => {
  it('turns cumulative counts and an interval histogram into a point', () => {
    const h = new Histogram();
    for (let i = 1; i <= 100; i++) h.record(i * 1000);
    const p = pointOf(2.345, 's', 1000, 4000, 0.5, h);
    assert.equal(p.deliveriesPerSec, 6000);
    assert.equal(p.t, 2.35);
    assert.ok(Math.abs(p.p50Ms - 50) <= 1, `p50 ${p.p50Ms}`);
    assert.ok(Math.abs(p.p99Ms - 99) <= 2, `p99 ${p.p99Ms}`);
    assert.deepEqual([pointOf(1, 's', 5, 5, 0, new Histogram()).deliveriesPerSec, pointOf(1, 's', 5, 5, 1, new Histogram()).p99Ms], [0, 0]);
  });

  it('samples the fleet until stopped, under the step label', async () => {
    let received = 0;
    const fleet = {
      slice: async () => {
        received += 100;
        const latency = new Histogram();
        latency.record(5000);
        return { received, latency };
      },
    } as unknown as Fleet;
    const tl = new Timeline(20);
    const stop = tl.sample(fleet, '7 msg/s');
    await new Promise((r) => setTimeout(r, 110));
    await stop();
    const n = tl.points.length;
    assert.ok(n >= 2, `${n} points`);
    assert.ok(tl.points.every((p) => p.step === '7 msg/s' && p.deliveriesPerSec > 0 && p.p50Ms === 5));
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(tl.points.length, n, 'no sampling after stop');
  });
});
