import { CHANNEL_ID_RE, hexEqual, signature, type ChannelSecret } from '../channel-id.js';
import { Errors, PushError } from '../errors.js';
import { checkFanout } from '../publish-request.js';
import type { StoredMessage } from '../record.js';
import type { ChannelRef, V4IncomingMessage, V4Limits, V4Request } from '../v4/request.js';

/**
 * Protocol 5: JSON-RPC 2.0 over WebSocket text frames (and long-poll bodies), as the official
 * client (`@bitrix24/b24jssdk` PullClient with `server.version >= 5`) speaks it; docs/protocol-v5.md.
 * Pure: client frames in, validated calls or JSON-RPC errors out; stored messages in, frames out.
 */

export type RpcId = number | string | null;

export interface RpcError {
  readonly code: number;
  readonly message: string;
}

/** The JSON-RPC 2.0 error codes (the client knows them by these numbers and texts). */
export const RpcErrors = {
  PARSE: { code: -32700, message: 'Parse error' },
  INVALID_REQUEST: { code: -32600, message: 'Invalid Request' },
  METHOD_NOT_FOUND: { code: -32601, message: 'Method not found' },
  INVALID_PARAMS: { code: -32602, message: 'Invalid params' },
  INTERNAL: { code: -32603, message: 'Internal error' },
} as const satisfies Record<string, RpcError>;

/** A refusal of one call. Push catalogue errors keep their code, with "<code>: <reason>" as message. */
export class RpcFailure extends Error {
  readonly error: RpcError;
  /** Seconds after which the same call may succeed (client rate limit), else undefined. */
  readonly retryAfterS: number | undefined;
  constructor(error: RpcError, detail?: string, retryAfterS?: number) {
    super(detail === undefined ? error.message : `${error.message}: ${detail}`);
    this.error = detail === undefined ? error : { code: error.code, message: `${error.message}: ${detail}` };
    this.retryAfterS = retryAfterS;
  }
  static fromPush(err: PushError): RpcFailure {
    return new RpcFailure({ code: err.spec.code, message: err.wire }, undefined, err.retryAfterS);
  }
}

/** The text frames the client sends besides JSON-RPC: its answer to our ping, and message acks. */
export const PING_FRAME = 'ping';
export const PONG_FRAME = 'pong';
const ACK_PREFIX = 'mack:';

/** A client's "mack:<mid>" frame (or long-poll POST body): an acknowledgement, nothing to do. */
export function isMessageAck(bytes: Uint8Array): boolean {
  return bytes.byteLength >= ACK_PREFIX.length && bytes.byteLength <= ACK_PREFIX.length + 64 && Buffer.from(bytes.subarray(0, ACK_PREFIX.length)).toString('latin1') === ACK_PREFIX;
}

export type RpcCall =
  | { readonly kind: 'call'; readonly id: RpcId | undefined; readonly method: string; readonly params: unknown }
  | { readonly kind: 'invalid'; readonly id: RpcId; readonly error: RpcError };

export type ClientFrame =
  | { readonly kind: 'pong' }
  | { readonly kind: 'ack'; readonly mid: string }
  | { readonly kind: 'rpc'; readonly batch: boolean; readonly calls: readonly RpcCall[] }
  /** Not JSON, or an empty batch: answered with this one error (id null), as JSON-RPC 2.0 says. */
  | { readonly kind: 'unparsable'; readonly error: RpcError };

function isId(v: unknown): v is RpcId {
  return v === null || typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));
}

function readCall(entry: unknown): RpcCall {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) return { kind: 'invalid', id: null, error: RpcErrors.INVALID_REQUEST };
  const o = entry as Record<string, unknown>;
  const id = o['id'];
  const idOk = id === undefined || isId(id);
  if (o['jsonrpc'] !== '2.0' || typeof o['method'] !== 'string' || !idOk) return { kind: 'invalid', id: idOk && id !== undefined ? id : null, error: RpcErrors.INVALID_REQUEST };
  const params = o['params'];
  if (params !== undefined && (params === null || typeof params !== 'object')) return { kind: 'invalid', id: id ?? null, error: RpcErrors.INVALID_REQUEST };
  return { kind: 'call', id: id as RpcId | undefined, method: o['method'], params: params ?? {} };
}

/** Reads one text frame from a protocol-5 client. `maxCalls` bounds a batch (4016 above it). */
export function parseClientFrame(text: string, maxCalls: number): ClientFrame {
  if (text === PONG_FRAME) return { kind: 'pong' };
  if (text.startsWith(ACK_PREFIX)) return { kind: 'ack', mid: text.slice(ACK_PREFIX.length) };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return { kind: 'unparsable', error: RpcErrors.PARSE };
  }
  if (!Array.isArray(doc)) return { kind: 'rpc', batch: false, calls: [readCall(doc)] };
  if (doc.length === 0) return { kind: 'unparsable', error: RpcErrors.INVALID_REQUEST };
  if (doc.length > maxCalls) {
    const e = new PushError(Errors.TOO_MANY_MESSAGES);
    return { kind: 'unparsable', error: { code: e.spec.code, message: e.wire } };
  }
  return { kind: 'rpc', batch: true, calls: doc.map(readCall) };
}

