import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BACKEND_SENDER, decodeRecord, encodeRecord, type StoredMessage } from './record.js';

describe('records', () => {
  const msg: StoredMessage = { mid: '17000000000000000000000001', createdMs: 1700000000999, expiry: 60, type: 'im_message', sender: BACKEND_SENDER, body: '{"a":"line\\nbreak\\ttab"}' };
  it('round-trips', () => assert.deepEqual(decodeRecord(encodeRecord(msg)), msg));
  it('keeps client senders', () => {
    const m = { ...msg, sender: { type: 1, id: 'c18beb389c3e49131dbb2dde597df615' } };
    assert.deepEqual(decodeRecord(encodeRecord(m)), m);
  });
  it('keeps the channels of earlier parts (Cluster multi-shard publish)', () => {
    const m = { ...msg, earlier: [{ channel: 'aa', mid: '17000000000000000000000000' }, { channel: 'pub:bb', mid: '16999999990000000000000000' }] };
    assert.deepEqual(decodeRecord(encodeRecord(m)), m);
    assert.equal(encodeRecord({ ...msg, earlier: [] }), encodeRecord(msg), 'no parts, no field');
  });
  const bad = ['17000000000000000000000001\t1\t1\tt\t2\t\t\n{}', '17000000000000000000000001\t1\t1\tt\t2\t\ta\tb\n{}', '17000000000000000000000001\t1\t1\tt\t2\t\tch\n{}', '17000000000000000000000001\t1\t1\tt\t2\t\t1700000000000000000000000=ch\n{}', '', 'no newline', 'a\tb\n{}', '1\t2\t3\t4\t5\t6\n{}', '17000000000000000000000001\tx\t1\tt\t2\t\n{}'];
  for (const raw of bad) it(`rejects ${JSON.stringify(raw)}`, () => assert.equal(decodeRecord(raw), null));
});
