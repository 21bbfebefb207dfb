import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeTextFrames, FRAME_START } from '@push/protocol';
import { readTextFrames, type DeliverySink } from './bench-body.js';
import {
  commandBreakdown,
  deliveriesBetween,
  deliveriesPerMessage,
  floorPerDelivery,
  floorTable,
  formatCommandStats,
  frameTemplate,
  FRAME_FIELDS,
  messagesDue,
  MINIMAL_NO_EXPIRE_SCRIPT,
  MINIMAL_SCRIPT,
  medianBy,
  parseCommandStats,
  parseInfoCpu,
  pickDistinct,
  publishScriptArgs,
  seededRandom,
  usPerUnit,
  writeDigits,
  type FloorRow,
} from './floors.js';

describe('writeDigits', () => {
  const cases: Array<{ name: string; width: number; value: number; want: string | RegExp }> = [
    { name: 'pads with leading zeros', width: 8, value: 42, want: '00000042' },
    { name: 'zero', width: 3, value: 0, want: '000' },
    { name: 'exactly the width', width: 4, value: 9999, want: '9999' },
    { name: 'a 16-digit microsecond time', width: 16, value: 1765152000123456, want: '1765152000123456' },
    { name: 'too large for the width', width: 4, value: 10000, want: /does not fit in 4 digits/ },
    { name: 'negative', width: 4, value: -1, want: /does not fit/ },
    { name: 'not a whole number', width: 4, value: 1.5, want: /does not fit/ },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const buf = Buffer.from(`[${'#'.repeat(c.width)}]`, 'latin1');
      if (c.want instanceof RegExp) {
        assert.throws(() => writeDigits(buf, 1, c.width, c.value), c.want);
        assert.equal(buf.toString('latin1'), `[${'#'.repeat(c.width)}]`, 'nothing written on refusal');
      } else {
        writeDigits(buf, 1, c.width, c.value);
        assert.equal(buf.toString('latin1'), `[${c.want}]`, 'only the field is written');
      }
    });
  }
});

class Sink implements DeliverySink {
  readonly got: Array<[number, number, number]> = [];
  bad = 0;
  deliver(seq: number, dueUs: number, sentUs: number): void {
    this.got.push([seq, dueUs, sentUs]);
  }
  malformed(): void {
    this.bad++;
  }
}

describe('frameTemplate: the bare listener frame the load generator reads like ours', () => {
  const cases = [
    { name: 'channel 0, first message', chan: 0, seq: 1, due: 1765152000000000 },
    { name: 'a later message on a high channel', chan: 4999, seq: 123456, due: 1765152012345678 },
    { name: 'field maxima', chan: 10 ** FRAME_FIELDS.chan - 1, seq: 10 ** FRAME_FIELDS.seq - 1, due: Number.MAX_SAFE_INTEGER },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const f = frameTemplate(200);
      writeDigits(f.buf, f.dueAt, FRAME_FIELDS.due, c.due);
      writeDigits(f.buf, f.chanAt, FRAME_FIELDS.chan, c.chan);
      writeDigits(f.buf, f.seqAt, FRAME_FIELDS.seq, c.seq);
      const text = f.buf.toString('latin1');
      const mine = new Sink();
      assert.equal(readTextFrames(text, c.chan, mine), `1765000000${'1'.padStart(16, '0')}`, 'the mid is read as the resume cursor');
      assert.deepEqual(mine.got, [[c.seq, c.due, c.due]], 'sequence and due time (no wait in a queue) for the frame channel');
      assert.equal(mine.bad, 0);
      const other = new Sink();
      readTextFrames(text, c.chan + 1, other);
      assert.deepEqual([other.got, other.bad], [[], 1], 'another channel finds no entry: unreadable, not a delivery');
      // A well-formed Bitrix text frame, as the protocol package decodes it.
      const [frame] = decodeTextFrames(text);
      assert.equal((frame?.text as { params: { q: string } }).params.q, `${String(c.chan).padStart(FRAME_FIELDS.chan, '0')}:${String(c.seq).padStart(FRAME_FIELDS.seq, '0')}`);
    });
  }
  const sizes = [
    { bodyBytes: 200, min: 300, max: 360 },
    { bodyBytes: 100, min: 190, max: 260 },
  ];
  for (const s of sizes) {
    it(`a ${s.bodyBytes}-byte body gives one frame of ${s.min}-${s.max} bytes`, () => {
      const f = frameTemplate(s.bodyBytes);
      assert.ok(f.buf.length >= s.min && f.buf.length <= s.max, `${f.buf.length} bytes`);
      assert.equal(f.buf.toString('latin1').indexOf(FRAME_START), 0);
      assert.equal(f.buf.toString('latin1').lastIndexOf(FRAME_START), 0, 'exactly one frame');
    });
  }
});

