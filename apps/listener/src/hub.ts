import { Errors, PushError, bareChannelKey, channelExpireBody, channelPhase, historyGapMessage, type ChannelWindows, type ErrorSpec, type StoredMessage } from '@push/protocol';
import type { Broker, ChannelRegistry, ChannelTimes, HistoryGap, HistoryResult, Presence, Store } from '@push/backend';
import type { Logger } from '@push/runtime';
import { FRAME_CODECS, type FrameFormat } from './frame-codecs.js';

export type { FrameFormat } from './frame-codecs.js';

const ZERO_MID = '0'.repeat(26);

/**
 * Where a connection's bytes go. The hub hands it complete frames; the transport knows whether
 * that means a WebSocket send or finishing a parked long-poll response.
 */
export interface Transport {
  /** `sub` = an extra subscription of another connection (protocol-5 status), not counted as a client. */
  readonly kind: 'ws' | 'lp' | 'sub';
  readonly format: FrameFormat;
  /**
   * Write one complete frame: UTF-8 text for `text` and `jsonrpc`, ResponseBatch bytes for `protobuf`.
   * Always bytes: uWebSockets.js converts a JS string to UTF-8 on every send, bytes go out as they
   * are, so a frame shared by many sockets is converted once. Returns false when the transport is
   * gone or gave up.
   */
  write(frame: Uint8Array): boolean;
  /** Ends the connection with a catalogue error (WebSocket close code / HTTP status). */
  end(spec: ErrorSpec): void;
  /**
   * The connection resumed after `after` and messages of these channels after it are gone: called
   * before the frame carrying the `pull`/`history_gap` notice is written (a long poll also names
   * them in a response header).
   */
  historyGap?(after: string, gaps: readonly HistoryGap[]): void;
}

/** Which counter records a fresh encoding per format. */
const ENCODED_COUNTER = { text: 'encodedText', protobuf: 'encodedProtobuf', jsonrpc: 'encodedJsonRpc' } as const satisfies Record<FrameFormat, keyof HubCounters>;

/** Channel keys of public channels (`pub:<id>`, see publicChannelKey) carry the per-channel connection cap. */
const PUBLIC_KEY_PREFIX = 'pub:';

/** One subscriber connection (a WebSocket, or a single long-poll request). */
export interface Connection {
  readonly id: number;
  readonly channels: readonly string[];
  readonly transport: Transport;
  /** Newest mid this connection has been given (or its starting cursor). */
  cursor: string | null;
  /**
   * opening: its first history read is in flight; held: the broker lost its subscription and this
   * connection waits for the refill (refillAll); in both, live messages wait in `early`.
   */
  state: 'opening' | 'held' | 'live' | 'closed';
  /** Live messages that arrived while a history read was in flight (null = none). */
  early: StoredMessage[] | null;
  /**
   * Encoded messages waiting for the next flush: UTF-8 text frames for `text` connections, encoded
   * `OutgoingMessage` elements for `protobuf` ones (wrapped into one ResponseBatch at flush).
   * Null when nothing waits: most connections are idle most of the time, and an idle connection
   * should cost as little memory as possible (see docs/benchmarks.md, idle).
   */
  pending: Uint8Array[] | null;
}

export interface HubOptions {
  readonly store: Store;
  readonly broker: Broker;
  readonly presence: Presence;
  readonly log: Logger;
  /** How long a channel stays subscribed after its last local connection left (long polls come back). */
  readonly unsubscribeDelayMs: number;
  /** Presence keys are refreshed at a third of this so they never lapse while connected. */
  readonly onlineTtlMs: number;
  /**
   * Most connections on one `priv:pub` pair (counted on its public channel key) in this process;
   * the oldest is closed with 4029 when one more arrives (Bitrix `maxConnPerChannel`, 100).
   * Shared and plain private channels are not limited.
   */
  readonly maxConnPerPublicChannel: number;
  /** Channel lifecycle (docs/security.md); without it the hub applies none. */
  readonly lifecycle?: HubLifecycle;
  /**
   * Upper bound of the load-adaptive coalescing window, ms (PUSH_COALESCE_MAX_MS); 0 or absent =
   * always flush in the next event-loop turn. See `flush()`.
   */
  readonly coalesceMaxMs?: number;
  /**
   * Waits between attempts of a refill's history read (default REFILL_RETRY_MS). The subscriber
   * connection can be back before the command connection the read goes over (a Sentinel failover
   * or a stall reconnects them apart): the held connections wait for it rather than being closed.
   */
  readonly refillRetryMs?: readonly number[];
}

