import { BACKEND_SENDER, REQUEST_ID_HEADER, parseV4Request, v4ToNewMessages, type SenderInfo, type TtlPolicy, type V4Limits, type V4Request, type V4Trust } from '@push/protocol';
import { executeV4Request, type PublishIdentity, type V4Deps } from '@push/backend';
import type { HttpRequest, HttpResponse } from '@push/runtime';
import type { RequestGuard, RequestFacts } from './auth/publish-guard.js';
import type { Plan } from './routes/publish-pipeline.js';
import { portalIdentity } from './routes/identity.js';

/**
 * Protocol-version-4 requests over HTTP: the portal's `POST /pub?binaryMode=true` (trusted, here)
 * and the clients' `POST /bitrix/rest/` (untrusted, rest.ts). The body is a protobuf RequestBatch.
 */
export interface V4RouteDeps extends V4Deps {
  readonly limits: V4Limits;
}

/**
 * A decoded and fully validated RequestBatch as a Plan (routes/publish-pipeline.ts): message
 * bodies are checked (JSON objects) here, before anything is written, so a refused request leaves
 * no trace. `admitPublish` may refuse a valid publish (client rate limits, by throwing); `beforeRead`
 * is the one write a read makes first (a signed portal request's nonce claim).
 */
export function v4Plan(req: V4Request, sender: SenderInfo, identity: () => PublishIdentity | undefined, deps: V4RouteDeps & { readonly ttl: TtlPolicy }, hooks: { admitPublish?: () => void; beforeRead?: () => Promise<unknown> } = {}): Plan {
  if (req.kind === 'incomingMessages') {
    // An empty incomingMessages list is a no-op 200, as in Bitrix: the store is not even asked.
    if (req.messages.length === 0) return { kind: 'noop' };
    const messages = v4ToNewMessages(req.messages, deps.ttl);
    const id = identity();
    hooks.admitPublish?.();
    return { kind: 'publish', messages, sender, identity: id };
  }
  return {
    kind: 'read',
    run: async () => {
      await hooks.beforeRead?.();
      return (await executeV4Request(req, sender, deps)) ?? new Uint8Array(0);
    },
  };
}

/** What the portal's binary publish needs from the request. */
export interface BinaryCapture {
  readonly facts: RequestFacts;
  readonly requestId: string;
}

export function captureBinary(guard: RequestGuard, res: HttpResponse, req: HttpRequest): BinaryCapture {
  return { facts: guard.capture(res, req), requestId: req.getHeader(REQUEST_ID_HEADER) };
}

/** The portal's `POST /bitrix/pub/?binaryMode=true`: signature or trusted network, then v4Plan. */
export async function prepareBinary(c: BinaryCapture, body: Buffer, guard: RequestGuard, maxSkewS: number, deps: V4RouteDeps): Promise<Plan> {
  const auth = await guard.authenticate(c.facts, body);
  const req = parseV4Request(body, { trusted: true } satisfies V4Trust, deps.limits);
  return v4Plan(req, BACKEND_SENDER, () => portalIdentity(auth, c.requestId, maxSkewS), deps, { beforeRead: () => guard.admit(auth) });
}
