import { BACKEND_SENDER, type StoredMessage } from './record.js';
import { bareChannelKey } from './shared-mode.js';

/**
 * The loss signal: a client resumed with a cursor (`mid`) older than what some of its channels
 * still keep (the history cap, or records whose TTL ended), so messages it never got are gone for
 * good. It is told with a system message of module `pull`, the module official clients reserve
 * for server commands. They dispatch those on the upper-cased command and do nothing for one they
 * do not know (`handleInternalPullEvent`: CHANNEL_EXPIRE, CONFIG_EXPIRE and SERVER_RESTART only, in
 * @bitrix24/b24jssdk and in the legacy BX.PullClient alike), so `history_gap` reaches clients that
 * want it and is ignored safely by the rest (tests/compat/official-client.test.ts).
 */
export const HISTORY_GAP_COMMAND = 'history_gap';
/** Long-poll response header carrying the same facts (docs: README, Subscribing). */
export const HISTORY_GAP_HEADER = 'X-Push-History-Gap';

export interface ChannelGapNotice {
  /** The channel as the connection subscribed to it: a channel id, or `pub:<id>` for a public one. */
  readonly channel: string;
  /** Newest mid of the channel that is gone: messages after the cursor up to it may be missing. */
  readonly upTo: string;
  readonly cause: 'limit' | 'expired';
}

const PUBLIC_PREFIX = 'pub:';

/** One channel as named on the wire: its 32-hex id, flagged when it is a public (protocol 4) channel. */
function wireChannel(g: ChannelGapNotice): { id: string; public: boolean } {
  // A portal's key in shared mode carries its namespace; the client knows the bare id only.
  const c = bareChannelKey(g.channel);
  return c.startsWith(PUBLIC_PREFIX) ? { id: c.slice(PUBLIC_PREFIX.length), public: true } : { id: c, public: false };
}

/** The newest mid any of the gaps reaches: the notice's own mid. */
export function gapBound(gaps: readonly ChannelGapNotice[]): string {
  return gaps.reduce((max, g) => (g.upTo > max ? g.upTo : max), '');
}

/**
 * The notice body (compact one-line JSON, as text frames need): the cursor the client resumed
 * with (`after`), the newest mid gone on any channel (`up_to`), and per channel its id, its own
 * bound and the cause (`limit` = pushed out by the history cap, `expired` = its TTL ended).
 */
export function historyGapBody(after: string, gaps: readonly ChannelGapNotice[], nowMs: number): string {
  return JSON.stringify({
    module_id: 'pull',
    command: HISTORY_GAP_COMMAND,
    params: {
      after,
      up_to: gapBound(gaps),
      channels: gaps.map((g) => {
        const w = wireChannel(g);
        return w.public ? { id: w.id, public: true, up_to: g.upTo, cause: g.cause } : { id: w.id, up_to: g.upTo, cause: g.cause };
      }),
    },
    extra: { server_time: new Date(nowMs).toISOString(), server_time_unix: nowMs / 1000 },
  });
}

/**
 * The notice as a message, so it travels like any other (a text frame, or an OutgoingMessage of
 * a protocol-4 ResponseBatch with sender BACKEND). Its mid is the gap's bound: official clients
 * take the mid of the last message they got as their resume cursor, and the bound is the newest mid
 * they can never get, so a client that receives nothing after the notice resumes past the gap
 * instead of being told again. It is never stored (expiry 0).
 */
export function historyGapMessage(after: string, gaps: readonly ChannelGapNotice[], nowMs: number): StoredMessage {
  return { mid: gapBound(gaps), createdMs: nowMs, expiry: 0, type: `pull_${HISTORY_GAP_COMMAND}`, sender: BACKEND_SENDER, body: historyGapBody(after, gaps, nowMs) };
}

/** The long-poll header value: `<id>; after=<mid>; up-to=<mid>; cause=<cause>[; public]`, comma-separated per channel. */
export function historyGapHeader(after: string, gaps: readonly ChannelGapNotice[]): string {
  return gaps
    .map((g) => {
      const w = wireChannel(g);
      return `${w.id}; after=${after}; up-to=${g.upTo}; cause=${g.cause}${w.public ? '; public' : ''}`;
    })
    .join(', ');
}