/** About 6 s in all, doubling: longer than a command connection takes to find a new master. */
export const REFILL_RETRY_MS: readonly number[] = [100, 200, 400, 800, 1600, 3200];

export interface HubLifecycle {
  readonly registry: ChannelRegistry;
  readonly windows: ChannelWindows;
  /** The channel id in the signed form clients know it by (goes into the channel_expire body). */
  readonly signedId: (channel: string) => string;
}

export interface OpenResult {
  /** Newest mid stored on the channels when the connection opened (long-poll 304 cursor). */
  readonly newestMid: string | null;
  /** Without `newestMid`: the store's newest issued id (HistoryResult.floorMid), a safe cursor. */
  readonly floorMid?: string | null;
}

export interface HubCounters {
  delivered: number;
  frames: number;
  bytesOut: number;
  received: number;
  /** Messages that could not be written because their connection was already gone (it resumes by mid). */
  dropped: number;
  /** WebSockets closed by the slow-consumer policy (4110). */
  slowConsumerCloses: number;
  /** Live-message encodings done per format: at most one per message and format (cache hits are free). */
  encodedText: number;
  encodedProtobuf: number;
  encodedJsonRpc: number;
  /** The current coalescing window, ms (0 = flushing in the next event-loop turn). */
  coalesceWindowMs: number;
  /** Resumes (opens and refills) told that messages after their cursor are gone (history_gap). */
  truncatedResumes: number;
}

/**
 * The listener's registry of local connections by channel. It keeps the Redis subscription set
 * equal to what local sockets need, makes "history then live" gap-free and duplicate-free with one
 * cursor per connection, encodes each message once, and coalesces everything that arrives in one
 * event-loop turn into one write per connection.
 */
export class Hub {
  /**
   * Local connections by channel. A channel with one connection (most private channels) maps to
   * the connection itself; a Set is made from the second on. At tens of thousands of idle
   * connections the Set and its hash table per channel were a large share of memory per socket.
   */
  private readonly byChannel = new Map<string, Connection | Set<Connection>>();
  private readonly subscribing = new Map<string, Promise<void>>();
  private readonly subscribed = new Set<string>();
  private readonly lingering = new Map<string, NodeJS.Timeout>();
  private readonly dirty = new Set<Connection>();
  /**
   * Connections held since the broker lost its subscription (holdAll): they buffer live messages
   * in `early` until the broker has resubscribed everything and their history is read (refillAll).
   */
  private readonly refilling = new Set<Connection>();
  /** Set by stop(): a refill read that fails is not tried again. */
  private stopped = false;
  /** Between the broker's `lost` and `restored`. */
  private restoring = false;
  /** Registered connections by transport, counted as they come and go (stats run every few seconds). */
  private readonly byKind = { ws: 0, lp: 0, sub: 0 };
  private flushScheduled = false;
  /** How long the next flush waits, ms: the previous flush's duration, capped (see flush()). */
  private windowMs = 0;
  private readonly flushNow = (): void => this.flush();
  private nextId = 1;
  // One-entry encoding cache per format (see encoded()): the mid it holds and its two encodings,
  // each computed only when some connection of that format needs it.
  private lastMid = '';
  private lastEncoded: Partial<Record<FrameFormat, Uint8Array>> = {};
  // Per format, the frame built for the previous connection in a flush and the pending list it
  // came from: connections of one channel get the same messages in the same order, so a broadcast
  // builds its frame once and hands the same bytes to every socket (see frameFor()).
  private lastBuilt: Partial<Record<FrameFormat, { pending: Uint8Array[]; frame: Uint8Array }>> = {};
  private readonly presenceTimer: NodeJS.Timeout;
  /** Lifecycle: per local channel, the timer that fires when its write window ends. */
  private readonly expiryTimers = new Map<string, NodeJS.Timeout>();
  /** Lifecycle: local channels whose notice exists already (nothing more to watch for). */
  private readonly expiredLocal = new Set<string>();
  readonly counters: HubCounters = { delivered: 0, frames: 0, bytesOut: 0, received: 0, dropped: 0, slowConsumerCloses: 0, encodedText: 0, encodedProtobuf: 0, encodedJsonRpc: 0, coalesceWindowMs: 0, truncatedResumes: 0 };
  private readonly log: Logger;

