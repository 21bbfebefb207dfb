import assert from 'node:assert/strict';
import { generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { ed25519PublicKey, type PublishKeySpec } from '@push/protocol';
import { Ed25519Threads } from './ed25519-threads.js';
import { packBatch } from './ed25519-wire.js';

const log = pino({ level: process.env['TEST_LOG'] ?? 'silent' });

function keyPair(id: string): { spec: PublishKeySpec; key: KeyObject; sign(data: Buffer): Buffer } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  return { spec: { id, algorithm: 'ed25519', material: Buffer.from(raw) }, key: ed25519PublicKey(raw), sign: (d) => sign(null, d, privateKey) };
}

/** A mix of good signatures, flipped bits and signatures made with the other key. */
function cases(a: ReturnType<typeof keyPair>, b: ReturnType<typeof keyPair>, n: number) {
  return Array.from({ length: n }, (_, i) => {
    const signer = i % 2 === 0 ? a : b;
    const data = Buffer.from(`message ${i} ${'x'.repeat(i % 300)}`);
    const signature = signer.sign(data);
    if (i % 3 === 1) signature[i % 64]! ^= 1;
    const claimed = i % 7 === 3 ? (signer === a ? b : a) : signer;
    return { keyId: claimed.spec.id, key: claimed.key, data, signature, expected: verify(null, data, claimed.key, signature) };
  });
}

describe('Ed25519Threads', () => {
  const a = keyPair('a');
  const b = keyPair('b');

  it('answers every check as crypto.verify does, batching checks that arrive together', async () => {
    const threads = new Ed25519Threads([a.spec, b.spec], 1, log);
    try {
      const list = cases(a, b, 400);
      assert.ok(list.some((c) => c.expected) && list.some((c) => !c.expected), 'the cases mix valid and invalid signatures');
      const got = await Promise.all(list.map((c) => threads.check(c.keyId, c.key, c.data, c.signature)));
      assert.deepEqual(got, list.map((c) => c.expected));
      // 400 checks issued in one turn: the first two go alone, the rest wait and travel together.
      assert.ok(threads.batches >= 3 && threads.batches <= 10, `400 checks in ${threads.batches} batches`);
    } finally {
      await threads.close();
    }
  });

  it('spreads batches over several threads and still answers each check correctly', async () => {
    const threads = new Ed25519Threads([a.spec, b.spec], 3, log);
    try {
      assert.equal(threads.workers.length, 3);
      const list = cases(a, b, 300);
      const got = await Promise.all(list.map((c) => threads.check(c.keyId, c.key, c.data, c.signature)));
      assert.deepEqual(got, list.map((c) => c.expected));
    } finally {
      await threads.close();
    }
  });

  it('a thread that dies mid-batch costs no answer: its checks are redone, a new thread starts', async () => {
    const threads = new Ed25519Threads([a.spec, b.spec], 1, log);
    try {
      // A thread that never answered is taken for one that cannot start and is not replaced.
      const first = cases(a, b, 1)[0]!;
      assert.equal(await threads.check(first.keyId, first.key, first.data, first.signature), first.expected);
      const list = cases(a, b, 200);
      const pending = Promise.all(list.map((c) => threads.check(c.keyId, c.key, c.data, c.signature)));
      const [victim] = threads.workers;
      assert.ok(victim !== undefined);
      await victim.terminate();
      assert.deepEqual(await pending, list.map((c) => c.expected));
      assert.equal(threads.workers.length, 0, 'the dead thread is gone at once');
      // Meanwhile checks go to the thread pool, then a new thread takes over.
      const more = cases(a, b, 20);
      assert.deepEqual(await Promise.all(more.map((c) => threads.check(c.keyId, c.key, c.data, c.signature))), more.map((c) => c.expected));
      const deadline = Date.now() + 5000;
      while (threads.workers.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.equal(threads.workers.length, 1, 'a replacement thread started');
      const after = threads.batches;
      assert.deepEqual(await Promise.all(more.map((c) => threads.check(c.keyId, c.key, c.data, c.signature))), more.map((c) => c.expected));
      assert.ok(threads.batches > after, 'the replacement thread does the checking');
    } finally {
      await threads.close();
    }
  });

  it('close() finishes what was queued and later checks still get the right answer', async () => {
    const threads = new Ed25519Threads([a.spec, b.spec], 1, log);
    const list = cases(a, b, 100);
    const pending = Promise.all(list.map((c) => threads.check(c.keyId, c.key, c.data, c.signature)));
    const [worker] = threads.workers;
    assert.ok(worker !== undefined);
    const exited = once(worker, 'exit');
    await threads.close();
    await exited;
    assert.deepEqual(await pending, list.map((c) => c.expected));
    const late = cases(a, b, 10);
    assert.deepEqual(await Promise.all(late.map((c) => threads.check(c.keyId, c.key, c.data, c.signature))), late.map((c) => c.expected));
  });

  it('a thread that cannot start is not retried: its checks go to the thread pool', async () => {
    const threads = new Ed25519Threads([a.spec, b.spec], 1, log);
    try {
      const list = cases(a, b, 50);
      const pending = Promise.all(list.map((c) => threads.check(c.keyId, c.key, c.data, c.signature)));
      const [worker] = threads.workers;
      assert.ok(worker !== undefined);
      // Terminated before it could answer: from outside, the same as a thread whose script fails to load.
      await worker.terminate();
      assert.deepEqual(await pending, list.map((c) => c.expected));
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(threads.workers.length, 0, 'no replacement');
      const more = cases(a, b, 10);
      assert.deepEqual(await Promise.all(more.map((c) => threads.check(c.keyId, c.key, c.data, c.signature))), more.map((c) => c.expected));
    } finally {
      await threads.close();
    }
  });

  it('a key the threads do not hold is checked in the thread pool', async () => {
    const threads = new Ed25519Threads([a.spec], 1, log);
    try {
      const data = Buffer.from('not one of theirs');
      assert.equal(await threads.check('b', b.key, data, b.sign(data)), true);
      assert.equal(await threads.check('b', b.key, data, a.sign(data)), false);
      assert.equal(threads.batches, 0);
    } finally {
      await threads.close();
    }
  });
});

describe('packBatch', () => {
  it('lays entries end to end: key index, length, data, signature', () => {
    const sig = Buffer.alloc(64, 7);
    const packed = Buffer.from(packBatch([{ keyIndex: 2, data: Buffer.from('ab'), signature: sig }, { keyIndex: 0, data: Buffer.alloc(0), signature: sig }]));
    assert.equal(packed.length, 2 * (6 + 64) + 2);
    assert.equal(packed.readUInt16LE(0), 2);
    assert.equal(packed.readUInt32LE(2), 2);
    assert.equal(packed.subarray(6, 8).toString(), 'ab');
    assert.ok(packed.subarray(8, 72).equals(sig));
    assert.equal(packed.readUInt16LE(72), 0);
    assert.equal(packed.readUInt32LE(74), 0);
  });

  it('refuses a signature that is not 64 bytes', () => {
    assert.throws(() => packBatch([{ keyIndex: 0, data: Buffer.alloc(1), signature: Buffer.alloc(63) }]), /64 bytes/);
  });
});
