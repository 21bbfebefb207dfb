import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BACKEND_SENDER, type NewMessage } from '@push/protocol';
import { createMemoryBackend } from '../src/index.js';
import { CONFORMANCE_OPTIONS, backendConformance, ch } from './conformance.js';

backendConformance('memory', async () => ({ backend: createMemoryBackend(CONFORMANCE_OPTIONS), cleanup: async () => {} }));

const CAP = CONFORMANCE_OPTIONS.historyLimit;
const m = (channels: string[], ttl = 60): NewMessage => ({ channels, body: '{"x":1}', type: 't', ttl });

describe('memory backend: bounded memory', () => {
  it('the history cap bounds records: a record goes when the last list drops it', async () => {
    const b = createMemoryBackend(CONFORMANCE_OPTIONS);
    const [a, c] = [ch(), ch()];
    const [shared] = (await b.store.publish([m([a, c])], BACKEND_SENDER)) as [string];
    for (let i = 0; i < CAP + 3; i++) await b.store.publish([m([a])], BACKEND_SENDER);
    assert.equal(b.sizes().records, CAP + 1, 'the cap on a, plus the shared one still held by c');
    assert.deepEqual((await b.store.history([c], '0'.repeat(26))).messages.map((x) => x.mid), [shared]);
    for (let i = 0; i < CAP; i++) await b.store.publish([m([c])], BACKEND_SENDER);
    assert.equal(b.sizes().records, 2 * CAP, 'the shared record went with its last reference');
    assert.equal(b.sizes().lists, 2);
  });

  it('records, lists, presence, channel times, nonces and stale stats are swept after their TTL', async () => {
    let t = 1_700_000_000_000;
    const b = createMemoryBackend({ ...CONFORMANCE_OPTIONS, onlineTtlSeconds: 10, channelWriteMs: 1000, channelReadMs: 2000 }, () => t);
    const channels = Array.from({ length: 50 }, () => ch());
    for (const c of channels) await b.store.publish([m([c], 30)], BACKEND_SENDER);
    await b.presence.touch(channels);
    await b.channels.create([ch()]);
    await b.replay.claim('k', 'nonce', Math.floor(t / 1000), 5);
    await b.stats.report({ processUniqueId: 'p', date: t });
    t += 2500;
    assert.equal((await b.channels.expireNotice(channels[0] as string, '{}')).kind, 'none', 'past its read window');
    const full = b.sizes();
    assert.equal(full.records, 50);
    assert.equal(full.lists, 50);
    assert.equal(full.online, 50);
    t += 60_000; // past every TTL, the 4 s channel-time retention and the stats staleness
    await b.presence.online([]); // any call sweeps once a sweep is due
    assert.deepEqual(b.sizes(), { records: 0, lists: 0, online: 0, created: 0, notices: 0, nonces: 0, stats: 0 });
  });

  it('a record that expires before it is pushed out is not replayed and does not linger', async () => {
    let t = 1_700_000_000_000;
    const b = createMemoryBackend(CONFORMANCE_OPTIONS, () => t);
    const a = ch();
    await b.store.publish([m([a], 1)], BACKEND_SENDER);
    t += 1500;
    const [keep] = (await b.store.publish([m([a], 60)], BACKEND_SENDER)) as [string];
    assert.deepEqual((await b.store.history([a], '0'.repeat(26))).messages.map((x) => x.mid), [keep]);
    t += 10_000;
    await b.presence.online([]);
    assert.equal(b.sizes().records, 1);
  });
});
