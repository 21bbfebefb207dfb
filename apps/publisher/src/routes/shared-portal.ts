import { Errors, PushError, checkRequestSignature, isClientId, parsePublisherChannels, type ChannelSecret, type SignatureAlgorithm } from '@push/protocol';
import { scopeIdentity, scopeMessages, scopeToClient, type ClientDirectory, type RegisteredClient, type ScopedParts } from '@push/backend';
import { CORS_ANY, Exchange, KeyedRateLimiter, parseQuery, type HttpRequest, type HttpResponse } from '@push/runtime';
import { answerError, type PipelineHost, type Plan, type PublishRoute } from './publish-pipeline.js';

/**
 * Shared mode on the publisher: a portal's request names its client (`clientId=`) and is signed
 * with the portal's key (`signature=` = hex HMAC of the body, or of the CHANNEL_ID value for an
 * online query), as the pull module sends it to push server 2.0. Once the client is known and the
 * signature checks out, the request runs through the same route as in personal mode, built once
 * per portal over the portal's view of the backend (`scopeToClient`), so everything it names is
 * in its own namespace.
 */
export interface SharedPortalDeps {
  readonly directory: ClientDirectory;
  readonly algorithm: SignatureAlgorithm;
  /** PUSH_CLIENT_PUBLISH_RATE per portal in this process; null = unlimited. */
  readonly limiter: KeyedRateLimiter | null;
  /**
   * Whether the body must carry the portal's `signature=` (portal requests); false for client
   * publishing (`/rest/`), whose channel list is signed instead, as in push server 2.0.
   */
  readonly signed: boolean;
}

export interface SharedCapture<C> {
  readonly clientId: string;
  readonly signature: string | undefined;
  readonly inner: C;
}

/** The portal's registered client, or 4025 (push server 2.0 answers an unknown id like a missing one). */
async function portalClient(directory: ClientDirectory, clientId: string): Promise<RegisteredClient> {
  const client = isClientId(clientId) ? await directory.resolve(clientId) : null;
  if (client === null) throw new PushError(Errors.CLIENT_ID_REQUIRED);
  return client;
}

/**
 * Wraps a portal route for shared mode. `routeFor` builds the route over a portal's view of the
 * backend; routes are kept per portal. Capturing does not depend on the portal, so the route of
 * the first call captures for all.
 */
export function sharedPortalRoute<C>(routeFor: (scope: PortalScope | null) => PublishRoute<C>, deps: SharedPortalDeps): PublishRoute<SharedCapture<C>> {
  const routes = new Map<string, { readonly key: string; readonly route: PublishRoute<C> }>();
  const template = routeFor(null);
  const route = (client: RegisteredClient): PublishRoute<C> => {
    const kept = routes.get(client.id);
    // A portal removed and added again has a new key: its route is built anew.
    if (kept !== undefined && kept.key === client.key) return kept.route;
    if (routes.size > 10_000) routes.clear();
    const r = routeFor({ clientId: client.id, parts: (base) => scopeToClient(base, client.id), secret: { key: client.key, algorithm: deps.algorithm } });
    routes.set(client.id, { key: client.key, route: r });
    return r;
  };
  return {
    capture(res: HttpResponse, req: HttpRequest): SharedCapture<C> {
      const query = parseQuery(req.getQuery() ?? '');
      return { clientId: query.get('clientId') ?? '', signature: query.get('signature'), inner: template.capture(res, req) };
    },
    refuse(c: SharedCapture<C>): PushError | null {
      return template.refuse?.(c.inner) ?? (isClientId(c.clientId) ? null : new PushError(Errors.CLIENT_ID_REQUIRED));
    },
    async prepare(c: SharedCapture<C>, body: Buffer): Promise<Plan> {
      const client = await portalClient(deps.directory, c.clientId);
      if (deps.signed) checkRequestSignature(body, c.signature, { key: client.key, algorithm: deps.algorithm });
      const plan = await route(client).prepare(c.inner, body);
      // Charged once the request is known to be valid and before anything is stored: a refused
      // publish costs nothing and stores nothing.
      if (plan.kind === 'publish' && deps.limiter !== null) {
        const wait = deps.limiter.take(client.id, plan.messages.length);
        if (wait !== 0) throw new PushError(Errors.CLIENT_PUBLISH_LIMIT, Number.isFinite(wait) ? `Retry in ${wait} s.` : `This request alone holds more than ${deps.limiter.burst} messages: split it.`, Number.isFinite(wait) ? wait : undefined);
      }
      // The pipeline publishes through the store itself: the plan's channels and identity go
      // into the portal's namespace here (reads already ran over the portal's view).
      if (plan.kind === 'publish') return { ...plan, messages: scopeMessages(plan.messages, client.id), identity: scopeIdentity(plan.identity, client.id) };
      return plan;
    },
  };
}

