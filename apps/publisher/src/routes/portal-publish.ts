import { BACKEND_SENDER, REQUEST_ID_HEADER, parseBatchPublish, parseSinglePublish, type NewMessage, type PublishLimits } from '@push/protocol';
import { parseQuery, type HttpRequest, type HttpResponse } from '@push/runtime';
import type { RequestGuard, RequestFacts } from '../auth/publish-guard.js';
import { captureBinary, prepareBinary, type BinaryCapture, type V4RouteDeps } from '../binary-publish.js';
import { portalIdentity } from './identity.js';
import type { Plan, PublishRoute } from './publish-pipeline.js';

/** Publish paths, matched by prefix like the Bitrix servers (`/bitrix/pub/anything` publishes too). */
export const PUBLISH_PATHS = ['/pub', '/pub/*', '/bitrix/pub', '/bitrix/pub/*'];
const BATCH_SUFFIX = '/batch';

type PortalCapture =
  | { readonly kind: 'binary'; readonly binary: BinaryCapture }
  | {
      readonly kind: 'text';
      readonly batch: boolean;
      readonly channelParam: string | null;
      readonly expiryHeader: string;
      readonly typeHeader: string;
      readonly requestId: string;
      readonly facts: RequestFacts;
    };

export interface PortalPublishDeps {
  readonly guard: RequestGuard;
  readonly limits: PublishLimits;
  readonly v4: V4RouteDeps;
  readonly maxSkewS: number;
}

/**
 * The portal's `POST /pub` in its three forms: one message (query and headers), a batch
 * (`/pub/batch`, JSON) and protocol 4 (`?binaryMode=true`, protobuf RequestBatch; binary-publish.ts).
 */
export function portalPublishRoute(deps: PortalPublishDeps): PublishRoute<PortalCapture> {
  return {
    capture(res: HttpResponse, req: HttpRequest): PortalCapture {
      const query = parseQuery(req.getQuery() ?? '');
      if (query.get('binaryMode') === 'true') return { kind: 'binary', binary: captureBinary(deps.guard, res, req) };
      const url = req.getUrl();
      return {
        kind: 'text',
        batch: url.endsWith(BATCH_SUFFIX) || url.endsWith(`${BATCH_SUFFIX}/`),
        channelParam: query.get('CHANNEL_ID') ?? null,
        expiryHeader: req.getHeader('message-expiry'),
        typeHeader: req.getHeader('message-type'),
        requestId: req.getHeader(REQUEST_ID_HEADER),
        facts: deps.guard.capture(res, req),
      };
    },
    async prepare(c: PortalCapture, body: Buffer): Promise<Plan> {
      if (c.kind === 'binary') return prepareBinary(c.binary, body, deps.guard, deps.maxSkewS, deps.v4);
      // One signature check per HTTP request, batch or not; then the whole body is validated.
      const auth = await deps.guard.authenticate(c.facts, body);
      const text = body.toString('utf8');
      const messages: NewMessage[] = c.batch
        ? parseBatchPublish(text, deps.limits)
        : [parseSinglePublish({ channelParam: c.channelParam, body: text, expiryHeader: c.expiryHeader || null, typeHeader: c.typeHeader || null }, deps.limits)];
      return { kind: 'publish', messages, sender: BACKEND_SENDER, identity: portalIdentity(auth, c.requestId, deps.maxSkewS) };
    },
  };
}
