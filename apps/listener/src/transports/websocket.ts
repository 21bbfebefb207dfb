import { Errors, PushError, errorText, parseMid, type ChannelSecret, type ErrorSpec, type OriginPolicy } from '@push/protocol';
import { Exchange, parseQuery, refuseForeignOrigin, type HttpRequest, type HttpResponse, type Logger, type WebSocket } from '@push/runtime';
import type { Connection, FrameFormat, Hub, Transport } from '../hub.js';
import { FRAME_CODECS } from '../frame-codecs.js';
import type { UserStatus } from '../user-status.js';
import { clientRequest, frameFormat, type ClientRequestContext } from './binary.js';
import { closeSession, handleJsonRpcText, newSession, type JsonRpcSession } from './json-rpc.js';
import { parseClientSubscription } from './subscription.js';
import type { SubscriberClients, SubscriberScope } from '../subscriber-clients.js';
import { scopeToClient } from '@push/backend';

export interface WsUserData {
  channels: string[] | null;
  format: FrameFormat;
  /** The connection's own public id (first `priv:pub` pair): its identity when it publishes. */
  publicId: string | null;
  /** The protocol-5 token's user, if any (status announcements, publishing identity). */
  userId: string | null;
  /** Protocol-5 (jsonRpc=true) state: status subscriptions and what listChannels reports. */
  session: JsonRpcSession | null;
  rejection: PushError | null;
  mid: string | null;
  conn: Connection | null;
  transport: WsTransport | null;
  /** Client publishing for this connection: its portal's view of the backend in shared mode. */
  requests: ClientRequestContext;
  /** Gives back the portal's connection slot (shared mode); a no-op in personal mode. */
  release: () => void;
  /** Shared mode: the connection's portal (null in personal mode). */
  clientId: string | null;
}

export interface WebSocketOptions {
  readonly hub: Hub;
  readonly secret: ChannelSecret;
  readonly maxChannels: number;
  /** A socket still holding more than this many unsent bytes when the next write is due is closed. */
  readonly maxBackpressureBytes: number;
  readonly log: Logger;
  readonly sockets: Set<WebSocket<WsUserData>>;
  readonly isDraining: () => boolean;
  /** PUSH_ALLOWED_ORIGINS: a handshake from another origin is refused before the upgrade. */
  readonly origins: OriginPolicy;
  /** Client publishing (binary RequestBatch frames, protocol-5 publish calls). */
  readonly clientRequests: ClientRequestContext;
  /** Protocol-5 users going online and offline. */
  readonly userStatus: UserStatus;
  /** Personal or shared mode: whose subscription a request is (subscriber-clients.ts). */
  readonly clients: SubscriberClients;
}

/**
 * The hub's handle on one WebSocket. It exists before the socket does (the upgrade waits for the
 * subscription), so frames produced in between are held and sent when the socket opens.
 */
export class WsTransport implements Transport {
  readonly kind = 'ws';
  closed = false;
  private ws: WebSocket<WsUserData> | null = null;
  private held: Uint8Array[] | null = null;
  /** Set when the hub ended the connection before the socket existed (e.g. 4029 during setup). */
  private endedWith: ErrorSpec | null = null;
  constructor(
    private readonly opts: WebSocketOptions,
    readonly format: FrameFormat,
  ) {}

  attach(ws: WebSocket<WsUserData>): void {
    this.ws = ws;
    if (this.endedWith !== null) {
      ws.end(this.endedWith.code, errorText(this.endedWith));
      return;
    }
    const held = this.held;
    if (held === null) return;
    this.held = null;
    // Text frames concatenate into one; each held protobuf frame is a complete ResponseBatch.
    if (this.format === 'text') this.write(held.length === 1 ? (held[0] as Uint8Array) : Buffer.concat(held));
    else for (const frame of held) this.write(frame);
  }

  write(frames: Uint8Array): boolean {
    if (this.closed) return false;
    const ws = this.ws;
    if (ws === null) {
      (this.held ??= []).push(frames);
      return true;
    }
    // Slow-consumer policy: the socket gets any one write however large (a long backlog must get
    // through), but if the previous writes have not drained past the limit by the time the next is
    // due, the client cannot keep up: close it and let it resume by mid, rather than buffer without bound.
    if (ws.getBufferedAmount() > this.opts.maxBackpressureBytes) {
      this.opts.hub.counters.slowConsumerCloses++;
      this.end(Errors.SLOW_CONSUMER);
      return false;
    }
    // One frame, one send: uWebSockets.js corks an uncorked socket inside send itself (one write
    // system call either way), so an explicit cork would only add a closure and a native call on
    // the hottest line of fan-out.
    ws.send(frames, FRAME_CODECS[this.format].binary);
    return true;
  }

