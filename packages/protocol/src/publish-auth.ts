import { createHash, createHmac, createPrivateKey, createPublicKey, sign as cryptoSign, verify as cryptoVerify, timingSafeEqual, type KeyObject } from 'node:crypto';
import { Errors, PushError } from './errors.js';

/**
 * Publish authentication (docs/security.md has the full scheme for implementers in other languages).
 *
 * A portal signs every HTTP request to the publisher, once per request (a batch is one request),
 * with either Ed25519 (keys as tweetnacl and PHP sodium produce them) or HMAC-SHA256. The signed
 * text is the canonical string below; the signature travels in four headers. Which algorithm
 * applies is a property of the key id on the server, never of the request, so a request cannot
 * downgrade an Ed25519 key to HMAC.
 *
 * Everything here is pure (no clock, no Redis): the timestamp window and nonce replay check live
 * in the backend, where the one clock (Redis TIME) and the replay cache are.
 */

export const SIGNATURE_SCHEME = 'PUSHSIG1';

/** Header names, lowercase as uWS hands them over. */
export const AUTH_HEADERS = {
  keyId: 'x-push-key-id',
  timestamp: 'x-push-timestamp',
  nonce: 'x-push-nonce',
  signature: 'x-push-signature',
} as const;

export type PublishKeyAlgorithm = 'ed25519' | 'hmac-sha256';

/** One verification key from PUSH_PUBLISH_KEYS. */
export interface PublishKeySpec {
  readonly id: string;
  readonly algorithm: PublishKeyAlgorithm;
  /** Ed25519: the 32-byte public key. HMAC: the shared secret's bytes. */
  readonly material: Buffer;
}

export const KEY_ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;
export const NONCE_RE = /^[A-Za-z0-9_-]{16,64}$/;
const TIMESTAMP_RE = /^[0-9]{1,12}$/;
const HEX_RE = /^(?:[0-9a-f]{2})+$/;
/** Shortest accepted HMAC secret: 32 characters is 190+ bits from the CLI's alphabet. */
export const MIN_HMAC_SECRET_CHARS = 32;

/** Decodes a 32-byte Ed25519 key given as 64 hex characters or standard/url-safe base64. */
export function decodeKey32(text: string): Buffer | null {
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(text)) {
    const buf = Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    return buf.length === 32 ? buf : null;
  }
  return null;
}

/**
 * Parses the key ring: entries `<keyId>:<algorithm>:<key>` separated by commas or whitespace.
 * Ed25519 entries carry the public key (hex or base64), HMAC entries the shared secret itself.
 * Several keys at once is what makes rotation possible without downtime. Throws with every
 * problem named; an empty text is an empty ring.
 */
export function parseKeyRing(text: string): PublishKeySpec[] {
  const out: PublishKeySpec[] = [];
  const problems: string[] = [];
  const seen = new Set<string>();
  // Problems name entries by position and key id only: the text holds secrets that must never
  // reach a log or a terminal, even when mistyped.
  for (const [n, entry] of text.split(/[\s,]+/).filter((e) => e !== '').entries()) {
    const first = entry.indexOf(':');
    const second = first < 0 ? -1 : entry.indexOf(':', first + 1);
    if (second < 0) {
      problems.push(`entry ${n + 1} is not <keyId>:<algorithm>:<key>`);
      continue;
    }
    const id = entry.slice(0, first);
    const algorithm = entry.slice(first + 1, second);
    const key = entry.slice(second + 1);
    if (!KEY_ID_RE.test(id)) {
      problems.push(`entry ${n + 1}: the key id must be 1-64 characters from A-Z a-z 0-9 _ . -`);
      continue;
    }
    if (seen.has(id)) {
      problems.push(`key id ${JSON.stringify(id)} is listed twice`);
      continue;
    }
    seen.add(id);
    if (algorithm === 'ed25519') {
      const material = decodeKey32(key);
      if (material === null) problems.push(`key ${id}: an Ed25519 public key is 32 bytes as 64 hex or 43/44 base64 characters`);
      else out.push({ id, algorithm, material });
    } else if (algorithm === 'hmac-sha256') {
      if (key.length < MIN_HMAC_SECRET_CHARS) problems.push(`key ${id}: an HMAC secret needs at least ${MIN_HMAC_SECRET_CHARS} characters`);
      else out.push({ id, algorithm, material: Buffer.from(key, 'utf8') });
    } else {
      const shown = /^[A-Za-z0-9-]{1,16}$/.test(algorithm) ? `, got ${JSON.stringify(algorithm)}` : '';
      problems.push(`key ${id}: algorithm must be ed25519 or hmac-sha256${shown}`);
    }
  }
  if (problems.length > 0) throw new Error(problems.join('; '));
  return out;
}

