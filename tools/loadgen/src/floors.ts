import { encodeTextFrame } from '@push/protocol';

/**
 * Pure parts of the `floors` scenario (table-tested in floors.test.ts): the prebuilt frame the
 * bare WebSocket server sends, the schedule both of its processes draw alike, the publish script's
 * argument list, what Redis reports about itself, and the table the scenario prints.
 */

/** Writes `value` as exactly `width` decimal digits (leading zeros) at `at`; throws if it does not fit. */
export function writeDigits(buf: Buffer, at: number, width: number, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value >= 10 ** width) throw new Error(`${value} does not fit in ${width} digits`);
  let v = value;
  for (let i = at + width - 1; i >= at; i--) {
    buf[i] = 48 + (v % 10);
    v = Math.floor(v / 10);
  }
}

/** Widths of the fields patched into the frame for every channel append. */
export const FRAME_FIELDS = { due: 16, chan: 8, seq: 10 } as const;

export interface FrameTemplate {
  /** One text frame as this server's listeners send it, built once; the fields below are patched in place. */
  readonly buf: Buffer;
  /** Offset of the due time (microseconds since the epoch, FRAME_FIELDS.due digits). */
  readonly dueAt: number;
  /** Offset of the channel index (FRAME_FIELDS.chan digits) and of its sequence number (FRAME_FIELDS.seq digits). */
  readonly chanAt: number;
  readonly seqAt: number;
}

/**
 * A Bitrix text frame (`#!NGINXNMS!#{"id":..,"mid":..,..,"text":<body>}#!NGINXNME!#`, encoded by
 * the protocol package as the listeners encode it) whose body is a bench body (bench-body.ts) of
 * `bodyBytes` bytes with fixed-width digit fields, so the load generator's unchanged clients read
 * it, check the channel's sequence and measure latency, while the server only overwrites 34 digits
 * per channel append: no JSON, no allocation per delivery.
 */
export function frameTemplate(bodyBytes: number): FrameTemplate {
  const due = '1'.repeat(FRAME_FIELDS.due);
  const chan = '2'.repeat(FRAME_FIELDS.chan);
  const seq = '3'.repeat(FRAME_FIELDS.seq);
  const head = `{"module_id":"bench","command":"m","params":{"t":${due},"w":0,"q":"${chan}:${seq}","p":"`;
  const tail = '"}}';
  const body = head + 'x'.repeat(Math.max(0, bodyBytes - head.length - tail.length)) + tail;
  const mid = '1765000000' + '1'.padStart(16, '0');
  const text = encodeTextFrame({ mid, createdMs: 1765000000000, body });
  const buf = Buffer.from(text, 'latin1');
  const dueAt = text.indexOf(`"t":${due}`) + 4;
  const chanAt = text.indexOf(`"q":"${chan}:`) + 5;
  return { buf, dueAt, chanAt, seqAt: chanAt + FRAME_FIELDS.chan + 1 };
}

/** A small seeded generator (mulberry32): every process given the same seed draws the same numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` distinct channel indexes below `channels`, drawn with `random` (fills `out`, returns it). */
export function pickDistinct(random: () => number, channels: number, count: number, out: number[] = []): number[] {
  if (count > channels) throw new Error(`cannot pick ${count} distinct channels of ${channels}`);
  out.length = 0;
  while (out.length < count) {
    const c = Math.floor(random() * channels);
    if (!out.includes(c)) out.push(c);
  }
  return out;
}

/** Messages due after `elapsedMs` at `rate` per second (message k is due at k / rate s, the first at once), at most `total`. */
export function messagesDue(rate: number, elapsedMs: number, total: number): number {
  if (!(rate > 0) || elapsedMs < 0) return 0;
  return Math.min(total, Math.floor((elapsedMs / 1000) * rate) + 1);
}

/** Deliveries a message makes on average: `fanout` channels of the mean number of devices per channel. */
export function deliveriesPerMessage(devices: readonly number[], fanout: number): number {
  if (devices.length === 0) return 0;
  return (fanout * devices.reduce((s, d) => s + d, 0)) / devices.length;
}

/** Deliveries owed for the messages between two snapshots of the per-channel sequence numbers. */
export function deliveriesBetween(before: readonly number[], after: readonly number[], devices: readonly number[]): number {
  let n = 0;
  for (let c = 0; c < after.length; c++) n += ((after[c] ?? 0) - (before[c] ?? 0)) * (devices[c] ?? 0);
  return n;
}