describe('seededRandom and pickDistinct: every server process draws the same channels', () => {
  it('one seed gives one sequence, another seed another', () => {
    const a = seededRandom(7);
    const b = seededRandom(7);
    const c = seededRandom(8);
    const xs = Array.from({ length: 100 }, () => a());
    assert.deepEqual(Array.from({ length: 100 }, () => b()), xs);
    assert.notDeepEqual(Array.from({ length: 100 }, () => c()), xs);
    assert.ok(xs.every((x) => x >= 0 && x < 1));
  });
  const cases = [
    { name: '10 of 5,000', channels: 5000, count: 10 },
    { name: 'all of them (a permutation)', channels: 10, count: 10 },
    { name: 'one of one', channels: 1, count: 1 },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const random = seededRandom(1);
      for (let round = 0; round < 50; round++) {
        const got = pickDistinct(random, c.channels, c.count);
        assert.equal(got.length, c.count);
        assert.equal(new Set(got).size, c.count, 'distinct');
        assert.ok(got.every((x) => Number.isInteger(x) && x >= 0 && x < c.channels), 'in range');
      }
    });
  }
  it('reuses the array it is given', () => {
    const out = [99, 98, 97];
    assert.equal(pickDistinct(seededRandom(3), 100, 2, out), out);
    assert.equal(out.length, 2);
  });
  it('more than there are is refused', () => {
    assert.throws(() => pickDistinct(seededRandom(1), 5, 6), /cannot pick 6 distinct channels of 5/);
  });
});

describe('messagesDue', () => {
  const cases = [
    { name: 'the first at once', rate: 100, elapsedMs: 0, total: 500, want: 1 },
    { name: 'one more every 1/rate s', rate: 100, elapsedMs: 10, total: 500, want: 2 },
    { name: 'just before the next', rate: 100, elapsedMs: 19.9, total: 500, want: 2 },
    { name: 'a fractional rate', rate: 2666.67, elapsedMs: 1000, total: 100000, want: 2667 },
    { name: 'never more than the total', rate: 100, elapsedMs: 60_000, total: 500, want: 500 },
    { name: 'no rate, nothing due', rate: 0, elapsedMs: 1000, total: 500, want: 0 },
  ];
  for (const c of cases) it(c.name, () => assert.equal(messagesDue(c.rate, c.elapsedMs, c.total), c.want));
});

describe('deliveries per message and between sequence snapshots', () => {
  const perMessage = [
    { name: 'the private shape: one or two devices alternating, 10 channels', devices: [2, 1, 2, 1], fanout: 10, want: 15 },
    { name: 'one device each', devices: [1, 1, 1], fanout: 5, want: 5 },
    { name: 'no channels', devices: [], fanout: 10, want: 0 },
  ];
  for (const c of perMessage) it(c.name, () => assert.equal(deliveriesPerMessage(c.devices, c.fanout), c.want));
  const between = [
    { name: 'sequence growth times devices', before: [0, 0, 0], after: [3, 2, 0], devices: [2, 1, 5], want: 8 },
    { name: 'from a later snapshot', before: [3, 2, 0], after: [4, 2, 1], devices: [2, 1, 5], want: 7 },
    { name: 'nothing sent', before: [1, 1], after: [1, 1], devices: [2, 2], want: 0 },
  ];
  for (const c of between) it(c.name, () => assert.equal(deliveriesBetween(c.before, c.after, c.devices), c.want));
});

describe('medianBy', () => {
  const cases = [
    { name: 'odd count: the middle one', xs: [9, 1, 5], want: 5 },
    { name: 'even count: the lower middle one', xs: [4, 1, 3, 2], want: 2 },
    { name: 'one', xs: [7], want: 7 },
    { name: 'none', xs: [], want: undefined },
  ];
  for (const c of cases) it(c.name, () => assert.equal(medianBy(c.xs.map((v) => ({ v })), (x) => x.v)?.v, c.want));
  it('does not reorder what it is given', () => {
    const xs = [3, 1, 2];
    medianBy(xs, (x) => x);
    assert.deepEqual(xs, [3, 1, 2]);
  });
});

