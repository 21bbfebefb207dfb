import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { HISTORY_GAP_COMMAND, historyGapBody, historyGapHeader, historyGapMessage, type ChannelGapNotice } from './history-gap.js';
import { decodeTextFrames, encodeTextFrame } from './text-frame.js';
import { bytesToHex, decodeResponseBatch, encodeOutgoingElement, wrapOutgoingElements } from './v4/index.js';

const A = 'a'.repeat(32);
const P = 'b'.repeat(32);
const AFTER = '17000000000000000000000010';
const NOW = 1700000000123;

describe('history gap notice', () => {
  const cases: Array<[string, ChannelGapNotice[], Record<string, unknown>, string]> = [
    [
      'one channel, cut by the cap',
      [{ channel: A, upTo: '17000000000000000000000060', cause: 'limit' }],
      { after: AFTER, up_to: '17000000000000000000000060', channels: [{ id: A, up_to: '17000000000000000000000060', cause: 'limit' }] },
      `${A}; after=${AFTER}; up-to=17000000000000000000000060; cause=limit`,
    ],
    [
      'two channels, one of them a protocol-4 public channel whose records expired: the bound is the newer',
      [
        { channel: A, upTo: '17000000000000000000000020', cause: 'limit' },
        { channel: `pub:${P}`, upTo: '17000000000000000000000030', cause: 'expired' },
      ],
      {
        after: AFTER,
        up_to: '17000000000000000000000030',
        channels: [
          { id: A, up_to: '17000000000000000000000020', cause: 'limit' },
          { id: P, public: true, up_to: '17000000000000000000000030', cause: 'expired' },
        ],
      },
      `${A}; after=${AFTER}; up-to=17000000000000000000000020; cause=limit, ${P}; after=${AFTER}; up-to=17000000000000000000000030; cause=expired; public`,
    ],
    [
      'shared mode: a portal\'s namespaced keys are named by their bare ids',
      [
        { channel: `${'c'.repeat(32)}/${A}`, upTo: '17000000000000000000000020', cause: 'limit' },
        { channel: `${'c'.repeat(32)}/pub:${P}`, upTo: '17000000000000000000000030', cause: 'expired' },
      ],
      {
        after: AFTER,
        up_to: '17000000000000000000000030',
        channels: [
          { id: A, up_to: '17000000000000000000000020', cause: 'limit' },
          { id: P, public: true, up_to: '17000000000000000000000030', cause: 'expired' },
        ],
      },
      `${A}; after=${AFTER}; up-to=17000000000000000000000020; cause=limit, ${P}; after=${AFTER}; up-to=17000000000000000000000030; cause=expired; public`,
    ],
  ];
  for (const [what, gaps, params, header] of cases) {
    it(what, () => {
      const body = JSON.parse(historyGapBody(AFTER, gaps, NOW)) as Record<string, unknown>;
      assert.deepEqual(body, { module_id: 'pull', command: HISTORY_GAP_COMMAND, params, extra: { server_time: '2023-11-14T22:13:20.123Z', server_time_unix: NOW / 1000 } });
      assert.equal(historyGapHeader(AFTER, gaps), header);
    });
  }

  it('travels as a text frame whose mid is the bound, never stored, from the backend', () => {
    const gaps: ChannelGapNotice[] = [{ channel: A, upTo: '17000000000000000000000060', cause: 'limit' }];
    const msg = historyGapMessage(AFTER, gaps, NOW);
    assert.equal(msg.mid, '17000000000000000000000060');
    assert.equal(msg.expiry, 0);
    assert.equal(msg.sender.type, 2);
    const [frame] = decodeTextFrames(encodeTextFrame(msg));
    assert.equal(frame?.mid, msg.mid);
    assert.equal((frame?.text as { module_id: string }).module_id, 'pull');
    assert.equal(historyGapBody(AFTER, gaps, NOW).includes('\n'), false, 'one line, as text frames need');
  });

  it('travels in protocol 4 as an OutgoingMessage with the same body, id = the bound, sender BACKEND', () => {
    const msg = historyGapMessage(AFTER, [{ channel: A, upTo: '17000000000000000000000060', cause: 'limit' }], NOW);
    const batch = decodeResponseBatch(wrapOutgoingElements([encodeOutgoingElement(msg)]));
    const out = batch.responses[0]?.outgoingMessages?.messages[0];
    assert.ok(out !== undefined);
    assert.equal(bytesToHex(out.id), msg.mid);
    assert.equal(out.body, msg.body);
    assert.equal(out.expiry, 0);
    assert.equal(out.sender?.type, 2);
  });
});
