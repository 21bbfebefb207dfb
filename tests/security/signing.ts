import { randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import { authHeaders, canonicalString, hmacSignHex, sha256Hex } from '@push/protocol';

/** A signing key for tests: its PUSH_PUBLISH_KEYS entry and a signer (tweetnacl or HMAC). */
export interface TestKey {
  readonly keyId: string;
  readonly ringEntry: string;
  sign(canonical: string): string;
}

export function ed25519Key(keyId: string): TestKey {
  const kp = nacl.sign.keyPair();
  return {
    keyId,
    ringEntry: `${keyId}:ed25519:${Buffer.from(kp.publicKey).toString('base64')}`,
    sign: (canonical) => Buffer.from(nacl.sign.detached(Buffer.from(canonical, 'utf8'), kp.secretKey)).toString('hex'),
  };
}

export function hmacKey(keyId: string): TestKey {
  const secret = randomBytes(24).toString('base64url');
  return { keyId, ringEntry: `${keyId}:hmac-sha256:${secret}`, sign: (canonical) => hmacSignHex(Buffer.from(secret, 'utf8'), canonical) };
}

export const nonce = (): string => randomBytes(12).toString('base64url');

export type Body = string | Uint8Array;

export interface SignOptions {
  readonly timestamp?: number;
  readonly nonce?: string;
  /** Sign this body but send `sentBody` (tampering). */
  readonly sentBody?: Body;
  readonly headers?: Record<string, string>;
  readonly drop?: string;
  /** Send this X-Push-Signature instead of the real one (malformed or wrong signatures). */
  readonly signature?: string;
}

const bytes = (body: Body): Uint8Array => (typeof body === 'string' ? Buffer.from(body, 'utf8') : body);

/** The signature headers for a request (exported so tests can tamper with single headers). */
export function signatureHeaders(key: TestKey, method: string, target: string, body: Body, o: SignOptions = {}): Record<string, string> {
  const timestamp = o.timestamp ?? Math.floor(Date.now() / 1000);
  const n = o.nonce ?? nonce();
  const canonical = canonicalString({ method, target, timestamp, nonce: n, keyId: key.keyId, bodySha256: sha256Hex(bytes(body)) });
  const h = authHeaders(key.keyId, timestamp, n, o.signature ?? key.sign(canonical));
  if (o.drop !== undefined) delete h[o.drop];
  return h;
}

export function signedFetch(base: string, method: string, target: string, body: Body, key: TestKey, o: SignOptions = {}): Promise<Response> {
  const headers = { ...signatureHeaders(key, method, target, body, o), ...(o.headers ?? {}) };
  const sent = bytes(o.sentBody ?? body);
  return fetch(`${base}${target}`, method === 'GET' ? { method, headers } : { method, headers, body: sent });
}