  constructor(private readonly opts: HubOptions) {
    this.log = opts.log;
    opts.broker.setHandler((channel, msg) => this.onMessage(channel, msg));
    opts.broker.onResync({ lost: () => this.holdAll(), restored: () => this.refillAll() });
    this.presenceTimer = setInterval(() => void this.refreshPresence(), Math.max(1000, Math.floor(opts.onlineTtlMs / 3)));
    this.presenceTimer.unref();
  }

  get channelCount(): number {
    return this.byChannel.size;
  }

  countByTransport(): { ws: number; lp: number } {
    return { ws: this.byKind.ws, lp: this.byKind.lp };
  }

  /**
   * Registers a connection and replays what it missed. Order matters: register locally, make sure
   * Redis delivers the channels, then read history; anything published in between is caught by
   * `early` and merged, so nothing falls into the gap and nothing is sent twice.
   * Rejects (and leaves nothing registered) when the backend cannot subscribe or read history.
   */
  async open(channels: readonly string[], transport: Transport, clientMid: string | null): Promise<{ conn: Connection; result: OpenResult }> {
    const conn: Connection = { id: this.nextId++, channels, transport, cursor: clientMid, state: 'opening', early: null, pending: null };
    // During a restore a channel this listener serves already may not be subscribed again yet, so
    // this connection's history read could miss what arrives before it is: read again afterwards.
    if (this.restoring) this.refilling.add(conn);
    this.byKind[transport.kind]++;
    // Presence: channels this listener already serves (or still lingers on) are kept online by the
    // periodic refresh, so only new ones are marked now. A long-poll client comes back for every
    // message, and this saves a Redis round trip per poll.
    const unmarked = channels.filter((ch) => !this.subscribed.has(ch) && !this.subscribing.has(ch));
    const evict: Connection[] = [];
    for (const ch of channels) {
      const cur = this.byChannel.get(ch);
      let set: Set<Connection> | null = null;
      if (cur === undefined) this.byChannel.set(ch, conn);
      else if (cur instanceof Set) (set = cur).add(conn);
      else if (cur !== conn) this.byChannel.set(ch, (set = new Set([cur, conn])));
      if (set !== null && bareChannelKey(ch).startsWith(PUBLIC_KEY_PREFIX) && set.size > this.opts.maxConnPerPublicChannel) {
        // Sets iterate in insertion order, so the first entries are the oldest connections.
        for (const old of set) {
          if (set.size - evict.length <= this.opts.maxConnPerPublicChannel) break;
          if (old !== conn && !evict.includes(old)) evict.push(old);
        }
      }
      const t = this.lingering.get(ch);
      if (t !== undefined) {
        clearTimeout(t);
        this.lingering.delete(ch);
      }
    }
    for (const old of evict) {
      this.close(old);
      old.transport.end(Errors.TOO_MANY_CONNECTIONS);
    }
    let newestMid: string | null;
    let floorMid: string | null = null;
    try {
      await this.ensureSubscribed(channels);
      const history = await this.opts.store.history(channels, clientMid);
      // Lifecycle: the history read also returns creation times on the server clock. A channel
      // past its read window is refused exactly like a badly signed one (4010), so official
      // clients reload their config; channels past their write window get their channel_expire
      // notice after the backlog.
      const times = await this.lifecycleTimes(channels, history.channelTimes);
      const readOnly = times === null ? [] : channels.filter((_, i) => this.phase(times, i) === 'read-only');
      if (times !== null && channels.some((_, i) => this.phase(times, i) === 'gone')) throw new PushError(Errors.WRONG_CHANNEL_ID);
      const notices = readOnly.length === 0 ? [] : await Promise.all(readOnly.map((ch) => this.notice(ch, times)));
      newestMid = history.newestMid;
      floorMid = history.floorMid ?? null;
      if (conn.state === 'closed') return { conn, result: { newestMid, floorMid } };
      // Sent even to a client whose cursor is past it: it is still on a dead channel and must reload.
      const expireNotices = notices.filter((n): n is StoredMessage => n !== null);
      readOnly.forEach((ch, i) => notices[i] !== null && this.byChannel.has(ch) && this.expiredLocal.add(ch));
      this.goLive(conn, history.messages, clientMid, newestMid, expireNotices, this.gapNotice(conn, clientMid, history));
      if (this.refilling.has(conn)) this.holdOpened(conn);
      if (times !== null) channels.forEach((ch, i) => this.armExpiry(ch, times.created[i] ?? null, times.now));
    } catch (err) {
      this.close(conn);
      throw err;
    }
    if (unmarked.length > 0) this.opts.presence.touch(unmarked).catch((err: Error) => this.log.warn({ err: { message: err.message } }, 'presence update failed'));
    return { conn, result: { newestMid, floorMid } };
  }

