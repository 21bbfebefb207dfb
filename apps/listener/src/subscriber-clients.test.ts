import { it } from 'node:test';
import assert from 'node:assert/strict';
import { PushError, signChannel } from '@push/protocol';
import { ClientDirectory, createMemoryBackend } from '@push/backend';
import { SubscriberClients } from './subscriber-clients.js';

const INSTALL = { key: 'installation-key', algorithm: 'sha1' as const };
const ID = 'a'.repeat(32);
const q = (entries: Record<string, string>): Map<string, string> => new Map(Object.entries(entries));
const code = async (p: unknown): Promise<number | null> => {
  try {
    await p;
    return null;
  } catch (err) {
    assert.ok(err instanceof PushError, String(err));
    return err.spec.code;
  }
};

it('personal mode admits at once with the installation key; shared mode asks the registry, refuses 4036, and counts connections per portal (4180)', async () => {
  const personal = new SubscriberClients(INSTALL, null, 1);
  const p = personal.admit(q({ clientId: ID }));
  assert.ok(!(p instanceof Promise));
  assert.deepEqual([p.clientId, p.secret], [null, INSTALL]);

  const backend = createMemoryBackend({ historyLimit: 5, onlineTtlSeconds: 10, statsStaleMs: 1000 });
  await backend.clients.add({ id: ID, key: 'portal-key', created: 1, note: '' });
  const shared = new SubscriberClients(INSTALL, new ClientDirectory(backend.clients, 0, 0), 2, 60_000);
  try {
    assert.equal(await code(shared.admit(q({}))), 4036);
    assert.equal(await code(shared.admit(q({ clientId: 'b'.repeat(32) }))), 4036);
    assert.equal(await code(shared.admit(q({ clientId: 'SHORT' }))), 4036);
    const one = await shared.admit(q({ clientId: ID }));
    assert.deepEqual([one.clientId, one.secret], [ID, { key: 'portal-key', algorithm: 'sha1' }]);
    const two = await shared.admit(q({ clientId: ID }));
    assert.equal(await code(shared.admit(q({ clientId: ID }))), 4180);
    one.release();
    one.release();
    assert.equal(shared.connections(ID), 1, 'a second release gives nothing back twice');
    const three = await shared.admit(q({ clientId: ID }));
    two.release();
    three.release();
    assert.equal(shared.connections(ID), 0);
    // channel_expire notices name the portal's own id, signed with its key.
    await shared.admit(q({ clientId: ID }));
    assert.equal(shared.signedId(`${ID}/${'c'.repeat(32)}`), signChannel('c'.repeat(32), { key: 'portal-key', algorithm: 'sha1' }));
    assert.equal(shared.signedId('c'.repeat(32)), signChannel('c'.repeat(32), INSTALL));
  } finally {
    shared.stop();
  }
});

it('a removed or re-keyed portal has its connections ended; released ones are not called', async () => {
  const backend = createMemoryBackend({ historyLimit: 5, onlineTtlSeconds: 10, statsStaleMs: 1000 });
  await backend.clients.add({ id: ID, key: 'k1', created: 1, note: '' });
  const other = 'b'.repeat(32);
  await backend.clients.add({ id: other, key: 'k2', created: 1, note: '' });
  const shared = new SubscriberClients(INSTALL, new ClientDirectory(backend.clients, 0, 0), 0, 50);
  try {
    const ended: string[] = [];
    const a = await shared.admit(q({ clientId: ID }));
    a.onRevoke(() => ended.push('a'));
    const gone = await shared.admit(q({ clientId: ID }));
    gone.onRevoke(() => ended.push('released'));
    gone.release();
    const b = await shared.admit(q({ clientId: other }));
    b.onRevoke(() => ended.push('other'));
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(ended, [], 'nothing ends while the portals stay');
    await backend.clients.remove(ID);
    await backend.clients.add({ id: ID, key: 'k3', created: 2, note: '' });
    const deadline = Date.now() + 3000;
    while (ended.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(ended, ['a'], 're-keyed portal: its connection ends; the released one and the other portal are left alone');
  } finally {
    shared.stop();
  }
});
