import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { StoredMessage } from '../record.js';
import { bytesToHex, decodeResponseBatch, encodeOutgoingElement, encodeResponseBatch, midToBytes, SenderType, V4Types, wrapOutgoingElements } from './codec.js';

const msg = (mid: string, over: Partial<StoredMessage> = {}): StoredMessage => ({
  mid,
  createdMs: 1_700_000_123_456,
  expiry: 86400,
  type: 'test_hello',
  sender: { type: SenderType.BACKEND, id: '' },
  body: '{"module_id":"test","command":"hello","params":{"n":1}}',
  ...over,
});

describe('v4 codec: message ids', () => {
  for (const mid of ['17000000000000000000000012', '00000000000000000000000000', '99999999999999999999999999']) {
    it(`mid ${mid} <-> 13 bytes whose hex is the mid`, () => {
      const b = midToBytes(mid);
      assert.equal(b.byteLength, 13);
      assert.equal(bytesToHex(b), mid);
    });
  }
});

describe('v4 codec: outgoing batches', () => {
  const cases: Array<{ name: string; msgs: StoredMessage[] }> = [
    { name: 'one backend message', msgs: [msg('17000000000000000000000001')] },
    {
      name: 'three messages incl. a client one and a large body',
      msgs: [
        msg('17000000000000000000000002'),
        msg('17000000000000000000000003', { sender: { type: SenderType.CLIENT, id: 'c18beb389c3e49131dbb2dde597df615' }, expiry: 0 }),
        msg('17000000000000000000000004', { body: JSON.stringify({ module_id: 'x', command: 'y', params: { s: 'é'.repeat(40_000) } }) }),
      ],
    },
  ];
  for (const c of cases) {
    it(`${c.name}: pre-encoded elements wrap into a ResponseBatch protobufjs decodes field for field`, () => {
      const bytes = wrapOutgoingElements(c.msgs.map(encodeOutgoingElement));
      const batch = decodeResponseBatch(bytes);
      assert.equal(batch.responses.length, 1);
      const r = batch.responses[0];
      assert.equal(r?.command, 'outgoingMessages');
      const got = r?.outgoingMessages?.messages ?? [];
      assert.equal(got.length, c.msgs.length);
      got.forEach((m, i) => {
        const want = c.msgs[i] as StoredMessage;
        assert.equal(bytesToHex(m.id), want.mid);
        assert.equal(m.id.byteLength, 13);
        assert.equal(m.body, want.body);
        assert.equal(m.expiry, want.expiry);
        assert.equal(m.created, Math.floor(want.createdMs / 1000));
        assert.equal(m.sender?.type, want.sender.type);
        assert.equal(bytesToHex(m.sender?.id ?? new Uint8Array()), want.sender.id);
      });
    });
  }

  it('wrapping is byte-identical to protobufjs encoding the full ResponseBatch', () => {
    const msgs = [msg('17000000000000000000000010'), msg('17000000000000000000000011', { sender: { type: 1, id: 'ab'.repeat(16) } })];
    const manual = wrapOutgoingElements(msgs.map(encodeOutgoingElement));
    const decoded = decodeResponseBatch(manual);
    const reference = V4Types.ResponseBatch.encode(V4Types.ResponseBatch.fromObject(decoded)).finish();
    assert.deepEqual(Buffer.from(manual), Buffer.from(reference));
  });

  it('channel stats and server stats responses round-trip', () => {
    const id = Buffer.from('f0e5d42369441879d7e176c96cbbff2d', 'hex');
    const bytes = encodeResponseBatch({ responses: [{ channelStats: { channels: [{ id, isPrivate: true, isOnline: true }] } }, { serverStats: { json: '[]' } }] });
    const d = decodeResponseBatch(bytes);
    assert.equal(d.responses[0]?.command, 'channelStats');
    assert.equal(bytesToHex(d.responses[0]?.channelStats?.channels[0]?.id ?? new Uint8Array()), 'f0e5d42369441879d7e176c96cbbff2d');
    assert.equal(d.responses[0]?.channelStats?.channels[0]?.isOnline, true);
    assert.equal(d.responses[1]?.serverStats?.json, '[]');
  });
});