  /**
   * Ends a buffering phase (setup or refill): merges the history read with the live messages that
   * arrived meanwhile, drops what the connection already has, sends the rest in id order.
   */
  private goLive(conn: Connection, history: readonly StoredMessage[], after: string | null, newestMid: string | null, always: readonly StoredMessage[] = [], gapNotice: StoredMessage | null = null): void {
    const merged = new Map<string, StoredMessage>();
    for (const m of history) if (after === null || m.mid > after) merged.set(m.mid, m);
    for (const m of conn.early ?? []) if (after === null || m.mid > after) merged.set(m.mid, m);
    // Lifecycle: channel_expire notices go out whatever the cursor (see open()).
    for (const m of always) merged.set(m.mid, m);
    const replay = [...merged.values()].sort((a, b) => (a.mid < b.mid ? -1 : 1));
    // The loss notice goes where its mid (the gap's bound) sorts, after a message with the same mid
    // should one still be delivered (a client drops a repeated mid; the message matters more).
    if (gapNotice !== null) {
      const at = replay.findIndex((m) => m.mid > gapNotice.mid);
      replay.splice(at < 0 ? replay.length : at, 0, gapNotice);
    }
    conn.early = null;
    conn.state = 'live';
    if (newestMid !== null && (conn.cursor === null || newestMid > conn.cursor)) conn.cursor = newestMid;
    for (const m of replay) this.enqueue(conn, m, true);
  }

  /**
   * The `pull`/`history_gap` notice for a connection resuming after `after`, or null: the gaps the
   * history read found, reduced to those reaching past this connection's own cursor (a refill
   * reads once for several connections, from the oldest cursor). Counted once per resume.
   */
  private gapNotice(conn: Connection, after: string | null, history: HistoryResult): StoredMessage | null {
    if (after === null || history.gaps === undefined) return null;
    const mine = history.gaps.filter((g) => g.upTo > after);
    if (mine.length === 0) return null;
    this.counters.truncatedResumes++;
    conn.transport.historyGap?.(after, mine);
    return historyGapMessage(after, mine, history.channelTimes?.now ?? Date.now());
  }

  /**
   * A connection whose first history read overlapped a lost subscription: the read may stop short
   * of what was published during the outage. It holds live messages and is read again, by the
   * refill still to come or, if that already ran, by one of its own.
   */
  private holdOpened(conn: Connection): void {
    conn.state = 'held';
    if (this.restoring) return;
    this.refilling.delete(conn);
    void this.refill([conn]);
  }

  /**
   * The broker lost its subscription and is about to restore it: from here on every connection
   * holds live messages instead of sending them, so a message on a channel that is back already
   * cannot move a cursor past what is still to be refilled from history (refillAll).
   */
  private holdAll(): void {
    this.restoring = true;
    for (const m of this.byChannel.values()) {
      for (const c of m instanceof Set ? m : [m]) {
        if (c.state === 'closed' || this.refilling.has(c)) continue;
        this.refilling.add(c);
        // A connection held already (its refill still reading) keeps what it buffered.
        if (c.state === 'live') {
          c.state = 'held';
          c.early = null;
        }
      }
    }
  }

