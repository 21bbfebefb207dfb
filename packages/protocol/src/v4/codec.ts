import pb from 'protobufjs';
import type { StoredMessage } from '../record.js';
import { PUSH_SERVER_PROTO } from './schema.js';

/**
 * Protocol-version-4 codec: the schema is parsed once at module load by protobufjs (no hand-written
 * codec). `keepCase` keeps the schema's camelCase names as they are.
 */
const root = pb.parse(PUSH_SERVER_PROTO, { keepCase: true }).root;

export const V4Types = {
  RequestBatch: root.lookupType('pushserver.RequestBatch'),
  ResponseBatch: root.lookupType('pushserver.ResponseBatch'),
  OutgoingMessage: root.lookupType('pushserver.OutgoingMessage'),
} as const;

/** Bitrix SenderType enum values. */
export const SenderType = { UNKNOWN: 0, CLIENT: 1, BACKEND: 2 } as const;

/** Field number 1, wire type 2 (length-delimited): the tag byte of every repeated/embedded field 1 used below. */
const FIELD1_LEN = (1 << 3) | 2;

/** A 26-digit mid as the 13 bytes Bitrix 2.0 uses; the hex of those bytes is the mid again. */
export function midToBytes(mid: string): Uint8Array {
  return Buffer.from(mid, 'hex');
}

export function bytesToHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function hexToBytes(hex: string): Uint8Array {
  return Buffer.from(hex, 'hex');
}

/** The plain-object form of an OutgoingMessage, as clients decode it. */
export function outgoingMessageObject(msg: StoredMessage): Record<string, unknown> {
  const sender: Record<string, unknown> = { type: msg.sender.type };
  // A protocol-5 sender known only by its user id ("user:<id>") has no public id to send here.
  if (msg.sender.id !== '' && !msg.sender.id.startsWith('user:')) sender['id'] = hexToBytes(msg.sender.id);
  return {
    id: midToBytes(msg.mid),
    body: msg.body,
    expiry: msg.expiry,
    created: Math.floor(msg.createdMs / 1000),
    sender,
  };
}

/**
 * One message encoded as an element of `OutgoingMessagesResponse.messages` (tag + length + the
 * OutgoingMessage bytes). Elements of a repeated field may simply be concatenated, which is what
 * lets the listener encode a message once and reuse the bytes in every connection's batch.
 */
export function encodeOutgoingElement(msg: StoredMessage): Uint8Array {
  const payload = V4Types.OutgoingMessage.encode(V4Types.OutgoingMessage.fromObject(outgoingMessageObject(msg))).finish();
  return pb.Writer.create().uint32(FIELD1_LEN).bytes(payload).finish();
}

/**
 * Wraps pre-encoded elements into `ResponseBatch{responses:[{outgoingMessages:{messages:[...]}}]}`:
 * the concatenated elements are the OutgoingMessagesResponse body, which is field 1 of Response,
 * which is element 1 of ResponseBatch.responses.
 */
export function wrapOutgoingElements(elements: readonly Uint8Array[]): Uint8Array {
  const list = elements.length === 1 ? (elements[0] as Uint8Array) : Buffer.concat(elements);
  const response = pb.Writer.create().uint32(FIELD1_LEN).bytes(list).finish();
  return pb.Writer.create().uint32(FIELD1_LEN).bytes(response).finish();
}

/** Encodes any ResponseBatch given as a plain object (channel stats, server stats: not hot paths). */
export function encodeResponseBatch(batch: { responses: Array<Record<string, unknown>> }): Uint8Array {
  return V4Types.ResponseBatch.encode(V4Types.ResponseBatch.fromObject(batch)).finish();
}

export interface DecodedResponse {
  outgoingMessages?: { messages: Array<{ id: Uint8Array; body: string; expiry: number; created: number; sender?: { type: number; id: Uint8Array } }> };
  channelStats?: { channels: Array<{ id: Uint8Array; isPrivate: boolean; isOnline: boolean }> };
  serverStats?: { json: string };
  json?: string;
  command?: string;
}

/** Decodes a ResponseBatch (tests and the load generator read frames with it). Throws on bad bytes. */
export function decodeResponseBatch(bytes: Uint8Array): { responses: DecodedResponse[] } {
  const msg = V4Types.ResponseBatch.decode(bytes);
  return V4Types.ResponseBatch.toObject(msg, { oneofs: true, arrays: true, defaults: true, enums: Number }) as { responses: DecodedResponse[] };
}

/** Encodes a RequestBatch from a plain object (tests and clients of this package). */
export function encodeRequestBatch(batch: { requests: Array<Record<string, unknown>> }): Uint8Array {
  return V4Types.RequestBatch.encode(V4Types.RequestBatch.fromObject(batch)).finish();
}