export interface RawAuthHeaders {
  readonly keyId: string;
  readonly timestamp: string;
  readonly nonce: string;
  readonly signature: string;
}

export interface SignedRequest {
  readonly keyId: string;
  /** Unix seconds claimed by the sender. */
  readonly timestamp: number;
  readonly nonce: string;
  readonly signature: Buffer;
}

/**
 * Reads the four signature headers ('' = absent). None present = an unsigned request (null);
 * some but not all, or any malformed, is an error, never a silent fall-back to "unsigned".
 */
/** Whether a request carries none of the four signature headers (an unsigned publish). */
export function isUnsigned(h: RawAuthHeaders): boolean {
  return h.keyId === '' && h.timestamp === '' && h.nonce === '' && h.signature === '';
}

export function parseAuthHeaders(h: RawAuthHeaders): SignedRequest | null {
  if (isUnsigned(h)) return null;
  const missing = (Object.keys(AUTH_HEADERS) as Array<keyof typeof AUTH_HEADERS>).filter((k) => h[k] === '').map((k) => AUTH_HEADERS[k]);
  if (missing.length > 0) throw new PushError(Errors.AUTH_MALFORMED, `Missing ${missing.join(', ')}.`);
  if (!KEY_ID_RE.test(h.keyId)) throw new PushError(Errors.AUTH_MALFORMED, 'X-Push-Key-Id must be 1-64 characters from A-Z a-z 0-9 _ . -.');
  if (!TIMESTAMP_RE.test(h.timestamp)) throw new PushError(Errors.AUTH_MALFORMED, 'X-Push-Timestamp must be unix seconds.');
  if (!NONCE_RE.test(h.nonce)) throw new PushError(Errors.AUTH_MALFORMED, 'X-Push-Nonce must be 16-64 characters from A-Z a-z 0-9 _ -.');
  if (!HEX_RE.test(h.signature) || (h.signature.length !== 64 && h.signature.length !== 128)) {
    throw new PushError(Errors.AUTH_MALFORMED, 'X-Push-Signature must be lowercase hex (64 characters for HMAC-SHA256, 128 for Ed25519).');
  }
  return { keyId: h.keyId, timestamp: Number(h.timestamp), nonce: h.nonce, signature: Buffer.from(h.signature, 'hex') };
}

export function sha256Hex(body: Uint8Array | string): string {
  return createHash('sha256').update(body).digest('hex');
}

/** The request target as it appears on the request line: path, then "?query" when there is one. */
export function requestTarget(path: string, query: string): string {
  return query === '' ? path : `${path}?${query}`;
}

export interface CanonicalParts {
  /** HTTP method, upper-cased here. */
  readonly method: string;
  /** Path and raw query exactly as sent on the request line (see `requestTarget`). */
  readonly target: string;
  readonly timestamp: number | string;
  readonly nonce: string;
  readonly keyId: string;
  readonly bodySha256: string;
}

/**
 * The signed text: seven lines joined by "\n", no trailing newline. The key id is included so a
 * signature made for one key can never be presented under another.
 */
export function canonicalString(p: CanonicalParts): string {
  return [SIGNATURE_SCHEME, p.method.toUpperCase(), p.target, String(p.timestamp), p.nonce, p.keyId, p.bodySha256].join('\n');
}

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** Wraps a raw 32-byte Ed25519 public key for node:crypto (native verify: ~9,500/s vs 167/s in pure JS). */
export function ed25519PublicKey(raw: Uint8Array): KeyObject {
  if (raw.length !== 32) throw new Error('Ed25519 public key must be 32 bytes');
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

/** Accepts the 64-byte secret key of tweetnacl/sodium (seed ‖ public key) or the bare 32-byte seed. */
export function ed25519PrivateKey(secret: Uint8Array): KeyObject {
  if (secret.length !== 64 && secret.length !== 32) throw new Error('Ed25519 secret key must be 64 bytes (or a 32-byte seed)');
  return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, secret.subarray(0, 32)]), format: 'der', type: 'pkcs8' });
}

