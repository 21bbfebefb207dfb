import { createHmac, timingSafeEqual } from 'node:crypto';
import { Errors, PushError } from './errors.js';

/**
 * Channel ids are 32 lowercase hex characters (an md5 in Bitrix portals, 128 random bits when this
 * server mints them). Subscribers prove they were given a channel by the portal with a signature:
 * lowercase hex HMAC over the id (or over "priv:pub" for the version-4 pair form), keyed with the
 * secret shared by portal and server (reference section 2).
 */
export const CHANNEL_ID_RE = /^[a-f0-9]{32}$/;
const PART_RE = /^([a-f0-9]{32})(?::([a-f0-9]{32}))?(?:\.([a-f0-9]{32,128}))?$/;

export type SignatureAlgorithm = 'sha1' | 'sha256' | 'sha512' | 'md5';
export const SIGNATURE_ALGORITHMS: readonly SignatureAlgorithm[] = ['sha1', 'sha256', 'sha512', 'md5'];

export interface ChannelSecret {
  readonly key: string;
  readonly algorithm: SignatureAlgorithm;
}

/** One subscribed channel: the private id that receives messages, and the paired public id if given. */
export interface SubscribedChannel {
  readonly privateId: string;
  readonly publicId: string | null;
}

export function isChannelId(value: string): boolean {
  return CHANNEL_ID_RE.test(value);
}

export function signature(data: string, secret: ChannelSecret): string {
  return createHmac(secret.algorithm, secret.key).update(data).digest('hex');
}

/** `<id>.<sig>`, the form a portal hands to its clients for private and shared channels. */
export function signChannel(id: string, secret: ChannelSecret): string {
  return `${id}.${signature(id, secret)}`;
}

/** `<priv>:<pub>.<sig>`, the version-4 private channel form; the signature covers "priv:pub". */
export function signChannelPair(privateId: string, publicId: string, secret: ChannelSecret): string {
  const pair = `${privateId}:${publicId}`;
  return `${pair}.${signature(pair, secret)}`;
}

/** `<pub>.<sig>` where the signature covers "public:<pub>"; given to other users for client publishing. */
export function signPublicChannel(publicId: string, secret: ChannelSecret): string {
  return `${publicId}.${signature(`public:${publicId}`, secret)}`;
}

/** Constant-time comparison of two hex strings; a length mismatch is not secret (it is the algorithm). */
export function hexEqual(expected: string, given: string): boolean {
  if (expected.length !== given.length) return false;
  return timingSafeEqual(Buffer.from(expected, 'latin1'), Buffer.from(given, 'latin1'));
}

function splitList(raw: string): string[] {
  // Clients send "/" either raw or as %2F; by the time we get here the query was decoded once.
  // Empty parts (a trailing slash) are tolerated, they name nothing.
  return raw.split('/').filter((part) => part.length > 0);
}

/**
 * Parses a subscriber's CHANNEL_ID list. Every part must be signed correctly; one bad part rejects
 * the whole list (as both Bitrix servers do), so a client never half-subscribes.
 * Duplicates (old SDKs sent `priv/priv/shared`) collapse to one subscription.
 */
export function parseSubscriberChannels(
  raw: string | null,
  secret: ChannelSecret,
  maxChannels: number,
): SubscribedChannel[] {
  // No detail text here: official clients compare the close reason with Bitrix's exact string.
  if (raw === null || raw === '') throw new PushError(Errors.WRONG_CHANNEL_ID);
  const parts = splitList(raw);
  if (parts.length === 0) throw new PushError(Errors.WRONG_CHANNEL_ID);
  if (parts.length > maxChannels) throw new PushError(Errors.WRONG_CHANNEL_ID);
  const seen = new Map<string, SubscribedChannel>();
  for (const part of parts) {
    const m = PART_RE.exec(part);
    if (m === null) throw new PushError(Errors.WRONG_CHANNEL_ID);
    const privateId = m[1] as string;
    const publicId = m[2] ?? null;
    const sig = m[3];
    if (sig === undefined) throw new PushError(Errors.WRONG_CHANNEL_ID);
    const signed = publicId === null ? privateId : `${privateId}:${publicId}`;
    if (!hexEqual(signature(signed, secret), sig)) throw new PushError(Errors.WRONG_CHANNEL_ID);
    const prev = seen.get(privateId);
    if (prev === undefined || (prev.publicId === null && publicId !== null)) seen.set(privateId, { privateId, publicId });
  }
  return [...seen.values()];
}

/**
 * Parses a publisher's CHANNEL_ID list (trusted side). Portals send bare ids; a signed form is
 * accepted and its signature ignored, as the Bitrix servers do for /pub/. The private id is the target.
 */
export function parsePublisherChannels(raw: string | null, maxChannels: number): string[] {
  // 4017 and 4018 carry exactly the Bitrix 2.0 text (monitoring and portals compare it); what to do
  // about them is in docs/errors.md.
  if (raw === null || raw === '') throw new PushError(Errors.NO_CHANNELS);
  const parts = splitList(raw);
  if (parts.length === 0) throw new PushError(Errors.NO_CHANNELS);
  if (parts.length > maxChannels) throw new PushError(Errors.TOO_MANY_CHANNELS);
  const ids = new Set<string>();
  for (const part of parts) {
    const m = PART_RE.exec(part);
    if (m === null) throw new PushError(Errors.WRONG_CHANNEL_ID, `Channel ids are 32 lowercase hex characters; got ${JSON.stringify(part.slice(0, 80))}.`);
    ids.add(m[1] as string);
  }
  return [...ids];
}

/**
 * The sender of a client publish without a WebSocket (`POST /bitrix/rest/?CHANNEL_ID=...`): the
 * first public id of a correctly signed list. As in Bitrix 2.0, a list that does not check out
 * (unsigned, wrongly signed, malformed) names no public id, so the refusal is always
 * `4012: Public Channel Id is Required.`, whatever was wrong with it.
 */
export function restSenderPublicId(raw: string | null, secret: ChannelSecret, maxChannels: number): string {
  let subs: SubscribedChannel[];
  try {
    subs = parseSubscriberChannels(raw, secret, maxChannels);
  } catch (err) {
    if (err instanceof PushError) throw new PushError(Errors.PUBLIC_ID_REQUIRED);
    throw err;
  }
  for (const s of subs) if (s.publicId !== null) return s.publicId;
  throw new PushError(Errors.PUBLIC_ID_REQUIRED);
}
