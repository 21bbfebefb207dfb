import { randomBytes } from 'node:crypto';
import { authHeaders, canonicalString, sha256Hex } from '@push/protocol';
import type { SigningKey } from './keys.js';

/** The server could not be reached at all (connection refused, DNS, reset): exit 3, not a bug. */
export class UnreachableError extends Error {}

export interface HttpReply {
  readonly status: number;
  readonly body: string;
}

/** Sends one request signed as docs/security.md describes (fresh nonce, current timestamp). */
export async function signedRequest(base: string, method: 'GET' | 'POST', target: string, body: Uint8Array | string, key: SigningKey, extra: Record<string, string> = {}): Promise<HttpReply> {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const timestamp = Math.floor(Date.now() / 1000);
  const nonce = randomBytes(16).toString('base64url');
  const canonical = canonicalString({ method, target, timestamp, nonce, keyId: key.keyId, bodySha256: sha256Hex(bytes) });
  const headers = { ...extra, ...authHeaders(key.keyId, timestamp, nonce, key.sign(canonical)) };
  try {
    const res = await fetch(`${base}${target}`, method === 'GET' ? { method, headers } : { method, headers, body: bytes });
    // Reading the body is part of talking to the server: a connection cut here is "unreachable" too.
    return { status: res.status, body: await res.text() };
  } catch (err) {
    const cause = (err as { cause?: { message?: string } }).cause?.message;
    throw new UnreachableError(`cannot reach ${base}: ${cause ?? (err as Error).message}`);
  }
}
