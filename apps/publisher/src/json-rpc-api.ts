import { BACKEND_SENDER, checkPortalSignature, parsePortalRpc, rpcResult, type ChannelSecret, type PublishLimits } from '@push/protocol';
import { usersLastSeen, type Presence } from '@push/backend';
import { parseQuery, type HttpRequest, type HttpResponse } from '@push/runtime';
import type { Plan, PlanAnswer, PublishRoute } from './routes/publish-pipeline.js';

/** The portal's protocol-5 endpoint (`path_to_json_rpc`, default https://<host>/bitrix/api/). */
export const JSON_RPC_API_PATHS = ['/api', '/api/*', '/bitrix/api', '/bitrix/api/*'];

export interface JsonRpcApiDeps {
  readonly presence: Presence;
  readonly secret: ChannelSecret;
  readonly limits: PublishLimits;
}

interface JsonRpcCapture {
  readonly signature: string | null;
}

/**
 * `POST /bitrix/api/?signature=<hmac>` from the portal (packages/protocol/src/v5/portal-api.ts),
 * through the shared publish pipeline: checked as a whole (signature, then every call) before
 * anything is stored, then every publish of the request stored in one atomic step and only then
 * answered. The pull module wants a 200 with a non-empty JSON body even for a batch of
 * notifications (calls without id), so every call gets a response object (id null when it had
 * none), in order; a single call gets a single object. Errors are the catalogue's
 * "<code>: <reason>" with its HTTP status (the module logs any non-200). The signature covers the
 * body only and the module sends no nonce or request id, so these publishes carry no identity.
 */
export function jsonRpcApiRoute(deps: JsonRpcApiDeps): PublishRoute<JsonRpcCapture> {
  return {
    capture(_res: HttpResponse, req: HttpRequest): JsonRpcCapture {
      return { signature: parseQuery(req.getQuery() ?? '').get('signature') ?? null };
    },
    async prepare(c: JsonRpcCapture, body: Buffer): Promise<Plan> {
      checkPortalSignature(body, c.signature, deps.secret);
      const { batch, calls } = parsePortalRpc(body.toString('utf8'), deps.limits);
      const messages = calls.flatMap((call) => (call.kind === 'publish' ? [call.message] : []));
      const respond = async (): Promise<PlanAnswer> => {
        const replies: string[] = [];
        for (const call of calls) {
          const result = call.kind === 'publish' ? {} : await usersLastSeen(deps.presence, call.users);
          replies.push(rpcResult(call.id ?? null, result) as string);
        }
        return { body: batch ? `[${replies.join(',')}]` : (replies[0] as string), contentType: 'application/json' };
      };
      if (messages.length === 0) return { kind: 'read', contentType: 'application/json', run: async () => Buffer.from((await respond()).body) };
      return { kind: 'publish', messages, sender: BACKEND_SENDER, identity: undefined, respond };
    },
  };
}
