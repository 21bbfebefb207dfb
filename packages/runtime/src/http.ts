import { Errors, PushError, errorText, statusLine, type ErrorSpec, type OriginPolicy } from '@push/protocol';
import type { HttpResponse } from './uws.js';

export type Headers = ReadonlyArray<readonly [string, string]>;

/** Bitrix clients read replies cross-origin; every reply of ours carries this (reference 4, 5.1). */
export const CORS_ANY: Headers = [['Access-Control-Allow-Origin', '*']];

/**
 * Lifetime of one uWS response across awaits. uWS invalidates `res` once the client aborts, and any
 * later call on it crashes the process, so every asynchronous path goes through `isOpen`.
 */
export class Exchange {
  aborted = false;
  finished = false;
  /**
   * Set when the request's body is still arriving with no known end (a chunked upload past the
   * limit): the reply then closes the connection rather than read on. A declared Content-Length
   * over the limit does not set it: uWS skips the rest of such a body by itself, and closing a
   * socket with unread data makes the kernel send a reset that can destroy the reply before the
   * client reads it.
   */
  closeAfterReply = false;
  private readonly abortHandlers: Array<() => void> = [];
  constructor(readonly res: HttpResponse) {
    res.onAborted(() => {
      this.aborted = true;
      for (const h of this.abortHandlers) h();
    });
  }
  get isOpen(): boolean {
    return !this.aborted && !this.finished;
  }
  onAbort(handler: () => void): void {
    this.abortHandlers.push(handler);
  }
  /** Writes a complete response; a no-op if the client went away. Returns whether it was written. */
  send(status: number, body: string | Uint8Array, headers: Headers = CORS_ANY, closeConnection = false): boolean {
    if (!this.isOpen) return false;
    this.finished = true;
    this.res.cork(() => {
      this.res.writeStatus(statusLine[status] ?? String(status));
      for (const [k, v] of headers) this.res.writeHeader(k, v);
      this.res.end(body, closeConnection || this.closeAfterReply);
    });
    return true;
  }
  sendError(err: PushError | ErrorSpec, extraHeaders: Headers = [], closeConnection = false): boolean {
    const spec = err instanceof PushError ? err.spec : err;
    const text = err instanceof PushError ? err.wire : errorText(spec);
    const retry: Headers = err instanceof PushError && err.retryAfterS !== undefined ? [['Retry-After', String(err.retryAfterS)]] : [];
    return this.send(spec.status, text, [...CORS_ANY, ['Content-Type', 'text/plain; charset=utf-8'], ...retry, ...extraHeaders], closeConnection);
  }
}

/**
 * Collects a request body up to `limit` bytes. Declared Content-Length over the limit fails before
 * reading anything; a streamed body that grows past it fails as soon as it does.
 */
export function readBody(ex: Exchange, contentLength: string, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (contentLength !== '' && Number(contentLength) > limit) {
      reject(new PushError(Errors.BODY_TOO_LARGE));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    ex.onAbort(() => reject(new Error('client aborted')));
    ex.res.onData((chunk, isLast) => {
      if (failed) return;
      size += chunk.byteLength;
      if (size > limit) {
        failed = true;
        if (!isLast) ex.closeAfterReply = true;
        reject(new PushError(Errors.BODY_TOO_LARGE));
        return;
      }
      // uWS reuses the chunk's memory after this callback returns: copy it.
      chunks.push(Buffer.from(new Uint8Array(chunk)));
      if (isLast) resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    });
  });
}

/** The 403 4114 refusal for an Origin the allow-list (PUSH_ALLOWED_ORIGINS) does not admit; null when admitted. */
export function originRefusal(policy: OriginPolicy, origin: string): PushError | null {
  return policy.allows(origin) ? null : new PushError(Errors.ORIGIN_NOT_ALLOWED, `(Origin: ${JSON.stringify(origin.slice(0, 200))})`);
}

/**
 * Answers 403 4114 when the allow-list does not admit `origin`, before anything of the request is
 * read or changed; returns whether it refused.
 */
export function refuseForeignOrigin(ex: Exchange, policy: OriginPolicy, origin: string, extraHeaders: Headers = []): boolean {
  const refusal = originRefusal(policy, origin);
  if (refusal === null) return false;
  ex.sendError(refusal, extraHeaders);
  return true;
}

/** Splits a raw query string into decoded parameters (first occurrence wins). */
export function parseQuery(raw: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of new URLSearchParams(raw)) if (!out.has(k)) out.set(k, v);
  return out;
}
