import { Errors, HISTORY_GAP_HEADER, PushError, historyGapHeader, parseMid, type ChannelSecret, type ErrorSpec, type OriginPolicy } from '@push/protocol';
import type { HistoryGap } from '@push/backend';
import { CORS_ANY, Exchange, parseQuery, refuseForeignOrigin, type Headers, type HttpRequest, type HttpResponse, type Logger } from '@push/runtime';
import type { Connection, FrameFormat, Hub, Transport } from '../hub.js';
import { FRAME_CODECS } from '../frame-codecs.js';
import type { UserStatus } from '../user-status.js';
import { parseClientSubscription, type Subscription } from './subscription.js';
import type { SubscriberClients, SubscriberScope } from '../subscriber-clients.js';

/** The client only trusts Last-Message-Id on a 304 when Expires is exactly this (reference 5.1). */
export const LONG_POLL_EXPIRES = 'Thu, 01 Jan 1973 11:11:01 GMT';
export const EXPOSE_LAST_MESSAGE_ID: readonly [string, string] = ['Access-Control-Expose-Headers', 'Last-Message-Id'];
const LP_HEADERS: Headers = [...CORS_ANY, EXPOSE_LAST_MESSAGE_ID];
/** An answer that carries the loss signal exposes it to cross-origin scripts too (others stay as Bitrix answers). */
const LP_GAP_HEADERS: Headers = [...CORS_ANY, ['Access-Control-Expose-Headers', `Last-Message-Id, ${HISTORY_GAP_HEADER}`]];

export const PREFLIGHT_HEADERS: Headers = [
  ...CORS_ANY,
  ['Access-Control-Allow-Methods', 'POST, GET, DELETE, OPTIONS'],
  ['Access-Control-Allow-Headers', 'If-Modified-Since, If-None-Match'],
  ['Content-Type', 'text/plain'],
];

export interface LongPollOptions {
  readonly hub: Hub;
  readonly secret: ChannelSecret;
  readonly maxChannels: number;
  readonly holdMs: number;
  readonly log: Logger;
  /** Parked polls, so a draining process can answer them all with their cursor. */
  readonly parked: Set<LongPoll>;
  readonly isDraining: () => boolean;
  /** PUSH_ALLOWED_ORIGINS, checked like WebSocket handshakes (a foreign page could long-poll instead). */
  readonly origins: OriginPolicy;
  /** Protocol-5 users going online and offline (each poll of a token subscription counts). */
  readonly userStatus: UserStatus;
  /** Personal or shared mode: whose subscription a request is (subscriber-clients.ts). */
  readonly clients: SubscriberClients;
}

/**
 * One long-poll request: answered at once with stored messages newer than `mid`, otherwise held
 * until the first live message (200) or the hold time (304 with the cursor to poll again with).
 */
export class LongPoll implements Transport {
  readonly kind = 'lp';
  private conn: Connection | null = null;
  private timer: NodeJS.Timeout | null = null;
  private cursor = '';
  /** `X-Push-History-Gap` for the answer, when the resume cursor was older than what is kept. */
  private gapHeader: string | null = null;

  constructor(
    private readonly ex: Exchange,
    private readonly opts: LongPollOptions,
    readonly format: FrameFormat,
    private readonly userId: string | null = null,
    /** Gives back the portal's connection slot (shared mode) when the poll ends. */
    private readonly release: () => void = () => {},
    /** Shared mode: the poll's portal (its users are that portal's users). */
    private readonly clientId: string | null = null,
  ) {
    ex.onAbort(() => this.finish());
  }

  write(frame: Uint8Array): boolean {
    // Binary mode answers one ResponseBatch as application/octet-stream (reference 5.1 item 5);
    // protocol 5 answers JSON-RPC notifications (one, or a batch array) as text like version 3.
    const type = FRAME_CODECS[this.format].binary ? 'application/octet-stream' : 'text/plain; charset=utf-8';
    const headers: Headers = this.gapHeader === null ? [...LP_HEADERS, ['Content-Type', type]] : [...LP_GAP_HEADERS, ['Content-Type', type], [HISTORY_GAP_HEADER, this.gapHeader]];
    const ok = this.ex.send(200, frame, headers);
    this.finish();
    return ok;
  }

  historyGap(after: string, gaps: readonly HistoryGap[]): void {
    this.gapHeader = historyGapHeader(after, gaps);
  }