  /** Unregisters a connection; channels left without local connections are unsubscribed later. */
  close(conn: Connection): void {
    if (conn.state === 'closed') return;
    this.refilling.delete(conn);
    conn.state = 'closed';
    this.byKind[conn.transport.kind]--;
    conn.pending = null;
    conn.early = null;
    this.dirty.delete(conn);
    for (const ch of conn.channels) {
      const m = this.byChannel.get(ch);
      if (m === undefined) continue;
      let empty: boolean;
      if (m instanceof Set) {
        m.delete(conn);
        empty = m.size === 0;
        // Back to the compact form when one connection is left.
        if (m.size === 1) this.byChannel.set(ch, m.values().next().value as Connection);
      } else empty = m === conn;
      if (empty) {
        this.byChannel.delete(ch);
        this.disarmExpiry(ch);
        this.scheduleUnsubscribe(ch);
      }
    }
  }

  private scheduleUnsubscribe(ch: string): void {
    if (this.lingering.has(ch)) return;
    const t = setTimeout(() => {
      this.lingering.delete(ch);
      if (this.byChannel.has(ch) || !this.subscribed.has(ch)) return;
      this.subscribed.delete(ch);
      this.opts.broker.unsubscribe([ch]).catch((err: Error) => this.log.warn({ err: { message: err.message } }, 'unsubscribe failed'));
    }, this.opts.unsubscribeDelayMs);
    t.unref();
    this.lingering.set(ch, t);
  }

  private async ensureSubscribed(channels: readonly string[]): Promise<void> {
    const waits: Promise<void>[] = [];
    const fresh: string[] = [];
    for (const ch of channels) {
      if (this.subscribed.has(ch)) continue;
      const inflight = this.subscribing.get(ch);
      if (inflight !== undefined) waits.push(inflight);
      else fresh.push(ch);
    }
    if (fresh.length > 0) {
      const p = this.opts.broker.subscribe(fresh).then(
        () => {
          for (const ch of fresh) {
            this.subscribing.delete(ch);
            this.subscribed.add(ch);
          }
        },
        (err: unknown) => {
          for (const ch of fresh) this.subscribing.delete(ch);
          throw err;
        },
      );
      for (const ch of fresh) this.subscribing.set(ch, p);
      waits.push(p);
    }
    await Promise.all(waits);
  }

  private onMessage(channel: string, msg: StoredMessage): void {
    this.counters.received++;
    const m = this.byChannel.get(channel);
    if (m === undefined) return;
    if (m instanceof Set) for (const conn of m) this.take(conn, msg);
    else this.take(m, msg);
  }

  private take(conn: Connection, msg: StoredMessage): void {
    if (conn.state === 'opening' || conn.state === 'held') (conn.early ??= []).push(msg);
    else if (conn.state === 'live') this.enqueue(conn, msg, false);
  }

  /**
   * The message encoded for `format`, computed at most once per message and format. A message
   * published to several channels arrives once per channel, back to back (the publish script is
   * atomic), so a one-entry cache keyed by mid is enough; each format is encoded lazily, so a
   * message nobody reads in protobuf is never protobuf-encoded.
   */
  private encoded(msg: StoredMessage, format: FrameFormat): Uint8Array {
    if (msg.mid !== this.lastMid) {
      this.lastMid = msg.mid;
      this.lastEncoded = {};
    }
    let out = this.lastEncoded[format];
    if (out === undefined) {
      out = FRAME_CODECS[format].element(msg);
      this.lastEncoded[format] = out;
      this.counters[ENCODED_COUNTER[format]]++;
    }
    return out;
  }

