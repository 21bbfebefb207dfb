import { FRAME_END, FRAME_START } from '@push/protocol';

/**
 * The body every benchmark message carries: an ordinary Bitrix-shaped JSON object whose params
 * hold what a receiver needs to check delivery and measure latency.
 *   t  the sender's clock when the message was due, integer microseconds since the epoch
 *   w  microseconds from t until the request carrying it was built, right before it was written:
 *      its wait in the sender's queue (latency counted from the send starts at t + w, the closest
 *      the sender knows to the server accepting the publish)
 *   q  "<channel index>:<sequence>" for every channel of the publish, comma separated
 *   p  padding up to the requested body size
 * Receivers read t and their own channel's entry with indexOf and digit loops instead of
 * JSON.parse: at a million deliveries per second the load generator shares two cores with the
 * server, and its parsing cost would otherwise be measured as the server's.
 */
export function benchBody(dueUs: number, sentUs: number, targets: ReadonlyArray<readonly [number, number]>, bodyBytes: number): string {
  let q = '';
  for (let i = 0; i < targets.length; i++) {
    const t = targets[i] as readonly [number, number];
    q += (i === 0 ? '' : ',') + t[0] + ':' + t[1];
  }
  const head = `{"module_id":"bench","command":"m","params":{"t":${dueUs},"w":${Math.max(0, sentUs - dueUs)},"q":"${q}","p":"`;
  const tail = '"}}';
  return head + 'x'.repeat(Math.max(0, bodyBytes - head.length - tail.length)) + tail;
}

/** Microseconds since the epoch on a clock all local processes share (wall clock + monotonic offset). */
export function nowUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

/** Where parsed deliveries go; one per connection. */
export interface DeliverySink {
  deliver(seq: number, dueUs: number, sentUs: number): void;
  /** A message of the bench that had no entry for this connection's channel, or could not be read. */
  malformed(): void;
}

const T_KEY = '"t":';
const W_KEY = ',"w":';
const Q_KEY = ',"q":"';
const MID_KEY = '"mid":"';

/**
 * Reads one bench body lying in text[from, to): reports (seq, t, t + w) for channel `chan` to the sink.
 * Anything else (another channel only, damaged text) counts as malformed.
 */
export function readBenchBody(text: string, from: number, to: number, chan: number, sink: DeliverySink): void {
  let i = text.indexOf(T_KEY, from);
  if (i < 0 || i >= to) return sink.malformed();
  i += T_KEY.length;
  let due = 0;
  for (let c = text.charCodeAt(i); c >= 48 && c <= 57; c = text.charCodeAt(++i)) due = due * 10 + (c - 48);
  if (!text.startsWith(W_KEY, i)) return sink.malformed();
  i += W_KEY.length;
  let wait = 0;
  for (let c = text.charCodeAt(i); c >= 48 && c <= 57; c = text.charCodeAt(++i)) wait = wait * 10 + (c - 48);
  if (!text.startsWith(Q_KEY, i)) return sink.malformed();
  i += Q_KEY.length;
  while (i < to) {
    let ch = 0;
    for (let c = text.charCodeAt(i); c >= 48 && c <= 57; c = text.charCodeAt(++i)) ch = ch * 10 + (c - 48);
    if (text.charCodeAt(i) !== 58 /* : */) break;
    i++;
    let seq = 0;
    for (let c = text.charCodeAt(i); c >= 48 && c <= 57; c = text.charCodeAt(++i)) seq = seq * 10 + (c - 48);
    if (ch === chan) return sink.deliver(seq, due, due + wait);
    if (text.charCodeAt(i) !== 44 /* , */) break;
    i++;
  }
  sink.malformed();
}

/**
 * Reads every message of a Bitrix text frame (several may be concatenated) and returns the mid of
 * the last one, the client's resume cursor (null when the frame held none).
 */
export function readTextFrames(data: string, chan: number, sink: DeliverySink): string | null {
  let mid: string | null = null;
  let at = data.indexOf(FRAME_START);
  while (at >= 0) {
    const end = data.indexOf(FRAME_END, at);
    if (end < 0) {
      sink.malformed();
      break;
    }
    const m = data.indexOf(MID_KEY, at);
    if (m >= 0 && m < end) mid = data.slice(m + MID_KEY.length, m + MID_KEY.length + 26);
    readBenchBody(data, at, end, chan, sink);
    at = data.indexOf(FRAME_START, end);
  }
  return mid;
}
