import { parsePublisherChannels, isChannelId } from './channel-id.js';
import { Errors, PushError } from './errors.js';
import { effectiveTtl, type TtlPolicy } from './ttl-policy.js';

/** A validated message, ready for the store: ids and timestamps are assigned there. */
export interface NewMessage {
  readonly channels: readonly string[];
  /** JSON text, exactly as published (raw newlines, only possible as whitespace, become spaces; see checkBody). */
  readonly body: string;
  readonly type: string;
  /** Seconds to keep for replay; 0 = deliver live only. */
  readonly ttl: number;
}

export interface PublishLimits {
  readonly maxChannels: number;
  readonly maxBatchMessages: number;
  readonly ttl: TtlPolicy;
  /** Upper bound of fanoutBytes() per request (PUSH_MAX_FANOUT_BYTES). */
  readonly maxFanoutBytes: number;
}

/**
 * What one request makes Redis write to subscribers at once: each message's body once per channel.
 * The publish script runs atomically, so all of it sits in Redis's output buffer for the listeners'
 * subscription connections before any of it is sent; past Redis's pub/sub buffer limit (32 MB hard
 * by default) Redis drops the listener's subscription connection. The listener recovers stored
 * messages from history, but live-only ones (expiry 0) of every channel it serves are lost, and
 * every channel is re-read. Counted per listed channel, whether anyone is subscribed or not.
 */
export function fanoutBytes(messages: ReadonlyArray<{ readonly body: string; readonly channels: { readonly length: number } }>): number {
  let total = 0;
  for (const m of messages) total += Buffer.byteLength(m.body, 'utf8') * m.channels.length;
  return total;
}

/** Throws FANOUT_TOO_LARGE (413) when fanoutBytes(messages) exceeds the limit. */
export function checkFanout(messages: ReadonlyArray<{ readonly body: string; readonly channels: { readonly length: number } }>, maxBytes: number): void {
  const total = fanoutBytes(messages);
  if (total > maxBytes) throw new PushError(Errors.FANOUT_TOO_LARGE, `This request: ${total} bytes; the limit is ${maxBytes}.`);
}

const TYPE_RE = /^[A-Za-z0-9_.:-]{1,64}$/;

/** Message-Expiry header: absent -> null; otherwise a whole number of seconds. */
export function parseExpiry(value: string | null | undefined): number | null {
  if (value === null || value === undefined || value === '') return null;
  if (!/^[0-9]{1,10}$/.test(value.trim())) throw new PushError(Errors.INVALID_EXPIRY, `Got ${JSON.stringify(value.slice(0, 40))}.`);
  return Number(value.trim());
}

export function parseTypeHeader(value: string | null | undefined): string | null {
  if (value === null || value === undefined || value === '') return null;
  if (!TYPE_RE.test(value)) throw new PushError(Errors.INVALID_TYPE);
  return value;
}

/** JSON.parse with the catalogue's errors: empty -> 4100, unparsable -> 4102 with the parser's words. */
function parseJson(text: string): unknown {
  if (text.length === 0) throw new PushError(Errors.EMPTY_BODY);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new PushError(Errors.INVALID_JSON, err instanceof Error ? err.message.slice(0, 200) : undefined);
  }
}

/**
 * Validates a message body and returns the text to store plus its parsed value. Any non-empty body
 * is accepted, as the Bitrix push server 2.0 accepts it: an object (what portals send), any other
 * JSON value (`1`, `"A"`, `[...]`, `null`) stored verbatim, and text that is not JSON at all. The
 * last is stored as a JSON string holding that text: Bitrix 2.0 splices it raw into text frames,
 * which makes the frame unparsable for every client, so here every frame stays valid JSON and every
 * client (text, protobuf, JSON-RPC) gets the same value (docs/compat-checklist.md, "Compatibility
 * choices").
 */
export function checkBody(text: string): { body: string; parsed: unknown } {
  if (text.length === 0) throw new PushError(Errors.EMPTY_BODY);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // JSON.stringify escapes line breaks, so the stored text is single-line JSON too.
    return { body: JSON.stringify(text), parsed: text };
  }
  // Clients cut text frames with a regex without the dotall flag, so a raw line break (legal JSON
  // whitespace) would make a message undeliverable. Replacing whitespace with whitespace keeps the
  // JSON value identical.
  const body = /[\r\n]/.test(text) ? text.replace(/\r\n|[\r\n]/g, ' ') : text;
  return { body, parsed };
}

