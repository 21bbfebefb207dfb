import { clientChannelKey, parseSubscriberChannels, userChannelKey, verifySubscriptionToken, type ChannelSecret } from '@push/protocol';
import { frameFormat, senderPublicId, subscriptionKeys } from './binary.js';
import type { FrameFormat } from '../frame-codecs.js';

/**
 * What a subscriber asked for, read from its query: the channel keys it listens on, how it wants
 * its frames, and who it is when it publishes. Either `CHANNEL_ID` (signed channel ids, protocol
 * 3/4, and 5 when the portal hands out ids) or `token` (a subscription JWT, protocol 5): a token
 * wins when both are given, as the official client sends only one of them.
 */
export interface Subscription {
  readonly channels: string[];
  readonly format: FrameFormat;
  /** First public id of a `priv:pub` pair: the sender identity of client publishing (v4 rules). */
  readonly publicId: string | null;
  /** The token's user (`sub`): its connections also listen on the user key (protocol 5). */
  readonly userId: string | null;
}

export interface SubscriptionOptions {
  readonly secret: ChannelSecret;
  readonly maxChannels: number;
}

/**
 * Shared mode: the subscription's portal (its key is `opts.secret`, which also checks a protocol-5
 * token). Its channel keys, user key included, are put in the portal's namespace, so its
 * connections hear only its own channels; the public id and user id (its sender identity) stay
 * the portal's own names.
 */
export function parseClientSubscription(query: ReadonlyMap<string, string>, opts: SubscriptionOptions, clientId: string | null, nowMs = Date.now()): Subscription {
  if (clientId === null) return parseSubscription(query, opts, nowMs);
  const sub = parseSubscription(query, opts, nowMs);
  return { ...sub, channels: sub.channels.map((c) => clientChannelKey(clientId, c)) };
}

/**
 * Portal and server clocks may differ a little: a token issued "in the future" by up to this much
 * is accepted (expiry is checked without it; the client renews its config before that).
 */
const TOKEN_LEEWAY_S = 60;

/** Throws PushError (4010, with a detail for tokens) when the request names no valid subscription. */
export function parseSubscription(query: ReadonlyMap<string, string>, opts: SubscriptionOptions, nowMs = Date.now()): Subscription {
  const format = frameFormat(query);
  const token = query.get('token');
  if (token !== undefined && token !== '') {
    const claims = verifySubscriptionToken(token, opts.secret.key, Math.floor(nowMs / 1000), { maxChannels: opts.maxChannels, leewayS: TOKEN_LEEWAY_S });
    // Token channel ids are bare ids (the portal signed the token instead of each id); a guest's
    // public id is among them but cannot be told apart, so every id listens as a plain channel.
    const channels = [...claims.chan];
    if (claims.sub !== null) channels.push(userChannelKey(claims.sub));
    return { channels, format, publicId: null, userId: claims.sub };
  }
  const subs = parseSubscriberChannels(query.get('CHANNEL_ID') ?? null, opts.secret, opts.maxChannels);
  return { channels: subscriptionKeys(subs), format, publicId: senderPublicId(subs), userId: null };
}
