import { REQUEST_ID_HEADER, SenderType, isMessageAck, parseV4Request, restSenderPublicId, type ChannelSecret, type OriginPolicy } from '@push/protocol';
import { chargeClientRequest, originRefusal, parseQuery, type HttpRequest, type HttpResponse, type KeyedRateLimiter } from '@push/runtime';
import { v4Plan, type V4RouteDeps } from './binary-publish.js';
import type { Plan, PublishRoute } from './routes/publish-pipeline.js';
import { clientIdentity } from './routes/identity.js';

/** Client publishing paths (Bitrix route `rest`; the portal's `path_to_publish_web`). */
export const REST_PATHS = ['/rest', '/rest/*', '/bitrix/rest', '/bitrix/rest/*'];

export interface RestDeps extends V4RouteDeps {
  readonly secret: ChannelSecret;
  readonly maxChannels: number;
  /** PUSH_CLIENT_RATE per sender public id in this process; null = unlimited. */
  readonly limiter: KeyedRateLimiter | null;
  /** The replay window of X-Push-Request-Id is that of signed nonces (2 x this + 1 s). */
  readonly maxSkewS: number;
  /** PUSH_ALLOWED_ORIGINS: browsers publish here too, so the subscribe paths' Origin check applies. */
  readonly origins: OriginPolicy;
  /** Shared mode: the portal, so that its senders' rate buckets are its own. */
  readonly senderScope?: string;
}

interface RestCapture {
  readonly channelParam: string | null;
  readonly requestId: string;
  readonly origin: string;
}

/**
 * `POST /bitrix/rest/?CHANNEL_ID=<priv:pub.sig>/<shared.sig>` with a RequestBatch body: a client
 * publishing to other users' public channels when it has no WebSocket (reference 5.3). The
 * CHANNEL_ID list is checked like a subscription; its first public id is the sender (and the scope
 * of its X-Push-Request-Id). Errors are HTTP 400 (4012 for any channel list without a signed public
 * id) with "<code>: <reason>" bodies. A protocol-5 client that long-polls posts its message acks
 * ("mack:<mid>") here too; they need nothing (resuming is by mid) and get an empty 200. Runs through the shared publish pipeline (routes/publish-pipeline.ts).
 */
export function restRoute(deps: RestDeps): PublishRoute<RestCapture> {
  return {
    capture(_res: HttpResponse, req: HttpRequest): RestCapture {
      return { channelParam: parseQuery(req.getQuery() ?? '').get('CHANNEL_ID') ?? null, requestId: req.getHeader(REQUEST_ID_HEADER), origin: req.getHeader('origin') };
    },
    // A page from a foreign origin is refused before its body is read.
    refuse: (c: RestCapture) => originRefusal(deps.origins, c.origin),
    async prepare(c: RestCapture, body: Buffer): Promise<Plan> {
      if (isMessageAck(body)) return { kind: 'noop' };
      const publicId = restSenderPublicId(c.channelParam, deps.secret, deps.maxChannels);
      const req = parseV4Request(body, { trusted: false, secret: deps.secret }, deps.limits);
      // Charged only for a request that is otherwise valid, right before it is carried out.
      const charge = (): void => chargeClientRequest(deps.limiter, deps.senderScope === undefined ? publicId : `${deps.senderScope} ${publicId}`, req);
      return v4Plan(req, { type: SenderType.CLIENT, id: publicId }, () => clientIdentity(publicId, c.requestId, deps.maxSkewS), deps, {
        admitPublish: charge,
        beforeRead: async () => charge(),
      });
    },
  };
}
