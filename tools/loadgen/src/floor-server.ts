import { Redis } from 'ioredis';
import { loadUws, uwsMaxHeaderBytes, type HttpResponse, type TemplatedApp, type WebSocket } from '@push/runtime';
import { nowUs } from './bench-body.js';
import { FRAME_FIELDS, frameTemplate, messagesDue, pickDistinct, seededRandom, writeDigits } from './floors.js';
import { serve } from './ipc.js';

/**
 * A bare uWebSockets.js server for the `floors` scenario (its own process, like a listener or a
 * publisher), loaded through the runtime package's loader as the servers load it. None of the
 * project's server code runs here: it measures what the binding, Node and the kernel cost per unit
 * of work, the floor under any server built on them.
 *
 * - `listenWs`: holds WebSockets on /bitrix/subws/ (the channel is read from CHANNEL_ID, unchecked);
 *   `runWs` then sends, on a 5 ms timer, every message that fell due: a seeded draw of `fanout`
 *   channels (every process given the same seed draws the same channels and keeps the same
 *   sequence numbers), and per channel one `ws.send` of a prebuilt text frame per socket, with the
 *   channel's index, sequence number and the due time patched in. No coalescing, no JSON, no Redis.
 * - `listenHttp`: answers `POST /bitrix/pub/?CHANNEL_ID=...` 200 with a fixed JSON body once the
 *   request body has been read; with `redisUrl`, only after one EVALSHA of a trivial script that
 *   gets the channel list and the body as arguments (ioredis, as the publisher calls Redis).
 */

interface Sock {
  chan: number;
}

/** Options of the WebSocket route as the listener sets them (apps/listener server.ts). */
const IDLE_TIMEOUT_S = 120;
const ANSWER = Buffer.from('{"status":"ok"}');

const { uws } = loadUws(process.versions.modules, { maxHeaderBytes: uwsMaxHeaderBytes(100) });
let app: TemplatedApp | null = null;
let listenSocket: unknown = null;
/** Sockets per channel index. */
let byChannel: Array<WebSocket<Sock>[] | undefined> = [];
/** Per-channel sequence numbers, cumulative over runs (clients count from 1). */
let seqs = new Int32Array(0);
let requests = 0;
let redis: Redis | null = null;

function listen(a: TemplatedApp): Promise<number> {
  return new Promise((resolve, reject) =>
    a.listen('127.0.0.1', 0, (s) => {
      if (s === false) return reject(new Error('bare uWebSockets.js server could not listen'));
      listenSocket = s;
      resolve(uws.us_socket_local_port(s as never));
    }),
  );
}

function channelIndex(channelId: string): number {
  // CHANNEL_ID is "<id>.<signature>"; the load generator's ids end in the index as 16 hex digits.
  const id = channelId.split('.')[0] ?? '';
  return parseInt(id.slice(-16), 16);
}

