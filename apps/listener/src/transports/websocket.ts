import { Errors, PushError, errorText, parseMid, parseSubscriberChannels, type ChannelSecret, type ErrorSpec } from '@push/protocol';
import { Exchange, parseQuery, type HttpRequest, type HttpResponse, type Logger, type WebSocket } from '@push/runtime';
import type { Connection, Hub, Transport } from '../hub.js';

export interface WsUserData {
  channels: string[] | null;
  rejection: PushError | null;
  mid: string | null;
  conn: Connection | null;
  transport: WsTransport | null;
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
}

/**
 * The hub's handle on one WebSocket. It exists before the socket does (the upgrade waits for the
 * subscription), so frames produced in between are held and sent when the socket opens.
 */
export class WsTransport implements Transport {
  readonly kind = 'ws';
  closed = false;
  private ws: WebSocket<WsUserData> | null = null;
  private held: string[] = [];
  constructor(private readonly opts: WebSocketOptions) {}

  attach(ws: WebSocket<WsUserData>): void {
    this.ws = ws;
    if (this.held.length > 0) {
      const frames = this.held.join('');
      this.held = [];
      this.write(frames);
    }
  }

  write(frames: string): boolean {
    if (this.closed) return false;
    const ws = this.ws;
    if (ws === null) {
      this.held.push(frames);
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
    ws.cork(() => ws.send(frames, false));
    return true;
  }

  end(spec: ErrorSpec): void {
    if (this.closed) return;
    this.closed = true;
    this.ws?.end(spec.code, errorText(spec));
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
  if (opts.isDraining()) {
    // Refuse the handshake itself (503, not upgrade-then-close): nginx retries a 503 on the next
    // listener, so a client that raced the drain lands elsewhere without noticing.
    new Exchange(res).sendError(Errors.SHUTTING_DOWN, [['Retry-After', '1']], true);
    return;
  }
  const data: WsUserData = { channels: null, rejection: null, mid: parseMid(query.get('mid')), conn: null, transport: null };
  try {
    data.channels = parseSubscriberChannels(query.get('CHANNEL_ID') ?? null, opts.secret, opts.maxChannels).map((c) => c.privateId);
  } catch (err) {
    if (!(err instanceof PushError)) throw err;
    data.rejection = err;
  }
  if (data.channels === null) {
    res.upgrade(data, key, protocol, extensions, context as never);
    return;
  }
  const ex = new Exchange(res);
  const transport = new WsTransport(opts);
  opts.hub.open(data.channels, transport, data.mid).then(
    ({ conn }) => {
      if (!ex.isOpen) {
        transport.closed = true;
        opts.hub.close(conn);
        return;
      }
      ex.finished = true;
      data.conn = conn;
      data.transport = transport;
      res.cork(() => res.upgrade(data, key, protocol, extensions, context as never));
    },
    (err: Error) => {
      opts.log.warn({ err: { message: err.message } }, 'websocket setup failed');
      ex.sendError(Errors.HISTORY_UNAVAILABLE, [['Retry-After', '2']]);
    },
  );
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
  if (data.transport !== null) data.transport.closed = true;
  if (data.conn !== null) opts.hub.close(data.conn);
}