/** What a route is built over for one portal: its view of the backend and its key. */
export interface PortalScope {
  readonly clientId: string;
  readonly parts: (base: ScopedParts) => ScopedParts;
  readonly secret: ChannelSecret;
}

/** The per-portal limiter (PUSH_CLIENT_PUBLISH_RATE, burst two seconds' worth); null when off. */
export function portalLimiter(rate: number): KeyedRateLimiter | null {
  return rate === 0 ? null : new KeyedRateLimiter(rate, 2 * rate);
}

export interface SharedOnlineDeps {
  readonly directory: ClientDirectory;
  readonly algorithm: SignatureAlgorithm;
  readonly base: ScopedParts;
  readonly host: PipelineHost;
  readonly maxChannels: number;
}

const TEXT = ['Content-Type', 'text/plain; charset=utf-8'] as const;

/**
 * `GET /pub?CHANNEL_ID=a/b&clientId=...&signature=<HMAC of the CHANNEL_ID value>`: which of the
 * portal's own channels are online. Another portal's channel with the same id is a different key.
 */
export function sharedOnlineStatusHandler(d: SharedOnlineDeps): (res: HttpResponse, req: HttpRequest) => void {
  return (res, req) => {
    const query = parseQuery(req.getQuery() ?? '');
    const ex = new Exchange(res);
    if (d.host.isDraining()) {
      ex.sendError(Errors.SHUTTING_DOWN, [['Retry-After', '1']], true);
      return;
    }
    d.host.enter();
    (async () => {
      const client = await portalClient(d.directory, query.get('clientId') ?? '');
      const raw = query.get('CHANNEL_ID') ?? '';
      checkRequestSignature(raw, query.get('signature'), { key: client.key, algorithm: d.algorithm });
      const channels = parsePublisherChannels(raw, d.maxChannels);
      const flags = await scopeToClient(d.base, client.id).presence.online(channels);
      const infos = channels.filter((_, i) => flags[i]).map((channel) => ({ channel, subscribers: 1 }));
      ex.send(200, JSON.stringify({ infos }), [...CORS_ANY, TEXT]);
    })()
      .catch((err: unknown) => {
        if (!ex.aborted) answerError(ex, err, d.host);
      })
      .finally(() => d.host.leave());
  };
}

export interface SharedStatsDeps {
  readonly directory: ClientDirectory;
  readonly algorithm: SignatureAlgorithm;
  readonly base: ScopedParts;
  readonly host: PipelineHost;
}

/**
 * Shared mode: `GET /server-stat/?clientId=<id>&signature=<HMAC of the client id with the portal's
 * key>` is a portal's view of the process list (what its protocol-4 `serverStats` answers): each
 * process with its limits, without the traffic counters that add up every portal. Without
 * `clientId` the route stays the operator's (admin gate).
 */
export function sharedServerStatHandler(d: SharedStatsDeps): (res: HttpResponse, req: HttpRequest) => void {
  return (res, req) => {
    const query = parseQuery(req.getQuery() ?? '');
    const ex = new Exchange(res);
    d.host.enter();
    (async () => {
      const client = await portalClient(d.directory, query.get('clientId') ?? '');
      checkRequestSignature(client.id, query.get('signature'), { key: client.key, algorithm: d.algorithm });
      const list = await scopeToClient(d.base, client.id).stats.list();
      ex.send(200, JSON.stringify(list), [...CORS_ANY, TEXT]);
    })()
      .catch((err: unknown) => {
        if (!ex.aborted) answerError(ex, err, d.host);
      })
      .finally(() => d.host.leave());
  };
}
