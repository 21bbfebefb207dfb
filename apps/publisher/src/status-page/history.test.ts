import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StatusHistory, type HistoryPoint } from './history.js';

const point = (t: number): HistoryPoint => ({ t, publishRate: t, deliveryRate: 0, websockets: 0, pollings: 0, latencyP50: null, latencyP99: null });

describe('StatusHistory', () => {
  it('keeps the newest `capacity` points, oldest first', () => {
    const h = new StatusHistory(3);
    for (const t of [1, 2, 3, 4, 5]) h.push(point(t));
    assert.deepEqual(h.since(0).map((p) => p.t), [3, 4, 5]);
  });
  it('since(t) answers only the points after t', () => {
    const h = new StatusHistory(10);
    for (const t of [10, 20, 30]) h.push(point(t));
    assert.deepEqual(h.since(20).map((p) => p.t), [30]);
    assert.deepEqual(h.since(30), []);
    assert.deepEqual(h.since(5).map((p) => p.t), [10, 20, 30]);
  });
  it('a point not newer than the last (clock stepped back) is dropped', () => {
    const h = new StatusHistory(10);
    for (const t of [10, 20, 15, 20, 25]) h.push(point(t));
    assert.deepEqual(h.since(0).map((p) => p.t), [10, 20, 25]);
  });
});