/** The median item by `key` (the lower middle one of an even count); undefined for none. */
export function medianBy<T>(items: readonly T[], key: (x: T) => number): T | undefined {
  const sorted = [...items].sort((a, b) => key(a) - key(b));
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

/** Microseconds of CPU per unit of work: `cpu` cores busy over `seconds`, for `units` (null without units). */
export function usPerUnit(cpu: number, seconds: number, units: number): number | null {
  if (!(units > 0) || !(seconds > 0)) return null;
  return Math.round(((cpu * seconds * 1e6) / units) * 100) / 100;
}

/**
 * Arguments of PUBLISH_SCRIPT (packages/backend redis-scripts.ts) for unsigned requests of one
 * message each, as the publisher sends them: KEYS start and counter, then prefix, history cap,
 * write window (ms), creation-record retention (s), the number of requests (the publisher's group
 * commit puts several in one call), and per request no identity and no signature claim, the
 * channel creation times the publisher remembers (`knownCreatedMs`: every channel of the request
 * known, created then, as on a warmed-up publisher; null: none known, the script reads them), one
 * message with its TTL, record tail and channels. Kept beside the script's documented layout; a
 * layout change makes the script refuse or answer otherwise, which the scenario checks per call.
 */
export function publishScriptArgs(prefix: string, o: { cap: number; writeWindowMs: number; retentionS: number; ttlS: number; tail: string; knownCreatedMs: number | null; requests: ReadonlyArray<readonly string[]> }): Array<string | number> {
  const args: Array<string | number> = [2, `${prefix}id:start`, `${prefix}id:counter`, prefix, o.cap, o.writeWindowMs, o.retentionS, o.requests.length];
  for (const channels of o.requests) {
    const known = o.knownCreatedMs === null ? [] : [...new Set(channels)];
    args.push('', '', '', '', '', 1, known.length);
    for (const ch of known) args.push(ch, o.knownCreatedMs as number);
    args.push(o.ttlS, o.tail, channels.length, ...channels);
  }
  return args;
}

/**
 * The least a store-then-announce design does per publish, with every key computed by the caller
 * (KEYS: history list and pub/sub topic of each channel, in pairs; ARGV: counter key, mid start,
 * record key prefix, TTL, body): one id, one record, and per channel an append, the list's
 * lifetime (a new list has no TTL, which EXPIRE GT treats as infinite, hence the plain EXPIRE for
 * it) and the announcement. No history cap, no lifecycle, no replay cache.
 */
export const MINIMAL_SCRIPT = `
local counter = redis.call('INCR', ARGV[1])
local mid = string.format('%010d%016d', tonumber(ARGV[2]), counter)
local ttl = tonumber(ARGV[4])
local record = mid .. '\\t' .. ARGV[5]
redis.call('SET', ARGV[3] .. mid, record, 'EX', ttl)
for k = 1, #KEYS, 2 do
  local len = redis.call('RPUSH', KEYS[k], mid)
  if len == 1 then redis.call('EXPIRE', KEYS[k], ttl) else redis.call('EXPIRE', KEYS[k], ttl, 'GT') end
  redis.call('PUBLISH', KEYS[k + 1], record)
end
return mid
`;

/** MINIMAL_SCRIPT without the list lifetime: what the EXPIRE costs. */
export const MINIMAL_NO_EXPIRE_SCRIPT = MINIMAL_SCRIPT.replace("  if len == 1 then redis.call('EXPIRE', KEYS[k], ttl) else redis.call('EXPIRE', KEYS[k], ttl, 'GT') end\n", '');

/**
 * The floors added up per delivery: a message costs a publish request and `fanout` channel appends
 * and makes `deliveriesPerMessage` deliveries, each one listener write. Null when a part is missing.
 */
export function floorPerDelivery(f: { listenerUs: number | null; publisherUsPerRequest: number | null; redisUsPerAppend: number | null; fanout: number; deliveriesPerMessage: number }): { totalUs: number; listenerUs: number; publisherUs: number; redisUs: number } | null {
  if (f.listenerUs === null || f.publisherUsPerRequest === null || f.redisUsPerAppend === null || !(f.deliveriesPerMessage > 0)) return null;
  const r2 = (x: number): number => Math.round(x * 100) / 100;
  const publisherUs = f.publisherUsPerRequest / f.deliveriesPerMessage;
  const redisUs = (f.redisUsPerAppend * f.fanout) / f.deliveriesPerMessage;
  return { totalUs: r2(f.listenerUs + publisherUs + redisUs), listenerUs: r2(f.listenerUs), publisherUs: r2(publisherUs), redisUs: r2(redisUs) };
}

/** One line of INFO commandstats. */
export interface CommandStat {
  readonly command: string;
  readonly calls: number;
  /** Microseconds Redis spent in the command, as it measures it (a script's line includes the commands it runs). */
  readonly usec: number;
}

/** Parses INFO commandstats (`cmdstat_rpush:calls=10,usec=25,usec_per_call=2.50,...`), most usec first. */
export function parseCommandStats(info: string): CommandStat[] {
  const out: CommandStat[] = [];
  for (const line of info.split(/\r?\n/)) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line);
    if (m !== null) out.push({ command: m[1] as string, calls: Number(m[2]), usec: Number(m[3]) });
  }
  return out.sort((a, b) => b.usec - a.usec);
}