export function ed25519SignHex(key: KeyObject, canonical: string): string {
  return cryptoSign(null, Buffer.from(canonical, 'utf8'), key).toString('hex');
}

export function hmacSignHex(secret: Uint8Array, canonical: string): string {
  return createHmac('sha256', secret).update(canonical, 'utf8').digest('hex');
}

/** The four headers for a signed request. */
export function authHeaders(keyId: string, timestamp: number, nonce: string, signatureHex: string): Record<string, string> {
  return {
    [AUTH_HEADERS.keyId]: keyId,
    [AUTH_HEADERS.timestamp]: String(timestamp),
    [AUTH_HEADERS.nonce]: nonce,
    [AUTH_HEADERS.signature]: signatureHex,
  };
}

type VerifyKey = { readonly algorithm: 'ed25519'; readonly key: KeyObject } | { readonly algorithm: 'hmac-sha256'; readonly secret: Buffer };

export interface VerifierOptions {
  /**
   * Asked before every Ed25519 check: true runs it on the calling thread, false (and the default)
   * in libuv's thread pool. See `PublishVerifier` for the trade.
   */
  readonly inline?: () => boolean;
}

/**
 * The server's key ring, prepared once at start (KeyObjects are built once, not per request).
 * `verify` rejects with AUTH_UNKNOWN_KEY or AUTH_BAD_SIGNATURE; both paths cost the same whatever
 * the signature bytes are (HMAC compared with timingSafeEqual; Ed25519 verification has no secret).
 * An Ed25519 check costs ~100 us. In the thread pool (the callback form of crypto.verify) it leaves
 * the event loop free for other requests and lets a second core work, which a saturated publisher
 * needs; but the trip there and back wakes two threads, and on a busy virtual machine those
 * wake-ups cost more than the check itself when requests come one at a time. `opts.inline` picks
 * per check (the publisher asks how busy its event loop is: auth/verify-placement.ts).
 */
export class PublishVerifier {
  private readonly keys = new Map<string, VerifyKey>();
  constructor(
    specs: readonly PublishKeySpec[],
    private readonly opts: VerifierOptions = {},
  ) {
    for (const s of specs) {
      this.keys.set(s.id, s.algorithm === 'ed25519' ? { algorithm: 'ed25519', key: ed25519PublicKey(s.material) } : { algorithm: 'hmac-sha256', secret: s.material });
    }
  }
  get size(): number {
    return this.keys.size;
  }
  async verify(req: SignedRequest, method: string, target: string, body: Uint8Array): Promise<void> {
    const k = this.keys.get(req.keyId);
    if (k === undefined) throw new PushError(Errors.AUTH_UNKNOWN_KEY, `Key id ${JSON.stringify(req.keyId)}.`);
    const canonical = canonicalString({ method, target, timestamp: req.timestamp, nonce: req.nonce, keyId: req.keyId, bodySha256: sha256Hex(body) });
    let ok: boolean;
    if (k.algorithm === 'ed25519') {
      const data = Buffer.from(canonical, 'utf8');
      ok = req.signature.length === 64 && (this.opts.inline?.() === true ? cryptoVerify(null, data, k.key, req.signature) : await ed25519Verify(k.key, data, req.signature));
    } else {
      const expected = createHmac('sha256', k.secret).update(canonical, 'utf8').digest();
      ok = req.signature.length === expected.length && timingSafeEqual(expected, req.signature);
    }
    if (!ok) throw new PushError(Errors.AUTH_BAD_SIGNATURE);
  }
}

function ed25519Verify(key: KeyObject, data: Buffer, signature: Buffer): Promise<boolean> {
  return new Promise((resolve, reject) => cryptoVerify(null, data, key, signature, (err, ok) => (err ? reject(err) : resolve(ok))));
}

/** Pure timestamp window check, shared by the memory backend and mirrored by the Redis script. */
export function timestampFresh(timestamp: number, nowSeconds: number, maxSkewSeconds: number): boolean {
  return Math.abs(timestamp - nowSeconds) <= maxSkewSeconds;
}