  end(spec: ErrorSpec): void {
    if (this.closed) return;
    this.closed = true;
    if (this.ws === null) this.endedWith = spec;
    else this.ws.end(spec.code, errorText(spec));
  }
}

/**
 * Validates the request, subscribes and reads the backlog, and only then completes the upgrade: when
 * the client sees the socket open, every later publish is guaranteed to reach it (a socket without
 * `mid` would otherwise miss what is published while its subscription is still being set up).
 * A bad channel list is still upgraded and then closed with 4010, because that is what makes the
 * official clients reload their config.
 */
export function upgradeWebSocket(res: HttpResponse, req: HttpRequest, context: unknown, opts: WebSocketOptions): void {
  // uWS frees `req` when this function returns: copy everything first.
  const query = parseQuery(req.getQuery() ?? '');
  const key = req.getHeader('sec-websocket-key');
  const protocol = req.getHeader('sec-websocket-protocol');
  const extensions = req.getHeader('sec-websocket-extensions');
  const origin = req.getHeader('origin');
  if (opts.isDraining()) {
    // Refuse the handshake itself (503, not upgrade-then-close): nginx retries a 503 on the next
    // listener, so a client that raced the drain lands elsewhere without noticing.
    new Exchange(res).sendError(Errors.SHUTTING_DOWN, [['Retry-After', '1']], true);
    return;
  }
  // A plain 403 instead of the upgrade: no socket, no subscription, nothing read. (Unlike 4010,
  // which must come as a close code for clients to reload their config, a foreign page has no
  // config to reload.)
  if (refuseForeignOrigin(new Exchange(res), opts.origins, origin)) return;
  const data: WsUserData = { channels: null, format: frameFormat(query), publicId: null, userId: null, session: null, rejection: null, mid: parseMid(query.get('mid')), conn: null, transport: null, requests: opts.clientRequests, release: () => {}, clientId: null };
  const scope = opts.clients.admit(query);
  if (!(scope instanceof Promise)) {
    subscribeWebSocket(res, new Exchange(res), data, query, scope, key, protocol, extensions, context, opts);
    return;
  }
  // Shared mode: the portal is looked up first (the registry may have to be asked).
  const ex = new Exchange(res);
  scope.then(
    (s) => {
      if (ex.isOpen) subscribeWebSocket(res, ex, data, query, s, key, protocol, extensions, context, opts);
      else s.release();
    },
    (err: unknown) => {
      if (!ex.isOpen) return;
      if (!(err instanceof PushError)) {
        opts.log.warn({ err: { message: (err as Error).message } }, 'websocket: client registry unavailable');
        ex.sendError(Errors.HISTORY_UNAVAILABLE, [['Retry-After', '2']]);
        return;
      }
      // Upgraded, then closed with the code, as push server 2.0 closes a wrong client id (4036).
      ex.finished = true;
      data.rejection = err;
      upgradeLater(res, data, key, protocol, extensions, context);
    },
  );
}

function subscribeWebSocket(res: HttpResponse, ex: Exchange, data: WsUserData, query: ReadonlyMap<string, string>, scope: SubscriberScope, key: string, protocol: string, extensions: string, context: unknown, opts: WebSocketOptions): void {
  try {
    const sub = parseClientSubscription(query, { secret: scope.secret, maxChannels: opts.maxChannels }, scope.clientId);
    data.channels = sub.channels;
    data.publicId = sub.publicId;
    data.userId = sub.userId;
    if (sub.format === 'jsonrpc') data.session = newSession(sub.channels, sub.publicId, sub.userId, scope.clientId);
  } catch (err) {
    if (!(err instanceof PushError)) throw err;
    data.rejection = err;
  }
  if (data.channels === null) {
    scope.release();
    ex.finished = true;
    res.upgrade(data, key, protocol, extensions, context as never);
    return;
  }
  data.release = scope.release;
  if (scope.clientId !== null) {
    const parts = scopeToClient(opts.clientRequests, scope.clientId);
    data.requests = { ...opts.clientRequests, ...parts, secret: scope.secret, senderScope: scope.clientId };
  }
  const transport = new WsTransport(opts, data.format);
  // Judged before the hub marks the user online (see UserStatus); undone on every path that
  // ends without an open socket, the socket's close undoes it otherwise.
  const userId = data.userId;
  const clientId = scope.clientId;
  data.clientId = clientId;
  if (userId !== null) opts.userStatus.opened(userId, clientId);
  const gone = (): void => {
    scope.release();
    if (userId !== null) opts.userStatus.closed(userId, clientId);
  };
  opts.hub.open(data.channels, transport, data.mid).then(
    ({ conn }) => {
      if (!ex.isOpen) {
        transport.closed = true;
        opts.hub.close(conn);
        gone();
        return;
      }
      ex.finished = true;
      data.conn = conn;
      data.transport = transport;
      scope.onRevoke(() => transport.end(Errors.WRONG_CLIENT_ID));
      upgradeLater(res, data, key, protocol, extensions, context);
    },
    (err: Error) => {
      // A PushError is a verdict on the request (e.g. a channel past its read window: 4010):
      // upgrade and close with it, exactly like a badly signed channel, so clients reload config.
      gone();
      if (err instanceof PushError) {
        if (!ex.isOpen) return;
        ex.finished = true;
        data.rejection = err;
        upgradeLater(res, data, key, protocol, extensions, context);
        return;
      }
      opts.log.warn({ err: { message: err.message } }, 'websocket setup failed');
      ex.sendError(Errors.HISTORY_UNAVAILABLE, [['Retry-After', '2']]);
    },
  );
}

