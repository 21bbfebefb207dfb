import { midCounter } from './message-id.js';

/**
 * Text frames of protocol versions 3/4 (reference section 6.1). Clients cut frames out with
 * /#!NGINXNMS!#(.*?)#!NGINXNME!#/g and JSON.parse each, so the body must be single-line JSON
 * without marker text; it is spliced in verbatim apart from escapeFrameMarkers, never re-encoded.
 */
export const FRAME_START = '#!NGINXNMS!#';
export const FRAME_END = '#!NGINXNME!#';

/** A `#` that starts either marker (a lookahead, so overlapping markers are all found). */
const MARKER_START = /#(?=!NGINXNM[SE]!#)/g;

/**
 * Makes a JSON text unable to contain either frame marker while it parses to the same value.
 * Clients cut frames at the first `#!NGINXNME!#`, so a body holding one (inside a string: outside
 * strings `#` is not JSON) would split its frame and be lost. In valid JSON a `#` can only stand
 * inside a string and never right after an escaping backslash (`\#` is no JSON escape), so writing
 * `\u0023` for it there keeps the string's value. Every `#` that starts a marker is rewritten
 * (overlapping markers such as `#!NGINXNME!#!NGINXNME!#` included) and no `#` is added, so no
 * marker can remain or appear. The common case, no marker text at all, costs one substring search
 * and returns the same string.
 */
export function escapeFrameMarkers(json: string): string {
  return json.includes('!NGINXNM') ? json.replace(MARKER_START, '\\u0023') : json;
}

export interface FrameSource {
  readonly mid: string;
  /** Unix milliseconds when the message was accepted (the tag and time fields derive from it). */
  readonly createdMs: number;
  /** The published JSON text. */
  readonly body: string;
}

/**
 * `channel` is "-" and tag/time come from the message, not the recipient or the send time, so
 * one encoding serves every socket (Bitrix 2.0 also sends "-"; clients ignore the field). The body
 * goes through escapeFrameMarkers here, where a message is encoded once for all its text clients
 * (and once per replayed message); stored records and protobuf frames keep the published bytes.
 */
export function encodeTextFrame(msg: FrameSource): string {
  const tag = String(msg.createdMs % 1000);
  const time = new Date(msg.createdMs).toUTCString();
  return `${FRAME_START}{"id":${midCounter(msg.mid)},"mid":"${msg.mid}","channel":"-","tag":"${tag}","time":"${time}","text":${escapeFrameMarkers(msg.body)}}${FRAME_END}`;
}

/** Splits concatenated frames the way the official clients do; used by tests and the load generator. */
export function decodeTextFrames(data: string): Array<{ id: number; mid: string; channel: string; tag: string; time: string; text: unknown }> {
  const out: Array<{ id: number; mid: string; channel: string; tag: string; time: string; text: unknown }> = [];
  const re = /#!NGINXNMS!#(.*?)#!NGINXNME!#/g;
  for (let m = re.exec(data); m !== null; m = re.exec(data)) out.push(JSON.parse(m[1] as string));
  return out;
}
