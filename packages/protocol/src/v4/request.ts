import { hexEqual, signature, type ChannelSecret } from '../channel-id.js';
import { Errors, PushError } from '../errors.js';
import { checkBody, checkFanout, parseTypeHeader, typeFromBody, type NewMessage } from '../publish-request.js';
import { effectiveTtl, type TtlPolicy } from '../ttl-policy.js';
import { bytesToHex, V4Types } from './codec.js';

/**
 * Validation of protocol-version-4 requests (`RequestBatch`), the same rules for the trusted portal
 * side (`POST /pub?binaryMode=true`) and the untrusted client side (WebSocket binary frames and
 * `POST /bitrix/rest/`), in the order the Bitrix push server 2.0 checks them, with its codes
 * (reference sections 4.2 and 5.3). Pure: bytes in, a validated request or a PushError out.
 */

/** Channel key of a public channel in the store and broker, kept apart from private/shared ids. */
export function publicChannelKey(publicId: string): string {
  return `pub:${publicId}`;
}

export interface ChannelRef {
  /** 32 lowercase hex characters. */
  readonly id: string;
  readonly isPrivate: boolean;
}

export interface V4IncomingMessage {
  readonly receivers: readonly ChannelRef[];
  readonly body: string;
  readonly expiry: number;
  readonly type: string;
}

export type V4Request =
  | { readonly kind: 'incomingMessages'; readonly messages: readonly V4IncomingMessage[] }
  | { readonly kind: 'channelStats'; readonly channels: readonly ChannelRef[] }
  | { readonly kind: 'serverStats' };

export interface V4Limits {
  /** Messages per request (Bitrix `maxMessagesPerRequest`, 100). */
  readonly maxMessages: number;
  /** Receivers per message and channels per stats request (Bitrix `maxChannelsPerRequest`, 100). */
  readonly maxChannels: number;
  /** Body bytes x receivers per request (PUSH_MAX_FANOUT_BYTES; see fanoutBytes). */
  readonly maxFanoutBytes: number;
}

/** Trusted = the portal; untrusted = a client, whose receivers must be signed public channels. */
export type V4Trust = { readonly trusted: true } | { readonly trusted: false; readonly secret: ChannelSecret };

interface RawChannel {
  id?: Uint8Array;
  isPrivate?: boolean;
  signature?: Uint8Array;
}
interface RawRequest {
  command?: string;
  incomingMessages?: { messages?: Array<{ receivers?: RawChannel[]; body?: string; expiry?: number; type?: string }> };
  channelStats?: { channels?: RawChannel[] };
}

const CLIENT_COMMANDS = new Set(['incomingMessages', 'channelStats']);

function decodeFirstRequest(bytes: Uint8Array): RawRequest {
  let batch: { requests?: RawRequest[] };
  try {
    const msg = V4Types.RequestBatch.decode(bytes);
    batch = V4Types.RequestBatch.toObject(msg, { oneofs: true, arrays: true }) as { requests?: RawRequest[] };
  } catch {
    // Truncated or malformed protobuf: protobufjs throws; the request is refused as a whole.
    throw new PushError(Errors.WRONG_REQUEST_DATA);
  }
  // Bitrix reads only requests[0]; the portal sends exactly one request per call.
  const first = batch.requests?.[0];
  if (first === undefined || typeof first.command !== 'string') throw new PushError(Errors.WRONG_REQUEST_DATA);
  return first;
}

