import { Errors, PushError, type NewMessage, type SenderInfo } from '@push/protocol';
import type { PublishIdentity, Store } from '@push/backend';
import { CORS_ANY, Exchange, readBody, type HttpRequest, type HttpResponse, type Logger } from '@push/runtime';
import type { PublisherMetrics } from '../metrics.js';

/**
 * The one publish pipeline every publish path goes through (text, batch, protocol-4 binary,
 * `/bitrix/rest/`):
 *
 *   1. capture   copy what the route needs out of uWS (synchronously: `req` dies at the first await)
 *   2. read      the whole body, within PUSH_MAX_BODY_BYTES
 *   3. prepare   authenticate and parse/validate the WHOLE request into a Plan; nothing is written
 *                yet, so a refusal here changes nothing (not even a nonce)
 *   4. carry out one atomic step: for a publish, Store.publish claims the identity, stores,
 *                announces and records the outcome together (a refusal there writes nothing)
 *   5. answer    200 with the message ids, or the error (4109 only when nothing reached Redis,
 *                504 4134 when the outcome is unknown)
 *
 * The rule this gives every path: a request's identity (signed nonce or X-Push-Request-Id) is
 * recorded only when its publish is carried out, and a carried-out identity sent again gets the
 * original outcome.
 */

/** The response header listing a publish's message ids (comma-separated, in order). */
export const MESSAGE_IDS_HEADER = 'X-Push-Message-Ids';
const TEXT = ['Content-Type', 'text/plain; charset=utf-8'] as const;

/** What a validated request asks for: nothing has been written when a route returns one. */
export type Plan =
  | {
      readonly kind: 'publish';
      readonly messages: readonly NewMessage[];
      readonly sender: SenderInfo;
      readonly identity: PublishIdentity | undefined;
      /** The answer's body once stored (protocol-5 JSON-RPC replies); absent: an empty 200. */
      readonly respond?: () => Promise<PlanAnswer>;
    }
  /** Nothing to store (an empty protocol-4 message list): the usual empty 200. */
  | { readonly kind: 'noop' }
  /**
   * A request that reads (protocol-4 channel or server stats): `run` makes its own single write
   * (a signed request's nonce claim) before reading, and resolves with the answer bytes.
   */
  | { readonly kind: 'read'; readonly run: () => Promise<Uint8Array>; readonly contentType?: string };

/** A body to answer with (default for reads: application/octet-stream, protocol-4 ResponseBatch). */
export interface PlanAnswer {
  readonly body: string | Uint8Array;
  readonly contentType: string;
}

/** One publish route: what it copies out of uWS, and how it turns body and copy into a Plan. */
export interface PublishRoute<C> {
  capture(res: HttpResponse, req: HttpRequest): C;
  /** A refusal decided from the captured request alone, before the body is read (null: go on). */
  refuse?(captured: C): PushError | null;
  prepare(captured: C, body: Buffer): Promise<Plan>;
}

/** Bookkeeping shared with the rest of the publisher (drain, stats, metrics). */
export interface PipelineHost {
  readonly store: Store;
  readonly metrics: PublisherMetrics;
  readonly maxBodyBytes: number;
  readonly log: Logger;
  isDraining(): boolean;
  /** A request past the drain check counts as in flight until answered: stop() waits for it. */
  enter(): void;
  leave(): void;
  counted(kind: 'request' | 'rejected' | 'unavailable'): void;
  published(messages: readonly NewMessage[]): void;
}

/**
 * A Redis stall fails every request in flight at once: one warning a second per kind, with how many
 * requests it stands for, says as much as thousands of lines would.
 */
const warned = new Map<string, { at: number; suppressed: number }>();
function warnOncePerSecond(log: Logger, kind: string, message: string): void {
  const now = Date.now();
  const w = warned.get(kind) ?? { at: 0, suppressed: 0 };
  if (now - w.at < 1000) {
    w.suppressed++;
    warned.set(kind, w);
    return;
  }
  log.warn({ err: { message }, alsoInLastSecond: w.suppressed }, kind);
  warned.set(kind, { at: now, suppressed: 0 });
}

/** Answers a refused request: its own code for a PushError, 503 4109 for anything unexpected. */
export function answerError(ex: Exchange, err: unknown, host: Pick<PipelineHost, 'metrics' | 'log' | 'counted'>): void {
  if (err instanceof PushError) {
    // 504 4134 is not a refusal: the publish may well be stored.
    const unknown = err.spec === Errors.OUTCOME_UNKNOWN;
    host.counted(unknown ? 'unavailable' : 'rejected');
    host.metrics.requests.inc({ result: unknown ? 'unknown' : 'rejected' });
    if (unknown) warnOncePerSecond(host.log, 'publish outcome unknown: Redis did not answer in time', err.message);
    // A streamed body past the limit closes the connection (readBody marks the exchange).
    ex.sendError(err);
    return;
  }
  host.counted('unavailable');
  host.metrics.requests.inc({ result: 'unavailable' });
  warnOncePerSecond(host.log, 'request failed: store unavailable, nothing stored', (err as Error).message);
  ex.sendError(Errors.STORE_UNAVAILABLE, [['Retry-After', '1']]);
}

/** The uWS handler of a publish route: runs the pipeline above. */
export function publishHandler<C>(route: PublishRoute<C>, host: PipelineHost): (res: HttpResponse, req: HttpRequest) => void {
  return (res, req) => {
    const captured = route.capture(res, req);
    const contentLength = req.getHeader('content-length');
    const ex = new Exchange(res);
    host.counted('request');
    if (host.isDraining()) {
      // 503 before reading or storing anything: nginx hands the request to another publisher.
      host.metrics.requests.inc({ result: 'draining' });
      ex.sendError(Errors.SHUTTING_DOWN, [['Retry-After', '1']], true);
      return;
    }
    const refusal = route.refuse?.(captured) ?? null;
    if (refusal !== null) {
      answerError(ex, refusal, host);
      return;
    }
    host.enter();
    const endTimer = host.metrics.publishDuration.startTimer();
    readBody(ex, contentLength, host.maxBodyBytes)
      .then(async (body) => {
        const plan = await route.prepare(captured, body);
        const headers: Array<readonly [string, string]> = [...CORS_ANY, TEXT];
        if (plan.kind === 'read') {
          const bytes = await plan.run();
          ex.send(200, bytes, [...CORS_ANY, ['Content-Type', plan.contentType ?? 'application/octet-stream']]);
        } else {
          if (plan.kind === 'publish') {
            const mids = await host.store.publish(plan.messages, plan.sender, plan.identity);
            // The ids let a sender match a retry's answer to the first one: the same ids again.
            // (Exposed to browsers too: /bitrix/rest/ is called from pages.)
            if (plan.identity !== undefined) headers.push([MESSAGE_IDS_HEADER, mids.join(',')], ['Access-Control-Expose-Headers', MESSAGE_IDS_HEADER]);
            if (mids.replayed !== true) host.published(plan.messages);
            if (plan.respond !== undefined) {
              const answer = await plan.respond();
              ex.send(200, answer.body, [...headers.filter((h) => h !== TEXT), ['Content-Type', answer.contentType]]);
              host.metrics.requests.inc({ result: 'ok' });
              endTimer();
              return;
            }
          }
          ex.send(200, '', headers);
        }
        host.metrics.requests.inc({ result: 'ok' });
        endTimer();
      })
      .catch((err: unknown) => {
        if (!ex.aborted) answerError(ex, err, host);
      })
      .finally(() => host.leave());
  };
}