/** used_cpu_sys + used_cpu_user of INFO cpu, seconds (Redis's own getrusage, a cross-check of /proc). */
export function parseInfoCpu(info: string): number {
  const field = (k: string): number => {
    const m = new RegExp(`^${k}:([0-9.]+)`, 'm').exec(info);
    if (m === null) throw new Error(`INFO cpu has no ${k}`);
    return Number(m[1]);
  };
  return field('used_cpu_sys') + field('used_cpu_user');
}

/** Commands that run a script: their commandstats time includes the commands the script runs. */
const SCRIPT_COMMANDS = new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro']);

/**
 * Where Redis's time goes per unit (per channel append), from commandstats: the script call as a
 * whole (its time includes the commands it runs), each command the script ran (calls and
 * microseconds per unit), and the rest of the script's time (Lua itself, argument and reply
 * handling). CPU outside commands (reading requests, writing replies and pub/sub messages to
 * sockets, the event loop) is the process's CPU minus the script's time.
 */
export function commandBreakdown(stats: readonly CommandStat[], units: number): { scriptUs: number; commands: Array<{ command: string; calls: number; us: number }>; insideUs: number; luaUs: number } {
  const per = (x: number): number => Math.round((x / units) * 100) / 100;
  let script = 0;
  let inside = 0;
  const commands: Array<{ command: string; calls: number; us: number }> = [];
  for (const c of stats) {
    if (SCRIPT_COMMANDS.has(c.command)) script += c.usec;
    else {
      inside += c.usec;
      commands.push({ command: c.command, calls: per(c.calls), us: per(c.usec) });
    }
  }
  // The parts are rounded first, so that the line adds up as printed.
  return { scriptUs: per(script), commands, insideUs: per(inside), luaUs: Math.round((per(script) - per(inside)) * 100) / 100 };
}

/** "script 7.82 us = commands 3.02 (rpush 1.00 x = 1.04, ...) + Lua and call 4.80; outside commands 2.31": per unit. */
export function formatCommandStats(stats: readonly CommandStat[], units: number, cpuUs: number | null): string {
  if (!(units > 0) || stats.length === 0) return 'n/a';
  const b = commandBreakdown(stats, units);
  const list = b.commands.filter((c) => c.us >= 0.01).map((c) => `${c.command} ${c.calls.toFixed(2)}x ${c.us.toFixed(2)}`).join(', ');
  const outside = cpuUs === null ? '' : `; outside commands (requests, replies, pub/sub writes, event loop) ${(Math.round((cpuUs - b.scriptUs) * 100) / 100).toFixed(2)}`;
  return `script ${b.scriptUs.toFixed(2)} us = commands ${b.insideUs.toFixed(2)} (${list}) + Lua and call ${b.luaUs.toFixed(2)}${outside}`;
}

export interface FloorRow {
  readonly hop: string;
  readonly measure: string;
  /** Microseconds per unit (null: not measured, e.g. nothing done). */
  readonly us: number | null;
  readonly unit: string;
  /** This server's figure for the same hop in the same run, per the same unit (null: not measured). */
  readonly ours: number | null;
  readonly note: string;
}

/** The summary table: one row per floor, columns aligned; the "ours" column only when some row has our figure. */
export function floorTable(rows: readonly FloorRow[]): string[] {
  const withOurs = rows.some((r) => r.ours !== null);
  const num = (x: number | null): string => (x === null ? 'n/a' : x.toFixed(2));
  const cells = rows.map((r) => [r.hop, r.measure, num(r.us), ...(withOurs ? [num(r.ours)] : []), r.unit, r.note]);
  const head = ['hop', 'floor', 'us', ...(withOurs ? ['ours us'] : []), 'per', 'at'];
  const numeric = withOurs ? [2, 3] : [2];
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  const line = (c: readonly string[]): string =>
    c
      .map((x, i) => (numeric.includes(i) ? x.padStart(widths[i] as number) : x.padEnd(widths[i] as number)))
      .join('  ')
      .trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)];
}
