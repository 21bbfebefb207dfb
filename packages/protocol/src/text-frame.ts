import { midCounter } from './message-id.js';

/**
 * Text frames of protocol versions 3/4 (reference section 6.1). Clients cut frames out with
 * /#!NGINXNMS!#(.*?)#!NGINXNME!#/g and JSON.parse each, so the body must be single-line JSON;
 * it is spliced in verbatim, never re-encoded.
 */
export const FRAME_START = '#!NGINXNMS!#';
export const FRAME_END = '#!NGINXNME!#';

export interface FrameSource {
  readonly mid: string;
  /** Unix milliseconds when the message was accepted (the tag and time fields derive from it). */
  readonly createdMs: number;
  /** The published JSON text. */
  readonly body: string;
}

/**
 * `channel` is "-" and tag/time come from the message, not the recipient or the send time, so
 * one encoding serves every socket (Bitrix 2.0 also sends "-"; clients ignore the field).
 */
export function encodeTextFrame(msg: FrameSource): string {
  const tag = String(msg.createdMs % 1000);
  const time = new Date(msg.createdMs).toUTCString();
  return `${FRAME_START}{"id":${midCounter(msg.mid)},"mid":"${msg.mid}","channel":"-","tag":"${tag}","time":"${time}","text":${msg.body}}${FRAME_END}`;
}

/** Splits concatenated frames the way the official clients do; used by tests and the load generator. */
export function decodeTextFrames(data: string): Array<{ id: number; mid: string; channel: string; tag: string; time: string; text: unknown }> {
  const out: Array<{ id: number; mid: string; channel: string; tag: string; time: string; text: unknown }> = [];
  const re = /#!NGINXNMS!#(.*?)#!NGINXNME!#/g;
  for (let m = re.exec(data); m !== null; m = re.exec(data)) out.push(JSON.parse(m[1] as string));
  return out;
}