describe('floorPerDelivery', () => {
  const cases = [
    {
      name: 'the private shape: one request and 10 appends per 15 deliveries',
      f: { listenerUs: 10, publisherUsPerRequest: 45, redisUsPerAppend: 7.5, fanout: 10, deliveriesPerMessage: 15 },
      want: { totalUs: 18, listenerUs: 10, publisherUs: 3, redisUs: 5 },
    },
    {
      name: 'one device per channel',
      f: { listenerUs: 12, publisherUsPerRequest: 40, redisUsPerAppend: 8, fanout: 10, deliveriesPerMessage: 10 },
      want: { totalUs: 24, listenerUs: 12, publisherUs: 4, redisUs: 8 },
    },
    { name: 'a part not measured', f: { listenerUs: 10, publisherUsPerRequest: null, redisUsPerAppend: 7.5, fanout: 10, deliveriesPerMessage: 15 }, want: null },
    { name: 'no deliveries per message', f: { listenerUs: 10, publisherUsPerRequest: 45, redisUsPerAppend: 7.5, fanout: 10, deliveriesPerMessage: 0 }, want: null },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(floorPerDelivery(c.f), c.want));
});

describe('usPerUnit', () => {
  const cases = [
    { name: 'half a core for 10 s over 200,000 deliveries', cpu: 0.5, seconds: 10, units: 200_000, want: 25 },
    { name: 'rounded to two decimals', cpu: 1, seconds: 1, units: 3, want: 333333.33 },
    { name: 'no units', cpu: 1, seconds: 1, units: 0, want: null },
    { name: 'no window', cpu: 1, seconds: 0, units: 10, want: null },
  ];
  for (const c of cases) it(c.name, () => assert.equal(usPerUnit(c.cpu, c.seconds, c.units), c.want));
});

describe('publishScriptArgs: the layout PUBLISH_SCRIPT documents', () => {
  const cases = [
    {
      name: 'one unsigned request of one message',
      requests: [['a', 'b']],
      known: null,
      want: [2, 'push:id:start', 'push:id:counter', 'push:', 100, 5000, 60, 1, '', '', '', '', '', 1, 0, 3600, 'T', 2, 'a', 'b'],
    },
    {
      name: 'two requests in one call (group commit)',
      requests: [['a'], ['b', 'c']],
      known: null,
      want: [2, 'push:id:start', 'push:id:counter', 'push:', 100, 5000, 60, 2, '', '', '', '', '', 1, 0, 3600, 'T', 1, 'a', '', '', '', '', '', 1, 0, 3600, 'T', 2, 'b', 'c'],
    },
    {
      name: 'creation times known, a channel named twice listed once',
      requests: [['a', 'b', 'a']],
      known: 7,
      want: [2, 'push:id:start', 'push:id:counter', 'push:', 100, 5000, 60, 1, '', '', '', '', '', 1, 2, 'a', 7, 'b', 7, 3600, 'T', 3, 'a', 'b', 'a'],
    },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(publishScriptArgs('push:', { cap: 100, writeWindowMs: 5000, retentionS: 60, ttlS: 3600, tail: 'T', knownCreatedMs: c.known, requests: c.requests }), c.want));
});

describe('the minimal scripts', () => {
  it('(c) is (b) without the list lifetime and nothing else', () => {
    assert.notEqual(MINIMAL_NO_EXPIRE_SCRIPT, MINIMAL_SCRIPT);
    assert.ok(MINIMAL_SCRIPT.includes("'EXPIRE'"));
    assert.ok(!MINIMAL_NO_EXPIRE_SCRIPT.includes('EXPIRE'));
    for (const cmd of ["'INCR'", "'SET'", "'RPUSH'", "'PUBLISH'"]) assert.ok(MINIMAL_NO_EXPIRE_SCRIPT.includes(cmd), cmd);
  });
});

const STATS = [
  '# Commandstats',
  'cmdstat_evalsha:calls=100,usec=11000,usec_per_call=110.00,rejected_calls=0,failed_calls=0',
  'cmdstat_rpush:calls=1000,usec=2000,usec_per_call=2.00,rejected_calls=0,failed_calls=0',
  'cmdstat_publish:calls=1000,usec=1000,usec_per_call=1.00,rejected_calls=0,failed_calls=0',
  'cmdstat_incr:calls=100,usec=5,usec_per_call=0.05,rejected_calls=0,failed_calls=0',
  '',
].join('\r\n');

