import {
  bareChannelKey,
  clientChannelKey,
  Errors,
  PING_FRAME,
  PushError,
  RpcFailure,
  parseClientFrame,
  parseV5Call,
  rpcBatch,
  rpcError,
  rpcResult,
  statusChannelKey,
  userChannelKey,
  type ErrorSpec,
  type RpcCall,
  type V5Call,
} from '@push/protocol';
import { usersLastSeen } from '@push/backend';
import type { Logger } from '@push/runtime';
import type { Connection, Hub, Transport } from '../hub.js';
import type { UserStatus } from '../user-status.js';
import { runClientRequest, type ClientRequestContext } from './binary.js';

/**
 * Protocol 5 over a WebSocket (docs/protocol-v5.md): the client's JSON-RPC text frames are
 * answered on the same socket; publishing follows the protocol-4 client publishing rules and
 * limits (runClientRequest); status subscriptions are extra hub connections on the watched users'
 * status keys whose frames go out on this socket.
 */

/** Sends "ping" this often; the client answers "pong" and reconnects after 20 s without a ping. */
export const JSON_RPC_PING_INTERVAL_MS = 10_000;

/** What a protocol-5 WebSocket needs besides its hub connection. */
export interface JsonRpcSession {
  /** The connection's channel keys (listChannels). */
  readonly channels: readonly string[];
  readonly publicId: string | null;
  readonly userId: string | null;
  /** Shared mode: the connection's portal; its status keys live in the portal's namespace. */
  readonly clientId: string | null;
  /** Watched users -> the hub connection on their status key (null while it opens). */
  readonly watching: Map<number, Connection | null>;
  closed: boolean;
}

export interface JsonRpcContext {
  readonly hub: Hub;
  readonly clientRequests: ClientRequestContext;
  readonly userStatus: UserStatus;
  readonly log: Logger;
}

/** Where responses go: the socket's own transport (so they share its backpressure policy). */
export interface ReplySink {
  write(frame: Uint8Array): boolean;
  end(spec: ErrorSpec): void;
}

export function newSession(channels: readonly string[], publicId: string | null, userId: string | null, clientId: string | null = null): JsonRpcSession {
  return { channels, publicId, userId, clientId, watching: new Map(), closed: false };
}

/** A status subscription's hub transport: its frames go out on the subscriber's socket. */
class StatusTransport implements Transport {
  readonly kind = 'sub';
  readonly format = 'jsonrpc';
  constructor(private readonly sink: ReplySink) {}
  write(frame: Uint8Array): boolean {
    return this.sink.write(frame);
  }
  end(spec: ErrorSpec): void {
    this.sink.end(spec);
  }
}

/** Client-visible channel ids: plain ids and public ids as they are, a user as `user:<id>`. */
function listChannels(session: JsonRpcSession): string[] {
  // In shared mode the keys are in the portal's namespace; the client knows its own names only.
  return session.channels.map(bareChannelKey).map((c) => (c.startsWith('pub:') ? c.slice('pub:'.length) : c));
}

async function watch(userId: number, session: JsonRpcSession, sink: ReplySink, ctx: JsonRpcContext): Promise<void> {
  if (session.watching.has(userId)) return;
  session.watching.set(userId, null);
  try {
    const key = session.clientId === null ? statusChannelKey(userId) : clientChannelKey(session.clientId, statusChannelKey(userId));
    const { conn } = await ctx.hub.open([key], new StatusTransport(sink), null);
    // Unsubscribed or gone while it opened: let go at once.
    if (session.closed || !session.watching.has(userId)) ctx.hub.close(conn);
    else session.watching.set(userId, conn);
  } catch (err) {
    session.watching.delete(userId);
    throw err;
  }
}

function unwatch(userId: number, session: JsonRpcSession, ctx: JsonRpcContext): void {
  const conn = session.watching.get(userId);
  session.watching.delete(userId);
  if (conn !== null && conn !== undefined) ctx.hub.close(conn);
}

/** Ends everything the session holds besides its main connection (the socket closed). */
export function closeSession(session: JsonRpcSession, ctx: JsonRpcContext): void {
  session.closed = true;
  for (const userId of [...session.watching.keys()]) unwatch(userId, session, ctx);
  if (session.userId !== null) ctx.userStatus.closed(session.userId, session.clientId);
}

async function execute(call: V5Call, session: JsonRpcSession, sink: ReplySink, ctx: JsonRpcContext): Promise<unknown> {
  switch (call.method) {
    case 'publish': {
      // The same identity rule as protocol 4: a client publishes as its public id; a token
      // subscription without one publishes as its user.
      const sender = session.publicId ?? (session.userId !== null ? userChannelKey(session.userId) : null);
      if (sender === null) throw new PushError(Errors.PUBLIC_ID_REQUIRED);
      await runClientRequest(call.request, sender, ctx.clientRequests);
      return {};
    }
    case 'getUsersLastSeen':
      return usersLastSeen(ctx.clientRequests.presence, call.users);
    case 'ping':
      return {};
    case 'listChannels':
      return listChannels(session);
    case 'subscribeStatusChange':
      await watch(call.userId, session, sink, ctx);
      return {};
    case 'unsubscribeStatusChange':
      unwatch(call.userId, session, ctx);
      return {};
  }
}

async function answer(call: RpcCall, session: JsonRpcSession, sink: ReplySink, ctx: JsonRpcContext): Promise<string | null> {
  if (call.kind === 'invalid') return rpcError(call.id, call.error);
  try {
    const v5 = parseV5Call(call.method, call.params, { secret: ctx.clientRequests.secret, limits: ctx.clientRequests.limits });
    return rpcResult(call.id, await execute(v5, session, sink, ctx));
  } catch (err) {
    if (err instanceof RpcFailure) return rpcError(call.id, err.error);
    if (err instanceof PushError) return rpcError(call.id, RpcFailure.fromPush(err).error);
    ctx.log.warn({ err: { message: (err as Error).message } }, 'json-rpc call failed: store unavailable');
    return rpcError(call.id, RpcFailure.fromPush(new PushError(Errors.STORE_UNAVAILABLE)).error);
  }
}

/**
 * One text frame from a protocol-5 client. Bad requests get JSON-RPC error responses and the
 * socket stays open (unlike protocol-4 binary frames, whose only answer is a close): the client
 * rejects that one call's promise. Calls of a batch run in order and are answered in one frame.
 */
export async function handleJsonRpcText(text: string, session: JsonRpcSession, sink: ReplySink, ctx: JsonRpcContext): Promise<void> {
  const frame = parseClientFrame(text, ctx.clientRequests.limits.maxMessages);
  switch (frame.kind) {
    case 'pong':
    case 'ack':
      // The socket's idle timer was reset by the frame itself; acks need nothing (delivery is
      // tracked by mid, which the client sends when it reconnects).
      return;
    case 'unparsable': {
      const reply = rpcError(null, frame.error);
      if (reply !== null && !session.closed) sink.write(Buffer.from(reply));
      return;
    }
    case 'rpc': {
      const replies: Array<string | null> = [];
      for (const call of frame.calls) replies.push(await answer(call, session, sink, ctx));
      const out = rpcBatch(replies, frame.batch);
      if (out !== null && !session.closed) sink.write(Buffer.from(out));
    }
  }
}

/** The server's keep-alive for protocol-5 clients (see JSON_RPC_PING_INTERVAL_MS). */
export const PING_BYTES = Buffer.from(PING_FRAME);
