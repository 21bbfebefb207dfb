import { Errors, PushError, errorText, parseMid, parseSubscriberChannels, type ChannelSecret, type ErrorSpec } from '@push/protocol';
import { parseQuery, type HttpRequest, type HttpResponse, type Logger, type WebSocket } from '@push/runtime';
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

export class WsTransport implements Transport {
  readonly kind = 'ws';
  closed = false;
  constructor(
    private readonly ws: WebSocket<WsUserData>,
    private readonly opts: WebSocketOptions,
  ) {}

  write(frames: string): boolean {
    if (this.closed) return false;
    // Slow-consumer policy: the socket gets any one write however large (a long backlog must get
    // through), but if the previous writes have not drained past the limit by the time the next is
    // due, the client cannot keep up: close it and let it resume by mid, rather than buffer without bound.
    if (this.ws.getBufferedAmount() > this.opts.maxBackpressureBytes) {
      this.end(Errors.SLOW_CONSUMER);
      return false;
    }
    this.ws.cork(() => this.ws.send(frames, false));
    return true;
  }

  end(spec: ErrorSpec): void {
    if (this.closed) return;
    this.closed = true;
    this.ws.end(spec.code, errorText(spec));
  }
}

/**
 * The upgrade step only validates and copies the request; a bad channel list is still upgraded and
 * then closed with 4010, because that is what makes the official clients reload their config.
 */
export function upgradeWebSocket(res: HttpResponse, req: HttpRequest, context: unknown, opts: WebSocketOptions): void {
  const query = parseQuery(req.getQuery() ?? '');
  const key = req.getHeader('sec-websocket-key');
  const protocol = req.getHeader('sec-websocket-protocol');
  const extensions = req.getHeader('sec-websocket-extensions');
  const data: WsUserData = { channels: null, rejection: null, mid: parseMid(query.get('mid')), conn: null, transport: null };
  if (opts.isDraining()) data.rejection = new PushError(Errors.SHUTTING_DOWN);
  else {
    try {
      data.channels = parseSubscriberChannels(query.get('CHANNEL_ID') ?? null, opts.secret, opts.maxChannels).map((c) => c.privateId);
    } catch (err) {
      if (!(err instanceof PushError)) throw err;
      data.rejection = err;
    }
  }
  res.upgrade(data, key, protocol, extensions, context as never);
}

export function openWebSocket(ws: WebSocket<WsUserData>, opts: WebSocketOptions): void {
  const data = ws.getUserData();
  if (data.rejection !== null || data.channels === null) {
    ws.end((data.rejection?.spec ?? Errors.WRONG_CHANNEL_ID).code, data.rejection?.wire ?? errorText(Errors.WRONG_CHANNEL_ID));
    return;
  }
  const transport = new WsTransport(ws, opts);
  data.transport = transport;
  opts.sockets.add(ws);
  opts.hub.open(data.channels, transport, data.mid).then(
    ({ conn }) => {
      if (transport.closed) opts.hub.close(conn);
      else data.conn = conn;
    },
    (err: Error) => {
      opts.log.warn({ err: { message: err.message } }, 'websocket setup failed');
      transport.end(Errors.HISTORY_UNAVAILABLE);
    },
  );
}

export function closeWebSocket(ws: WebSocket<WsUserData>, opts: WebSocketOptions): void {
  const data = ws.getUserData();
  opts.sockets.delete(ws);
  if (data.transport !== null) data.transport.closed = true;
  if (data.conn !== null) opts.hub.close(data.conn);
}