/**
 * Completes an upgrade after the request handler has returned. Not inside res.cork(), although
 * uWebSockets.js advises it and then warns once that the write was not corked: with uWebSockets.js
 * 20.57 an upgrade made inside cork sometimes closes the new socket at once (close handler with
 * 1006, the client none the wiser), about one connection in ten under Node 22 and one in thirty
 * under Node 24 in the Debian 13 platform tests; uncorked it never did. The 101 response is one
 * write either way.
 */
function upgradeLater(res: HttpResponse, data: WsUserData, key: string, protocol: string, extensions: string, context: unknown): void {
  res.upgrade(data, key, protocol, extensions, context as never);
}

export function openWebSocket(ws: WebSocket<WsUserData>, opts: WebSocketOptions): void {
  const data = ws.getUserData();
  if (data.transport === null) {
    ws.end((data.rejection?.spec ?? Errors.WRONG_CHANNEL_ID).code, data.rejection?.wire ?? errorText(Errors.WRONG_CHANNEL_ID));
    return;
  }
  opts.sockets.add(ws);
  data.transport.attach(ws);
}

export function closeWebSocket(ws: WebSocket<WsUserData>, opts: WebSocketOptions): void {
  const data = ws.getUserData();
  opts.sockets.delete(ws);
  data.release();
  if (data.transport !== null) data.transport.closed = true;
  if (data.conn !== null) opts.hub.close(data.conn);
  if (data.conn !== null && data.session !== null) closeSession(data.session, { hub: opts.hub, clientRequests: data.requests, userStatus: opts.userStatus, log: opts.log });
  else if (data.conn !== null && data.userId !== null) opts.userStatus.closed(data.userId, data.clientId);
}

/**
 * A frame from the client. Text frames are protocol-5 JSON-RPC (json-rpc.ts) and carry nothing in
 * versions 3/4; a binary frame is a RequestBatch (client publishing, channel stats), processed untrusted. Any rejection
 * closes the socket with its code and "<code>: <reason>" as Bitrix does.
 */
export function messageWebSocket(ws: WebSocket<WsUserData>, message: ArrayBuffer, isBinary: boolean, opts: WebSocketOptions): void {
  const data = ws.getUserData();
  const transport = data.transport;
  if (transport === null || transport.closed) return;
  if (!isBinary) {
    // Protocol 5 speaks JSON-RPC in text frames; in versions 3/4 text frames carry nothing.
    const session = data.session;
    if (session === null) return;
    const text = Buffer.from(message).toString('utf8');
    handleJsonRpcText(text, session, transport, { hub: opts.hub, clientRequests: data.requests, userStatus: opts.userStatus, log: opts.log }).catch((err: Error) => opts.log.warn({ err: { message: err.message } }, 'json-rpc frame failed'));
    return;
  }
  // uWS reuses the message buffer after this callback returns: copy it before going async.
  const bytes = Buffer.from(new Uint8Array(message));
  clientRequest(bytes, data.publicId, data.requests).then(
    (response) => {
      if (response !== null && !transport.closed) ws.cork(() => ws.send(response, true));
    },
    (err: unknown) => {
      if (err instanceof PushError) transport.end(err.spec);
      else {
        opts.log.warn({ err: { message: (err as Error).message } }, 'client publish failed: store unavailable');
        transport.end(Errors.STORE_UNAVAILABLE);
      }
    },
  );
}
