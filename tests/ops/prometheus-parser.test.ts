import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parsePrometheus, sampleSum } from './stack-helpers.js';

/** The strict checker the stack test applies to /metrics must itself reject what is malformed. */
describe('strict Prometheus text checker', () => {
  const good = [
    '# HELP push_connections Open connections.',
    '# TYPE push_connections gauge',
    'push_connections{transport="ws",app="listener"} 3',
    'push_connections{transport="lp",app="listener"} 2',
    '# HELP lag Lag.',
    '# TYPE lag histogram',
    'lag_bucket{le="0.5"} 1',
    'lag_bucket{le="+Inf"} 2',
    'lag_sum 0.7',
    'lag_count 2',
    '# TYPE mean gauge',
    'mean Nan',
    '',
  ].join('\n');

  it('accepts well-formed text and reads the samples', () => {
    const m = parsePrometheus(good);
    assert.equal(sampleSum(m, 'push_connections'), 5);
    assert.equal(sampleSum(m, 'push_connections', { transport: 'lp' }), 2);
    assert.equal(m.get('lag')?.samples.length, 4);
    assert.ok(Number.isNaN(m.get('mean')?.samples[0]?.value));
  });

  const bad: Array<[string, string, RegExp]> = [
    ['sample without TYPE', 'x_total 1\n', /has no TYPE/],
    ['unquoted label value', '# TYPE x gauge\nx{a=b} 1\n', /malformed sample/],
    ['value not a number', '# TYPE x gauge\nx one\n', /malformed sample|bad value/],
    ['_bucket on a counter', '# TYPE x counter\nx_bucket{le="1"} 1\n', /suffixed sample/],
    ['unknown TYPE', '# TYPE x thing\n', /malformed comment/],
    ['TYPE declared twice', '# TYPE x gauge\n# TYPE x gauge\n', /second TYPE/],
    ['no final newline', '# TYPE x gauge\nx 1', /newline/],
  ];
  for (const [name, text, err] of bad) {
    it(`rejects: ${name}`, () => assert.throws(() => parsePrometheus(text), err));
  }
});
