import { BACKEND_SENDER, checkPortalSignature, parsePortalRpc, rpcResult, type ChannelSecret, type PublishLimits } from '@push/protocol';
import { usersLastSeen, type Presence, type Store } from '@push/backend';
import { CORS_ANY, Exchange, parseQuery, readBody, type HttpRequest, type HttpResponse } from '@push/runtime';

/** The portal's protocol-5 endpoint (`path_to_json_rpc`, default https://<host>/bitrix/api/). */
export const JSON_RPC_API_PATHS = ['/api', '/api/*', '/bitrix/api', '/bitrix/api/*'];

export interface JsonRpcApiDeps {
  readonly store: Store;
  readonly presence: Presence;
  readonly secret: ChannelSecret;
  readonly limits: PublishLimits;
  readonly maxBodyBytes: number;
}

/**
 * `POST /bitrix/api/?signature=<hmac>` from the portal (packages/protocol/src/v5/portal-api.ts):
 * checked as a whole (signature, then every call) before anything is stored, then every publish of
 * the request stored in one atomic step and only then answered. The pull module wants a 200 with a
 * non-empty JSON body even for a batch of notifications (calls without id), so every call gets a
 * response object (id null when it had none), in order; a single call gets a single object.
 * Errors are the catalogue's "<code>: <reason>" with its HTTP status (the module logs any non-200).
 * Resolves once answered; `onError` answers refusals and backend failures.
 */
export function handleJsonRpcApi(res: HttpResponse, req: HttpRequest, deps: JsonRpcApiDeps, onError: (ex: Exchange, err: unknown) => void, onPublished: (n: number) => void): Promise<void> {
  const query = parseQuery(req.getQuery() ?? '');
  const contentLength = req.getHeader('content-length');
  const ex = new Exchange(res);
  return readBody(ex, contentLength, deps.maxBodyBytes)
    .then(async (body) => {
      checkPortalSignature(body, query.get('signature'), deps.secret);
      const { batch, calls } = parsePortalRpc(Buffer.from(body).toString('utf8'), deps.limits);
      const messages = calls.flatMap((c) => (c.kind === 'publish' ? [c.message] : []));
      if (messages.length > 0) await deps.store.publish(messages, BACKEND_SENDER);
      const replies: string[] = [];
      for (const c of calls) {
        const result = c.kind === 'publish' ? {} : await usersLastSeen(deps.presence, c.users);
        replies.push(rpcResult(c.id ?? null, result) as string);
      }
      onPublished(messages.length);
      ex.send(200, batch ? `[${replies.join(',')}]` : (replies[0] as string), [...CORS_ANY, ['Content-Type', 'application/json']]);
    })
    .catch((err: unknown) => {
      if (!ex.aborted) onError(ex, err);
    });
}
