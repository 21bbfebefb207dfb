import { randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import { KEY_ID_RE, MIN_HMAC_SECRET_CHARS, hmacSignHex, type PublishKeyAlgorithm } from '@push/protocol';

/** A key file as `pushctl keygen` writes it (and the PHP client reads it). Contains the secret. */
export type KeyFile =
  | { readonly keyId: string; readonly algorithm: 'ed25519'; readonly publicKey: string; readonly secretKey: string }
  | { readonly keyId: string; readonly algorithm: 'hmac-sha256'; readonly secret: string };

export interface SigningKey {
  readonly keyId: string;
  readonly algorithm: PublishKeyAlgorithm;
  /** Ed25519: base64 public key; HMAC: the secret (both go into the server's key ring entry). */
  readonly serverMaterial: string;
  sign(canonical: string): string;
}

function fromFile(file: KeyFile): SigningKey {
  if (file.algorithm === 'ed25519') {
    const secret = Buffer.from(file.secretKey, 'base64');
    if (secret.length !== 64) throw new Error('secretKey must be 64 bytes of base64 (tweetnacl/sodium secret key)');
    // tweetnacl here for portability (the server verifies with node:crypto; the bytes are identical).
    return { keyId: file.keyId, algorithm: 'ed25519', serverMaterial: file.publicKey, sign: (c) => Buffer.from(nacl.sign.detached(Buffer.from(c, 'utf8'), secret)).toString('hex') };
  }
  const secret = Buffer.from(file.secret, 'utf8');
  return { keyId: file.keyId, algorithm: 'hmac-sha256', serverMaterial: file.secret, sign: (c) => hmacSignHex(secret, c) };
}

export function keyFromJson(text: string): SigningKey {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error('not JSON (expected the file written by "pushctl keygen")');
  }
  const o = raw as Record<string, unknown>;
  if (typeof o['keyId'] !== 'string' || !KEY_ID_RE.test(o['keyId'])) throw new Error('keyId missing or not 1-64 characters from A-Z a-z 0-9 _ . -');
  if (o['algorithm'] === 'ed25519' && typeof o['secretKey'] === 'string' && typeof o['publicKey'] === 'string') {
    return fromFile({ keyId: o['keyId'], algorithm: 'ed25519', publicKey: o['publicKey'], secretKey: o['secretKey'] });
  }
  if (o['algorithm'] === 'hmac-sha256' && typeof o['secret'] === 'string' && o['secret'].length >= MIN_HMAC_SECRET_CHARS) {
    return fromFile({ keyId: o['keyId'], algorithm: 'hmac-sha256', secret: o['secret'] });
  }
  throw new Error('expected {"keyId","algorithm":"ed25519","publicKey","secretKey"} or {"keyId","algorithm":"hmac-sha256","secret" (32+ characters)}');
}

export function generateKey(keyId: string, algorithm: PublishKeyAlgorithm): { file: KeyFile; key: SigningKey } {
  if (!KEY_ID_RE.test(keyId)) throw new Error('key id must be 1-64 characters from A-Z a-z 0-9 _ . -');
  let file: KeyFile;
  if (algorithm === 'ed25519') {
    const kp = nacl.sign.keyPair();
    file = { keyId, algorithm, publicKey: Buffer.from(kp.publicKey).toString('base64'), secretKey: Buffer.from(kp.secretKey).toString('base64') };
  } else {
    file = { keyId, algorithm, secret: randomBytes(32).toString('base64url') };
  }
  return { file, key: fromFile(file) };
}

/** The server's PUSH_PUBLISH_KEYS entry for a key. */
export function ringEntry(key: SigningKey): string {
  return `${key.keyId}:${key.algorithm}:${key.serverMaterial}`;
}