  private enqueue(conn: Connection, msg: StoredMessage, replay: boolean): void {
    // A later part of a message published shard by shard (Redis Cluster): a connection that has a
    // channel of an earlier part and whose cursor reached that part's (smaller) id was given the
    // message then (ids are released in order), so this part would be the same message twice.
    const cursor = conn.cursor;
    if (msg.earlier !== undefined && cursor !== null && msg.earlier.some((e) => e.mid <= cursor && conn.channels.includes(e.channel))) return;
    // Ids arrive in increasing order, so one cursor removes duplicates from a channel listed twice,
    // from two subscribed channels receiving the same publish, and from history/live overlap.
    if (!replay && conn.cursor !== null && msg.mid <= conn.cursor) return;
    if (conn.cursor === null || msg.mid > conn.cursor) conn.cursor = msg.mid;
    const format = conn.transport.format;
    // Replays are per connection (nothing to share), so they bypass the cache and leave it intact.
    (conn.pending ??= []).push(replay ? FRAME_CODECS[format].element(msg) : this.encoded(msg, format));
    this.dirty.add(conn);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // Everything that arrives before the flush (at least this event-loop turn: Redis often hands
      // over many messages in one read) leaves in one write per connection.
      if (this.windowMs < 1) setImmediate(this.flushNow);
      else setTimeout(this.flushNow, this.windowMs);
    }
  }

  /**
   * Writes everything pending, one write per connection. The per-write (syscall) cost dominates
   * fan-out (docs/benchmarks.md), so under load the hub merges more per write: the next flush
   * waits as long as this one took, capped at `coalesceMaxMs`. An idle or lightly loaded listener
   * flushes in well under a millisecond, so it keeps flushing in the next turn with no added
   * delay; a saturated one (many sockets, or a contended CPU) spends at most about half its time
   * writing and each write carries more messages, paying in latency only while it is saturated
   * (the Bitrix servers always buffer 250-400 ms). (A variant that also doubled the window when a
   * flush started late was measured and made no difference on the benchmarks; not kept.)
   */
  /**
   * Writes what waits for one connection now, ahead of the next flush; false when nothing waits. A
   * long poll whose hold time ends while a message waits for the flush answers with it instead of
   * a 304 (the message has already moved the connection's cursor, and the hub forgets the
   * connection once the poll ends).
   */
  flushConnection(conn: Connection): boolean {
    const pending = conn.pending;
    if (pending === null) return false;
    conn.pending = null;
    this.dirty.delete(conn);
    // Not through frameFor's cache: that sharing is for the connections of one flush.
    this.writeFrame(conn, pending, FRAME_CODECS[conn.transport.format].frame(pending));
    return true;
  }

  private writeFrame(conn: Connection, pending: Uint8Array[], frame: Uint8Array): void {
    if (conn.transport.write(frame)) {
      this.counters.delivered += pending.length;
      this.counters.frames++;
      this.counters.bytesOut += frame.byteLength;
    } else this.counters.dropped += pending.length;
  }

  flush(): void {
    this.flushScheduled = false;
    const started = performance.now();
    for (const conn of this.dirty) {
      const pending = conn.pending;
      if (pending === null) continue;
      conn.pending = null;
      this.writeFrame(conn, pending, this.frameFor(pending, conn.transport.format));
    }
    this.dirty.clear();
    this.lastBuilt = {};
    this.windowMs = Math.min(this.opts.coalesceMaxMs ?? 0, performance.now() - started);
    this.counters.coalesceWindowMs = this.windowMs;
  }

  /**
   * One write carrying everything pending, built by the format's codec (frame-codecs.ts): text
   * frames concatenate, protobuf elements are wrapped into one ResponseBatch, JSON-RPC
   * notifications into one batch array. When the previous
   * connection of the same format in this flush had the very same encoded messages (same objects,
   * same order: the other subscribers of a broadcast), its frame is reused, so a broadcast to
   * 10,000 sockets builds one frame per format, not 10,000 copies.
   */
  private frameFor(pending: Uint8Array[], format: FrameFormat): Uint8Array {
    const prev = this.lastBuilt[format];
    if (prev !== undefined && prev.pending.length === pending.length && pending.every((p, i) => p === prev.pending[i])) return prev.frame;
    const frame = FRAME_CODECS[format].frame(pending);
    this.lastBuilt[format] = { pending, frame };
    return frame;
  }

  /**
   * The broker has every channel subscribed again: give each held connection what was published
   * while the subscription was down, then release it (refill).
   */
  private refillAll(): void {
    this.restoring = false;
    // Connections still opening finish their own read first (holdOpened refills them after it).
    const ready = [...this.refilling].filter((c) => c.state === 'held');
    for (const c of ready) this.refilling.delete(c);
    void this.refill(ready);
  }

  /**
   * Reads history after the cursors of held connections, merges what they buffered and sends it.
   * Connections are grouped by their channel list so each group costs one history read and a
   * connection's cursor advances over all of its channels at once.
   */
  private async refill(conns: readonly Connection[]): Promise<void> {
    const groups = new Map<string, Connection[]>();
    for (const c of conns) {
      const key = c.channels.join('/');
      const g = groups.get(key);
      if (g === undefined) groups.set(key, [c]);
      else g.push(c);
    }
    await Promise.all(
      [...groups.values()].map(async (conns) => {
        const first = conns[0] as Connection;
        const oldest = conns.reduce<string>((min, c) => ((c.cursor ?? ZERO_MID) < min ? (c.cursor ?? ZERO_MID) : min), first.cursor ?? ZERO_MID);
        let history: HistoryResult;
        try {
          history = await this.readForRefill(first.channels, oldest, conns);
        } catch (err) {
          // Without the read these connections would silently miss the outage's messages; closed,
          // their clients come back with their mid and get them from history then.
          this.log.warn({ err: { message: (err as Error).message }, connections: conns.length }, 'refill after reconnect failed; closing the connections so their clients resume by mid');
          for (const c of conns) {
            if (c.state !== 'held' || this.refilling.has(c)) continue;
            this.close(c);
            c.transport.end(Errors.STORE_UNAVAILABLE);
          }
          return;
        }
        for (const c of conns) {
          // Held again meanwhile (a second loss before this read came back): the next refill reads again.
          if (this.refilling.has(c)) continue;
          // With replay=true enqueue skips nothing, so filter by this connection's own cursor here.
          if (c.state === 'held') this.goLive(c, history.messages, c.cursor, null, [], this.gapNotice(c, c.cursor, history));
        }
      }),
    );
  }

  /**
   * The refill's history read, tried again with growing waits while it fails (the command
   * connection may not be back yet) and while any of `conns` still waits for it; the held
   * connections keep buffering live messages meanwhile, so nothing is lost or doubled either way.
   */
  private async readForRefill(channels: readonly string[], after: string, conns: readonly Connection[]): Promise<HistoryResult> {
    const waits = this.opts.refillRetryMs ?? REFILL_RETRY_MS;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.opts.store.history(channels, after);
      } catch (err) {
        const wait = waits[attempt];
        const waiting = conns.some((c) => c.state === 'held' && !this.refilling.has(c));
        if (wait === undefined || !waiting || this.stopped) throw err;
        if (attempt === 0) this.log.info({ err: { message: (err as Error).message }, connections: conns.length }, 'refill history read failed; trying again while the connections wait');
        await new Promise((r) => setTimeout(r, wait).unref());
      }
    }
  }

  private async lifecycleTimes(channels: readonly string[], fromHistory: ChannelTimes | undefined): Promise<ChannelTimes | null> {
    if (this.opts.lifecycle === undefined) return null;
    return fromHistory ?? this.opts.lifecycle.registry.times(channels);
  }

  /** Derived keys (v4 "pub:<id>") have no creation record: they count as unknown, i.e. writable. */
  private phase(times: ChannelTimes, i: number): ReturnType<typeof channelPhase> {
    return channelPhase(times.created[i] ?? null, times.now, (this.opts.lifecycle as HubLifecycle).windows);
  }

  /** The channel's stored channel_expire notice (created on first request), or null. */
  private async notice(ch: string, times: ChannelTimes | null): Promise<StoredMessage | null> {
    const lc = this.opts.lifecycle;
    if (lc === undefined) return null;
    const r = await lc.registry.expireNotice(ch, this.noticeBody(ch, times));
    return r.kind === 'stored' ? r.message : null;
  }

  private noticeBody(ch: string, times: ChannelTimes | null): string {
    const lc = this.opts.lifecycle as HubLifecycle;
    return channelExpireBody(lc.signedId(ch), times?.now ?? 0);
  }

  /**
   * Sets a timer for the end of a local channel's write window. Durations are computed on the
   * server clock (creation and "now" both come from Redis), so a skewed local clock does not matter.
   * When it fires, the notice is stored and PUBLISHed once; every listener's connections get it
   * through the broker like any message.
   */
  private armExpiry(ch: string, created: number | null, now: number): void {
    const lc = this.opts.lifecycle;
    if (lc === undefined || created === null || this.expiryTimers.has(ch) || !this.byChannel.has(ch)) return;
    const inMs = created + lc.windows.writeMs - now;
    if (inMs <= 0) return; // already read-only: handled at open and by the periodic check
    this.setExpiryTimer(ch, inMs);
  }

  private setExpiryTimer(ch: string, inMs: number): void {
    const t = setTimeout(() => {
      this.expiryTimers.delete(ch);
      if (!this.byChannel.has(ch)) return;
      const lc = this.opts.lifecycle as HubLifecycle;
      lc.registry.times([ch]).then(
        (times) =>
          lc.registry.expireNotice(ch, this.noticeBody(ch, times)).then((r) => {
            if (r.kind === 'stored' && this.byChannel.has(ch)) this.expiredLocal.add(ch);
            // Timers may fire a little early against the server clock: ask again when it says.
            if (r.kind === 'early' && this.byChannel.has(ch) && !this.expiryTimers.has(ch)) this.setExpiryTimer(ch, r.inMs + 5);
          }),
        (err: Error) => this.log.warn({ err: { message: err.message } }, 'channel expiry check failed'),
      ).catch((err: Error) => this.log.warn({ err: { message: err.message } }, 'channel expiry notice failed'));
    }, Math.min(inMs, 2 ** 31 - 1));
    t.unref();
    this.expiryTimers.set(ch, t);
  }

  private disarmExpiry(ch: string): void {
    const t = this.expiryTimers.get(ch);
    if (t !== undefined) clearTimeout(t);
    this.expiryTimers.delete(ch);
    this.expiredLocal.delete(ch);
  }

  /**
   * Channels that were unknown when their connections opened (subscribed before the portal first
   * published) are looked up again on the presence interval, so long-lived sockets on them still
   * get their expiry timer, or the notice if the window already ended.
   */
  private async checkUnarmed(): Promise<void> {
    const lc = this.opts.lifecycle;
    if (lc === undefined) return;
    const pending = [...this.byChannel.keys()].filter((ch) => !ch.includes(':') && !this.expiryTimers.has(ch) && !this.expiredLocal.has(ch));
    for (let i = 0; i < pending.length; i += 1000) {
      const batch = pending.slice(i, i + 1000);
      const times = await lc.registry.times(batch);
      for (let k = 0; k < batch.length; k++) {
        const ch = batch[k] as string;
        const phase = this.phase(times, k);
        if (phase === 'writable') this.armExpiry(ch, times.created[k] ?? null, times.now);
        // The notice is stored once; asking again returns the stored one without re-announcing,
        // so connections opened before it existed only miss it if it was announced before they
        // joined, and then open() already gave it to them.
        else if (phase === 'read-only' && (await lc.registry.expireNotice(ch, this.noticeBody(ch, times))).kind === 'stored') this.expiredLocal.add(ch);
      }
    }
  }

  private async refreshPresence(): Promise<void> {
    this.checkUnarmed().catch((err: Error) => this.log.warn({ err: { message: err.message } }, 'channel lifecycle check failed'));
    const all = [...this.byChannel.keys()];
    try {
      for (let i = 0; i < all.length; i += 1000) await this.opts.presence.touch(all.slice(i, i + 1000));
    } catch (err) {
      this.log.warn({ err: { message: (err as Error).message } }, 'presence refresh failed');
    }
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.presenceTimer);
    for (const t of this.expiryTimers.values()) clearTimeout(t);
    this.expiryTimers.clear();
    for (const t of this.lingering.values()) clearTimeout(t);
    this.lingering.clear();
  }
}
