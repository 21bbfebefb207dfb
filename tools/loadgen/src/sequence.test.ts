import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SequenceTracker } from './sequence.js';

function feed(seqs: number[]): SequenceTracker {
  const t = new SequenceTracker();
  for (const s of seqs) t.observe(s);
  return t;
}

describe('sequence tracker', () => {
  const cases: Array<{ name: string; seqs: number[]; expected: number; lost: number; duplicates: number; reordered: number; unique: number }> = [
    { name: 'in order, complete', seqs: [1, 2, 3, 4], expected: 4, lost: 0, duplicates: 0, reordered: 0, unique: 4 },
    { name: 'tail missing', seqs: [1, 2], expected: 4, lost: 2, duplicates: 0, reordered: 0, unique: 2 },
    { name: 'hole in the middle', seqs: [1, 2, 5], expected: 5, lost: 2, duplicates: 0, reordered: 0, unique: 3 },
    { name: 'late arrival fills the hole', seqs: [1, 3, 2], expected: 3, lost: 0, duplicates: 0, reordered: 1, unique: 3 },
    { name: 'duplicate of the newest', seqs: [1, 2, 2, 3], expected: 3, lost: 0, duplicates: 1, reordered: 0, unique: 3 },
    { name: 'duplicate of an older one', seqs: [1, 2, 3, 1], expected: 3, lost: 0, duplicates: 1, reordered: 0, unique: 3 },
    { name: 'reordered then repeated', seqs: [2, 1, 1], expected: 2, lost: 0, duplicates: 1, reordered: 1, unique: 2 },
    { name: 'nothing received', seqs: [], expected: 3, lost: 3, duplicates: 0, reordered: 0, unique: 0 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const t = feed(c.seqs);
      assert.equal(t.lost(c.expected), c.lost);
      assert.equal(t.duplicates, c.duplicates);
      assert.equal(t.reordered, c.reordered);
      assert.equal(t.unique, c.unique);
    });
  }
});
