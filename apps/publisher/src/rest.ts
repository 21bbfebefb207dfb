import { SenderType, isMessageAck, restSenderPublicId, type ChannelSecret, type V4Request } from '@push/protocol';
import { CORS_ANY, Exchange, chargeClientRequest, parseQuery, readBody, type HttpRequest, type HttpResponse, type KeyedRateLimiter } from '@push/runtime';
import { answerV4, type V4RouteDeps } from './binary-publish.js';

/** Client publishing paths (Bitrix route `rest`; the portal's `path_to_publish_web`). */
export const REST_PATHS = ['/rest', '/rest/*', '/bitrix/rest', '/bitrix/rest/*'];

export interface RestDeps extends V4RouteDeps {
  readonly secret: ChannelSecret;
  readonly maxChannels: number;
  readonly maxBodyBytes: number;
  /** PUSH_CLIENT_RATE per sender public id in this process; null = unlimited. */
  readonly limiter: KeyedRateLimiter | null;
}

/**
 * `POST /bitrix/rest/?CHANNEL_ID=<priv:pub.sig>/<shared.sig>` with a RequestBatch body: a client
 * publishing to other users' public channels when it has no WebSocket (reference 5.3). The
 * CHANNEL_ID list is checked like a subscription; its first public id is the sender. Errors are
 * HTTP 400 (4012 for any channel list without a signed public id) with "<code>: <reason>" bodies.
 *
 * Resolves (never rejects) once the request is answered or aborted, so the caller can count it as
 * in flight until then: a draining publisher must not exit while a body is still arriving.
 */
export function handleRest(res: HttpResponse, req: HttpRequest, deps: RestDeps, onError: (ex: Exchange, err: unknown) => void, onPublished: (n: number) => void): Promise<void> {
  // Copy everything out of `req` before the first await: uWS frees it when this returns.
  const query = parseQuery(req.getQuery() ?? '');
  const contentLength = req.getHeader('content-length');
  const ex = new Exchange(res);
  return readBody(ex, contentLength, deps.maxBodyBytes)
    .then(async (body) => {
      // A protocol-5 client that long-polls posts its message acks ("mack:<mid>") here; they need
      // nothing (resuming is by mid), so they are answered without a channel check or a rejection.
      if (isMessageAck(body)) {
        ex.send(200, '', [...CORS_ANY, ['Content-Type', 'text/plain; charset=utf-8']]);
        return;
      }
      const publicId = restSenderPublicId(query.get('CHANNEL_ID') ?? null, deps.secret, deps.maxChannels);
      const admit = (req: V4Request): void => chargeClientRequest(deps.limiter, publicId, req);
      onPublished(await answerV4(ex, body, { trusted: false, secret: deps.secret }, { type: SenderType.CLIENT, id: publicId }, deps, admit));
    })
    .catch((err: unknown) => {
      if (!ex.aborted) onError(ex, err);
    });
}
