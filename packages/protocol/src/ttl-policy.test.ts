import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_TTL_TABLE, effectiveTtl, parseTtlTable, typeMaxTtl } from './ttl-policy.js';

describe('TTL policy', () => {
  const p = parseTtlTable(DEFAULT_TTL_TABLE);
  const cases: Array<[string, number]> = [
    ['im_startWriting', 120],
    ['im_chatUserStartWriting', 120],
    ['online_list', 240],
    ['ONLINE_userStatus', 240],
    ['im_message', 86400],
    ['unknown', 86400],
  ];
  for (const [type, want] of cases) it(`${type} -> ${want}`, () => assert.equal(typeMaxTtl(p, type), want));
  it('effective = min(requested, type max); 0 = live only; absent = type max', () => {
    assert.equal(effectiveTtl(p, 'im_startWriting', 3600), 120);
    assert.equal(effectiveTtl(p, 'im_message', 60), 60);
    assert.equal(effectiveTtl(p, 'im_message', 0), 0);
    assert.equal(effectiveTtl(p, 'im_message', null), 86400);
  });
  it('first matching rule wins', () => assert.equal(typeMaxTtl(parseTtlTable('im_*=10,im_message=99,*=50'), 'im_message'), 10));
  it('maxSeconds is the longest rule', () => assert.equal(parseTtlTable('a=5,*=7').maxSeconds, 7));
  const bad: Array<[string, RegExp]> = [
    ['a=5', /catch-all/],
    ['=5,*=1', /bad pattern/],
    ['a=x,*=1', /seconds must be/],
    ['a=0,*=1', /seconds must be/],
    ['a b=1,*=1', /bad pattern/],
  ];
  for (const [table, re] of bad) it(`rejects ${table}`, () => assert.throws(() => parseTtlTable(table), re));
  it('lists every problem at once', () => assert.throws(() => parseTtlTable('a=x,=1'), /seconds must be.*bad pattern.*catch-all/));
});
