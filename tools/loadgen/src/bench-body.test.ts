import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeTextFrame } from '@push/protocol';
import { benchBody, readBenchBody, readTextFrames, type DeliverySink } from './bench-body.js';

class Sink implements DeliverySink {
  got: Array<[number, number, number]> = [];
  bad = 0;
  deliver(seq: number, dueUs: number, sentUs: number): void {
    this.got.push([seq, dueUs, sentUs]);
  }
  malformed(): void {
    this.bad++;
  }
}

const MID1 = '17646900000000000000000041';
const MID2 = '17646900000000000000000042';

describe('bench message bodies', () => {
  it('are valid single-line JSON of the requested size', () => {
    const body = benchBody(1764690000123456, 1764690000150001, [[17, 5], [230, 9]], 300);
    assert.equal(body.length, 300);
    assert.ok(!body.includes('\n'));
    const parsed = JSON.parse(body) as { module_id: string; params: { t: number; w: number; q: string } };
    assert.equal(parsed.module_id, 'bench');
    assert.equal(parsed.params.t, 1764690000123456);
    assert.equal(parsed.params.w, 26545, 'the wait before the send, in microseconds');
    assert.equal(parsed.params.q, '17:5,230:9');
  });

  it('a receiver reads its own channel entry, the due time and the send time', () => {
    const body = benchBody(1764690000123456, 1764690000150001, [[17, 5], [230, 9], [3, 1]], 200);
    for (const [chan, seq] of [[17, 5], [230, 9], [3, 1]] as const) {
      const s = new Sink();
      readBenchBody(body, 0, body.length, chan, s);
      assert.deepEqual(s.got, [[seq, 1764690000123456, 1764690000150001]]);
      assert.equal(s.bad, 0);
    }
  });

  it('an entry for another channel only, or damaged text, counts as malformed', () => {
    const body = benchBody(1, 2, [[17, 5]], 120);
    const cases: Array<[string, number]> = [
      [body, 4], // channel 4 is not in the list
      [body, 1],
      ['{"module_id":"x"}', 17],
      [body.replace('"q":"', '"r":"'), 17],
      [body.replace('"w":', '"u":'), 17],
      [body.replace('"w":1,', ''), 17],
    ];
    for (const [text, chan] of cases) {
      const s = new Sink();
      readBenchBody(text, 0, text.length, chan, s);
      assert.deepEqual(s.got, [], `${text} for ${chan}`);
      assert.equal(s.bad, 1);
    }
  });

  it('reads every message of a concatenated Bitrix text frame and returns the last mid', () => {
    const b1 = benchBody(100, 101, [[7, 1]], 150);
    const b2 = benchBody(200, 230, [[1, 4], [7, 2]], 150);
    const frame = encodeTextFrame({ mid: MID1, createdMs: 1764690000123, body: b1 }) + encodeTextFrame({ mid: MID2, createdMs: 1764690000124, body: b2 });
    const s = new Sink();
    assert.equal(readTextFrames(frame, 7, s), MID2);
    assert.deepEqual(s.got, [
      [1, 100, 101],
      [2, 200, 230],
    ]);
    assert.equal(s.bad, 0);
  });

  it('a truncated frame is reported, and no frame returns no mid', () => {
    const frame = encodeTextFrame({ mid: MID1, createdMs: 1, body: benchBody(1, 1, [[0, 1]], 100) });
    const s = new Sink();
    readTextFrames(frame.slice(0, -5), 0, s);
    assert.equal(s.bad, 1);
    assert.equal(readTextFrames('nothing here', 0, new Sink()), null);
  });
});
