/** What `Ed25519Threads` and its worker share: the batch layout and the worker's start data. */

export const SIGNATURE_BYTES = 64;

/**
 * A batch is one transferable buffer of entries laid end to end:
 * u16 LE key index, u32 LE data length, the data, the 64-byte signature.
 */
export interface BatchEntry {
  readonly keyIndex: number;
  readonly data: Uint8Array;
  readonly signature: Uint8Array;
}

export interface VerifyWorkerData {
  /** The Ed25519 public keys in SPKI DER, indexed by a batch entry's key index. */
  readonly spkiKeys: readonly Uint8Array[];
}

export function packBatch(entries: readonly BatchEntry[]): Uint8Array {
  let size = 0;
  for (const e of entries) size += 6 + e.data.length + SIGNATURE_BYTES;
  const buf = Buffer.allocUnsafeSlow(size);
  let at = 0;
  for (const e of entries) {
    if (e.signature.length !== SIGNATURE_BYTES) throw new Error('an Ed25519 signature is 64 bytes');
    at = buf.writeUInt16LE(e.keyIndex, at);
    at = buf.writeUInt32LE(e.data.length, at);
    buf.set(e.data, at);
    at += e.data.length;
    buf.set(e.signature, at);
    at += SIGNATURE_BYTES;
  }
  return buf;
}