serve({
  async listenWs(req) {
    const channels = req['channels'] as number;
    byChannel = new Array(channels);
    seqs = new Int32Array(channels);
    app = uws.App();
    app.ws<Sock>('/bitrix/subws/', {
      compression: uws.DISABLED,
      maxPayloadLength: 1024 * 1024,
      idleTimeout: IDLE_TIMEOUT_S,
      sendPingsAutomatically: true,
      maxBackpressure: 1024 * 1024 * 1024,
      upgrade: (res, r, context) => {
        const chan = channelIndex(r.getQuery('CHANNEL_ID') ?? '');
        if (!(chan >= 0 && chan < channels)) {
          res.writeStatus('400 Bad Request').end('unknown channel');
          return;
        }
        res.upgrade<Sock>({ chan }, r.getHeader('sec-websocket-key'), r.getHeader('sec-websocket-protocol'), r.getHeader('sec-websocket-extensions'), context);
      },
      open: (ws) => {
        const c = ws.getUserData().chan;
        (byChannel[c] ??= []).push(ws);
      },
      close: (ws) => {
        const list = byChannel[ws.getUserData().chan];
        const i = list?.indexOf(ws) ?? -1;
        if (list !== undefined && i >= 0) list.splice(i, 1);
      },
    });
    return { port: await listen(app) };
  },

  runWs(req) {
    const rate = req['rate'] as number;
    const seconds = req['seconds'] as number;
    const fanout = req['fanout'] as number;
    const random = seededRandom(req['seed'] as number);
    const frame = frameTemplate(req['bodyBytes'] as number);
    const total = Math.max(1, Math.round(rate * seconds));
    const picks: number[] = [];
    let done = 0;
    let sends = 0;
    let backpressured = 0;
    let dropped = 0;
    const startMs = performance.now();
    const startUs = nowUs();
    return new Promise<Record<string, unknown>>((resolve) => {
      const tick = (): void => {
        const due = messagesDue(rate, performance.now() - startMs, total);
        for (; done < due; done++) {
          writeDigits(frame.buf, frame.dueAt, FRAME_FIELDS.due, Math.round(startUs + (done * 1e6) / rate));
          for (const c of pickDistinct(random, seqs.length, fanout, picks)) {
            const seq = ++(seqs[c] as number);
            const socks = byChannel[c];
            if (socks === undefined || socks.length === 0) continue;
            writeDigits(frame.buf, frame.chanAt, FRAME_FIELDS.chan, c);
            writeDigits(frame.buf, frame.seqAt, FRAME_FIELDS.seq, seq);
            for (const ws of socks) {
              // 1: written (or queued in uWS's buffer); 0: buffered under backpressure; 2: dropped.
              const r = ws.send(frame.buf, false, false);
              sends++;
              if (r === 0) backpressured++;
              else if (r === 2) dropped++;
            }
          }
        }
        if (done >= total) {
          clearInterval(timer);
          resolve({ messages: total, sends, backpressured, dropped, seconds: (performance.now() - startMs) / 1000, seqs: Array.from(seqs) });
        }
      };
      const timer = setInterval(tick, 5);
      tick();
    });
  },

  async listenHttp(req) {
    const url = req['redisUrl'] as string | undefined;
    if (url !== undefined) {
      redis = new Redis(url, { enableOfflineQueue: true });
      // A trivial script: what one Redis round trip costs the publisher, whatever the script does.
      redis.defineCommand('floorNoop', { numberOfKeys: 0, lua: 'return 1' });
      await redis.ping();
    }
    const call = redis as (Redis & { floorNoop(...args: Array<string | Buffer>): Promise<number> }) | null;
    app = uws.App();
    app.post('/bitrix/pub/', (res: HttpResponse, r) => {
      const channels = r.getQuery('CHANNEL_ID') ?? '';
      let aborted = false;
      res.onAborted(() => (aborted = true));
      const parts: Buffer[] = [];
      res.onData((chunk, last) => {
        // uWS reuses the chunk's memory after this callback returns: copy it.
        parts.push(Buffer.from(chunk.slice(0)));
        if (!last) return;
        const body = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
        const answer = (): void => {
          if (aborted) return;
          requests++;
          res.cork(() => res.writeStatus('200 OK').writeHeader('Content-Type', 'application/json').end(ANSWER));
        };
        if (call === null) answer();
        else
          call.floorNoop(channels, body).then(answer, (err: Error) => {
            if (!aborted) res.cork(() => res.writeStatus('500 Internal Server Error').end(err.message));
          });
      });
    });
    return { port: await listen(app) };
  },

  stats() {
    return { requests };
  },

  /** This process's CPU time so far (user + system, microseconds): the counters /proc shows in clock ticks, read without rounding. */
  cpu() {
    const u = process.cpuUsage();
    return { us: u.user + u.system };
  },

  close() {
    if (listenSocket !== null) uws.us_listen_socket_close(listenSocket as never);
    redis?.disconnect();
    return {};
  },
});