/** "<module_id>_<command>" from the body, reduced to the characters a type may hold. */
export function typeFromBody(parsed: unknown): string {
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return 'unknown';
  const mod = (parsed as Record<string, unknown>)['module_id'];
  const cmd = (parsed as Record<string, unknown>)['command'];
  if (typeof mod !== 'string' || typeof cmd !== 'string') return 'unknown';
  const t = `${mod.toLowerCase()}_${cmd}`.replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 64);
  return t.length > 0 ? t : 'unknown';
}

export interface SinglePublishInput {
  readonly channelParam: string | null;
  readonly body: string;
  readonly expiryHeader: string | null;
  readonly typeHeader: string | null;
}

/** `POST /pub?CHANNEL_ID=...` with one message. Throws PushError; never partially succeeds. */
export function parseSinglePublish(input: SinglePublishInput, limits: PublishLimits): NewMessage {
  const channels = parsePublisherChannels(input.channelParam, limits.maxChannels);
  const expiry = parseExpiry(input.expiryHeader);
  const explicitType = parseTypeHeader(input.typeHeader);
  const { body, parsed } = checkBody(input.body);
  const type = explicitType ?? typeFromBody(parsed);
  const message = { channels, body, type, ttl: effectiveTtl(limits.ttl, type, expiry) };
  checkFanout([message], limits.maxFanoutBytes);
  return message;
}

function batchError(index: number, what: string): PushError {
  return new PushError(Errors.INVALID_BATCH, `messages[${index}]: ${what}`);
}

/**
 * JSON.stringify recurses and runs out of stack on very deep nesting, which JSON.parse (iterative)
 * accepted: that is bad input (400), not a server failure.
 */
function stringifyBody(body: unknown, index: number): string {
  try {
    return JSON.stringify(body);
  } catch {
    throw batchError(index, '"body" is nested too deeply; send it as a string holding the JSON text');
  }
}

/**
 * `POST /pub/batch`: {"messages":[{"channels":["<id>",...],"body":{...}|"<json text>","type"?:"..","expiry"?:n}]}.
 * The whole batch is validated before anything is stored, so it is accepted or refused as a unit.
 * A body given as a string is kept verbatim; an object is stored as compact JSON.
 */
export function parseBatchPublish(text: string, limits: PublishLimits): NewMessage[] {
  const doc = parseJson(text);
  const list = doc !== null && typeof doc === 'object' ? (doc as { messages?: unknown }).messages : undefined;
  if (!Array.isArray(list)) throw new PushError(Errors.INVALID_BATCH);
  if (list.length === 0) throw new PushError(Errors.INVALID_BATCH, 'The batch is empty.');
  if (list.length > limits.maxBatchMessages) throw new PushError(Errors.TOO_MANY_MESSAGES, `At most ${limits.maxBatchMessages} per batch.`);
  const messages = list.map((item: unknown, i): NewMessage => {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) throw batchError(i, 'must be an object');
    const m = item as Record<string, unknown>;
    const channels = m['channels'];
    if (!Array.isArray(channels) || channels.length === 0) throw batchError(i, '"channels" must be a non-empty array of channel ids');
    if (channels.length > limits.maxChannels) throw new PushError(Errors.TOO_MANY_CHANNELS, `messages[${i}]: at most ${limits.maxChannels}.`);
    const unique = new Set<string>();
    for (const c of channels) {
      if (typeof c !== 'string' || !isChannelId(c)) throw batchError(i, `channel ${JSON.stringify(c)} is not 32 lowercase hex characters`);
      unique.add(c);
    }
    // A string is the body text as a single publish would send it; any other JSON value is the body.
    let bodyText: string;
    if (typeof m['body'] === 'string') bodyText = m['body'];
    else if (m['body'] !== undefined) bodyText = stringifyBody(m['body'], i);
    else throw batchError(i, '"body" is missing');
    let checked: ReturnType<typeof checkBody>;
    try {
      checked = checkBody(bodyText);
    } catch (err) {
      throw err instanceof PushError ? batchError(i, err.message) : err;
    }
    let expiry: number | null = null;
    if (m['expiry'] !== undefined) {
      const e = m['expiry'];
      if (typeof e !== 'number' || !Number.isInteger(e) || e < 0) throw batchError(i, '"expiry" must be a whole number of seconds, 0 or more');
      expiry = e;
    }
    let type: string;
    if (m['type'] !== undefined) {
      if (typeof m['type'] !== 'string' || !TYPE_RE.test(m['type'])) throw batchError(i, Errors.INVALID_TYPE.reason);
      type = m['type'];
    } else type = typeFromBody(checked.parsed);
    return { channels: [...unique], body: checked.body, type, ttl: effectiveTtl(limits.ttl, type, expiry) };
  });
  checkFanout(messages, limits.maxFanoutBytes);
  return messages;
}
