import { createHash } from 'node:crypto';
import { Errors, PushError } from './errors.js';
import { encodeRecordTail, type SenderInfo } from './record.js';
import type { NewMessage } from './publish-request.js';

/**
 * Publish identity (docs/reliability.md, "Publish identity"). A signed request is identified by its
 * key id and nonce; an unsigned one by the optional `X-Push-Request-Id` header, whose format is
 * checked here. A request whose identity was already carried out within the replay window gets the
 * original outcome instead of being stored again, which makes retries after an unknown outcome safe.
 */
export const REQUEST_ID_HEADER = 'x-push-request-id';

const REQUEST_ID = /^[A-Za-z0-9._:-]{8,64}$/;

/**
 * The header's value as the request identity: null when absent (''), the value when well-formed.
 * Throws 400 4132 otherwise, before anything is stored.
 */
export function parseRequestId(header: string): string | null {
  if (header === '') return null;
  if (!REQUEST_ID.test(header)) throw new PushError(Errors.INVALID_REQUEST_ID, `Got ${JSON.stringify(header.slice(0, 80))}${header.length > 80 ? '...' : ''} (${header.length} characters).`);
  return header;
}

/**
 * Digest of what a publish would store and announce: every message's channels, TTL, type, body and
 * the sender. Two requests with one identity are "the same request" exactly when their digests
 * match; a retry through another path (`/pub` or `/bitrix/pub/`) or another publisher matches. 128
 * bits of SHA-256 in hex: a collision between two different publishes of one identity is not a
 * practical concern.
 */
export function publishFingerprint(messages: readonly NewMessage[], sender: SenderInfo): string {
  const h = createHash('sha256');
  for (const m of messages) {
    // The record tail holds TTL, type, sender and body, tab-separated with the body last; the
    // channels follow, each closed by a separator a channel key cannot contain.
    h.update(encodeRecordTail(m.ttl, m.type, sender, m.body));
    h.update('\n');
    for (const c of m.channels) h.update(`${c}\n`);
    h.update('\u0000');
  }
  return h.digest('hex').slice(0, 32);
}
