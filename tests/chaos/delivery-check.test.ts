import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkDeliveries, type Delivery, type Published } from './delivery-check.js';

/** Channel `a`, seqs 1..n sent 100 ms apart from t=0, acknowledged 5 ms later unless listed. */
const stream = (n: number, unacked: number[] = []): Published[] =>
  Array.from({ length: n }, (_, i) => ({ ch: 'a', seq: i + 1, sentAt: i * 100, ackAt: unacked.includes(i + 1) ? null : i * 100 + 5 }));
/** Deliveries of channel `a` in the given order, each `delay` ms after its send unless `at` says. */
const got = (seqs: number[], delay = 10, at: Record<number, number> = {}): Delivery[] => seqs.map((seq) => ({ ch: 'a', seq, at: at[seq] ?? (seq - 1) * 100 + delay }));
const client = (deliveries: Delivery[]) => [{ name: 'c', channels: ['a'], deliveries }];

describe('checkDeliveries', () => {
  const cases: Array<{ name: string; published: Published[]; deliveries: Delivery[]; faultAt: number; expect: Record<string, unknown> }> = [
    { name: 'everything once, in order', published: stream(5), deliveries: got([1, 2, 3, 4, 5]), faultAt: 250, expect: { lost: 0, duplicated: 0, reordered: 0, detectMs: 60, recoverMs: 60 } },
    { name: 'an acknowledged message missing is lost', published: stream(5), deliveries: got([1, 2, 4, 5]), faultAt: 250, expect: { lost: 1, recoverMs: null } },
    { name: 'an unacknowledged message missing is not lost', published: stream(5, [3]), deliveries: got([1, 2, 4, 5]), faultAt: 250, expect: { lost: 0, unacked: 1, unackedDelivered: 0 } },
    { name: 'an unacknowledged message delivered is a wrong answer, not a loss', published: stream(5, [3]), deliveries: got([1, 2, 3, 4, 5]), faultAt: 250, expect: { lost: 0, unackedDelivered: 1 } },
    {
      name: 'an unacknowledged message whose outcome was unknown may be delivered',
      published: stream(5, [3]).map((p) => (p.seq === 3 ? { ...p, outcomeUnknown: true } : p)),
      deliveries: got([1, 2, 3, 4, 5]),
      faultAt: 250,
      expect: { lost: 0, unacked: 1, unknownOutcome: 1, unackedDelivered: 0 },
    },
    { name: 'a second delivery is a duplicate', published: stream(3), deliveries: got([1, 2, 2, 3]), faultAt: 0, expect: { duplicated: 1, lost: 0 } },
    { name: 'a late arrival after a newer one is out of order', published: stream(3), deliveries: got([1, 3, 2]), faultAt: 0, expect: { reordered: 1, lost: 0 } },
    { name: 'a message never published is unexpected', published: stream(2), deliveries: [...got([1, 2]), { ch: 'a', seq: 9, at: 300 }], faultAt: 0, expect: { unexpected: 1 } },
    {
      // Fault at 250: seqs 4-9 (sent 300-800) arrive together from 1300 to 1350; seq 9 is still
      // 550 ms late, seq 10 (1360) within 500 ms again: behind until 1350.
      name: 'detection is the first post-fault delivery; recovery the last late one',
      published: stream(10),
      deliveries: got([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 10, { 4: 1300, 5: 1310, 6: 1320, 7: 1330, 8: 1340, 9: 1350, 10: 1360 }),
      faultAt: 250,
      expect: { detectMs: 1050, recoverMs: 1100, lost: 0 },
    },
    { name: 'no post-fault delivery at all: detection unknown', published: stream(5), deliveries: got([1, 2]), faultAt: 250, expect: { detectMs: null, recoverMs: null, lost: 3 } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const v = checkDeliveries(c.published, client(c.deliveries), c.faultAt, 500);
      const picked = Object.fromEntries(Object.keys(c.expect).map((k) => [k, (v as unknown as Record<string, unknown>)[k]]));
      assert.deepEqual(picked, c.expect);
    });
  }

  it('counts per client, against the channels each one subscribed', () => {
    const published: Published[] = [...stream(2), { ch: 'b', seq: 1, sentAt: 0, ackAt: 3 }];
    const v = checkDeliveries(
      published,
      [
        { name: 'both', channels: ['a', 'b'], deliveries: got([1, 2]) },
        { name: 'only-a', channels: ['a'], deliveries: got([1, 2]) },
      ],
      0,
      500,
    );
    assert.deepEqual(v.clients.map((c) => [c.name, c.lost, c.lostSample]), [['both', 1, ['b#1']], ['only-a', 0, []]]);
    assert.equal(v.lost, 1);
  });

  it('counts deliveries per client and distinct messages over all clients', () => {
    const both = got([1, 2, 2, 3]);
    const v = checkDeliveries(
      stream(4),
      [
        { name: 'x', channels: ['a'], deliveries: both },
        { name: 'y', channels: ['a'], deliveries: both },
      ],
      0,
      500,
    );
    assert.deepEqual([v.lost, v.lostMessages, v.duplicated, v.duplicatedMessages], [2, 1, 2, 1]);
  });
});
