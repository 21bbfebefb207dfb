import { createPublicKey, verify } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
import { SIGNATURE_BYTES, type VerifyWorkerData } from './ed25519-wire.js';

/**
 * The verifying side of `Ed25519Threads`: receives a packed batch, checks every signature
 * synchronously (nothing else runs on this thread) and answers one byte per entry, 1 = valid.
 */
const { spkiKeys } = workerData as VerifyWorkerData;
const keys = spkiKeys.map((der) => createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' }));

parentPort?.on('message', (packed: Uint8Array) => {
  const buf = Buffer.from(packed.buffer, packed.byteOffset, packed.byteLength);
  const results: number[] = [];
  let at = 0;
  while (at < buf.length) {
    const key = keys[buf.readUInt16LE(at)];
    const length = buf.readUInt32LE(at + 2);
    const data = buf.subarray(at + 6, at + 6 + length);
    const signature = buf.subarray(at + 6 + length, at + 6 + length + SIGNATURE_BYTES);
    at += 6 + length + SIGNATURE_BYTES;
    results.push(key !== undefined && verify(null, data, key, signature) ? 1 : 0);
  }
  const out = Uint8Array.from(results);
  parentPort?.postMessage(out, [out.buffer]);
});