describe('INFO parsing', () => {
  const stats = [
    {
      name: 'every command line, most time first',
      info: STATS,
      want: [
        { command: 'evalsha', calls: 100, usec: 11000 },
        { command: 'rpush', calls: 1000, usec: 2000 },
        { command: 'publish', calls: 1000, usec: 1000 },
        { command: 'incr', calls: 100, usec: 5 },
      ],
    },
    { name: 'a command with a sub-command name', info: 'cmdstat_config|resetstat:calls=1,usec=9,usec_per_call=9.00', want: [{ command: 'config|resetstat', calls: 1, usec: 9 }] },
    { name: 'nothing run yet', info: '# Commandstats\r\n', want: [] },
  ];
  for (const c of stats) it(c.name, () => assert.deepEqual(parseCommandStats(c.info), c.want));
  const cpu = [
    { name: 'system plus user', info: '# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\nused_cpu_sys_children:9.0\r\n', want: 3.75 },
    { name: 'missing field', info: '# CPU\r\nused_cpu_sys:1.5\r\n', want: /no used_cpu_user/ },
  ];
  for (const c of cpu) {
    it(`cpu: ${c.name}`, () => {
      if (c.want instanceof RegExp) assert.throws(() => parseInfoCpu(c.info), c.want);
      else assert.equal(parseInfoCpu(c.info), c.want);
    });
  }
});

describe('commandBreakdown and its line', () => {
  it('the script time includes its commands; the rest is Lua and the call', () => {
    // 1,000 appends: script 11 us each, of which rpush 2 + publish 1 + incr 0.01.
    assert.deepEqual(commandBreakdown(parseCommandStats(STATS), 1000), {
      scriptUs: 11,
      commands: [
        { command: 'rpush', calls: 1, us: 2 },
        { command: 'publish', calls: 1, us: 1 },
        { command: 'incr', calls: 0.1, us: 0.01 },
      ],
      insideUs: 3.01,
      luaUs: 7.99,
    });
  });
  const lines = [
    { name: 'with the process CPU: the time outside commands', cpuUs: 14, want: 'script 11.00 us = commands 3.01 (rpush 1.00x 2.00, publish 1.00x 1.00, incr 0.10x 0.01) + Lua and call 7.99; outside commands (requests, replies, pub/sub writes, event loop) 3.00' },
    { name: 'without it', cpuUs: null, want: 'script 11.00 us = commands 3.01 (rpush 1.00x 2.00, publish 1.00x 1.00, incr 0.10x 0.01) + Lua and call 7.99' },
  ];
  for (const c of lines) it(c.name, () => assert.equal(formatCommandStats(parseCommandStats(STATS), 1000, c.cpuUs), c.want));
  it('no units or no stats: n/a', () => {
    assert.equal(formatCommandStats(parseCommandStats(STATS), 0, 1), 'n/a');
    assert.equal(formatCommandStats([], 10, 1), 'n/a');
  });
});

describe('floorTable', () => {
  const cases: Array<{ name: string; rows: FloorRow[]; want: string[] }> = [
    {
      name: 'aligns the columns, numbers to the right, n/a for what was not measured, no ours column without our figures',
      rows: [
        { hop: 'listener', measure: 'bare uWS', us: 9.5, unit: 'delivery', ours: null, note: '40,000/s' },
        { hop: 'Redis', measure: 'a. publish script', us: null, unit: 'append', ours: null, note: '' },
        { hop: 'publisher', measure: 'bare HTTP', us: 123.456, unit: 'request', ours: null, note: '2,667 req/s' },
      ],
      want: [
        'hop        floor                  us  per       at',
        '---------  -----------------  ------  --------  -----------',
        'listener   bare uWS             9.50  delivery  40,000/s',
        'Redis      a. publish script     n/a  append',
        'publisher  bare HTTP          123.46  request   2,667 req/s',
      ],
    },
    {
      name: 'our figure beside the floor where there is one',
      rows: [
        { hop: 'listener', measure: 'bare uWS', us: 9.5, unit: 'delivery', ours: 14.25, note: '40,000/s' },
        { hop: 'Redis', measure: 'b. minimal', us: 7, unit: 'append', ours: null, note: '' },
      ],
      want: [
        'hop       floor         us  ours us  per       at',
        '--------  ----------  ----  -------  --------  --------',
        'listener  bare uWS    9.50    14.25  delivery  40,000/s',
        'Redis     b. minimal  7.00      n/a  append',
      ],
    },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(floorTable(c.rows), c.want));
});
