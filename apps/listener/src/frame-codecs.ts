import { encodeIncomingMessage, encodeOutgoingElement, encodeTextFrame, wrapIncomingMessages, wrapOutgoingElements, type StoredMessage } from '@push/protocol';

/**
 * How a connection wants its messages: `text` = concatenated `#!NGINXNMS!#` frames (versions 3/4),
 * `protobuf` = one ResponseBatch per write (version 4 with binaryMode=true), `jsonrpc` = JSON-RPC
 * `incoming.message` notifications (version 5, jsonRpc=true; several in one write are a batch array).
 */
export type FrameFormat = 'text' | 'protobuf' | 'jsonrpc';

/** One format's encoding: each message once into an element, any run of elements into one frame. */
export interface FrameCodec {
  readonly element: (msg: StoredMessage) => Uint8Array;
  readonly frame: (elements: Uint8Array[]) => Uint8Array;
  /** The client reads this format from binary WebSocket frames. */
  readonly binary: boolean;
}

export const FRAME_CODECS: Readonly<Record<FrameFormat, FrameCodec>> = Object.freeze({
  // Text frames concatenate as they are; the client cuts them apart again.
  text: { element: (msg) => Buffer.from(encodeTextFrame(msg), 'utf8'), frame: (e) => (e.length === 1 ? (e[0] as Uint8Array) : Buffer.concat(e)), binary: false },
  // Elements of a repeated field concatenate too and are wrapped into one ResponseBatch.
  protobuf: { element: encodeOutgoingElement, frame: wrapOutgoingElements, binary: true },
  jsonrpc: { element: (msg) => Buffer.from(encodeIncomingMessage(msg), 'utf8'), frame: wrapIncomingMessages, binary: false },
});

export const FRAME_FORMATS: readonly FrameFormat[] = Object.keys(FRAME_CODECS) as FrameFormat[];