  /** Answers with a catalogue error (e.g. 429 "4029: Too many connections" when evicted). */
  end(spec: ErrorSpec): void {
    this.ex.sendError(spec, [EXPOSE_LAST_MESSAGE_ID]);
    this.finish();
  }

  /**
   * Answers "nothing new" with the cursor the client should come back with; or, when a message
   * reached this poll in the same event-loop turn and waits for the hub's flush, answers with it.
   */
  timeout(): void {
    if (this.conn !== null && this.opts.hub.flushConnection(this.conn)) return;
    this.ex.send(304, '', [...LP_HEADERS, ['Last-Message-Id', this.cursor], ['Expires', LONG_POLL_EXPIRES]]);
    this.finish();
  }

  bind(conn: Connection, cursor: string): void {
    this.conn = conn;
    this.cursor = cursor;
    if (!this.ex.isOpen) {
      this.finish();
      return;
    }
    this.opts.parked.add(this);
    this.timer = setTimeout(() => this.timeout(), this.opts.holdMs);
  }

  private finish(): void {
    this.release();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.opts.parked.delete(this);
    if (this.conn !== null) {
      this.opts.hub.close(this.conn);
      this.conn = null;
      if (this.userId !== null) this.opts.userStatus.closed(this.userId, this.clientId);
    }
  }
}

export function handleLongPoll(res: HttpResponse, req: HttpRequest, opts: LongPollOptions): void {
  // uWS frees `req` when this function returns: copy what we need first.
  const query = parseQuery(req.getQuery() ?? '');
  const ex = new Exchange(res);
  if (opts.isDraining()) {
    ex.sendError(Errors.SHUTTING_DOWN, [EXPOSE_LAST_MESSAGE_ID, ['Retry-After', '1']]);
    return;
  }
  if (refuseForeignOrigin(ex, opts.origins, req.getHeader('origin'), [EXPOSE_LAST_MESSAGE_ID])) return;
  const scope = opts.clients.admit(query);
  if (!(scope instanceof Promise)) {
    subscribeLongPoll(ex, query, scope, opts);
    return;
  }
  scope.then(
    (s) => {
      if (ex.isOpen) subscribeLongPoll(ex, query, s, opts);
      else s.release();
    },
    (err: unknown) => {
      if (err instanceof PushError) ex.sendError(err, [EXPOSE_LAST_MESSAGE_ID]);
      else {
        opts.log.warn({ err: { message: (err as Error).message } }, 'long poll: client registry unavailable');
        ex.sendError(Errors.HISTORY_UNAVAILABLE, [EXPOSE_LAST_MESSAGE_ID, ['Retry-After', '2']]);
      }
    },
  );
}

function subscribeLongPoll(ex: Exchange, query: ReadonlyMap<string, string>, scope: SubscriberScope, opts: LongPollOptions): void {
  let sub: Subscription;
  try {
    sub = parseClientSubscription(query, { secret: scope.secret, maxChannels: opts.maxChannels }, scope.clientId);
  } catch (err) {
    scope.release();
    if (err instanceof PushError) ex.sendError(err, [EXPOSE_LAST_MESSAGE_ID]);
    else throw err;
    return;
  }
  const mid = parseMid(query.get('mid'));
  const poll = new LongPoll(ex, opts, sub.format, sub.userId, scope.release, scope.clientId);
  if (sub.userId !== null) opts.userStatus.opened(sub.userId, scope.clientId);
  opts.hub.open(sub.channels, poll, mid).then(
    // Without a mid and with nothing stored, the store's newest issued id: an empty cursor would make
    // the next poll start from "now" and miss what was published between the two polls.
    ({ conn, result }) => {
      poll.bind(conn, mid ?? result.newestMid ?? result.floorMid ?? '');
      scope.onRevoke(() => poll.end(Errors.WRONG_CLIENT_ID));
    },
    (err: Error) => {
      scope.release();
      if (sub.userId !== null) opts.userStatus.closed(sub.userId, scope.clientId);
      // A PushError is a verdict on the request (e.g. a channel past its read window: 4010).
      if (err instanceof PushError) {
        ex.sendError(err, [EXPOSE_LAST_MESSAGE_ID]);
        return;
      }
      opts.log.warn({ err: { message: err.message } }, 'long poll setup failed');
      ex.sendError(Errors.HISTORY_UNAVAILABLE, [EXPOSE_LAST_MESSAGE_ID, ['Retry-After', '2']]);
    },
  );
}
