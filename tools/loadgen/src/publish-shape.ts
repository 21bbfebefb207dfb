import { encodeRequestBatch, hexToBytes } from '@push/protocol';

/**
 * The request shapes a benchmark publishes in, as pure builders (table-tested in
 * publish-shape.test.ts); the driver adds the Host line, Content-Length and, where the run signs,
 * the signature headers.
 *
 *   text    one message per request, as a Bitrix portal's PHP module sends it in text mode:
 *           `POST /bitrix/pub/?CHANNEL_ID=a/b/c`, the body as is, `Message-Expiry` in seconds
 *   binary  one message per request in protocol 4, as the PHP module sends it in binary mode:
 *           `POST /bitrix/pub/?binaryMode=true`, a protobuf RequestBatch of one request with one
 *           IncomingMessage (its receivers, body and expiry)
 *   batch   up to `--batch` messages per `POST /pub/batch` (JSON): this server's own bulk form,
 *           which no other system compared has; a separate, labelled shape, never the headline
 *
 * nchan has one form only: `POST /pub/a,b,c` (its split delimiter), one message per request.
 */
export type PublishShape = 'text' | 'binary' | 'batch';

export const PUBLISH_SHAPES: readonly PublishShape[] = ['text', 'binary', 'batch'];

/** Which system a request is for: each has its own publish path. */
export type PublishKind = 'push' | 'nchan' | 'bitrix';

export interface ShapedMessage {
  /** Channel ids (32 hex digits each: a protocol-4 receiver id is their 16 bytes). */
  readonly channels: readonly string[];
  readonly body: string;
}

export interface ShapedRequest {
  readonly method: 'POST';
  /** Path and query, as signed (docs/security.md: the request target). */
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
  readonly messages: number;
}

/** Parses `--shape`; anything else is an error naming the choices. */
export function parseShape(value: string): PublishShape {
  if ((PUBLISH_SHAPES as readonly string[]).includes(value)) return value as PublishShape;
  throw new Error(`--shape must be one of ${PUBLISH_SHAPES.join(', ')} (got "${value}")`);
}

/** Messages one request of the shape carries at most: the single-message shapes carry one. */
export function messagesPerRequest(shape: PublishShape, batch: number): number {
  if (shape !== 'batch') return 1;
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`--batch must be a whole number of at least 1 (got ${batch})`);
  return batch;
}

/** One request carrying `messages` to system `kind` in `shape`. */
export function shapeRequest(kind: PublishKind, shape: PublishShape, messages: readonly ShapedMessage[], expiry: number): ShapedRequest {
  if (messages.length === 0) throw new Error('a publish request carries at least one message');
  const single = (): ShapedMessage => {
    if (messages.length !== 1) throw new Error(`the ${kind === 'push' ? shape : kind} shape carries one message per request (got ${messages.length})`);
    return messages[0] as ShapedMessage;
  };
  if (kind === 'nchan') {
    const m = single();
    return { method: 'POST', path: `/pub/${m.channels.join(',')}`, headers: {}, body: Buffer.from(m.body, 'utf8'), messages: 1 };
  }
  if (kind === 'bitrix' || shape === 'text') {
    // The Bitrix push server 1.0 takes the same text publish on the same path.
    const m = single();
    return { method: 'POST', path: `/bitrix/pub/?CHANNEL_ID=${m.channels.join('/')}`, headers: { 'Message-Expiry': String(expiry) }, body: Buffer.from(m.body, 'utf8'), messages: 1 };
  }
  if (shape === 'binary') {
    const m = single();
    const body = encodeRequestBatch({ requests: [{ incomingMessages: { messages: [{ receivers: m.channels.map((c) => ({ id: hexToBytes(c), isPrivate: true })), body: m.body, expiry }] } }] });
    return { method: 'POST', path: '/bitrix/pub/?binaryMode=true', headers: { 'Content-Type': 'application/octet-stream' }, body: Buffer.from(body), messages: 1 };
  }
  const json = JSON.stringify({ messages: messages.map((m) => ({ channels: m.channels, body: m.body, expiry })) });
  return { method: 'POST', path: '/pub/batch', headers: {}, body: Buffer.from(json, 'utf8'), messages: messages.length };
}

export type PublishAuth = 'trusted' | 'ed25519' | 'hmac-sha256';

/** Options of the publishing every fan-out scenario takes: `--shape`, `--publish-auth`, `--lanes`. */
export const PUBLISH_OPTIONS = { shape: 'text', 'publish-auth': 'trusted' } as const;

export function parsePublishAuth(value: string): PublishAuth {
  if (value === 'trusted' || value === 'ed25519') return value;
  if (value === 'hmac' || value === 'hmac-sha256') return 'hmac-sha256';
  throw new Error(`--publish-auth must be trusted, ed25519 or hmac (got "${value}")`);
}

/**
 * Lanes for this server: `--lanes auto` gives the single-message shapes 32 (one request in flight
 * per lane, so enough lanes to offer the load, each still keeping its channels' order) and the
 * batch shape 1; a number is taken as it is. Never more lanes than channels allow (`maxLanes`).
 */
export function lanesFor(value: string, shape: PublishShape, maxLanes: number): number {
  const n = value === 'auto' ? (shape === 'batch' ? 1 : 32) : Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--lanes must be auto or a whole number of at least 1 (got "${value}")`);
  return Math.max(1, Math.min(n, maxLanes));
}

/** The line that says how each system was published to (printed and kept in the report). */
export function publishingLabel(shape: PublishShape, auth: PublishAuth, batch: number): string {
  const form =
    shape === 'text'
      ? 'one message per request, text POST /bitrix/pub/?CHANNEL_ID= with Message-Expiry (a portal in text mode)'
      : shape === 'binary'
        ? 'one message per request, protocol-4 POST /bitrix/pub/?binaryMode=true with a RequestBatch of one message (a portal in binary mode)'
        : `BATCH SHAPE: up to ${batch} messages per POST /pub/batch for this server (not what portals send; nchan still gets one message per request)`;
  const signing = auth === 'trusted' ? 'unsigned from a trusted address, like nchan\'s' : `signed with ${auth} (nchan's are unsigned: it checks no signature)`;
  return `publishing: ${form}; ${signing}`;
}