/** Channel key of a user's connections (token subscriptions with `sub`); has no lifecycle (':'). */
export function userChannelKey(userId: number | string): string {
  return `user:${userId}`;
}

/** Channel key on which a user's online/offline changes are announced to status subscribers. */
export function statusChannelKey(userId: number | string): string {
  return `status:${userId}`;
}

export type V5Call =
  /** `request` is a protocol-4 incomingMessages request: publishing shares the v4 path and rules. */
  | { readonly method: 'publish'; readonly request: V4Request & { kind: 'incomingMessages' }; readonly usesUsers: boolean }
  | { readonly method: 'getUsersLastSeen'; readonly users: readonly number[] }
  | { readonly method: 'ping' }
  | { readonly method: 'listChannels' }
  | { readonly method: 'subscribeStatusChange'; readonly userId: number }
  | { readonly method: 'unsubscribeStatusChange'; readonly userId: number };

export interface V5Context {
  readonly secret: ChannelSecret;
  readonly limits: V4Limits;
}

function invalidParams(detail: string): RpcFailure {
  return new RpcFailure(RpcErrors.INVALID_PARAMS, detail);
}

/**
 * A user id: a positive integer, or its decimal string (the official client re-subscribes status
 * changes after a reconnect with the ids it keeps as object keys, i.e. strings).
 */
function userId(v: unknown): number | null {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v > 0 ? v : null;
  if (typeof v === 'string' && /^[1-9][0-9]{0,15}$/.test(v)) return Number(v);
  return null;
}

function userList(v: unknown, name: string, max: number): number[] {
  const ids = Array.isArray(v) ? v.map(userId) : [null];
  if (ids.some((id) => id === null)) throw invalidParams(`"${name}" must be an array of user ids (positive integers)`);
  if (ids.length > max) throw RpcFailure.fromPush(new PushError(Errors.TOO_MANY_CHANNELS));
  return [...new Set(ids as number[])];
}

/** A public channel the sender names: "<publicId>.<signature>" or {publicId, signature}, signed like v4. */
function publicReceiver(entry: unknown, secret: ChannelSecret): ChannelRef {
  let id: unknown;
  let sig: unknown;
  if (typeof entry === 'string') [id, sig] = entry.split('.');
  else if (entry !== null && typeof entry === 'object') ({ publicId: id, signature: sig } = entry as Record<string, unknown>);
  if (typeof id !== 'string' || typeof sig !== 'string') throw invalidParams('"channelList" entries are "<publicId>.<signature>" or {"publicId","signature"}');
  if (!CHANNEL_ID_RE.test(id)) throw RpcFailure.fromPush(new PushError(Errors.INVALID_CHANNEL_ID));
  if (!hexEqual(signature(`public:${id}`, secret), sig)) throw RpcFailure.fromPush(new PushError(Errors.INVALID_CHANNEL_SIGNATURE));
  return { id, isPrivate: false };
}

function publishCall(p: Record<string, unknown>, ctx: V5Context): V5Call {
  if (!('body' in p) || p['body'] === undefined) throw invalidParams('"body" is missing');
  let body: string;
  try {
    body = JSON.stringify(p['body']);
  } catch {
    throw invalidParams('"body" is nested too deeply');
  }
  let expiry = 0;
  if (p['expiry'] !== undefined && p['expiry'] !== null) {
    const e = p['expiry'];
    if (typeof e !== 'number' || !Number.isSafeInteger(e) || e < 0) throw invalidParams('"expiry" must be a whole number of seconds, 0 or more');
    expiry = e;
  }
  const receivers: ChannelRef[] = [];
  let usesUsers = false;
  if (p['userList'] !== undefined) {
    // A user is addressed by its connections' user key (see userChannelKey); it is not a
    // protocol-4 channel id, so it goes through as a plain channel key.
    for (const u of userList(p['userList'], 'userList', ctx.limits.maxChannels)) receivers.push({ id: userChannelKey(u), isPrivate: true });
    usesUsers = receivers.length > 0;
  }
  if (p['channelList'] !== undefined) {
    if (!Array.isArray(p['channelList'])) throw invalidParams('"channelList" must be an array');
    for (const c of p['channelList']) receivers.push(publicReceiver(c, ctx.secret));
  }
  if (receivers.length === 0) throw RpcFailure.fromPush(new PushError(Errors.NO_CHANNELS));
  if (receivers.length > ctx.limits.maxChannels) throw RpcFailure.fromPush(new PushError(Errors.TOO_MANY_CHANNELS));
  const message: V4IncomingMessage = { receivers, body, expiry, type: '' };
  try {
    checkFanout([{ body, channels: receivers }], ctx.limits.maxFanoutBytes);
  } catch (err) {
    throw err instanceof PushError ? RpcFailure.fromPush(err) : err;
  }
  return { method: 'publish', request: { kind: 'incomingMessages', messages: [message] }, usesUsers };
}

