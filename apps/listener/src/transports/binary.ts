import { Errors, PushError, SenderType, parseV4Request, publicChannelKey, type ChannelSecret, type SubscribedChannel, type V4Limits, type V4Request } from '@push/protocol';
import { executeV4Request, type V4Deps } from '@push/backend';
import { chargeClientRequest, type KeyedRateLimiter } from '@push/runtime';
import type { FrameFormat } from '../hub.js';

/**
 * Protocol-version-4 parts of the subscriber transports: frame format selection, the channel keys
 * a `priv:pub` subscription listens on, and client publishing over WebSocket binary frames.
 */

/**
 * `jsonRpc=true` selects protocol-5 JSON-RPC frames, `binaryMode=true` protobuf ResponseBatch frames
 * (reference 5, 6.2, 6.3); anything else is text. The official client sends at most one of them.
 */
export function frameFormat(query: ReadonlyMap<string, string>): FrameFormat {
  if (query.get('jsonRpc') === 'true') return 'jsonrpc';
  return query.get('binaryMode') === 'true' ? 'protobuf' : 'text';
}

/**
 * Channel keys a connection listens on: every private/shared id, plus the public channel key of
 * each `priv:pub` pair. Client messages to a public id are published on that key, so every listener
 * process that serves a live `priv:pub` subscription receives them and delivers to its owners: the
 * public-to-private mapping happens where the subscriptions are, across any number of processes.
 */
export function subscriptionKeys(subs: readonly SubscribedChannel[]): string[] {
  const keys: string[] = [];
  for (const s of subs) {
    keys.push(s.privateId);
    if (s.publicId !== null) keys.push(publicChannelKey(s.publicId));
  }
  return keys;
}

/** The first public id names the connection when it publishes (Bitrix "pub channel id"). */
export function senderPublicId(subs: readonly SubscribedChannel[]): string | null {
  for (const s of subs) if (s.publicId !== null) return s.publicId;
  return null;
}

export interface ClientRequestContext extends V4Deps {
  readonly secret: ChannelSecret;
  readonly limits: V4Limits;
  /** PUSH_CLIENT_RATE per sender public id in this process; null = unlimited. */
  readonly limiter: KeyedRateLimiter | null;
  /**
   * Shared mode: the portal, so that its senders have buckets of their own (user 17 of one portal
   * must not spend user 17's budget of another).
   */
  readonly senderScope?: string;
}

/**
 * One binary frame from a client: validated as an untrusted RequestBatch and carried out with
 * sender CLIENT and the connection's public id. Resolves with response bytes (channel stats) or
 * null; rejects with a PushError whose code closes the socket.
 */
export async function clientRequest(bytes: Uint8Array, publicId: string | null, ctx: ClientRequestContext): Promise<Uint8Array | null> {
  // Bitrix checks for the public id before even decoding the request.
  if (publicId === null) throw new PushError(Errors.PUBLIC_ID_REQUIRED);
  const req = parseV4Request(bytes, { trusted: false, secret: ctx.secret }, ctx.limits);
  // An empty incomingMessages list does nothing (as in Bitrix) and needs no answer.
  if (req.kind === 'incomingMessages' && req.messages.length === 0) return null;
  return runClientRequest(req, publicId, ctx);
}

/**
 * Carries out a validated client request as `sender` (a public id, or a protocol-5 user key): the
 * one place client publishing is rate limited (PUSH_CLIENT_RATE per sender) and stored with sender
 * CLIENT, shared by protocol-4 binary frames and protocol-5 `publish` calls.
 */
export function runClientRequest(req: V4Request, sender: string, ctx: ClientRequestContext): Promise<Uint8Array | null> {
  chargeClientRequest(ctx.limiter, ctx.senderScope === undefined ? sender : `${ctx.senderScope} ${sender}`, req);
  return executeV4Request(req, { type: SenderType.CLIENT, id: sender }, ctx);
}