function validateChannels(list: RawChannel[] | undefined, trust: V4Trust, limits: V4Limits): ChannelRef[] {
  if (list === undefined || list.length === 0) throw new PushError(Errors.NO_CHANNELS);
  if (list.length > limits.maxChannels) throw new PushError(Errors.TOO_MANY_CHANNELS);
  return list.map((ch) => {
    const id = ch.id ?? new Uint8Array(0);
    // Bitrix checks the 16-byte length only on the trusted side; a client's id is covered by its
    // signature, but an id of the wrong length could never be a channel either.
    if (id.byteLength !== 16) throw new PushError(Errors.INVALID_CHANNEL_ID);
    const hex = bytesToHex(id);
    const isPrivate = ch.isPrivate === true;
    if (!trust.trusted) {
      if (isPrivate) throw new PushError(Errors.PRIVATE_CHANNEL_NOT_ALLOWED);
      const given = ch.signature === undefined ? '' : bytesToHex(ch.signature);
      if (!hexEqual(signature(`public:${hex}`, trust.secret), given)) throw new PushError(Errors.INVALID_CHANNEL_SIGNATURE);
    }
    return { id: hex, isPrivate };
  });
}

/** Decodes and validates a RequestBatch. Throws PushError with the Bitrix code on any problem. */
export function parseV4Request(bytes: Uint8Array, trust: V4Trust, limits: V4Limits): V4Request {
  if (bytes.byteLength === 0) throw new PushError(Errors.WRONG_REQUEST_DATA);
  const req = decodeFirstRequest(bytes);
  const command = req.command as string;
  if (!trust.trusted && !CLIENT_COMMANDS.has(command)) throw new PushError(Errors.COMMAND_NOT_ALLOWED);
  switch (command) {
    case 'incomingMessages': {
      const messages = req.incomingMessages?.messages ?? [];
      if (messages.length > limits.maxMessages) throw new PushError(Errors.TOO_MANY_MESSAGES);
      // An empty list is valid and does nothing, as in Bitrix (only "more than the limit" is an
      // error there, and no code exists for "none"): callers answer it with the usual empty 200
      // without touching the store (docs/protocol-v4.md).
      const incoming = messages.map((m) => ({
        receivers: validateChannels(m.receivers, trust, limits),
        body: m.body ?? '',
        expiry: m.expiry ?? 0,
        type: m.type ?? '',
      }));
      checkFanout(incoming.map((m) => ({ body: m.body, channels: m.receivers })), limits.maxFanoutBytes);
      return { kind: 'incomingMessages', messages: incoming };
    }
    case 'channelStats':
      return { kind: 'channelStats', channels: validateChannels(req.channelStats?.channels, trust, limits) };
    case 'serverStats':
      return { kind: 'serverStats' };
    default:
      throw new PushError(Errors.WRONG_REQUEST_COMMAND);
  }
}

/**
 * What a request makes the server do, in the unit client rate limits count (PUSH_CLIENT_RATE):
 * one per receiver of every message (each is a store append and a pub/sub message), one per
 * channel asked about, one for anything else.
 */
export function requestCost(req: V4Request): number {
  switch (req.kind) {
    case 'incomingMessages': {
      let n = 0;
      for (const m of req.messages) n += m.receivers.length;
      return n;
    }
    case 'channelStats':
      return req.channels.length;
    default:
      return 1;
  }
}

/**
 * Turns validated incoming messages into store messages. Private receivers are channel ids as
 * they are; public receivers use `publicChannelKey`, which listeners serving the owner subscribe to.
 * `expiry` 0 means live delivery only (Bitrix 2.0 stores nothing then; clients publish with 0).
 */
export function v4ToNewMessages(messages: readonly V4IncomingMessage[], ttl: TtlPolicy): NewMessage[] {
  return messages.map((m) => {
    const { body, parsed } = checkBody(m.body);
    let type: string;
    try {
      type = parseTypeHeader(m.type) ?? typeFromBody(parsed);
    } catch {
      // `type` only feeds statistics in Bitrix: an odd one is replaced, not refused.
      type = typeFromBody(parsed);
    }
    const channels = [...new Set(m.receivers.map((r) => (r.isPrivate ? r.id : publicChannelKey(r.id))))];
    return { channels, body, type, ttl: effectiveTtl(ttl, type, m.expiry) };
  });
}