function userIdParam(p: Record<string, unknown>): number {
  const id = userId(p['userId']);
  if (id === null) throw invalidParams('"userId" must be a user id (positive integer)');
  return id;
}

/** Validates one call's method and params. Throws RpcFailure. */
export function parseV5Call(method: string, params: unknown, ctx: V5Context): V5Call {
  const p = (params ?? {}) as Record<string, unknown>;
  if (Array.isArray(params) && method !== 'ping' && method !== 'listChannels') throw invalidParams('params must be an object');
  switch (method) {
    case 'publish':
      return publishCall(p, ctx);
    case 'getUsersLastSeen':
      return { method, users: userList(p['userList'], 'userList', ctx.limits.maxChannels) };
    case 'ping':
    case 'listChannels':
      return { method };
    case 'subscribeStatusChange':
    case 'unsubscribeStatusChange':
      return { method, userId: userIdParam(p) };
    default:
      throw new RpcFailure(RpcErrors.METHOD_NOT_FOUND);
  }
}

/** A response object; `undefined` id (a notification) gets no response at all (null returned). */
export function rpcResult(id: RpcId | undefined, result: unknown): string | null {
  return id === undefined ? null : JSON.stringify({ jsonrpc: '2.0', id, result });
}

export function rpcError(id: RpcId | undefined, error: RpcError): string | null {
  return id === undefined ? null : JSON.stringify({ jsonrpc: '2.0', id, error });
}

/** Several responses of one batch as one frame (JSON-RPC: an array; nothing when all were notifications). */
export function rpcBatch(responses: ReadonlyArray<string | null>, batch: boolean): string | null {
  const kept = responses.filter((r): r is string => r !== null);
  if (kept.length === 0) return null;
  return batch ? `[${kept.join(',')}]` : (kept[0] as string);
}

/**
 * The sender as the client sees it (`extra.sender`): 2 = the portal, 1 = a client; a client's id is
 * its public channel id, or for a token subscription its user id (stored as its user key).
 */
function senderJson(msg: StoredMessage): string {
  const id = msg.sender.id.startsWith('user:') ? msg.sender.id.slice('user:'.length) : msg.sender.id;
  return `{"type":${msg.sender.type},"id":${JSON.stringify(id)}}`;
}

/**
 * The body as delivered: server time goes into an object body's `extra` (`server_time` ISO and
 * `server_time_unix` seconds, from when the message was accepted) unless the publisher set it, as
 * the portal does; the client computes how old a message is from it. Other bodies go as they are.
 */
function bodyWithServerTime(msg: StoredMessage): string {
  if (!msg.body.startsWith('{')) return msg.body;
  try {
    const body = JSON.parse(msg.body) as Record<string, unknown>;
    const extra = body['extra'] !== null && typeof body['extra'] === 'object' && !Array.isArray(body['extra']) ? (body['extra'] as Record<string, unknown>) : {};
    if (extra['server_time_unix'] !== undefined) return msg.body;
    body['extra'] = { ...extra, server_time: new Date(msg.createdMs).toISOString(), server_time_unix: msg.createdMs / 1000 };
    return JSON.stringify(body);
  } catch {
    // Nested too deeply to re-encode: deliver it unchanged rather than not at all.
    return msg.body;
  }
}

/** One `incoming.message` notification (a complete JSON-RPC text frame on its own). */
export function encodeIncomingMessage(msg: StoredMessage): string {
  return `{"jsonrpc":"2.0","method":"incoming.message","params":{"mid":"${msg.mid}","body":${bodyWithServerTime(msg)},"sender":${senderJson(msg)}}}`;
}

/** Several notifications in one frame: a JSON-RPC batch (array), which the client handles in order. */
export function wrapIncomingMessages(frames: readonly Uint8Array[]): Uint8Array {
  if (frames.length === 1) return frames[0] as Uint8Array;
  const parts: Uint8Array[] = [Buffer.from('[')];
  frames.forEach((f, i) => {
    if (i > 0) parts.push(Buffer.from(','));
    parts.push(f);
  });
  parts.push(Buffer.from(']'));
  return Buffer.concat(parts);
}
